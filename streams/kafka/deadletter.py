"""Dead letters: what was rejected, where it came from, and why, in one format.

Both writers of the dead-letter topic use it: the worker for input that is not
a valid event (docs/events.md) and the notifier for alert messages it cannot
read or notifications it gave up delivering (docs/notify.md).
"""

from __future__ import annotations

import base64

import msgspec

from streams.core.decode import Rejected


class DeadLetter(msgspec.Struct, kw_only=True):
    reason: str
    detail: str
    topic: str
    partition: int | None
    """Null when what was rejected is not one message (a notification given up)."""
    offset: int | None
    index: int | None
    """Position inside a batched message; null when the whole message was rejected."""
    key: str | None
    payload: str
    """The rejected bytes as UTF-8 text, or base64 when they are not UTF-8."""
    payload_encoding: str
    payload_truncated: bool
    payload_size: int


_encoder = msgspec.json.Encoder()


def dead_letter(
    reason: str,
    detail: str,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    payload: bytes,
    max_payload_bytes: int,
    index: int | None = None,
) -> bytes:
    """A dead-letter record, encoded: the payload clipped to `max_payload_bytes`."""
    clipped = payload[:max_payload_bytes]
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(clipped).decode(), "base64"
    else:  # the clip may split a character: drop the partial one
        text, encoding = clipped.decode("utf-8", "ignore"), "utf-8"
    letter = DeadLetter(
        reason=reason,
        detail=detail[:1000],
        topic=topic,
        partition=partition,
        offset=offset,
        index=index,
        key=key.decode("utf-8", "replace")[:256] if key is not None else None,
        payload=text,
        payload_encoding=encoding,
        payload_truncated=len(payload) > max_payload_bytes,
        payload_size=len(payload),
    )
    return _encoder.encode(letter)


def rejected_letter(rejected: Rejected, max_payload_bytes: int) -> bytes:
    """The dead letter of an input the pipeline rejected."""
    message = rejected.message
    return dead_letter(
        rejected.reason,
        rejected.detail,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        payload=rejected.payload if rejected.payload is not None else (message.value or b""),
        max_payload_bytes=max_payload_bytes,
        index=rejected.index,
    )
