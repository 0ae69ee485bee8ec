"""Prometheus exposition of the pipeline's state, rendered at scrape time.

Nothing is updated per event: the collector reads the pure core's counters and
room states when Prometheus asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.decode import INVALID_REASONS
from streams.events import EVENT_TYPES
from streams.pipeline import Pipeline

MAX_LABEL_LENGTH: Final = 128
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)


def sanitize_label_value(value: str) -> str:
    """Room ids are producer input: keep them printable, one line, and short."""
    return _UNPRINTABLE.sub("_", value)[:MAX_LABEL_LENGTH]


class PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
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
            "Events that arrived behind their partition's watermark.",
            value=pipeline.late_total,
        )

        online = GaugeMetricFamily(
            "livewatch_room_online_viewers",
            "Viewers in the room now (event time).",
            labels=["room"],
        )
        # Summed by label: two odd room ids could sanitize to the same value.
        by_label: dict[str, int] = {}
        for engine in pipeline.engines.values():
            for room_id, room in engine.rooms.items():
                label = sanitize_label_value(room_id)
                by_label[label] = by_label.get(label, 0) + len(room.online)
        for label, viewers in by_label.items():
            online.add_metric([label], viewers)
        yield online
        total_online = sum(by_label.values())
        rooms = sum(len(engine.rooms) for engine in pipeline.engines.values())
        yield GaugeMetricFamily(
            "livewatch_online_viewers", "Viewers in all rooms of this worker.", value=total_online
        )
        yield GaugeMetricFamily(
            "livewatch_rooms", "Rooms this worker holds state for.", value=rooms
        )

        clock = GaugeMetricFamily(
            "livewatch_partition_event_time_seconds",
            "Newest event time seen in a partition (epoch seconds).",
            labels=["partition"],
        )
        for partition, engine in sorted(pipeline.engines.items()):
            if engine.event_clock is not None:
                clock.add_metric([str(partition)], engine.event_clock / 1000)
        yield clock
