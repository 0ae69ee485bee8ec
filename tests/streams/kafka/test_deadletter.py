from __future__ import annotations

import base64
import json

from streams.core.decode import NOT_JSON, NOT_UTF8, RawMessage, Rejected
from streams.kafka.deadletter import dead_letter, rejected_letter


def letter(rejected: Rejected, limit: int = 64) -> dict[str, object]:
    result: dict[str, object] = json.loads(rejected_letter(rejected, limit))
    return result


def test_a_dead_letter_says_where_the_input_came_from_and_why() -> None:
    source = RawMessage("live.danmaku", 3, 1234, b"room-9", b"{oops")
    assert letter(Rejected(NOT_JSON, "JSON is malformed", source)) == {
        "reason": "not_json",
        "detail": "JSON is malformed",
        "topic": "live.danmaku",
        "partition": 3,
        "offset": 1234,
        "index": None,
        "key": "room-9",
        "payload": "{oops",
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        "payload_size": 5,
    }


def test_huge_payloads_are_truncated_on_a_character_boundary() -> None:
    value = ("弹" * 100).encode()  # 3 bytes each
    result = letter(Rejected(NOT_JSON, "x", RawMessage("t", 0, 0, None, value)), limit=64)
    assert result["payload"] == "弹" * 21  # 63 bytes; the split 22nd character is dropped
    assert result["payload_truncated"] is True and result["payload_size"] == 300
    assert result["key"] is None


def test_binary_payloads_are_kept_as_base64() -> None:
    value = b"\xff\xfe\x00binary"
    result = letter(Rejected(NOT_UTF8, "x", RawMessage("t", 0, 0, b"k", value)))
    assert result["payload_encoding"] == "base64"
    assert base64.b64decode(str(result["payload"])) == value


def test_a_rejected_batch_element_carries_only_that_element() -> None:
    source = RawMessage("t", 0, 7, b"r", b'[{"good":1},{"bad":2}]')
    result = letter(Rejected(NOT_JSON, "x", source, index=1, payload=b'{"bad":2}'))
    assert result["index"] == 1 and result["payload"] == '{"bad":2}'


def test_a_notification_given_up_is_a_dead_letter_of_the_same_format() -> None:
    record = {"receiver": "oncall", "room_id": "room-1", "alerts": []}
    letter_bytes = dead_letter(
        "undeliverable",
        "receiver oncall: gave up after 9 attempts: http_503",
        topic="live.alerts",
        partition=None,
        offset=None,
        key=b"room-1",
        payload=json.dumps(record).encode(),
        max_payload_bytes=64,
    )
    result = json.loads(letter_bytes)
    source = RawMessage("live.danmaku", 3, 1234, b"room-9", b"{oops")
    assert set(result) == set(letter(Rejected(NOT_JSON, "JSON is malformed", source)))
    assert (result["partition"], result["offset"], result["index"]) == (None, None, None)
    assert json.loads(result["payload"]) == record and result["key"] == "room-1"
