from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.decode import (
    INVALID_FIELD,
    INVALID_REASONS,
    KEY_MISMATCH,
    MISSING_FIELD,
    NOT_AN_EVENT,
    NOT_JSON,
    NOT_UTF8,
    TOO_DEEP,
    UNKNOWN_TYPE,
    Decoded,
    RawMessage,
    decode_log_lines,
    decode_message,
    decode_messages,
)
from streams.core.events import Danmaku, Join, Latency, Leave, Order, RoomEvent, Stall

TS = 1_764_000_000_000
STALL = '{"type":"stall","room_id":"r1","ts":' + str(TS) + ',"user_id":"u","duration_ms":'
JOIN_BAD_UTF8 = b'{"type":"join","room_id":"r1","ts":' + str(TS).encode() + b',"user_id":"\xff"}'


def message(value: bytes | str | object, key: bytes | None = b"r1", offset: int = 0) -> RawMessage:
    if isinstance(value, str):
        value = value.encode()
    elif not isinstance(value, bytes):
        value = json.dumps(value).encode()
    return RawMessage("live.joins", 0, offset, key, value)


def base(type_: str, **fields: object) -> dict[str, object]:
    return {"type": type_, "room_id": "r1", "ts": TS, "user_id": "u1", **fields}


def decode(value: bytes | str | object, key: bytes | None = b"r1") -> Decoded:
    out = Decoded()
    decode_message(message(value, key), out)
    return out


def test_every_event_type_decodes_with_its_defaults() -> None:
    values = [
        base("join"),
        base("join", source="ad"),
        base("leave"),
        base("danmaku", text="想要"),
        base("order", order_id="o1", amount=19.9),
        base("order", order_id="o2", amount=0, status="refunded"),
        base("stall", duration_ms=1200),
        base("latency", value_ms=420.5),
        base("latency", value_ms=10, kind="connect", region="cn-east"),
    ]
    out = decode(values)
    assert out.rejected == []
    assert out.events == [
        Join("r1", TS, "u1", None),
        Join("r1", TS, "u1", "ad"),
        Leave("r1", TS, "u1"),
        Danmaku("r1", TS, "u1", "想要"),
        Order("r1", TS, "u1", "o1", 19.9, "paid"),
        Order("r1", TS, "u1", "o2", 0.0, "refunded"),
        Stall("r1", TS, "u1", 1200.0),
        Latency("r1", TS, "u1", 420.5, "e2e", None),
        Latency("r1", TS, "u1", 10.0, "connect", "cn-east"),
    ]
    assert [out.origin(i)[1] for i in range(len(values))] == list(range(len(values)))


def test_single_object_has_no_batch_index_and_unknown_fields_are_ignored() -> None:
    out = decode(base("join", colour="red", nested={"a": [1]}))
    assert out.events == [Join("r1", TS, "u1", None)]
    assert out.origin(0)[1] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{not json", NOT_JSON),
        ("", NOT_JSON),
        (json.dumps(base("join")) + " trailing", NOT_JSON),
        (JOIN_BAD_UTF8, NOT_UTF8),
        (b"\xff\xfe\x00", NOT_UTF8),
        ('"just a string"', NOT_AN_EVENT),
        ("42", NOT_AN_EVENT),
        (base("teleport"), UNKNOWN_TYPE),
        ({"room_id": "r1", "ts": TS, "user_id": "u1"}, MISSING_FIELD),
        (base("danmaku"), MISSING_FIELD),
        ({"type": "join", "room_id": "r1", "user_id": "u1"}, MISSING_FIELD),
        (base("join", ts=float(TS)), INVALID_FIELD),
        (base("join", ts=str(TS)), INVALID_FIELD),
        (base("join", ts=TS // 1000), INVALID_FIELD),  # seconds, not milliseconds
        (base("join", user_id=7), INVALID_FIELD),
        (base("join", source="tv"), INVALID_FIELD),
        (base("order", order_id="o", amount=-0.01), INVALID_FIELD),
        (base("order", order_id="o", amount=1, status="lost"), INVALID_FIELD),
        (base("stall", duration_ms=-5), INVALID_FIELD),
        (base("latency", value_ms=-1), INVALID_FIELD),
        (base("latency", value_ms=100, kind="p99"), INVALID_FIELD),
        (STALL + "NaN}", NOT_JSON),
        (
            STALL + "Infinity}",
            NOT_JSON,
        ),
        (
            STALL + "1e999}",
            INVALID_FIELD,
        ),
        (base("join", room_id=""), INVALID_FIELD),
        (base("join", room_id="r" * 129), INVALID_FIELD),
    ],
)
def test_invalid_messages_are_rejected_with_their_reason(value: object, reason: str) -> None:
    key = b"r" * 129 if isinstance(value, dict) and value.get("room_id") == "r" * 129 else b"r1"
    out = decode(value, key=key)
    assert out.events == []
    assert [r.reason for r in out.rejected] == [reason]
    rejected = out.rejected[0]
    assert rejected.index is None and rejected.payload is None
    assert rejected.detail


def room(**fields: object) -> dict[str, object]:
    """A room event: no user_id."""
    return {"type": "room", "room_id": "r1", "ts": TS, **fields}


def test_room_events_decode_without_a_user() -> None:
    values = [
        room(phase="live"),
        room(phase="promo_start", promo_id="sale-1"),
        room(phase="promo_end", promo_id="p" * 64),
        room(phase="ended", user_id="ignored", colour="red"),  # extra fields are ignored
    ]
    out = decode(values)
    assert out.rejected == []
    assert out.events == [
        RoomEvent("r1", TS, "live"),
        RoomEvent("r1", TS, "promo_start", "sale-1"),
        RoomEvent("r1", TS, "promo_end", "p" * 64),
        RoomEvent("r1", TS, "ended"),
    ]
    # Through the fast path of whole messages too, as a worker reads them.
    fast = decode_messages([message(room(phase="ended"))])
    assert fast.events == [RoomEvent("r1", TS, "ended")] and fast.rejected == []


@pytest.mark.parametrize(
    ("value", "reason", "where"),
    [
        (room(), MISSING_FIELD, "`phase`"),
        (room(phase="paused"), INVALID_FIELD, "$.phase"),
        (room(phase=None), INVALID_FIELD, "$.phase"),
        (room(phase="promo_start", promo_id="p" * 65), INVALID_FIELD, "$.promo_id"),
        (room(phase="promo_start", promo_id=""), INVALID_FIELD, "$.promo_id"),
        (room(phase="promo_start", promo_id=7), INVALID_FIELD, "$.promo_id"),
        (room(phase="live", ts=TS // 1000), INVALID_FIELD, "$.ts"),
        (room(phase="live", room_id="other"), KEY_MISMATCH, "room_id"),
        ({"type": "room", "room_id": "r1", "phase": "live"}, MISSING_FIELD, "`ts`"),
    ],
)
def test_bad_room_events_are_rejected_with_their_reason(
    value: dict[str, object], reason: str, where: str
) -> None:
    out = decode([room(phase="live"), value])  # its valid neighbour is kept
    assert out.events == [RoomEvent("r1", TS, "live")]
    assert [(r.reason, r.index) for r in out.rejected] == [(reason, 1)]
    assert where in out.rejected[0].detail


def test_viewer_events_still_need_their_user() -> None:
    for type_, fields in (("join", {}), ("leave", {}), ("danmaku", {"text": "x"})):
        value = {"type": type_, "room_id": "r1", "ts": TS, **fields}
        [rejected] = decode(value).rejected
        assert (rejected.reason, rejected.detail) == (
            MISSING_FIELD,
            "Object missing required field `user_id`",
        )


def test_a_bad_element_does_not_take_its_batch_neighbours_with_it() -> None:
    batch = [base("join"), base("order", order_id="o", amount=-1), "oops", base("leave")]
    out = decode(batch)
    assert out.events == [Join("r1", TS, "u1", None), Leave("r1", TS, "u1")]
    assert [(r.reason, r.index) for r in out.rejected] == [(INVALID_FIELD, 1), (NOT_AN_EVENT, 2)]
    assert json.loads(out.rejected[0].payload or b"")["amount"] == -1
    assert [out.origin(i)[1] for i in range(2)] == [0, 3]


def test_room_id_must_match_the_message_key() -> None:
    out = decode([base("join"), base("join", room_id="other")], key=b"r1")
    assert out.events == [Join("r1", TS, "u1", None)]
    assert [(r.reason, r.index) for r in out.rejected] == [(KEY_MISMATCH, 1)]
    assert decode(base("join"), key=None).rejected[0].reason == KEY_MISMATCH


def test_log_files_have_no_keys_to_check() -> None:
    out = decode_messages([message(base("join"), key=None)], check_key=False)
    assert len(out.events) == 1 and out.rejected == []


def test_an_empty_batch_is_valid_and_holds_nothing() -> None:
    out = decode([])
    assert out.events == [] and out.rejected == []


def test_json_nested_past_the_decoders_limit_rejects_only_its_message() -> None:
    deep = b'{"type":"join","room_id":"r1","ts":%d,"user_id":"u","x":%s%s}' % (
        TS,
        b"[" * 100_000,
        b"]" * 100_000,
    )
    good = message({"type": "join", "room_id": "r1", "ts": TS, "user_id": "v"})
    out = decode_messages([message(deep), message(b"[" * 100_000), good])
    assert [(r.reason, r.message.offset) for r in out.rejected] == [
        (TOO_DEEP, 0),
        (NOT_AN_EVENT, 0),
    ]
    assert out.events == [Join("r1", TS, "v")]
    lines = decode_log_lines([deep, b"[" * 100_000], [1, 2], "night.jsonl")
    assert [r.reason for r in lines.rejected] == [TOO_DEEP, NOT_AN_EVENT]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda depth, head: head + b"[" * depth,
            st.integers(0, 5_000),
            st.sampled_from([b"", b'{"type":"join","x":']),
        ),
    ),
    st.one_of(st.none(), st.binary(max_size=20)),
)
def test_any_bytes_decode_to_events_or_rejects_never_an_exception(
    value: bytes, key: bytes | None
) -> None:
    out = decode_messages([RawMessage("t", 0, 0, key, value)])
    assert all(r.reason in INVALID_REASONS and r.detail for r in out.rejected)
    lines = decode_log_lines([value.replace(b"\n", b" ")], [1], "log")
    assert all(r.reason in INVALID_REASONS for r in lines.rejected)


@pytest.mark.parametrize(
    ("event", "limit"),
    [
        (base("join", user_id="u" * 100_000), 128),
        (base("join", user_id=""), 128),
        (base("danmaku", text="刷" * 1_001), 1_000),
        (base("order", order_id="o" * 129, amount=1), 128),
        (base("latency", value_ms=1, region="r" * 65), 64),
    ],
)
def test_huge_or_empty_ids_and_texts_are_invalid_not_held(
    event: dict[str, object], limit: int
) -> None:
    """A viewer costs its id in several tables and a message its text in the spam
    window: 100 KB ids or megabyte texts must be refused, not held."""
    out = decode(event)
    assert out.events == []
    assert [r.reason for r in out.rejected] == [INVALID_FIELD]
    assert str(limit) in out.rejected[0].detail or "length" in out.rejected[0].detail


def test_ids_and_texts_at_their_limits_are_valid() -> None:
    out = decode(
        [
            base("join", user_id="u" * 128),
            base("danmaku", text="刷" * 1_000),
            base("order", order_id="o" * 128, amount=1),
            base("latency", value_ms=1, region="r" * 64),
        ]
    )
    assert len(out.events) == 4 and out.rejected == []
