from __future__ import annotations

from aiokafka import ConsumerRecord

from streams.logs.files import SHOWN_SKIPS
from streams.logs.record import RecordStats, message_lines


def test_recorded_messages_become_one_event_per_line() -> None:
    assert message_lines(b'{"a":1}') == [b'{"a":1}']
    assert message_lines(b'[{"a":1},{"b":2}]') == [b'{"a":1}', b'{"b":2}']
    assert message_lines(b'{"a":\n1}') == [b'{"a": 1}']
    assert message_lines(b"\xff\xfe") is None
    assert message_lines(b"") is None
    assert message_lines(b"[not json") == [b"[not json"]


def _message(offset: int, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("live.joins", 2, offset, 0, 0, b"r1", value, None, 2, 0, [])


def test_a_skipped_message_is_named_with_its_place_and_reason() -> None:
    stats = RecordStats()
    stats.skip(_message(7, b"\xff\xfe"))
    stats.skip(_message(8, None))
    for offset in range(9, 100):
        stats.skip(_message(offset, b""))
    assert stats.shown[:2] == ["live.joins/2@7: not_utf8", "live.joins/2@8: not_json"]
    assert len(stats.shown) == SHOWN_SKIPS
    assert stats.reasons == {"not_utf8": 1, "not_json": 92}
    assert stats.skipped == 93
