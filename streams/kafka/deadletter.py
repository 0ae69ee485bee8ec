"""Dead-letter records: what was rejected, where it came from, and why."""

from __future__ import annotations

import base64

import msgspec

from streams.core.decode import Rejected


class DeadLetter(msgspec.Struct, kw_only=True):
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    index: int | None
    """Position inside a batched message; null when the whole message was rejected."""
    key: str | None
    payload: str
    """The rejected bytes as UTF-8 text, or base64 when they are not UTF-8."""
    payload_encoding: str
    payload_truncated: bool
    payload_size: int


_encoder = msgspec.json.Encoder()


def dead_letter(rejected: Rejected, max_payload_bytes: int) -> DeadLetter:
    message = rejected.message
    raw = rejected.payload if rejected.payload is not None else (message.value or b"")
    clipped = raw[:max_payload_bytes]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(clipped).decode(), "base64"
    else:  # the clip may split a character: drop the partial one
        payload, encoding = clipped.decode("utf-8", "ignore"), "utf-8"
    return DeadLetter(
        reason=rejected.reason,
        detail=rejected.detail[:1000],
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        index=rejected.index,
        key=message.key.decode("utf-8", "replace")[:256] if message.key is not None else None,
        payload=payload,
        payload_encoding=encoding,
        payload_truncated=len(raw) > max_payload_bytes,
        payload_size=len(raw),
    )


def encode_dead_letter(rejected: Rejected, max_payload_bytes: int) -> bytes:
    return _encoder.encode(dead_letter(rejected, max_payload_bytes))
