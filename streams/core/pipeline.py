"""Decode -> per-partition engines -> counters: the one processing path.

The Faust worker and the offline drivers both hand batches of raw messages to a
`Pipeline`; neither does any processing of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable

import msgspec
from aiokafka.partitioner import murmur2

from streams.core.decode import TS_OUT_OF_BOUNDS, Decoded, RawMessage, Rejected, decode_messages
from streams.core.engine import TYPE_OF_CLASS, EngineConfig, PartitionEngine, event_type


def partition_for(room_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a room's key."""
    return (int(murmur2(room_id.encode())) & 0x7FFFFFFF) % partitions


class Pipeline:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.engines: dict[int, PartitionEngine] = {}
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
        check_key: bool = True,
        now_ms: int | None = None,
        lagging: Collection[str] | None = None,
    ) -> list[Rejected]:
        """Process one partition's messages in arrival order; return the rejects.

        `now_ms` and `lagging` are the live driver's: see PartitionEngine.ingest.
        """
        decoded = decode_messages(messages, check_key=check_key)
        return self.ingest(partition, decoded, now_ms=now_ms, lagging=lagging)

    def ingest(
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
            for position in out_of_bounds:
                event = decoded.events[position]
                self.events_total[event_type(event)] -= 1
                message, index = decoded.origin(position)
                detail = (
                    f"ts {event.ts} is more than {self.config.max_clock_skew_ms} ms "
                    f"from the event clock {engine.event_clock} of partition {partition}"
                )
                payload = msgspec.json.encode(event) if index is not None else None
                rejected.append(Rejected(TS_OUT_OF_BOUNDS, detail, message, index, payload))
        self.invalid_total.update(r.reason for r in rejected)
        return rejected

    def revoke(self, partition: int) -> None:
        """Forget a partition another worker now owns."""
        self.engines.pop(partition, None)

    def flush(self) -> None:
        """Apply everything buffered: the input has ended."""
        for engine in self.engines.values():
            engine.flush()
