"""The event contract (docs/events.md) as strict msgspec types.

Validation happens while decoding: a value that decodes is a valid event, apart
from checks that need state (the partition's event clock, the message key).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec

MAX_ROOM_ID_LENGTH: Final = 128
MAX_ID_LENGTH: Final = 128
"""User ids and order ids: every viewer costs its id in several tables, so a flood of
100 KB ids must be refused, not held."""
MAX_TEXT_LENGTH: Final = 1_000
"""Danmaku text, in characters: above every platform's own limit (Twitch 500, Douyin and
Bilibili far less), and what the spam detector keeps per message stays small."""
MAX_REGION_LENGTH: Final = 64
MAX_PROMO_ID_LENGTH: Final = 64

# Epoch milliseconds between 2000-01-01 and 2100-01-01: catches seconds or
# microseconds sent by mistake without consulting any clock.
EventTime = Annotated[int, msgspec.Meta(ge=946_684_800_000, lt=4_102_444_800_000)]
RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ROOM_ID_LENGTH)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]
Region = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REGION_LENGTH)]
PromoId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMO_ID_LENGTH)]
# Non-negative and bounded: msgspec already refuses NaN/Infinity literals and numbers
# that overflow a double; one absurd value must not own a room's sums and quantiles.
MAX_AMOUNT: Final = 10_000_000.0
"""Yuan in one order: above any item sold on a live stream (cars and jewellery included)."""
MAX_STALL_MS: Final = 3_600_000.0
"""One stall: a viewer whose player stalled for an hour has left long before."""
MAX_LATENCY_MS: Final = 600_000.0
"""One latency sample: ten minutes, a thousand times the 600 ms target."""
Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
StallMs = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_STALL_MS)]
LatencyMs = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_LATENCY_MS)]

Channel = Literal["feed", "follow", "search", "ad", "share", "other"]
"""Where a viewer came from: the traffic channel of a join (its JSON field is `source`)."""
OrderStatus = Literal["paid", "refunded"]
LatencyKind = Literal["e2e", "connect", "first_frame"]
Phase = Literal["live", "ended", "promo_start", "promo_end"]
"""What a room event says: the stream started (`live`) or stopped (`ended`), a
promotion (flash sale, coupon drop, countdown) started or ended."""


class BaseEvent(msgspec.Struct, tag_field="type", frozen=True, gc=False):
    room_id: RoomId
    ts: EventTime
    """Event time, epoch milliseconds."""


class ViewerEvent(BaseEvent, frozen=True, gc=False):
    """Something a viewer did or saw: every event type but the room's own."""

    user_id: Id


class Join(ViewerEvent, tag="join", frozen=True, gc=False):
    channel: Channel | None = msgspec.field(default=None, name="source")


class Leave(ViewerEvent, tag="leave", frozen=True, gc=False):
    pass


class Danmaku(ViewerEvent, tag="danmaku", frozen=True, gc=False):
    text: Text


class Order(ViewerEvent, tag="order", frozen=True, gc=False):
    order_id: Id
    amount: Amount
    status: OrderStatus = "paid"


class Stall(ViewerEvent, tag="stall", frozen=True, gc=False):
    duration_ms: StallMs


class Latency(ViewerEvent, tag="latency", frozen=True, gc=False):
    value_ms: LatencyMs
    kind: LatencyKind = "e2e"
    region: Region | None = None


class RoomEvent(BaseEvent, tag="room", frozen=True, gc=False):
    """The room itself: its stream's lifecycle and its promotions (no viewer)."""

    phase: Phase
    promo_id: PromoId | None = None
    """Names the promotion of a `promo_start` / `promo_end` (ignored on `live` and `ended`)."""


Viewer = Join | Leave | Danmaku | Order | Stall | Latency
Event = Join | Leave | Danmaku | Order | Stall | Latency | RoomEvent

SOURCE_OF_TYPE: Final[dict[str, str]] = {
    "join": "joins",
    "leave": "joins",
    "danmaku": "danmaku",
    "order": "orders",
    "stall": "stalls",
    "latency": "latency",
    "room": "rooms",
}
"""The one table of inputs: each event type arrives from one source, and each
source is one topic, named by the setting `topic_<source>` (docs/events.md)."""
EVENT_TYPES: Final[tuple[str, ...]] = tuple(SOURCE_OF_TYPE)
SOURCES: Final[tuple[str, ...]] = tuple(dict.fromkeys(SOURCE_OF_TYPE.values()))
SPARSE_SOURCES: Final[frozenset[str]] = frozenset({"rooms"})
"""Sources that may say nothing for hours (a room event per stream start, end and
promotion). Their clocks never count toward a partition's watermark offline, and
live only while input of theirs waits to be processed (streams.core.engine), so an
idle one cannot stall it; their events are judged late like any other."""
TYPE_OF_CLASS: Final[dict[type, str]] = {cls: cls.__struct_config__.tag for cls in get_args(Event)}
SOURCE_OF_CLASS: Final[dict[type, str]] = {
    cls: SOURCE_OF_TYPE[t] for cls, t in TYPE_OF_CLASS.items()
}


def event_type(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]
