"""The event contract (docs/events.md) as strict msgspec types.

Validation happens while decoding: a value that decodes is a valid event, apart
from checks that need state (the partition's event clock, the message key).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

MAX_ROOM_ID_LENGTH: Final = 128

# Epoch milliseconds between 2000-01-01 and 2100-01-01: catches seconds or
# microseconds sent by mistake without consulting any clock.
EventTime = Annotated[int, msgspec.Meta(ge=946_684_800_000, lt=4_102_444_800_000)]
RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ROOM_ID_LENGTH)]
# Finite and non-negative: msgspec already refuses NaN/Infinity literals and
# numbers that overflow a double, the bounds refuse negatives.
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=1.7976931348623157e308)]

TrafficSource = Literal["feed", "follow", "search", "ad", "share", "other"]
OrderStatus = Literal["paid", "refunded"]
LatencyKind = Literal["e2e", "connect", "first_frame"]


class BaseEvent(msgspec.Struct, tag_field="type", frozen=True, gc=False):
    room_id: RoomId
    ts: EventTime
    """Event time, epoch milliseconds."""
    user_id: str


class Join(BaseEvent, tag="join", frozen=True, gc=False):
    source: TrafficSource | None = None


class Leave(BaseEvent, tag="leave", frozen=True, gc=False):
    pass


class Danmaku(BaseEvent, tag="danmaku", frozen=True, gc=False):
    text: str


class Order(BaseEvent, tag="order", frozen=True, gc=False):
    order_id: str
    amount: NonNegative
    status: OrderStatus = "paid"


class Stall(BaseEvent, tag="stall", frozen=True, gc=False):
    duration_ms: NonNegative


class Latency(BaseEvent, tag="latency", frozen=True, gc=False):
    value_ms: NonNegative
    kind: LatencyKind = "e2e"
    region: str | None = None


Event = Join | Leave | Danmaku | Order | Stall | Latency

EVENT_TYPES: Final[tuple[str, ...]] = ("join", "leave", "danmaku", "order", "stall", "latency")
