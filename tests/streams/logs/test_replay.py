"""What replay says about the lines it cannot produce: each with its line and reason."""

from __future__ import annotations

from streams.logs.files import SHOWN_SKIPS
from streams.logs.replay import ReplayStats


def test_each_skipped_line_gets_its_number_and_the_decoders_reason() -> None:
    stats = ReplayStats()
    lines = [
        b"not json",
        b'{"type":"teleport","room_id":"r1","ts":1764000000000,"user_id":"u"}',
        b'{"type":"join","room_id":"r1","ts":99999999999999999999999,"user_id":"u"}',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ]
    for number, line in enumerate(lines, 1):
        stats.skip("night.jsonl", number, line)
    assert stats.skipped == 5
    assert [shown.split(": ")[:2] for shown in stats.shown] == [
        ["night.jsonl:1", "not_json"],
        ["night.jsonl:2", "unknown_type"],
        ["night.jsonl:3", "invalid_field"],
        ["night.jsonl:4", "not_utf8"],
        ["night.jsonl:5", "not_an_event"],
    ]
    assert sum(stats.reasons.values()) == 5


def test_a_flood_of_bad_lines_is_counted_not_all_shown() -> None:
    stats = ReplayStats()
    for number in range(1, 1_001):
        stats.skip("night.jsonl", number, b"{")
    assert len(stats.shown) == SHOWN_SKIPS
    assert stats.reasons == {"not_json": 1_000}
