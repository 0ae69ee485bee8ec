"""Feeding a room's state and events to the detectors, once per closed second.

The partition engine calls `observe` for every applied event and `tick` for
every closed second, in event-time order. Detectors are evaluated every
`cliff.step_s` seconds of event time; their findings go through the
partition's alert tracker, whose transitions (and moderation actions) wait in
an outbox for the driver: the worker sends them to Kafka, backtest to a file.

A room whose stream ended (a room event `ended`) is judged no more:
`stream_ended` resolves its alerts, and it is not watched again until a `live`
starts a new broadcast (a new room state, streams.core.engine).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors.alerts import SEVERITY_RANK, AlertKey, AlertTracker, Finding, Transition
from detectors.cliff import (
    CHANNEL_BEFORE_S,
    CHANNEL_RECENT_S,
    CliffDetector,
    channel_hints,
    qoe_hint,
)
from detectors.config import DetectorConfig, DetectorSettings
from detectors.ebb import EbbTracker, ebb_hint
from detectors.recall import Recall, RoomRecall
from detectors.slo import (
    BurnRate,
    latency_finding,
    stall_finding,
    stall_step,
    sustained_level,
)
from detectors.spam import SpamDetector, flood_action, moderation_action
from streams.core.events import Danmaku, Stall, Viewer
from streams.core.latency import LatencySamples
from streams.core.room import (
    CHANNELS,
    ENTRIES,
    STALL_SECONDS,
    RoomState,
)

UNKNOWN_REGION = "unknown"
STALLED_WITHIN_S = 60
"""A stall step needs its viewers stalled this recently (`StallStepConfig.min_viewers`)."""
EBB_METRICS = (
    "ebb_peak_ts",
    "ebb_peak_viewers",
    "ebb_pre_level_viewers",
    "ebb_floor_viewers",
    "ebb_half_life_seconds",
    "ebb_floor_ratio",
    "ebb_progress_ratio",
)


@dataclass
class Traffic:
    """A room's viewer and playback detectors, with the steps they are fed."""

    config: DetectorConfig
    cliff: CliffDetector = field(init=False)
    stall: BurnRate = field(init=False)
    ebb: EbbTracker = field(init=False)
    latency: dict[str, BurnRate] = field(default_factory=dict)
    second_latency: dict[str, list[float]] = field(default_factory=dict)
    """Region -> [samples, samples over the SLO, viewer-seconds they stand for, those of
    the samples over the SLO] in the second being filled."""
    last_sample: dict[str, int] = field(default_factory=dict)
    """User -> ms of their latest e2e latency sample (those older than
    `latency_sample_max_s` pruned every that many seconds): a sample stands for the
    viewer's time since the one before."""
    step_online: float = 0.0
    step_entries: float = 0.0
    step_events: float = 0.0

    def __post_init__(self) -> None:
        self.cliff = CliffDetector(self.config.cliff)
        self.stall = BurnRate(self.config.stall_slo, head=0)
        self.ebb = EbbTracker(self.config.ebb)


@dataclass
class RoomWatch:
    """A room's detectors, each made when the room first needs it: the chat's at its
    first danmaku, the traffic's once `watch_from_online` viewers are online at once
    (none of them could judge fewer), so a room with a handful of viewers costs no
    detector state and no upkeep beyond its chat."""

    config: DetectorConfig
    spam: SpamDetector | None = None
    traffic: Traffic | None = None


@dataclass
class PartitionWatch:
    """The detectors of every room of a partition, and what they have to say."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    latency_slo_ms: float = 600.0
    rooms: dict[str, RoomWatch] = field(default_factory=dict)
    tracker: AlertTracker = field(init=False)
    transitions: list[Transition] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    transitions_total: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(alert, state, severity) -> transitions emitted since the partition started here."""
    session_linger_s: int = 310
    """How long after a viewer's last event the end of their session may be noticed
    (the session timeout and an expiry scan): recall keeps incidents that long."""
    recall: Recall = field(init=False)
    """Recall candidates (detectors.recall): their actions join the moderation actions."""

    def __post_init__(self) -> None:
        self.tracker = AlertTracker(self.settings.base.lifecycle)
        self.recall = Recall(self.settings.base.recall, self.session_linger_s)

    def _watch(self, room_id: str) -> RoomWatch:
        watch = self.rooms.get(room_id)
        if watch is None:
            watch = self.rooms[room_id] = RoomWatch(self.settings.for_room(room_id))
        return watch

    def observe(self, event: Viewer, room: RoomState) -> None:
        """Before `room` applies `event` (latency samples come through `observe_latency`)."""
        watch = self.rooms.get(room.room_id)
        if isinstance(event, Danmaku):
            if watch is None:
                if room.ended_at is not None:
                    return  # the stream ended: nothing to judge
                watch = self._watch(room.room_id)
            if watch.spam is None:
                watch.spam = SpamDetector(watch.config.spam)
            joined = room.viewers.joined_at(event.user_id)
            fresh = joined is None or event.ts - joined < watch.config.fresh_account_s * 1000
            watch.spam.add(event.ts, event.user_id, event.text, fresh)
        if watch is not None and watch.traffic is not None:
            watch.traffic.step_events += 1

    def stalled(self, room: RoomState, event: Stall) -> None:
        """After `room` applied a stall: remembered for `stalled_then_left`."""
        if room.ended_at is not None or event.user_id not in room.viewers:
            return  # the stream ended, or a stall trailing its viewer's leave
        if room.recall is None:
            room.recall = RoomRecall(self.recall)
        room.recall.stalled(event.user_id, event.ts, event.ts // 1000)

    def observe_latency(self, room: RoomState, samples: LatencySamples) -> None:
        recall = room.recall
        if recall is not None and recall.sampling:  # a latency incident fires in the room
            recall.sampled(samples.events)
        watch = self.rooms.get(room.room_id)
        traffic = watch.traffic if watch is not None else None
        if traffic is None:
            return
        traffic.step_events += len(samples.events)
        slo_ms, longest_ms = self.latency_slo_ms, traffic.config.latency_sample_max_s * 1000
        last, by_region = traffic.last_sample, traffic.second_latency
        joined_at = room.viewers.joined_at
        for event in samples.events:
            if event.kind != "e2e":
                continue
            # The sample stands for the viewer's watch time since their previous sample
            # (or their join), so a viewer who reports often does not outweigh others.
            user, ts = event.user_id, event.ts
            previous = last.get(user)
            if previous is None:
                previous = joined_at(user)
                if previous is None:
                    previous = ts
            last[user] = ts
            gap = ts - previous
            weight = 1.0 if gap < 1000 else (gap if gap < longest_ms else longest_ms) / 1000
            counts = by_region.get(event.region or UNKNOWN_REGION)
            if counts is None:
                counts = by_region[event.region or UNKNOWN_REGION] = [0.0, 0.0, 0.0, 0.0]
            counts[0] += 1
            counts[2] += weight
            if event.value_ms > slo_ms:
                counts[1] += 1
                counts[3] += weight

    def tick(self, second: int, room: RoomState) -> None:
        """After `room` closed `second`."""
        watch = self.rooms.get(room.room_id)
        if watch is None:
            if (
                room.online < self.settings.watch_from_online(room.room_id)
                or room.ended_at is not None
            ):
                return  # nothing to judge (yet): no detector state, no upkeep
            watch = self._watch(room.room_id)
        traffic = watch.traffic
        if traffic is None and room.online >= watch.config.watch_from_online:
            traffic = watch.traffic = Traffic(watch.config)
        if traffic is not None:
            self._feed(second, room, traffic)
        if (second + 1) % watch.config.cliff.step_s == 0:
            self._evaluate(second, room, watch)

    def _feed(self, second: int, room: RoomState, traffic: Traffic) -> None:
        traffic.step_online += room.online
        traffic.step_entries += room.ring.at(ENTRIES, second)
        traffic.stall.add(second, room.viewer_seconds(second), room.ring.at(STALL_SECONDS, second))
        for region, (samples, _, weight, bad_weight) in traffic.second_latency.items():
            burn = traffic.latency.get(region)
            if burn is None:
                burn = traffic.latency[region] = BurnRate(traffic.config.latency_slo, head=second)
            burn.add(second, weight, bad_weight, samples)
        traffic.second_latency.clear()
        longest_s = traffic.config.latency_sample_max_s
        if second % int(longest_s) == 0:  # forget viewers not measured for that long
            oldest_ms = (second + 1 - longest_s) * 1000
            traffic.last_sample = {u: t for u, t in traffic.last_sample.items() if t >= oldest_ms}

    def _evaluate(self, second: int, room: RoomState, watch: RoomWatch) -> None:
        room_id = room.room_id
        now_ms = (second + 1) * 1000
        findings: dict[AlertKey, Finding] = {}
        if watch.traffic is not None:
            findings.update(self._judge_traffic(second, room, watch.traffic))
        chat = watch.spam.evaluate(now_ms) if watch.spam is not None else None
        if chat is not None and chat.flood is not None:
            findings[AlertKey("spam_flood", room_id)] = chat.flood
        if chat is not None and chat.repeaters:
            self.actions.append(moderation_action(room_id, chat.repeaters, now_ms))
        transitions = self.tracker.update(now_ms, findings, scope=room_id)
        self._publish(room, transitions)
        for transition in transitions:
            if (
                transition.alert == "spam_flood"
                and transition.state == "firing"
                and chat is not None
                and chat.mute
            ):
                self.actions.append(flood_action(transition, chat.mute))

    def _judge_traffic(
        self, second: int, room: RoomState, traffic: Traffic
    ) -> dict[AlertKey, Finding]:
        step = traffic.config.cliff.step_s
        room_id = room.room_id
        channels = [room.channels.window_ending(i, step, second) for i in range(len(CHANNELS))]
        traffic.cliff.observe(
            traffic.step_online / step, traffic.step_entries, traffic.step_events, channels
        )
        traffic.ebb.observe(second, traffic.step_online / step)
        traffic.step_online = traffic.step_entries = traffic.step_events = 0.0
        findings: dict[AlertKey, Finding] = {}
        cliff = traffic.cliff.evaluate(second)
        if cliff is not None:
            findings[AlertKey("traffic_cliff", room_id)] = _with_hints(
                cliff, self._cliff_hints(second, room, traffic)
            )
        for region, burn in list(traffic.latency.items()):
            found = _most_severe(
                burn.evaluate(second), sustained_level(burn, second, traffic.config.latency_level)
            )
            if found is not None:
                findings[AlertKey("latency_slo", room_id, region)] = latency_finding(
                    found, region, self.latency_slo_ms
                )
            elif burn.is_silent(second):
                del traffic.latency[region]  # silent region: bounded memory
        stall = traffic.stall.evaluate(second)
        if not traffic.stall.is_clean(second):
            stalled = room.stalled.distinct(STALLED_WITHIN_S)
            storm = stall_step(traffic.stall, second, traffic.config.stall_step, stalled)
            stall = _most_severe(stall, storm)
        if stall is not None:
            findings[AlertKey("stall_slo", room_id)] = stall_finding(stall)
        return findings

    def _cliff_hints(self, second: int, room: RoomState, traffic: Traffic) -> list[str]:
        hints = []
        firing = {k.alert for k in self.tracker.firing() if k.room_id == room.room_id}
        latest = room.metrics(60)
        p95 = latest["latency_p95_seconds"]
        stall_ratio = latest["stall_ratio"]
        if firing & {"latency_slo", "stall_slo"} or (p95 or 0) * 1000 > self.latency_slo_ms:
            hints.append(qoe_hint(p95, stall_ratio))
        ring, recent_s = room.channels, CHANNEL_RECENT_S
        count = len(CHANNELS)
        before = [ring.window_ending(i, CHANNEL_BEFORE_S, second - recent_s) for i in range(count)]
        recent = [ring.window_ending(i, recent_s, second) for i in range(count)]
        hints += channel_hints(CHANNELS, before, recent)
        ebb = traffic.ebb.estimate
        if ebb is not None and second - ebb.peak_second <= traffic.config.promotion_lookback_s:
            hints.append(ebb_hint(ebb))
        return hints

    def room_metrics(self, room_id: str) -> dict[str, float | None]:
        """The post-promotion ebb of a room as snapshot metrics (None: no ebb measured)."""
        watch = self.rooms.get(room_id)
        traffic = watch.traffic if watch is not None else None
        ebb = traffic.ebb.estimate if traffic is not None else None
        if ebb is None:
            return dict.fromkeys(EBB_METRICS)
        return {
            "ebb_peak_ts": ebb.peak_second * 1000,
            "ebb_peak_viewers": ebb.peak,
            "ebb_pre_level_viewers": ebb.pre_level,
            "ebb_floor_viewers": ebb.floor,
            "ebb_half_life_seconds": ebb.half_life_s,
            "ebb_floor_ratio": ebb.floor_ratio if math.isfinite(ebb.floor_ratio) else None,
            "ebb_progress_ratio": ebb.progress,
        }

    def _publish(self, room: RoomState, transitions: list[Transition]) -> None:
        """Transitions of `room` to the outbox; its latency and stall incidents open and
        close with them (recall candidates)."""
        self.transitions += transitions
        for transition in transitions:
            room.recall = self.recall.transition(room.recall, transition)

    def stream_ended(self, room: RoomState, ts: int) -> None:
        """The room's stream ended at `ts`: its detectors go, whatever it has open
        resolves (`resolve_reason: "stream_ended"`), and nothing fires for it any more:
        the viewers leaving an ended stream are no traffic cliff."""
        self.rooms.pop(room.room_id, None)
        self._publish(room, self.tracker.resolve_room(room.room_id, ts, "stream_ended"))

    def room_gone(self, room_id: str, second: int) -> None:
        self.rooms.pop(room_id, None)
        self.transitions += self.tracker.resolve_room(room_id, (second + 1) * 1000, "room_closed")

    def drain(self) -> tuple[list[Transition], list[dict[str, Any]]]:
        transitions, actions = self.transitions, self.actions + self.recall.take()
        self.transitions, self.actions = [], []
        self.transitions_total.update((t.alert, t.state, t.severity) for t in transitions)
        return transitions, actions


def _most_severe(first: Finding | None, second: Finding | None) -> Finding | None:
    """The more severe of two findings on one key (the first on a tie)."""
    if first is None or second is None:
        return first or second
    return second if SEVERITY_RANK[second.severity] > SEVERITY_RANK[first.severity] else first


def _with_hints(finding: Finding, hints: list[str]) -> Finding:
    return msgspec.structs.replace(finding, details={**finding.details, "hints": hints})
