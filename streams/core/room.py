"""One room's event-time state and the metrics derived from it. Pure: no I/O.

Events are applied in event-time order by the partition engine, which also calls
`tick(second)` once for every second of event time that closes, in order, so a
room whose events stop still moves on (its windows empty, idle sessions expire).
Definitions and sources of every metric: docs/metrics.md.

Room events (`RoomEvent`) are the room's own: its stream's lifecycle (`live`,
`ended`) and its promotions, kept here at event time (`apply_phase`), each with its
review (streams.core.review), which closed seconds feed while it runs and for an hour
after its end. What an ended stream means for detectors and for the room's life is
the engine's and the watch's (streams.core.engine, streams.core.watch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from detectors.recall import RoomRecall
from streams.core.config import MetricsConfig
from streams.core.distinct import DistinctCount
from streams.core.events import Danmaku, Join, Latency, Leave, Order, RoomEvent, Stall, Viewer
from streams.core.review import BEFORE_S, REVIEW_METRICS, PromotionReview
from streams.core.rolling import WINDOWS, LastSeen, LevelRing, SecondRing, WindowedSketch
from streams.core.viewers import Viewers

# Fields of the per-second ring, indexed by the second events happened in.
ENTRIES, EXITS, DANMAKU, ORDERS, GMV, STALLS, STALL_SECONDS = range(7)
LATENCY_SAMPLES, LATENCY_WITHIN_SLO = 7, 8
_RING_FIELDS: Final = 9
VIEWER_SECONDS: Final = 9
"""Of the totals only: viewer-seconds are counted every second someone is online, so
they have a ring of their own (`presence`, spans of a level: online viewers hold for
many seconds) and the event ring stays sparse in a room that sees few events."""
_TOTALS: Final = 10
# Fields of the ring indexed by the second a session *started*.
JOINS, GONE_BEFORE_BOUNCE, GONE_BEFORE_1M, GONE_BEFORE_5M = range(4)
CHANNELS: Final = ("feed", "follow", "search", "ad", "share", "other", "unknown")
"""Traffic channels of entries (a join's `source`), 'unknown' when not given."""
MAX_PROMOTIONS: Final = 32
"""Promotions a room remembers (the latest): a producer sending a new promo_id every
second must not grow a room without bound."""


@dataclass(slots=True)
class Promotion:
    """One promotion of a room as its room events told it, at event time (ms)."""

    promo_id: str | None
    started_at: int | None
    """Its `promo_start`; None when only its `promo_end` was seen."""
    online_at_start: int | None
    """Viewers online when it started."""
    ended_at: int | None = None
    """Its `promo_end`; None while it runs."""
    online_at_end: int | None = None
    review: PromotionReview | None = None
    """What it did to the room (streams.core.review)."""


class RoomState:
    """Presence, sessions and rolling windows of one room."""

    def __init__(self, room_id: str, second: int, config: MetricsConfig) -> None:
        self.room_id = room_id
        self.config = config
        self.head = second
        """Newest second applied or ticked."""
        self.born = second
        """The second the room was first seen (this broadcast)."""
        self.closed = second - 1
        """Newest second ticked (`tick` or `catch_up`)."""
        self.last_event_second = second
        longest = max(WINDOWS)
        self.ring = SecondRing(_RING_FIELDS, longest, second)
        self.presence = LevelRing(longest, second)
        """Viewers online, summed per second: viewer-seconds."""
        self.by_join = SecondRing(4, longest * 2, second)
        self.channels = SecondRing(len(CHANNELS), longest, second)
        self.viewers = Viewers()
        """Online viewers: when their session started, when last seen."""
        self.departed = LastSeen(longest, second)
        """Viewers gone within the longest window (not online now)."""
        self.chatters = LastSeen(longest, second)
        self.buyers = LastSeen(longest, second)
        self.stalled = LastSeen(longest, second)
        self.latency = WindowedSketch(WINDOWS, second)
        # Totals since the room went live.
        self.peak_online = 0
        self.totals = [0.0] * _TOTALS
        self.entries_by_channel: dict[str, int] = {}
        """Entries since live by traffic channel, for the channels seen so far."""
        # Exact up to 10,000 users each, then estimated: bounded whatever ids arrive.
        self.viewers_ever = DistinctCount()
        self.chatters_ever = DistinctCount()
        self.buyers_ever = DistinctCount()
        self.stalled_ever = DistinctCount()
        # The stream's lifecycle and promotions, from room events.
        self.live_at: int | None = None
        """ms of the broadcast's `live`, when one was seen."""
        self.ended_at: int | None = None
        """ms of the broadcast's `ended`: its detectors stopped, and the room goes
        `ended_grace_s` later. None while it is live (or was never said to end)."""
        self.promotions: list[Promotion] = []
        """The room's promotions, oldest first (at most `MAX_PROMOTIONS`; a list, not a
        bounded deque: most rooms have none, and an empty deque is 600 bytes)."""
        self.reviewing: list[Promotion] = []
        """Promotions running or in their after phase: observed as seconds close."""
        self.recall: RoomRecall | None = None
        """The room's recall state (detectors.recall) while it has a latency or stall
        incident or viewers' recent stalls to judge a session end by: None otherwise, so a
        session end costs one attribute check."""

    # -- applying events ---------------------------------------------------

    def apply_phase(self, event: RoomEvent) -> None:
        """A room event: the stream went live or ended, a promotion started or ended.

        Repeats (at-least-once delivery) change nothing: the first `live` and `ended`
        of a broadcast count, and a promotion is matched by its `promo_id`."""
        self.arrive(event.ts // 1000)
        phase, ts = event.phase, event.ts
        if phase == "live":
            if self.live_at is None:
                self.live_at = ts
        elif phase == "ended":
            if self.ended_at is None:
                self.ended_at = ts
        elif phase == "promo_start":
            if self._open_promotion(event.promo_id, exact=True) is None:
                second = ts // 1000
                before_s = min(BEFORE_S, second - self.born)
                review = PromotionReview.start(
                    second, self.online, before_s, self._amounts(before_s, second - 1),
                    self._review_totals(second),
                )  # fmt: skip
                self._promote(Promotion(event.promo_id, ts, self.online, review=review))
        else:
            promotion = self._open_promotion(event.promo_id, exact=False)
            if promotion is None and all(p.promo_id != event.promo_id for p in self.promotions):
                # Its start came before this worker's history (or never): the end is news.
                promotion = Promotion(
                    event.promo_id, None, None, review=PromotionReview(None, None)
                )
                self._promote(promotion)
            if promotion is not None:
                promotion.ended_at, promotion.online_at_end = ts, self.online
                if promotion.review is not None:
                    second = ts // 1000
                    promotion.review.end(
                        second, self.online, self._review_totals(second), self.viewers
                    )

    def _promote(self, promotion: Promotion) -> None:
        self.promotions.append(promotion)
        del self.promotions[:-MAX_PROMOTIONS]
        kept = {id(p) for p in self.promotions}  # a promotion pushed out is reviewed no more
        self.reviewing = [p for p in self.reviewing if id(p) in kept] + [promotion]

    def _review_totals(self, second: int) -> list[float]:
        """(viewer-seconds, chat messages, paid orders, GMV) since live, as `second` opened."""
        t, ring = self.totals, self.ring
        return [
            t[VIEWER_SECONDS],
            t[DANMAKU] - ring.at(DANMAKU, second),
            t[ORDERS] - ring.at(ORDERS, second),
            t[GMV] - ring.at(GMV, second),
        ]

    def _amounts(self, seconds: int, last: int) -> list[float]:
        """The review's amounts over the `seconds` seconds ending at `last`."""
        if seconds <= 0:
            return [0.0] * 4
        ring = self.ring
        return [
            self.presence.window_ending(seconds, last),
            ring.window_ending(DANMAKU, seconds, last),
            ring.window_ending(ORDERS, seconds, last),
            ring.window_ending(GMV, seconds, last),
        ]

    def _review(self, first: int, last: int, online: int) -> None:
        """Seconds `first` to `last` closed with `online` viewers: the promotions
        under review take note (per span of seconds, never per event)."""
        t = self.totals
        totals = (t[VIEWER_SECONDS], t[DANMAKU], t[ORDERS], t[GMV])
        for promotion in self.reviewing:
            if promotion.review is not None:
                promotion.review.observe(first, last, online, totals, self.viewers)
        if any(p.review is None or p.review.done for p in self.reviewing):
            self.reviewing = [p for p in self.reviewing if p.review and not p.review.done]

    def _open_promotion(self, promo_id: str | None, *, exact: bool) -> Promotion | None:
        """The latest running promotion named `promo_id`; unless `exact`, an end that
        names none ends the latest running one."""
        for promotion in reversed(self.promotions):
            if promotion.ended_at is None and (
                promotion.promo_id == promo_id or (promo_id is None and not exact)
            ):
                return promotion
        return None

    def apply(self, event: Viewer) -> None:
        """Apply one event (latency samples come in bulk through `add_latency`)."""
        second = event.ts // 1000
        self.arrive(second)
        user = event.user_id
        if isinstance(event, Join):
            self._join(user, event.ts, second, event.channel or "unknown")
        elif isinstance(event, Leave):
            if user in self.viewers:
                self._end_session(user, event.ts, second)
                self._count(EXITS, second)
            return
        else:
            self._refresh(user, event.ts, second)  # any event shows the viewer is here
            if isinstance(event, Danmaku):
                self._count(DANMAKU, second)
                self.chatters.touch(user, second)
                self.chatters_ever.add(user)
            elif isinstance(event, Order):
                sign = 1.0 if event.status == "paid" else -1.0
                self._count(GMV, second, sign * event.amount)
                if event.status == "paid":
                    self._count(ORDERS, second)
                    self.buyers.touch(user, second)
                    self.buyers_ever.add(user)
            elif isinstance(event, Stall):
                self._count(STALLS, second)
                self._count(STALL_SECONDS, second, event.duration_ms / 1000)
                self.stalled.touch(user, second)
                self.stalled_ever.add(user)
            elif isinstance(event, Latency) and event.kind == "e2e":
                self.add_latency(second, [event.value_ms])

    def arrive(self, second: int) -> None:
        """An event of `second` is about to be applied. Only the windows it writes to
        move up to `second` (by themselves, as they are added to); the others follow
        when read (`sync`) or ticked: most events of a quiet room touch two or three of
        its fourteen windows, and moving all of them was half of its cost."""
        if second > self.head:
            self.head = second
        self.last_event_second = second

    def apply_latency(self, second: int, events: Sequence[Latency], e2e_ms: list[float]) -> None:
        """The latency samples of `second` (`e2e_ms`: their end-to-end values), applied
        together after the second's other events: they only show who is here."""
        self.arrive(second)
        self._refresh_all(events, second)
        self.add_latency(second, e2e_ms)

    def add_latency(self, second: int, e2e_ms: list[float]) -> None:
        """End-to-end latency samples of `second`, whose senders were `refresh`ed."""
        if not e2e_ms:
            return
        slo = self.config.latency_slo_ms
        self._count(LATENCY_SAMPLES, second, len(e2e_ms))
        self._count(LATENCY_WITHIN_SLO, second, sum(value <= slo for value in e2e_ms))
        self.latency.add(second, e2e_ms)

    def _count(self, field: int, second: int, value: float = 1.0) -> None:
        self.ring.add(field, second, value)
        self.totals[field] += value

    def _join(self, user: str, ts: int, second: int, channel: str) -> None:
        if user in self.viewers:  # a duplicate, or a join without the leave before it
            self.viewers.see(user, ts)
            return
        self._start_session(user, ts)
        self._count(ENTRIES, second)
        self.by_join.add(JOINS, second)
        self.channels.add(CHANNELS.index(channel), second)
        self.entries_by_channel[channel] = self.entries_by_channel.get(channel, 0) + 1

    def _refresh(self, user: str, ts: int, second: int) -> None:
        """The sender of an event of `second` is here; one not online starts a session."""
        if user in self.viewers:
            self.viewers.see(user, ts)
        elif (self.departed.seen or {}).get(user, -1) < second:  # not trailing a leave
            self._start_session(user, ts)

    def _refresh_all(self, events: Iterable[Viewer], second: int) -> None:
        """The senders of `events` (of `second`) are here: those online in one update
        of when they were last seen, the others as `_refresh` takes them."""
        slot_of = self.viewers.slot.get
        slots: list[int] = []
        times: list[int] = []
        for event in events:
            slot = slot_of(event.user_id)
            if slot is None:
                self._refresh(event.user_id, event.ts, second)
            else:
                slots.append(slot)
                times.append(event.ts)
        if slots:
            self.viewers.see_many(slots, times)

    def _start_session(self, user: str, ts: int) -> None:
        self.viewers.start(user, ts)
        self.departed.forget(user)
        self.viewers_ever.add(user)
        self.peak_online = max(self.peak_online, len(self.viewers))

    def _end_session(self, user: str, ended_ms: int, second: int) -> None:
        started = self.viewers.end(user)
        self.departed.touch(user, second)
        recall = self.recall
        if recall is not None and (self.ended_at is None or ended_ms < self.ended_at):
            # A session ending after the stream ended is the audience leaving: no recall.
            recall.session_ended(self.room_id, user, ended_ms, second)
            if recall.idle:
                self.recall = None
        duration_s = (ended_ms - started) / 1000
        join_second = started // 1000
        if duration_s < self.config.bounce_s:
            self.by_join.add(GONE_BEFORE_BOUNCE, join_second)
        if duration_s < 60:
            self.by_join.add(GONE_BEFORE_1M, join_second)
        if duration_s < 300:
            self.by_join.add(GONE_BEFORE_5M, join_second)

    # -- the passing of event time -------------------------------------------

    def sync(self) -> None:
        """Every window up to the newest second applied, for a reader of them."""
        self._advance(self.head)

    def _advance(self, second: int) -> None:
        self.head = max(self.head, second)
        for ring in (self.ring, self.by_join, self.channels):
            ring.advance(second)
        self.presence.advance(second)
        for seen in (self.departed, self.chatters, self.buyers, self.stalled):
            seen.advance(second)
        self.latency.advance(second)

    def tick(self, second: int) -> None:
        """Close `second`: everything that happened in it has been applied."""
        self._advance(second)
        self.closed = second
        if second % self.config.expiry_scan_every_s == 0:
            self._expire(second)
        online = len(self.viewers)
        if online:
            self.presence.add(second, second, online)
            self.totals[VIEWER_SECONDS] += online
        if self.reviewing:
            self._review(second, second, online)

    def catch_up(self, second: int) -> None:
        """Tick every second up to `second` in one go, with the result of ticking them
        one by one: nothing was applied in them, so between two session expiries only
        the viewer-seconds grow, and those are added as a span."""
        first = self.closed + 1
        while first <= second:
            expiry = self.next_expiry(first)
            last = second if expiry is None or expiry > second else expiry - 1
            if last >= first:
                # Only viewer-seconds change: the other windows move when next used.
                self.presence.advance(last)
                self.head = max(self.head, last)
                self.closed = last
                online = len(self.viewers)
                if online:
                    self.presence.add(first, last, online)
                    self.totals[VIEWER_SECONDS] += online * (last - first + 1)
                if self.reviewing:
                    self._review(first, last, online)
                first = last + 1
            if first <= second and first == expiry:
                self.tick(first)
                first += 1

    def next_expiry(self, after: int) -> int | None:
        """The first expiry scan at or after second `after` that ends a session, if any."""
        oldest = self.viewers.oldest_seen()
        if oldest is None:
            return None
        # `_expire(e)` ends it once oldest < (e - session_timeout_s) * 1000.
        due = max((oldest + self.config.session_timeout_s * 1000) // 1000 + 1, after)
        scan = self.config.expiry_scan_every_s
        return -(-due // scan) * scan

    def next_change(self) -> int:
        """The next second at which ticking this room does more than count viewer-seconds:
        its oldest session expires, or it is gone."""
        expiry = self.next_expiry(self.closed + 1)
        if self.ended_at is not None:
            gone = max(self.ended_at // 1000 + self.config.ended_grace_s, self.closed + 1)
            return gone if expiry is None else min(expiry, gone)
        if expiry is not None:
            return expiry
        return max(self.last_event_second + self.config.room_idle_s, self.closed + 1)

    def _expire(self, second: int) -> None:
        cutoff = (second - self.config.session_timeout_s) * 1000
        for user in self.viewers.idle(cutoff):
            # The viewer left when last seen; exits are counted when noticed.
            self._end_session(user, self.viewers.seen_at(user), second)
            self._count(EXITS, second)

    def viewer_seconds(self, second: int) -> float:
        """Viewer-seconds of one closed second still in the window."""
        return self.presence.at(second)

    def is_gone(self, second: int) -> bool:
        """Nobody online and no event for `room_idle_s`; or `ended_grace_s` after its
        stream ended, whoever is still counted online (viewers leave an ended stream,
        and sessions without a `leave` would otherwise keep it for their timeout)."""
        if (
            self.ended_at is not None
            and second - self.ended_at // 1000 >= self.config.ended_grace_s
        ):
            return True
        return not self.viewers and second - self.last_event_second >= self.config.room_idle_s

    # -- metrics -------------------------------------------------------------

    @property
    def online(self) -> int:
        return len(self.viewers)

    def unique_viewers(self, window: int) -> int:
        self.sync()
        return self.online + self.departed.distinct(window)

    def window(self, field: int, seconds: int) -> float:
        """An event field (ENTRIES, DANMAKU...) summed over the newest `seconds` seconds."""
        self.sync()
        return self.ring.window(field, seconds)

    def metrics(self, window: int) -> dict[str, float | None]:
        """The windowed metrics as of the newest closed second (docs/metrics.md)."""
        self.sync()
        ring = self.ring
        minutes = window / 60
        viewers = self.unique_viewers(window)
        chatters = self.chatters.distinct(window)
        buyers = self.buyers.distinct(window)
        watch = self.presence.window(window)
        gmv = ring.window(GMV, window)
        samples = ring.window(LATENCY_SAMPLES, window)
        sketch = self.latency.sketch(window)
        # Sessions whose outcome is known: started at least the threshold ago.
        bounce_joins = self.by_join.window_ending(JOINS, window, self.head - self.config.bounce_s)
        joins_1m = self.by_join.window_ending(JOINS, window, self.head - 60)
        joins_5m = self.by_join.window_ending(JOINS, window, self.head - 300)
        return {
            "entries_per_minute": ring.window(ENTRIES, window) / minutes,
            "exits_per_minute": ring.window(EXITS, window) / minutes,
            "unique_viewers": viewers,
            "average_stay_seconds": _ratio(watch, viewers),
            "bounce_rate": _ratio(
                self.by_join.window_ending(
                    GONE_BEFORE_BOUNCE, window, self.head - self.config.bounce_s
                ),
                bounce_joins,
            ),
            "retention_1m": _complement(
                self.by_join.window_ending(GONE_BEFORE_1M, window, self.head - 60), joins_1m
            ),
            "retention_5m": _complement(
                self.by_join.window_ending(GONE_BEFORE_5M, window, self.head - 300), joins_5m
            ),
            "danmaku_per_minute": ring.window(DANMAKU, window) / minutes,
            "unique_chatters": chatters,
            "interaction_rate": _ratio(chatters, viewers),
            "orders_per_minute": ring.window(ORDERS, window) / minutes,
            "buyers": buyers,
            "gmv": gmv,
            "conversion_rate": _ratio(buyers, viewers),
            "gpm": _ratio(gmv * 1000, viewers),
            "watch_seconds": watch,
            "stall_ratio": _ratio(ring.window(STALL_SECONDS, window), watch),
            "stalls_per_viewer_hour": _ratio(ring.window(STALLS, window), watch / 3600),
            "stalled_viewer_share": _ratio(self.stalled.distinct(window), viewers),
            "latency_p50_seconds": _seconds(sketch.quantile(0.50)),
            "latency_p95_seconds": _seconds(sketch.quantile(0.95)),
            "latency_p99_seconds": _seconds(sketch.quantile(0.99)),
            "latency_within_slo_ratio": _ratio(ring.window(LATENCY_WITHIN_SLO, window), samples),
        }

    def totals_metrics(self) -> dict[str, float | None]:
        """Totals since the room went live."""
        t = self.totals
        viewers = len(self.viewers_ever)
        return {
            "online_viewers": self.online,
            "peak_online_viewers": self.peak_online,
            "entries": t[ENTRIES],
            "exits": t[EXITS],
            "unique_viewers": viewers,
            "watch_seconds": t[VIEWER_SECONDS],
            "average_stay_seconds": _ratio(t[VIEWER_SECONDS], viewers),
            "danmaku": t[DANMAKU],
            "unique_chatters": len(self.chatters_ever),
            "interaction_rate": _ratio(len(self.chatters_ever), viewers),
            "orders": t[ORDERS],
            "buyers": len(self.buyers_ever),
            "gmv": t[GMV],
            "conversion_rate": _ratio(len(self.buyers_ever), viewers),
            "gpm": _ratio(t[GMV] * 1000, viewers),
            "stalls": t[STALLS],
            "stall_seconds": t[STALL_SECONDS],
            "stall_ratio": _ratio(t[STALL_SECONDS], t[VIEWER_SECONDS]),
            "stalled_viewer_share": _ratio(len(self.stalled_ever), viewers),
            "latency_samples": t[LATENCY_SAMPLES],
            "latency_within_slo_ratio": _ratio(t[LATENCY_WITHIN_SLO], t[LATENCY_SAMPLES]),
        }

    def promotion_metrics(self) -> dict[str, float | None]:
        """The review of the room's latest promotion as of the newest closed second
        (`promotion_active` 0 and the rest None when it has had none)."""
        latest = self.promotions[-1] if self.promotions else None
        if latest is None or latest.review is None:
            return {**dict.fromkeys(REVIEW_METRICS), "promotion_active": 0.0}
        figures = latest.review.figures(self._review_totals(self.closed + 1), self.closed)
        figures["promotion_start_ts"] = latest.started_at
        figures["promotion_end_ts"] = latest.ended_at
        return figures


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _complement(gone: float, total: float) -> float | None:
    return 1 - gone / total if total else None


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000
