"""Where a room's events go: the partition Kafka's default partitioner picks for its key.

Backtest routes log lines with it, so that rooms share partitions (and so
partition-wide state such as watermarks) exactly as they do in Kafka.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(room_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a room's key."""
    return (int(murmur2(room_id.encode())) & 0x7FFFFFFF) % partitions
