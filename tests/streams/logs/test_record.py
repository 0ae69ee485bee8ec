from __future__ import annotations

from streams.logs.record import message_lines


def test_recorded_messages_become_one_event_per_line() -> None:
    assert message_lines(b'{"a":1}') == [b'{"a":1}']
    assert message_lines(b'[{"a":1},{"b":2}]') == [b'{"a":1}', b'{"b":2}']
    assert message_lines(b'{"a":\n1}') == [b'{"a": 1}']
    assert message_lines(b"\xff\xfe") is None
    assert message_lines(b"") is None
    assert message_lines(b"[not json") == [b"[not json"]
