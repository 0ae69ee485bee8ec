"""Decode -> per-partition engines -> counters: the one processing path.

The Faust worker and backtest both hand batches of one partition's input to a
`Pipeline` (Kafka messages, or the lines of a log), tell it how time passes,
and take what it has to say with `drain()`; neither does any processing of its
own nor reaches into the engines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors.alerts import Transition
from streams.core.config import EngineConfig
from streams.core.decode import (
    TS_OUT_OF_BOUNDS,
    Decoded,
    RawMessage,
    Rejected,
    decode_log_lines,
    decode_messages,
)
from streams.core.engine import PartitionEngine
from streams.core.events import TYPE_OF_CLASS, event_type


@dataclass
class Output:
    """What the detectors and the snapshots produced since the last drain."""

    transitions: list[Transition] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    """Moderation actions (mute suggestions), for the `live.actions` topic."""
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    """Room metrics every `snapshot_every_s` of event time (offline analysis)."""

    def extend(self, other: Output) -> None:
        self.transitions += other.transitions
        self.actions += other.actions
        self.snapshots += other.snapshots


class Pipeline:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.engines: dict[int, PartitionEngine] = {}
        """Read-only outside: the exporter and checkpoints look, drivers ask."""
        self.events_total: Counter[str] = Counter()
        """Valid events accepted, by type (duplicates included)."""
        self.invalid_total: Counter[str] = Counter()
        """Rejected inputs, by reason."""
        self.late_total = 0

    def engine(self, partition: int) -> PartitionEngine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = PartitionEngine(self.config)
        return engine

    def process(
        self,
        partition: int,
        messages: Iterable[RawMessage],
        *,
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[Rejected]:
        """Process one partition's Kafka messages in arrival order; return the rejects.

        `now_ms` and `lagging` are the live driver's: see PartitionEngine.ingest.
        """
        decoded = decode_messages(messages, check_key=True)
        return self._ingest(partition, decoded, now_ms=now_ms, lagging=lagging)

    def process_lines(
        self, partition: int, lines: list[bytes], numbers: Iterable[int], log: str
    ) -> list[Rejected]:
        """Process one partition's lines of an event log (no keys to check), in file order."""
        return self._ingest(partition, decode_log_lines(lines, numbers, log))

    def reject(self, rejected: list[Rejected]) -> None:
        """Count inputs rejected before they could be routed to a partition."""
        self.invalid_total.update(r.reason for r in rejected)

    def _ingest(
        self,
        partition: int,
        decoded: Decoded,
        *,
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[Rejected]:
        engine = self.engine(partition)
        rejected = decoded.rejected
        if decoded.events:
            late_before = engine.late
            out_of_bounds = engine.ingest(decoded.events, now_ms, lagging)
            self.late_total += engine.late - late_before
            for cls, count in Counter(map(type, decoded.events)).items():
                self.events_total[TYPE_OF_CLASS[cls]] += count
            rejected += [self._off_the_clock(partition, decoded, p) for p in out_of_bounds]
        self.reject(rejected)
        return rejected

    def _off_the_clock(self, partition: int, decoded: Decoded, position: int) -> Rejected:
        event = decoded.events[position]
        self.events_total[event_type(event)] -= 1
        message, index = decoded.origin(position)
        detail = (
            f"ts {event.ts} is more than {self.config.max_clock_skew_ms} ms "
            f"from the event clock {self.engines[partition].event_clock} of partition {partition}"
        )
        payload = msgspec.json.encode(event) if index is not None else None
        return Rejected(TS_OUT_OF_BOUNDS, detail, message, index, payload)

    def settle(self, partition: int, lagging: Collection[str]) -> None:
        """Live mode, after a batch or a wait: see PartitionEngine.settle."""
        self.engine(partition).settle(lagging)

    def advance_idle(self, partition: int, idle_ms: int) -> None:
        """Live mode: event time passes in a partition that receives nothing."""
        self.engine(partition).advance_idle(idle_ms)

    def advance_to(self, until_ms: int) -> None:
        """Offline: partitions whose clock is behind `until_ms` (nothing seen lately)
        move up to it, as a live worker's silent partitions follow the wall clock."""
        for engine in self.engines.values():
            clock = engine.event_clock
            if clock is not None and clock < until_ms:
                engine.advance_idle(until_ms - clock)

    def flush(self) -> None:
        """Apply everything buffered: the input has ended."""
        for engine in self.engines.values():
            engine.flush()

    def drain(self) -> Output:
        """Everything produced since the last drain, partition by partition."""
        out = Output()
        for engine in self.engines.values():
            transitions, actions = engine.watch.drain()
            out.transitions += transitions
            out.actions += actions
            out.snapshots += engine.snapshots
            engine.snapshots = []
        return out

    def watermarks(self) -> dict[int, int]:
        """Partition -> its watermark (epoch ms), for partitions that have one."""
        return {p: e.watermark for p, e in self.engines.items() if e.watermark is not None}

    def adopt(self, partition: int, engine: PartitionEngine) -> None:
        """Take over a partition's restored state."""
        self.engines[partition] = engine

    def revoke(self, partition: int) -> None:
        """Forget a partition another worker now owns."""
        self.engines.pop(partition, None)

    def merge(self, other: Pipeline) -> None:
        """Take over another pipeline's partitions and counts (backtest lanes)."""
        self.engines.update(other.engines)
        self.events_total.update(other.events_total)
        self.invalid_total.update(other.invalid_total)
        self.late_total += other.late_total
