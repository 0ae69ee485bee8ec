"""Splitting a log for backtest lanes: every line to its partition, and the log's clock."""

from __future__ import annotations

import msgspec

from streams.core.decode import MISSING_FIELD, NOT_JSON
from streams.core.events import Event, Join, Latency
from streams.kafka.partitioner import partition_for
from streams.logs.split import LogSplitter

T0 = 1_764_000_000_000
S0 = T0 // 1000
SKEW_MS = 86_400_000


def encoded(events: list[Event]) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]


def test_every_routable_line_goes_to_its_partition_once_in_file_order() -> None:
    events: list[Event] = [Latency(f"room-{i % 7}", T0 + i * 300, "u", 100.0) for i in range(200)]
    lines = encoded(events)
    parcel = LogSplitter(4, SKEW_MS).split(lines, range(1, 201), "log")
    assert sum(len(part.lines()) for part in parcel.parts.values()) == 200
    for partition, part in parcel.parts.items():
        expected = [
            (number, line)
            for number, line, event in zip(range(1, 201), lines, events, strict=True)
            if partition_for(event.room_id, 4) == partition
        ]
        assert list(zip(part.numbers.tolist(), part.lines(), strict=True)) == expected
        assert len(part.cuts) == len(parcel.clock_moves) + 2
        assert part.cuts[0] == 0 and part.cuts[-1] == len(expected)
    assert parcel.only([0]).parts.keys() == parcel.parts.keys() & {0}


def test_the_clock_moves_with_each_newer_second_of_a_valid_event() -> None:
    bogus = msgspec.json.encode({"type": "bogus", "room_id": "r", "ts": T0 + 5_000, "user_id": "u"})
    far = Latency("r", T0 + 10 * 365 * SKEW_MS, "u", 1.0)
    lines = [
        *encoded([Latency("r", T0 + 100, "u", 1.0), Latency("r", T0 + 900, "u", 1.0)]),
        *encoded([Latency("r", T0 + 1_200, "u", 1.0), Latency("r", T0 + 3_000, "u", 1.0)]),
        bogus,  # routes, but is no event: the clock ignores it
        *encoded([far]),  # ten years ahead: ignored too
        *encoded([Latency("r", T0 + 2_000, "u", 1.0), Latency("r", T0 + 4_500, "u", 1.0)]),
    ]
    splitter = LogSplitter(1, SKEW_MS)
    parcel = splitter.split(lines, range(1, len(lines) + 1), "log")
    assert parcel.clock_moves == [S0 + 1, S0 + 3, S0 + 4]
    (part,) = parcel.parts.values()
    runs = [part.numbers[a:b].tolist() for a, b in zip(part.cuts, part.cuts[1:], strict=False)]
    assert runs == [[1, 2], [3], [4, 5, 6, 7], [8]]
    # The clock carries over to the next chunk.
    later = splitter.split(encoded([Latency("r", T0 + 4_900, "u", 1.0)]), [9], "log")
    assert later.clock_moves == []
    later = splitter.split(encoded([Latency("r", T0 + 5_000, "u", 1.0)]), [10], "log")
    assert later.clock_moves == [S0 + 5]


def test_lines_that_do_not_route_are_rejected_or_split_into_their_events() -> None:
    batch = [Join("room-a", T0, "u1"), Join("room-b", T0 + 2_000, "u2")]
    lines = [b"not json", b"", msgspec.json.encode(batch), b'{"type": "join"}']
    parcel = LogSplitter(4, SKEW_MS).split(lines, [1, 2, 3, 4], "log")
    rejected = [(r.reason, r.message.offset) for r in parcel.rejected]
    assert rejected == [(NOT_JSON, 1), (MISSING_FIELD, 4)]
    routed = {
        line: number
        for part in parcel.parts.values()
        for number, line in zip(part.numbers.tolist(), part.lines(), strict=True)
    }
    assert routed == {msgspec.json.encode(event): 3 for event in batch}
    assert parcel.clock_moves == [S0 + 2]
    assert parcel.only([1, 2, 3]).rejected == [] and parcel.only([0]).rejected == parcel.rejected


def test_a_timestamp_too_big_for_any_array_is_rejected_not_an_overflow() -> None:
    huge = b'{"type":"join","room_id":"r","ts":99999999999999999999999,"user_id":"u"}'
    lines = [*encoded([Join("r", T0, "a")]), huge, *encoded([Join("r", T0 + 1_000, "b")])]
    parcel = LogSplitter(4, SKEW_MS).split(lines, range(1, 4), "log")
    assert [(r.reason, r.message.offset) for r in parcel.rejected] == [("invalid_field", 2)]
    assert sum(len(part.numbers) for part in parcel.parts.values()) == 2
