"""Prometheus exposition of the pipeline's state, rendered at scrape time.

Nothing is updated per event: the collector reads the pure core's counters and
room states when Prometheus asks. Per-room series exist only for the top K rooms
by online viewers plus pinned rooms; every room counts in the aggregate series.

Names follow Prometheus' naming practice (docs/metrics.md lists them and the
renames): base units, `_ratio` for 0-1 ratios, `_total` only on counters, the
quantile in a label. Rates are left to PromQL: counters plus `rate()`. The gauges
over a `window` are event-time windows that no counter gives (retention, unique
viewers, ratios, quantiles; and the all-rooms event counts, since rooms come and go).
`render` answers a scrape in the format it asks for: OpenMetrics or the text format.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from detectors.recall import CAPS, REASONS
from streams.core.decode import INVALID_REASONS
from streams.core.engine import Pipeline
from streams.core.events import EVENT_TYPES
from streams.core.latency import HISTOGRAM_BOUNDS_SECONDS
from streams.core.review import PHASES, RETENTION_LABELS
from streams.core.rolling import WINDOWS
from streams.core.room import (
    CHANNELS,
    DANMAKU,
    ENTRIES,
    EXITS,
    LATENCY_SAMPLES,
    ORDERS,
    STALL_SECONDS,
    STALLS,
    VIEWER_SECONDS,
    RoomState,
)
from streams.core.sketch import LatencySketch
from streams.settings import Settings

MAX_LABEL_LENGTH: Final = 128
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)
WINDOW_LABELS: Final = {60: "1m", 300: "5m"}
assert tuple(WINDOW_LABELS) == WINDOWS
QUANTILES: Final = (0.5, 0.95, 0.99)

# Per-room gauges over a window (label `window`: "1m", "5m", or "live" for those
# also computed since the room went live): family -> (help, extra label names).
ROOM_GAUGES: Final = {
    "unique_viewers": ("Distinct viewers present at any time in the window.", ()),
    "average_stay_seconds": ("Watch time per unique viewer (AvgTime = TotalTime / UV).", ()),
    "bounce_ratio": (
        "Share of the sessions started in the window (shifted back by the bounce "
        "threshold, bounce_s: 10 s by default) that lasted less than the threshold.",
        (),
    ),
    "retention_ratio": (
        "Share of the sessions started in the window, shifted back by `after`, "
        "still open `after` later.",
        ("after",),
    ),
    "unique_chatters": ("Distinct viewers who sent chat messages.", ()),
    "interaction_ratio": ("Unique chatters / unique viewers.", ()),
    "buyers": ("Distinct viewers with a paid order.", ()),
    "gmv_yuan": ("Gross merchandise value in CNY yuan (order amounts), refunds subtracted.", ()),
    "gmv_per_viewer_yuan": (
        "GMV / unique viewers, in CNY yuan (GPM, GMV per thousand viewers, is 1000 times this).",
        (),
    ),
    "conversion_ratio": ("Buyers / unique viewers.", ()),
    "stall_ratio": ("Stall time / watch time.", ()),
    "stalled_viewers_ratio": ("Share of unique viewers with at least one stall.", ()),
    "latency_within_slo_ratio": (
        "Share of end-to-end latency samples at or under the SLO (600 ms).",
        (),
    ),
}
ROOM_LATENCY_HELP: Final = (
    "End-to-end latency quantiles over the event-time window (1% relative error)."
)
# RoomState.metrics() / totals_metrics() name -> (family, extra label values, scale).
# Not exported: the per-minute rates, stalls per viewer-hour and the windowed
# watch time, which PromQL takes from the counters (docs/metrics.md).
ROOM_EXPORTS: Final[dict[str, tuple[str, tuple[str, ...], float]]] = {
    "unique_viewers": ("unique_viewers", (), 1.0),
    "average_stay_seconds": ("average_stay_seconds", (), 1.0),
    "bounce_rate": ("bounce_ratio", (), 1.0),
    "retention_1m": ("retention_ratio", ("1m",), 1.0),
    "retention_5m": ("retention_ratio", ("5m",), 1.0),
    "unique_chatters": ("unique_chatters", (), 1.0),
    "interaction_rate": ("interaction_ratio", (), 1.0),
    "buyers": ("buyers", (), 1.0),
    "gmv": ("gmv_yuan", (), 1.0),
    "gpm": ("gmv_per_viewer_yuan", (), 1 / 1000),
    "conversion_rate": ("conversion_ratio", (), 1.0),
    "stall_ratio": ("stall_ratio", (), 1.0),
    "stalled_viewer_share": ("stalled_viewers_ratio", (), 1.0),
    "latency_within_slo_ratio": ("latency_within_slo_ratio", (), 1.0),
}
# RoomState.metrics() name -> the quantile of livewatch_room_latency_seconds.
ROOM_QUANTILES: Final = {
    "latency_p50_seconds": "0.5",
    "latency_p95_seconds": "0.95",
    "latency_p99_seconds": "0.99",
}
ROOM_COUNTERS: Final = {
    "entries": (ENTRIES, "Viewer entries since the room went live."),
    "exits": (EXITS, "Viewer exits (leaves and expired sessions) since the room went live."),
    "danmaku": (DANMAKU, "Chat messages since the room went live."),
    "orders": (ORDERS, "Paid orders since the room went live."),
    "stalls": (STALLS, "Playback stalls since the room went live."),
    "stall_seconds": (STALL_SECONDS, "Stall time since the room went live."),
    "watch_seconds": (VIEWER_SECONDS, "Viewer-seconds watched since the room went live."),
    "latency_samples": (LATENCY_SAMPLES, "End-to-end latency samples since the room went live."),
}
PROMOTION_GAUGES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "viewers": (
        "The room's latest promotion: viewers online before it (mean of the 5 minutes "
        "before its start), at its start, at its peak, at its end, and the ebb's floor.",
        ("at",),
    ),
    "ebb_half_life_seconds": (
        "The room's latest promotion: half-life of the fall of online viewers after its "
        "end (fitted from the highest point after it).",
        (),
    ),
    "floor_ratio": (
        "The room's latest promotion: the ebb's floor relative to the level before it "
        '(absent when there was no level before: see the viewers at="floor").',
        (),
    ),
    "retention_ratio": (
        "The room's latest promotion: share of the viewers online at its end (a bounded "
        "sample of them) online again or still this long after it.",
        ("after",),
    ),
    "watch_seconds": (
        "The room's latest promotion: viewer-seconds in the phase (before: its start's "
        "last 5 minutes; during; after: the hour from its end, so far).",
        ("phase",),
    ),
    "orders": ("The room's latest promotion: paid orders in the phase.", ("phase",)),
    "gmv_yuan": ("The room's latest promotion: GMV, paid less refunded, in the phase.", ("phase",)),
    "danmaku_per_viewer_hour": (
        "The room's latest promotion: interaction rate, chat messages per viewer-hour "
        "in the phase.",
        ("phase",),
    ),
    "orders_per_viewer_hour": (
        "The room's latest promotion: conversion, paid orders per viewer-hour in the phase.",
        ("phase",),
    ),
}
"""livewatch_room_promotion_<name>: help text and the labels after `room`."""
PROMOTION_SAMPLES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "promotion_viewers_before": ("viewers", ("before",)),
    "promotion_viewers_start": ("viewers", ("start",)),
    "promotion_viewers_peak": ("viewers", ("peak",)),
    "promotion_viewers_end": ("viewers", ("end",)),
    "promotion_floor_viewers": ("viewers", ("floor",)),
    "promotion_ebb_half_life_seconds": ("ebb_half_life_seconds", ()),
    "promotion_floor_ratio": ("floor_ratio", ()),
    **{f"promotion_retention_{after}": ("retention_ratio", (after,)) for after in RETENTION_LABELS},
    **{
        f"promotion_{name}_{phase}": (family, (phase,))
        for phase in PHASES
        for name, family in (
            ("watch_seconds", "watch_seconds"),
            ("orders", "orders"),
            ("gmv", "gmv_yuan"),
            ("interaction", "danmaku_per_viewer_hour"),
            ("conversion", "orders_per_viewer_hour"),
        )
    },
}
"""A review figure (RoomState.promotion_metrics) -> its family and label values."""

WINDOW_EVENTS: Final = {"entry": ENTRIES, "exit": EXITS, "danmaku": DANMAKU, "order": ORDERS}


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, dict[str, str]]:
    """A scrape's body and headers, in the format its Accept header asks for:
    OpenMetrics for `application/openmetrics-text` (Prometheus asks for it first),
    the Prometheus text format otherwise. prometheus-client's own negotiation,
    as its HTTP server does (the notifier's /metrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), {"Content-Type": content_type}


def sanitize_label_value(value: str) -> str:
    """Room ids and regions are producer input: keep them printable, one line, and short."""
    return _UNPRINTABLE.sub("_", value)[:MAX_LABEL_LENGTH]


@dataclass(frozen=True, slots=True)
class ExportConfig:
    top_rooms: int = 200
    """Rooms with per-room series: the most watched, by online viewers."""
    pinned_rooms: frozenset[str] = frozenset()
    """Rooms that always have per-room series."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportConfig:
        pinned = frozenset(r.strip() for r in settings.pinned_rooms.split(",") if r.strip())
        return cls(top_rooms=settings.top_rooms, pinned_rooms=pinned)


class PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline, config: ExportConfig | None = None) -> None:
        self.pipeline = pipeline
        self.config = config or ExportConfig()

    def exported_rooms(self, rooms: Iterable[RoomState]) -> list[RoomState]:
        """Top K rooms by online viewers (ties by id), plus pinned rooms."""
        ranked = sorted(rooms, key=lambda r: (-r.online, r.room_id))
        chosen = ranked[: self.config.top_rooms]
        pinned = self.config.pinned_rooms
        chosen += [r for r in ranked[self.config.top_rooms :] if r.room_id in pinned]
        return chosen

    def collect(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        yield from self._worker_counters()
        for engine in pipeline.engines.values():
            engine.catch_up()  # quiet rooms are ticked lazily
        rooms = [room for engine in pipeline.engines.values() for room in engine.rooms.values()]
        yield from self._aggregates(rooms)
        exported = self.exported_rooms(rooms)
        yield from self._room_series(exported)
        yield from self._ebb(exported)
        yield from self._promotions(exported)
        yield from self._latency()
        yield from self._alerts({room.room_id for room in exported})
        yield from self._recall()

    def _worker_counters(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        events = CounterMetricFamily(
            "livewatch_events", "Valid events accepted, by event type.", labels=["type"]
        )
        for event_type in EVENT_TYPES:
            events.add_metric([event_type], pipeline.events_total[event_type])
        yield events
        invalid = CounterMetricFamily(
            "livewatch_events_invalid",
            "Rejected inputs (messages or batch elements), by reason; each is dead-lettered.",
            labels=["reason"],
        )
        for reason in INVALID_REASONS:
            invalid.add_metric([reason], pipeline.invalid_total[reason])
        yield invalid
        yield CounterMetricFamily(
            "livewatch_events_late",
            "Events behind their source's clock by more than the allowed lateness; dropped.",
            value=pipeline.late_total,
        )
        yield CounterMetricFamily(
            "livewatch_rooms_evicted",
            "Rooms with nobody online and no alert open dropped to keep a partition within "
            "max_rooms (the least recently active first).",
            value=pipeline.evicted_total,
        )
        clock = GaugeMetricFamily(
            "livewatch_partition_watermark_timestamp_seconds",
            "Event time up to which a partition is complete (Unix time in seconds).",
            labels=["partition"],
        )
        for partition, engine in sorted(pipeline.engines.items()):
            if engine.watermark is not None:
                clock.add_metric([str(partition)], engine.watermark / 1000)
        yield clock

    def _aggregates(self, rooms: list[RoomState]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "livewatch_online_viewers",
            "Viewers online in all rooms of this worker.",
            value=sum(r.online for r in rooms),
        )
        yield GaugeMetricFamily(
            "livewatch_rooms", "Live rooms this worker holds state for.", value=len(rooms)
        )
        # No counter can stand for these: rooms are dropped when idle and move
        # between workers, so a sum of their totals would go down.
        in_window = GaugeMetricFamily(
            "livewatch_window_events",
            "Events in the event-time window, all rooms of this worker: viewer entries "
            "and exits, chat messages, paid orders (per minute: divide by the window's minutes).",
            labels=["event", "window"],
        )
        for seconds, label in WINDOW_LABELS.items():
            for name, field in WINDOW_EVENTS.items():
                in_window.add_metric([name, label], sum(r.window(field, seconds) for r in rooms))
        yield in_window

    def _room_series(self, rooms: list[RoomState]) -> Iterator[Metric]:
        online = GaugeMetricFamily(
            "livewatch_room_online_viewers", "Viewers in the room now.", labels=["room"]
        )
        peak = GaugeMetricFamily(
            "livewatch_room_peak_online_viewers",
            "Highest concurrent viewers since the room went live (PCU).",
            labels=["room"],
        )
        sources = CounterMetricFamily(
            "livewatch_room_entries_by_source",
            "Viewer entries since the room went live, by traffic channel (a join's source).",
            labels=["room", "source"],
        )
        gauges = {
            name: GaugeMetricFamily(
                f"livewatch_room_{name}", text, labels=["room", "window", *extra]
            )
            for name, (text, extra) in ROOM_GAUGES.items()
        }
        # Quantiles over a window: a summary with quantile samples only (OpenMetrics
        # allows a summary without count and sum; a gauge may not carry `quantile`).
        latency = Metric("livewatch_room_latency_seconds", ROOM_LATENCY_HELP, "summary")
        counters = {
            name: CounterMetricFamily(f"livewatch_room_{name}", text, labels=["room"])
            for name, (_, text) in ROOM_COUNTERS.items()
        }
        seen_labels: set[str] = set()
        for room in rooms:
            label = sanitize_label_value(room.room_id)
            if label in seen_labels:  # two odd ids sanitized alike: keep the first
                continue
            seen_labels.add(label)
            online.add_metric([label], room.online)
            peak.add_metric([label], room.peak_online)
            by_channel = room.entries_by_channel
            for channel in CHANNELS:  # every channel's series, at zero until a join by it
                sources.add_metric([label, channel], by_channel.get(channel, 0))
            _add_windowed(room, label, gauges, latency)
            for name, (field, _) in ROOM_COUNTERS.items():
                counters[name].add_metric([label], room.totals[field])
        yield online
        yield peak
        yield sources
        yield from gauges.values()
        yield latency
        yield from counters.values()

    def _latency(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(
            "livewatch_latency_seconds",
            "Latency samples by kind and region (buckets include the 0.6 s SLO line).",
            labels=["kind", "region"],
        )
        merged: dict[tuple[str, str], tuple[list[int], float]] = {}
        regional: dict[str, dict[int, LatencySketch]] = {}
        # In partition order: float sums must not depend on which partition a
        # worker happened to be assigned first.
        for _, engine in sorted(self.pipeline.engines.items()):
            stats = engine.latency
            for key, (counts, seconds) in stats.histograms().items():
                previous, total = merged.get(key, ([0] * len(counts), 0.0))
                merged[key] = (
                    [a + b for a, b in zip(previous, counts, strict=True)],
                    total + seconds,
                )
            for region, windowed in stats.regions.items():
                into = regional.setdefault(region, {w: LatencySketch() for w in WINDOWS})
                for window in WINDOWS:
                    into[window].merge(windowed.sketch(window))
        for (kind, region), (counts, total) in sorted(merged.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*HISTOGRAM_BOUNDS_SECONDS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            histogram.add_metric([kind, sanitize_label_value(region)], buckets, total)
        yield histogram
        quantiles = Metric(
            "livewatch_region_latency_seconds",
            "End-to-end latency quantiles per region over the event-time window, all rooms "
            "of this worker's partitions (1% relative error).",
            "summary",
        )
        for region, sketches in sorted(regional.items()):
            for seconds, window_label in WINDOW_LABELS.items():
                for q in QUANTILES:
                    value = sketches[seconds].quantile(q)
                    if value is not None:
                        labels = {"region": sanitize_label_value(region), "window": window_label}
                        quantiles.add_sample(
                            quantiles.name, {**labels, "quantile": str(q)}, value / 1000
                        )
        yield quantiles

    def _ebb(self, rooms: list[RoomState]) -> Iterator[Metric]:
        watches = {
            room_id: watch
            for engine in self.pipeline.engines.values()
            for room_id, watch in engine.watch.rooms.items()
        }
        families = {
            "half_life_seconds": "Half-life of the post-promotion decay of online viewers.",
            "floor_ratio": "Level the ebb settles at, relative to the level before the promotion.",
            "progress_ratio": "Share of the fall from the peak to the floor already behind.",
        }
        gauges = {
            name: GaugeMetricFamily(f"livewatch_room_ebb_{name}", text, labels=["room"])
            for name, text in families.items()
        }
        for room in rooms:
            watch = watches.get(room.room_id)
            traffic = watch.traffic if watch else None
            ebb = traffic.ebb.estimate if traffic else None
            if ebb is None:
                continue
            label = [sanitize_label_value(room.room_id)]
            gauges["half_life_seconds"].add_metric(label, ebb.half_life_s)
            if math.isfinite(ebb.floor_ratio):  # no level before the peak: no ratio
                gauges["floor_ratio"].add_metric(label, ebb.floor_ratio)
            gauges["progress_ratio"].add_metric(label, ebb.progress)
        yield from gauges.values()

    def _promotions(self, rooms: list[RoomState]) -> Iterator[Metric]:
        """The review of each room's latest promotion (streams.core.review); which one
        it is, by its start and end times: a `promo_id` is no label."""
        active = GaugeMetricFamily(
            "livewatch_room_promotion_active",
            "1 while a promotion of the room runs (promo_start seen, promo_end not yet).",
            labels=["room"],
        )
        started = GaugeMetricFamily(
            "livewatch_room_promotion_start_timestamp_seconds",
            "The room's latest promotion: its promo_start (Unix time in seconds).",
            labels=["room"],
        )
        ended = GaugeMetricFamily(
            "livewatch_room_promotion_end_timestamp_seconds",
            "The room's latest promotion: its promo_end (Unix time in seconds).",
            labels=["room"],
        )
        gauges = {
            name: GaugeMetricFamily(
                f"livewatch_room_promotion_{name}", text, labels=["room", *extra]
            )
            for name, (text, extra) in PROMOTION_GAUGES.items()
        }
        seen_labels: set[str] = set()
        for room in rooms:
            label = sanitize_label_value(room.room_id)
            if label in seen_labels:
                continue
            seen_labels.add(label)
            figures = room.promotion_metrics()
            active.add_metric([label], figures["promotion_active"] or 0.0)
            for family, at in ((started, "promotion_start_ts"), (ended, "promotion_end_ts")):
                stamp = figures[at]
                if stamp is not None:
                    family.add_metric([label], stamp / 1000)
            for name, (family_name, extra) in PROMOTION_SAMPLES.items():
                value = figures[name]
                if value is not None:
                    gauges[family_name].add_metric([label, *extra], value)
        yield active
        yield started
        yield ended
        yield from gauges.values()

    def _alerts(self, exported_rooms: set[str]) -> Iterator[Metric]:
        firing = GaugeMetricFamily(
            "livewatch_alerts_firing",
            'Alerts firing now; rooms beyond the per-room series cap count under room="_other".',
            labels=["alert", "severity", "room"],
        )
        counts: Counter[tuple[str, str, str]] = Counter()
        transitions = CounterMetricFamily(
            "livewatch_alert_transitions",
            "Alert transitions emitted (sent to the alerts topic), by alert, state and severity.",
            labels=["alert", "state", "severity"],
        )
        totals: Counter[tuple[str, str, str]] = Counter()
        for engine in self.pipeline.engines.values():
            for key, finding in engine.watch.tracker.firing().items():
                room = (
                    sanitize_label_value(key.room_id) if key.room_id in exported_rooms else "_other"
                )
                counts[(key.alert, finding.severity, room)] += 1
            totals.update(engine.watch.transitions_total)
        for labels, count in sorted(counts.items()):
            firing.add_metric(list(labels), count)
        for labels, count in sorted(totals.items()):
            transitions.add_metric(list(labels), count)
        yield firing
        yield transitions

    def _recall(self) -> Iterator[Metric]:
        """Recall candidates, counted in the partitions' state (so they move with them,
        like alert transitions); user ids are in the actions only, never in a label."""
        candidates: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        for engine in self.pipeline.engines.values():
            candidates.update(engine.watch.recall.candidates)
            dropped.update(engine.watch.recall.dropped)
        emitted = CounterMetricFamily(
            "livewatch_recall_candidates",
            "Recall actions emitted (sent to the actions topic): viewers whose session ended "
            "during a latency or stall incident of their room, or soon after a stall, by reason.",
            labels=["reason"],
        )
        for reason in REASONS:
            emitted.add_metric([reason], candidates[reason])
        yield emitted
        refused = CounterMetricFamily(
            "livewatch_recall_candidates_dropped",
            "Recall state refused by a cap: candidates over the per-incident cap "
            "(cap=per_incident), incidents over the per-room cap (incidents_per_room), "
            "viewers' stalls over the per-room cap (stalls_per_room).",
            labels=["cap"],
        )
        for cap in CAPS:
            refused.add_metric([cap], dropped[cap])
        yield refused


def _add_windowed(
    room: RoomState, label: str, gauges: dict[str, GaugeMetricFamily], latency: Metric
) -> None:
    """A room's values over the sliding windows and since it went live."""
    values = [(window, room.metrics(seconds)) for seconds, window in WINDOW_LABELS.items()]
    values.append(("live", room.totals_metrics()))
    for window, metrics in values:
        for name, value in metrics.items():
            if value is None:
                continue
            if name in ROOM_EXPORTS:
                family, extra, scale = ROOM_EXPORTS[name]
                gauges[family].add_metric([label, window, *extra], value * scale)
            elif name in ROOM_QUANTILES:
                quantile = {"room": label, "window": window, "quantile": ROOM_QUANTILES[name]}
                latency.add_sample(latency.name, quantile, value)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
