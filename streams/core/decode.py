"""Strict decoding of raw Kafka message values into typed events.

A message holds one event object or a JSON array of them. The whole message is
decoded in one msgspec call; only when that fails are array elements decoded one
by one, so a single bad element does not take its valid neighbours with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from streams.core.events import Event

# Bounded set of reasons: they become the `reason` label of
# livewatch_events_invalid_total and the `reason` field of dead letters.
NOT_UTF8: Final = "not_utf8"
NOT_JSON: Final = "not_json"
NOT_AN_EVENT: Final = "not_an_event"
UNKNOWN_TYPE: Final = "unknown_type"
MISSING_FIELD: Final = "missing_field"
INVALID_FIELD: Final = "invalid_field"
KEY_MISMATCH: Final = "key_mismatch"
TS_OUT_OF_BOUNDS: Final = "ts_out_of_bounds"
TOO_DEEP: Final = "too_deep"
ROOM_BUDGET: Final = "room_budget"
"""A valid event of a new room while its partition holds `max_rooms` live rooms."""
INVALID_REASONS: Final[tuple[str, ...]] = (
    NOT_UTF8,
    NOT_JSON,
    TOO_DEEP,
    NOT_AN_EVENT,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    INVALID_FIELD,
    KEY_MISMATCH,
    TS_OUT_OF_BOUNDS,
    ROOM_BUDGET,
)

DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding untrusted bytes may raise: msgspec's errors, and a RecursionError
for JSON nested deeper than msgspec's recursion limit (`[[[[...`), which must
reject that one input like any other bad value, not stop the worker."""

_message_decoder: Final = msgspec.json.Decoder(Event | list[Event])
_event_decoder: Final[msgspec.json.Decoder[Event]] = msgspec.json.Decoder(Event)
_elements_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """A message as read from Kafka or from one line of an event log (made per
    message on the hot path: a Struct builds several times faster than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that is not a valid event, with enough context to find it again."""

    reason: str
    detail: str
    message: RawMessage
    index: int | None = None
    """Position inside a batched (array) message, None for the whole message."""
    payload: bytes | None = None
    """The offending element of a batch; None means the whole message value."""


@dataclass(slots=True)
class Decoded:
    events: list[Event] = field(default_factory=list)
    origins: list[tuple[RawMessage, int | None] | int] = field(default_factory=list)
    """For each event: its message and its position in a batched message, or,
    for a log line decoded by `decode_log_lines`, its line number in `log`."""
    rejected: list[Rejected] = field(default_factory=list)
    log: str = ""
    whole: list[RawMessage] | None = None
    """Set instead of `origins` when each event is the whole of the message at its position."""

    def origin(self, position: int) -> tuple[RawMessage, int | None]:
        """Where the event at `position` came from (built on demand for log lines)."""
        if self.whole is not None:
            return self.whole[position], None
        found = self.origins[position]
        if isinstance(found, int):
            value = msgspec.json.encode(self.events[position])
            return RawMessage(self.log, 0, found, None, value), None
        return found


def classify(error: Exception, data: bytes) -> tuple[str, str]:
    """Map a decoding error to (reason, human readable detail)."""
    detail = str(error)
    if isinstance(error, RecursionError):
        return TOO_DEEP, "JSON nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return NOT_UTF8, detail
    if isinstance(error, msgspec.ValidationError):
        if detail.startswith("Invalid value") and detail.endswith("`$.type`"):
            return UNKNOWN_TYPE, detail
        if detail.startswith("Object missing required field"):
            return MISSING_FIELD, detail
        if detail.startswith("Expected `object"):
            return NOT_AN_EVENT, detail
        return INVALID_FIELD, detail
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return NOT_UTF8, str(exc)
    return NOT_JSON, detail


def _decode_one(data: bytes) -> Event | Exception:
    try:
        return _event_decoder.decode(data)
    except DECODE_ERRORS as exc:
        return exc


def decode_message(message: RawMessage, out: Decoded, *, check_key: bool = True) -> None:
    """Decode one message, appending its events and rejects to `out`.

    With `check_key`, every event's room_id must equal the message key, so that a
    room never spreads over two partitions. Log files have no keys.
    """
    value = message.value or b""
    try:
        decoded = _message_decoder.decode(value)
    except DECODE_ERRORS as error:
        _decode_elements(message, value, error, out, check_key)
        return
    if isinstance(decoded, list):
        for index, event in enumerate(decoded):
            _accept(event, message, check_key, index, out)
    else:
        _accept(decoded, message, check_key, None, out)


def _accept(
    event: Event, message: RawMessage, check_key: bool, index: int | None, out: Decoded
) -> None:
    if not check_key or message.key == event.room_id.encode():
        out.events.append(event)
        out.origins.append((message, index))
        return
    key = message.key[:140] if message.key is not None else None
    out.rejected.append(
        Rejected(
            KEY_MISMATCH,
            f"message key {key!r} is not the room_id {event.room_id!r}",
            message,
            index,
            msgspec.json.encode(event) if index is not None else None,
        )
    )


def _decode_elements(
    message: RawMessage,
    value: bytes,
    error: Exception,
    out: Decoded,
    check_key: bool,
) -> None:
    try:
        elements = _elements_decoder.decode(value)
    except DECODE_ERRORS:
        reason, detail = classify(error, value)
        out.rejected.append(Rejected(reason, detail, message))
        return
    for index, element in enumerate(elements):
        data = bytes(element)
        result = _decode_one(data)
        if isinstance(result, Exception):
            reason, detail = classify(result, data)
            out.rejected.append(Rejected(reason, detail, message, index, data))
        else:
            _accept(result, message, check_key, index, out)


def decode_log_lines(lines: list[bytes], numbers: Iterable[int], log: str) -> Decoded:
    """Lines of an event log, with their line `numbers`, as one Decoded.

    One event per line is the common case and is decoded directly; anything else
    (arrays, bad lines) goes through `decode_message` for its verdict.
    """
    out = Decoded(log=log)
    events, origins, decode = out.events, out.origins, _event_decoder.decode
    try:
        events += map(decode, lines)  # all good, the common case: no Python step per line
        origins += numbers  # messages are built only if ever needed
        return out
    except DECODE_ERRORS:
        events.clear()
    for number, line in zip(numbers, lines, strict=True):
        try:
            event = decode(line)
        except DECODE_ERRORS:
            if line := line.strip():
                decode_message(RawMessage(log, 0, number, None, line), out, check_key=False)
            continue
        events.append(event)
        origins.append(number)
    return out


def is_event(line: bytes) -> bool:
    """Whether the line holds one valid event."""
    return not isinstance(_decode_one(line), Exception)


def decode_messages(messages: Iterable[RawMessage], *, check_key: bool = True) -> Decoded:
    messages = list(messages)
    try:
        # One valid event per message, keyed by its room: the common case, decoded
        # without a Python step per message; anything else gets its own verdict.
        events = list(map(_event_decoder.decode, [m.value or b"" for m in messages]))
    except DECODE_ERRORS:
        pass
    else:
        if not check_key or [m.key for m in messages] == [e.room_id.encode() for e in events]:
            return Decoded(events=events, whole=messages)
    out = Decoded()
    for message in messages:
        decode_message(message, out, check_key=check_key)
    return out
