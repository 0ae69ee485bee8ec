"""All detector settings in one typed, documented place (defaults: docs/detectors.md).

Plain values only and no import of the detectors themselves: the detectors,
the engine and the settings all read their configuration from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import msgspec

Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    for_s: float = 0.0
    """A finding must hold this long before the alert fires."""
    resolve_after_s: float = 60.0
    """An alert resolves after this long without a finding; a finding after that fires
    it again."""


@dataclass(frozen=True, slots=True)
class CliffConfig:
    step_s: int = 5
    """Signals are sampled, and the detector evaluated, every this many seconds."""
    short_s: int = 30
    """The recent level that is compared with the prediction."""
    baseline_s: int = 300
    """The trend is fitted over this long: recent enough to follow an ebb that began lately."""
    count_bucket_s: int = 30
    """Count signals (entries, events) are summed over buckets this long."""
    gap_s: int = 60
    """The trend is fitted over a span ending this long ago."""
    min_half_life_s: float = 120.0
    """The trend never predicts a decay faster than this half-life."""
    drop_warning: float = 0.4
    """A fall this far below the prediction (a share) warns..."""
    drop_critical: float = 0.75
    """...and this far pages."""
    opening_s: int = 600
    """Entries ease after a stream's opening rush: during its first this long (from the
    room's first event), entries alone fire only when they collapse (`entries_collapse`)."""
    entries_collapse: float = 0.85
    """The fall below the prediction that counts as entries collapsing to near nothing."""
    entries_drop: float = 0.6
    """Mid-show, entries alone (online viewers not falling by `drop_warning`) warn only
    this far below the prediction: entries ease by half after a promotion or a hype
    swing while the audience stays; a feed cut takes most of them (one channel's cut
    is judged by its share, `channel_share`)."""
    surge_ratio: float = 1.5
    """Entries predicted this many times their usual level (the median 30 s count over
    `usual_s`) are a surge easing, as after a promotion: they then fire only when they
    fall below the usual level (by `drop_warning`), not merely below the surge's trend."""
    channel_share: float = 0.2
    """Entries whose fall is not significant by itself (`z`) still make a cliff mid-show
    when a traffic channel that brought at least this share of them over the baseline
    collapsed (its share down by `entries_collapse`, significantly given the entries
    seen) and the total fell by half that share, and `drop_warning` below usual."""
    usual_s: int = 1800
    """The span whose median 30 s entries count is the room's usual level."""
    activity_drop: float = 0.9
    """All events together fire only on a near-silence: chat bursts and stall storms
    come and go without the audience changing."""
    recover_ratio: float = 0.75
    """The alert clears once the level is back at this share of the prediction it fired
    on."""
    settle_after_s: int = 1200
    """A lower level lasting this long becomes the new normal."""
    min_online: float = 50.0
    """The online signal needs this many predicted viewers."""
    min_short_count: float = 25.0
    """Count signals need this many predicted entries or events in `short_s`."""
    z: float = 4.0
    """Count signals must also fall this many Poisson standard deviations."""


@dataclass(frozen=True, slots=True)
class EbbConfig:
    step_s: int = 5
    """Online viewers are sampled every this many seconds (the cliff detector's step)."""
    history_s: int = 3600
    """A peak is looked for this far back."""
    pre_window_s: int = 1800
    """The level before a peak: the median over this long before it."""
    min_rise: float = 1.5
    """The peak must be this many times the pre-promotion level."""
    min_peak: float = 50.0
    """Peaks under this many viewers are not promotions."""
    min_elapsed_s: int = 180
    """Fit only once the ebb has run this long."""
    estimate_every_s: int = 60
    """The fit is made again this often."""
    min_half_life_s: float = 120.0
    """A faster fall is a cliff (the cliff detector's bound), not an ebb."""


@dataclass(frozen=True, slots=True)
class BurnWindow:
    long_s: int
    short_s: int
    burn_rate: float
    severity: Severity


@dataclass(frozen=True, slots=True)
class SloConfig:
    objective: float = 0.95
    """Share of good events the objective requires."""
    windows: tuple[BurnWindow, ...] = (
        BurnWindow(120, 10, 14.4, "critical"),
        BurnWindow(720, 60, 6.0, "warning"),
    )
    """Long and short windows, the burn rate they must both reach, and the severity."""
    min_long_events: float = 100
    """Volume gate: fewer events than this in the shortest long window never alert; a
    longer window needs as many more as it is longer. The gate is on the key's traffic,
    not on a count: 12 minutes of a region with three viewers hold as many samples as
    2 minutes of one with eighteen, and its bad share is as noisy as theirs."""
    min_short_events: float = 10
    """Volume gate of the short window."""

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    @property
    def horizon_s(self) -> int:
        return max(w.long_s for w in self.windows)

    def min_events(self, window: BurnWindow) -> float:
        """The volume gate of `window`'s long window (`min_long_events`)."""
        return self.min_long_events * window.long_s / min(w.long_s for w in self.windows)


@dataclass(frozen=True, slots=True)
class SpamConfig:
    window_s: int = 30
    """The chat window judged, seconds."""
    min_distinct_chars: int = 5
    """Messages with fewer distinct characters (normalized) carry no content: hype."""
    min_cluster_messages: int = 10
    """A cluster of near-duplicates needs this many messages in the window to be a flood."""
    min_accounts: int = 3
    """A cluster in which fewer accounts repeat themselves is a moderation matter: a mute
    action for the repeaters, no room alert."""
    few_accounts: int = 5
    """A cluster written by `min_accounts` up to this many accounts is a flood when they
    are fresh (`fresh_share`) and repeat themselves (`few_repeat`); established accounts
    get mute actions."""
    few_repeat: float = 3.0
    """Messages per account a cluster written by few accounts must hold."""
    min_repeat: float = 1.5
    """A cluster of more accounts must hold this many messages per account (newcomers
    asking the same question write once; bots repeat)..."""
    fresh_share: float = 0.6
    """...and this share of its messages from fresh accounts to be a flood."""
    min_fresh_accounts: int = 8
    """Fresh accounts needed by `fresh_share`, and by a burst of busy fresh accounts."""
    busy_messages: int = 5
    """An account writing this many content messages in the window is busy;
    `min_fresh_accounts` busy fresh accounts at once are a flood whatever their texts."""
    contact_messages: int = 5
    """This many messages with contact ids or links in the window, from at least
    `min_contact_accounts` accounts, is a flood by itself."""
    min_contact_accounts: int = 2
    """Contact ids from fewer accounts get those accounts a mute action instead."""
    per_user_messages: int = 20
    """Twitch's limit for ordinary users: 20 messages per 30 s."""
    mute_messages: int = 5
    """An account repeating one text (or contact ids) this often in the window, below the
    flood thresholds, gets a mute action without a room alert."""
    mute_again_s: int = 300
    """An account a mute action was asked for is not asked for again within this long."""
    critical_messages: int = 50
    """A flood of this many spam messages (or any contact ids) pages; smaller ones warn."""
    max_mute: int = 50
    """At most this many accounts in a mute action."""


@dataclass(frozen=True, slots=True)
class LevelConfig:
    """A sustained level of bad samples: what many viewers of a region see now.

    Burn rates are sized for budgets; a live show's viewers leave within minutes of a
    bad picture, so a region with about half of its samples over the objective for a
    couple of minutes pages on that level alone (anchors: pair burn rates with a level),
    and so does a third, held a little longer, when it is a step from a healthy region.
    A region drifting between a quarter and a third, as a real network's level does,
    is the burn rates' to judge."""

    window_s: int = 120
    """The bad share must hold over this long."""
    buckets: int = 4
    """The window's equal parts, each of which must hold it too: a one-minute spike fills
    at most three of four 30 s parts, so it never pages."""
    bad_share: float = 0.3
    """The window's share must be significantly above this (one-sided, `z`): a handful
    of viewers, whose shares are noisy, must be at about half to be certain (the
    ordinary noise of a small room never pages)."""
    z: float = 2.33
    """Standard errors of certainty (2.33: a 1% one-sided test; a region is judged every
    few seconds, so a looser test would page on chance)."""
    half_share: float = 0.5
    """About this share pages: the window's share and every part's must not be
    significantly below it (one-sided, `half_z`), so a big region must be at about
    half in every part."""
    half_z: float = 1.64
    """Standard errors a share may sit below `half_share` (1.64: a 5% one-sided test)."""
    step_window_s: int = 150
    """A lower share, certain but under about half, pages once it has held this long
    (in parts of `window_s / buckets`) as a step from a healthy region: a third of a
    region's viewers suddenly over the objective is a degradation, but a real network's
    level swells for a couple of minutes at a time, so a lower share needs longer."""
    before_s: int = 540
    """The span before the step's window that says whether the region was healthy."""
    step_ratio: float = 0.25
    """The region's share over `before_s` must be at most this much of the step's (from
    2% to 38% is a step; from 25% to 35% is a drift, the burn rates' to judge)."""
    part_share: float = 0.8
    """Every part of the step's window must hold this much of its share: a level held,
    not a swell or a spike spilling into the parts around it."""
    min_part_share: float = 0.25
    """However high the window's share, no part may be under this."""
    min_bucket_samples: float = 10
    """Samples every part needs: thin traffic never pages on a level."""
    severity: Severity = "critical"
    """Severity of a level finding."""


@dataclass(frozen=True, slots=True)
class StallStepConfig:
    """A stall storm: a room's stalled share of watch time stepping up from a healthy
    level and held for a couple of minutes.

    The stall burn rates are sized for budgets: a storm that stalls 3% of the room's
    watch time for five minutes is 3x the 99% objective's burn, under both pairs, and
    never paged (a 1% rise in the buffering ratio costs a live event's viewers minutes
    of viewing: Dobrian et al., "Understanding the Impact of Video Quality on User
    Engagement", SIGCOMM 2011). As the latency level does for regions, a room whose
    stalled share rises to the whole budget at once, from a quarter of it or less, and
    holds there in every part of the window, pages on that step alone."""

    window_s: int = 120
    """The stalled share must hold over this long."""
    buckets: int = 4
    """The window's equal parts: each must hold `part_share` of the window's share, so
    a blip every viewer stalls through at once (a CDN hiccup) fills one part, not four."""
    min_share: float = 0.01
    """The window's stalled share of watch time must reach this: the whole budget of the
    stall objective (99% of watch time unstalled), spent as it goes."""
    part_share: float = 0.5
    """Every part must hold this much of the window's share (a storm ramping up over its
    first half minute still holds half in its first part)."""
    before_s: int = 540
    """The span before the window that says whether the room was healthy."""
    step_ratio: float = 0.25
    """The room's stalled share over `before_s` must be at most this much of the window's:
    a step, not a room whose playback was poor all along (the burn rates judge that)."""
    min_viewers: int = 5
    """Distinct viewers who stalled in the last minute: one viewer on a bad connection is
    no storm, however much of the room's watch time they stall through."""
    min_watch_s: float = 1200.0
    """Viewer-seconds the window and the span before it each need (10 viewers for 2
    minutes): a room too thin for its stall objective's volume gate is not judged."""
    severity: Severity = "warning"
    """Severity of a step finding: under the burn rates' thresholds by design."""


@dataclass(frozen=True, slots=True)
class RecallConfig:
    """Recall candidates (detectors/recall.py): viewers whose session ended during a
    latency or stall incident of their room, or soon after a stall of their own."""

    stall_window_s: int = 60
    """A session ending this soon after the viewer's own stall is `stalled_then_left`."""
    max_per_incident: int = 20_000
    """Viewers recalled per incident; more are dropped (counted)."""
    max_incidents_per_room: int = 16
    """Incidents remembered per room, open or recently resolved; more are dropped."""
    max_stalls_per_room: int = 10_000
    """Online viewers' latest stalls remembered per room; more are dropped (counted)."""


def _stall_slo() -> SloConfig:
    # Amounts are seconds: watch time, and stall time within it. 99% of watch time
    # unstalled; the volume gates are viewer-seconds (10 viewers for the short window).
    return SloConfig(
        objective=0.99,
        windows=(
            BurnWindow(120, 10, 14.4, "critical"),
            BurnWindow(720, 60, 6.0, "warning"),
        ),
        min_long_events=1200,
        min_short_events=100,
    )


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    cliff: CliffConfig = field(default_factory=CliffConfig)
    spam: SpamConfig = field(default_factory=SpamConfig)
    latency_slo: SloConfig = field(default_factory=SloConfig)
    """Share of e2e latency samples at or under the latency SLO (600 ms), per room and region."""
    latency_level: LevelConfig = field(default_factory=LevelConfig)
    """A sustained share of a region's samples over the latency SLO pages by itself."""
    latency_sample_max_s: float = 60.0
    """A latency sample stands for its viewer's watch time since their previous sample
    (or their join), at least 1 s and at most this long: the latency objective is a
    share of viewer time, so a viewer who reports often, or from a bad connection,
    weighs as one viewer (as watch time weighs stalls), not as many samples."""
    stall_slo: SloConfig = field(default_factory=_stall_slo)
    stall_step: StallStepConfig = field(default_factory=StallStepConfig)
    """A room's stalled share stepping up to the stall objective's budget pages by itself."""
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    ebb: EbbConfig = field(default_factory=EbbConfig)
    fresh_account_s: int = 10
    """A chatter first seen in the room this recently counts as a fresh account."""
    promotion_lookback_s: int = 1800
    """A peak this recent, well above the current level, is hinted as a promotion that ended."""
    recall: RecallConfig = field(default_factory=RecallConfig)
    """Recall candidates (partition-wide: `[detectors.recall]` only)."""
    watch_from_online: int = 10
    """A room's traffic detectors (cliff, ebb, latency and stall SLOs) start once this
    many viewers are online at once: none of them can judge fewer (the stall SLO's volume
    gate is 10 viewers), and a room with a handful of viewers then costs no detector
    state and no per-second upkeep. Its chat is watched from the first message."""

    def __post_init__(self) -> None:
        if self.ebb.step_s != self.cliff.step_s:
            raise ValueError("ebb.step_s must equal cliff.step_s (both see the same steps)")
        level = self.latency_level
        if max(level.window_s, level.step_window_s + level.before_s) > self.latency_slo.horizon_s:
            raise ValueError(
                "latency_level.window_s and step_window_s + before_s must fit in "
                "latency_slo's longest window"
            )
        if self.latency_level.buckets < 1:
            raise ValueError("latency_level.buckets must be at least 1")
        if level.step_window_s < level.window_s // level.buckets:
            raise ValueError("latency_level.step_window_s must hold at least one part")
        if not 0 < self.latency_level.min_part_share <= 1:
            raise ValueError("latency_level.min_part_share must be in (0, 1]")
        step = self.stall_step
        if step.buckets < 1 or step.window_s < step.buckets:
            raise ValueError("stall_step.window_s must hold its buckets, at least 1")
        if step.window_s + step.before_s > self.stall_slo.horizon_s:
            raise ValueError(
                "stall_step.window_s + before_s must fit in stall_slo's longest window"
            )
        if not 0 < step.part_share <= 1 or step.min_share <= 0:
            raise ValueError("stall_step.part_share must be in (0, 1], min_share positive")
        recall = self.recall
        if min(recall.stall_window_s, recall.max_per_incident, recall.max_incidents_per_room,
               recall.max_stalls_per_room) < 0:  # fmt: skip
            raise ValueError("recall settings must not be negative")


class DetectorConfigError(ValueError):
    pass


_PER_PARTITION = frozenset({"lifecycle", "recall"})
"""Settings only `[detectors]` itself may change: one alert tracker and one recall serve
a partition."""


def _merge(base: DetectorConfig, table: Mapping[str, Any], where: str) -> DetectorConfig:
    """`base` with the settings of a TOML-like table applied, validated."""
    names = {f.name for f in fields(DetectorConfig)}
    changes: dict[str, Any] = {}
    for name, value in table.items():
        if name not in names or (name in _PER_PARTITION and where != "detectors"):
            raise DetectorConfigError(f"{where}: unknown detector setting {name!r}")
        current = getattr(base, name)
        if not is_dataclass(current):
            changes[name] = value
        elif isinstance(value, Mapping):
            # msgspec ignores unknown keys of a dataclass: a typo would change nothing.
            unknown = sorted(set(value) - {f.name for f in fields(current)})
            if unknown:
                raise DetectorConfigError(f"{where}.{name}: unknown setting(s) {unknown}")
            changes[name] = {**msgspec.to_builtins(current), **value}
        else:
            raise DetectorConfigError(f"{where}.{name} must be a table")
    try:
        return msgspec.convert(
            {**msgspec.to_builtins(base), **changes}, type=DetectorConfig, strict=False
        )
    except msgspec.ValidationError as exc:
        raise DetectorConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class DetectorSettings:
    """Defaults, then `[detectors]`, then a room's category, then the room itself."""

    base: DetectorConfig = field(default_factory=DetectorConfig)
    categories: tuple[tuple[frozenset[str], Mapping[str, Any], str], ...] = ()
    rooms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> DetectorSettings:
        """Parse and validate the `[detectors]` table of a config file."""
        table = dict(table)
        categories_table = table.pop("categories", {})
        rooms_table = table.pop("rooms", {})
        base = _merge(DetectorConfig(), table, "detectors")
        categories = []
        for name, category in dict(categories_table).items():
            category = dict(category)
            members = category.pop("rooms", [])
            if not isinstance(members, list) or not all(isinstance(r, str) for r in members):
                raise DetectorConfigError(f"detectors.categories.{name}.rooms: a list of room ids")
            _merge(base, category, f"detectors.categories.{name}")  # validate now
            categories.append((frozenset(members), category, name))
        for room_id, room in dict(rooms_table).items():
            _merge(base, room, f"detectors.rooms.{room_id}")
        return cls(base, tuple(categories), dict(rooms_table))

    def watch_from_online(self, room_id: str) -> int:
        """`watch_from_online` of a room, without building its config when nothing overrides it."""
        if room_id in self.rooms or any(room_id in members for members, _, _ in self.categories):
            return self.for_room(room_id).watch_from_online
        return self.base.watch_from_online

    def for_room(self, room_id: str) -> DetectorConfig:
        config = self.base
        for members, overrides, name in self.categories:
            if room_id in members:
                config = _merge(config, overrides, f"detectors.categories.{name}")
        if room_id in self.rooms:
            config = _merge(config, self.rooms[room_id], f"detectors.rooms.{room_id}")
        return config
