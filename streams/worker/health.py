"""The worker's own health, beside the rooms' metrics: checkpoints and redeliveries.

Plain counters the Faust layer updates, rendered at scrape time like the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RESTORE_RESULTS = ("restored", "absent", "outdated", "failed")
"""outdated: a checkpoint of another format, never read (streams.worker.checkpoint)."""


@dataclass
class WorkerHealth:
    checkpoints_written: int = 0
    checkpoint_bytes: dict[int, int] = field(default_factory=dict)
    """Partition -> size of its last checkpoint."""
    checkpoint_written_at: dict[int, float] = field(default_factory=dict)
    """Partition -> Unix time its last checkpoint was handed to the producer."""
    restores: Counter[str] = field(default_factory=Counter)
    """Partition assignments by what the checkpoint table held: RESTORE_RESULTS."""
    redelivered_messages: int = 0
    """Messages Kafka delivered again below the partition's position, skipped."""
    idle_flushes: int = 0
    """Partitions flushed at the end of their input (`flush_idle_s` of silence)."""
    held_peak: int = 0
    """Most events one partition held for its watermark after a fetch (`Worker.pace`)."""
    source_pauses: int = 0
    """Source topic-partitions paused because too many events waited (`Worker.pace`)."""
    checkpoint_children_failed: int = 0
    """Forked children that took no checkpoint (an error, a signal, stuck): the next
    checkpoint was taken in the worker (streams.worker.fork)."""
    checkpoint_child_peak_rss: int = 0
    """The highest peak resident memory of a child that took a checkpoint, in bytes."""

    def checkpoint_written(self, partition: int, size: int, now: float) -> None:
        self.checkpoints_written += 1
        self.checkpoint_bytes[partition] = size
        self.checkpoint_written_at[partition] = now

    def forget(self, partition: int) -> None:
        self.checkpoint_bytes.pop(partition, None)
        self.checkpoint_written_at.pop(partition, None)


class HealthCollector(Collector):
    def __init__(
        self,
        health: WorkerHealth,
        clock: Callable[[], float] = time.time,
        lag: Callable[[], dict[tuple[str, int], int]] = dict,
        watermarks: Callable[[], dict[int, float]] = dict,
        held: Callable[[], dict[int, int]] = dict,
        paused: Callable[[], dict[int, int]] = dict,
    ) -> None:
        self.health = health
        self.clock = clock
        self.lag = lag
        """(topic, partition) -> messages in Kafka not processed yet."""
        self.watermarks = watermarks
        """Partition -> event time (epoch s) up to which it is complete."""
        self.held = held
        """Partition -> events waiting for its watermark."""
        self.paused = paused
        """Partition -> its source topics not fetched now (flow control)."""

    def collect(self) -> Iterator[Metric]:
        yield from self._checkpoints()
        yield from self._progress()
        yield from self._flow()

    def _checkpoints(self) -> Iterator[Metric]:
        health = self.health
        yield CounterMetricFamily(
            "livewatch_checkpoints_written",
            "Partition checkpoints written to the checkpoint table.",
            value=health.checkpoints_written,
        )
        age = GaugeMetricFamily(
            "livewatch_checkpoint_age_seconds",
            "Time since the partition's last checkpoint was written.",
            labels=["partition"],
        )
        size = GaugeMetricFamily(
            "livewatch_checkpoint_size_bytes",
            "Size of the partition's last checkpoint.",
            labels=["partition"],
        )
        now = self.clock()
        for partition, at in sorted(health.checkpoint_written_at.items()):
            age.add_metric([str(partition)], max(0.0, now - at))
            size.add_metric([str(partition)], health.checkpoint_bytes[partition])
        yield age
        yield size
        yield CounterMetricFamily(
            "livewatch_checkpoint_children_failed",
            "Forked children that took no checkpoint; the next was taken in the worker.",
            value=health.checkpoint_children_failed,
        )
        restores = CounterMetricFamily(
            "livewatch_checkpoint_restores",
            "Partition assignments by what the checkpoint table held for them.",
            labels=["result"],
        )
        for result in RESTORE_RESULTS:
            restores.add_metric([result], health.restores[result])
        yield restores

    def _progress(self) -> Iterator[Metric]:
        health = self.health
        yield CounterMetricFamily(
            "livewatch_redelivered_messages",
            "Messages delivered again below the processed position and skipped.",
            value=health.redelivered_messages,
        )
        yield CounterMetricFamily(
            "livewatch_idle_flushes",
            "Partitions whose pending input was applied because every source had been "
            "silent for flush_idle_s (the end of a replay).",
            value=health.idle_flushes,
        )
        lag = GaugeMetricFamily(
            "livewatch_consumer_lag_messages",
            "Messages in the source topic-partition not processed yet (high watermark - position).",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        now = self.clock()
        yield per_partition(
            "livewatch_watermark_delay_seconds",
            "Wall clock minus the partition's watermark: how far processing trails event "
            "time (a replay of an old log shows its age).",
            {partition: now - watermark for partition, watermark in self.watermarks().items()},
        )

    def _flow(self) -> Iterator[Metric]:
        yield per_partition(
            "livewatch_held_events",
            "Events accepted and waiting for the partition's watermark (bounded by "
            "max_held_events: past it, the sources running ahead are paused).",
            self.held(),
        )
        yield per_partition(
            "livewatch_sources_paused",
            "Source topics of the partition not fetched now: they ran ahead in event time "
            "while too many events waited for the watermark.",
            self.paused(),
        )
        yield CounterMetricFamily(
            "livewatch_source_pauses",
            "Times a source topic-partition was paused because too many events waited "
            "for the watermark.",
            value=self.health.source_pauses,
        )


def per_partition(name: str, documentation: str, values: Mapping[int, float]) -> GaugeMetricFamily:
    """A gauge with one sample per partition, in partition order."""
    gauge = GaugeMetricFamily(name, documentation, labels=["partition"])
    for partition, value in sorted(values.items()):
        gauge.add_metric([str(partition)], value)
    return gauge
