from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.partitioner import partition_for


def test_rooms_map_to_the_partitions_kafkas_default_partitioner_picks() -> None:
    partitions = list(range(8))
    for room in ["room-0", "直播间-7", "x" * 128, "a"]:
        expected = DefaultPartitioner()(room.encode(), partitions, partitions)
        assert partition_for(room, 8) == expected
