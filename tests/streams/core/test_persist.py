"""The engine state as data: it round-trips whole, and reading never runs code."""

from __future__ import annotations

import os
import pickle
from collections import deque
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import Finding
from streams.core.engine import PartitionEngine
from streams.core.events import Danmaku, Event, Join, Latency
from streams.core.persist import StateFormatError, dump, load
from streams.worker.checkpoint import STATE_CLASSES
from tests.streams.scenarios import CONFIG, T0, interleave, source_streams, state


def dump_state(engine: PartitionEngine) -> bytes:
    return dump(engine, STATE_CLASSES)


def load_state(data: bytes) -> PartitionEngine:
    return load(data, STATE_CLASSES, PartitionEngine)


def busy_engine() -> PartitionEngine:
    """Rooms big enough to be ticked, with chat, latency and an open alert."""
    engine = PartitionEngine(CONFIG)
    events: list[Event] = [Join("big", T0 + i, f"u{i}") for i in range(60)]
    events += [Danmaku("big", T0 + 1_000 + i, f"u{i % 7}", "加V:xx123") for i in range(40)]
    events += [Latency("big", T0 + 2_000 + i, f"u{i}", 900.0, region="cn-east") for i in range(60)]
    events.append(Join("small", T0 + 3_000, "solo"))
    engine.ingest(events)
    engine.advance_idle(20_000)
    return engine


def test_a_loaded_state_equals_the_dumped_one_and_keeps_shared_objects_shared() -> None:
    engine = busy_engine()
    assert engine.watch.tracker.active, "an alert is open when the state is dumped"
    loaded = load_state(dump_state(engine))
    assert state(loaded) == state(busy_engine())
    assert loaded.watch.tracker.active, "the open alert survives"
    assert loaded._ticking
    for room_id, room in loaded._ticking.items():
        assert room is loaded.rooms[room_id]  # one object, as before


@given(source_streams(), st.data())
@settings(max_examples=60, deadline=None)
def test_a_dump_of_any_state_loads_and_continues_like_the_original(
    streams: dict[str, list[Event]], data: st.DataObject
) -> None:
    events = interleave(streams, 2)
    cut = data.draw(st.integers(0, len(events)))
    original, copy = PartitionEngine(CONFIG), PartitionEngine(CONFIG)
    original.ingest(events[:cut])
    copy.ingest(events[:cut])
    copy = load_state(dump_state(copy))
    for engine in (original, copy):
        engine.ingest(events[cut:])
        engine.flush()
    assert state(copy) == state(original)
    assert copy.watch.drain() == original.watch.drain()


def test_a_list_of_one_event_type_is_stored_in_one_piece() -> None:
    """Held events are most of a busy partition's objects: a list of one struct class is
    one encoded form, read back equal; a list of mixed ones is stored item by item."""
    held = [Latency("big", T0 + i, f"u{i}", 100.0 + i, region="hk") for i in range(50)]
    mixed: list[Event] = [*held[:2], Join("big", T0, "u0")]
    untagged = [Finding("warning", "hot"), held[0]]
    window = deque(held[:5], maxlen=8)
    state = [held, mixed, untagged, window, held]
    stored = msgspec.msgpack.decode(dump(state, STATE_CLASSES))
    assert [node[0] for node in stored[1]] == ["E", "E", "l", "Q", "r"]
    loaded = load(dump(state, STATE_CLASSES), STATE_CLASSES, list)
    assert loaded == state
    assert loaded[0] is loaded[4]
    assert loaded[3].maxlen == 8


class _Payload:
    """What an attacker's pickle would do when read: leave a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_is_refused_without_being_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(StateFormatError):
        load_state(pickle.dumps(_Payload(marker)))
    assert not marker.exists()


@pytest.mark.parametrize(
    "node",
    [
        ["o", "system", {}],  # a name that is not a state class
        ["o", "PartitionEngine", {"__class__": ["t", []]}],  # dunder attributes
        ["o", "PartitionEngine", {"__dict__": ["m", {}]}],
        ["g", "PartitionEngine", ["m", {}]],  # a class that does not say its own state
        ["a", "O", [1], b"\x00" * 8],  # object arrays could hold anything
        ["a", "<f8", [3], b"\x00" * 8],  # a shape its bytes do not fill
        ["A", "u", b"\x00" * 4],  # array.array of characters, not numbers
        ["A", "d", b"\x00" * 5],  # bytes that are not whole items
        ["A", "q", "eight"],  # not bytes
        ["r", 5],  # a reference to nothing stored
        ["x", 1],  # an unknown form
        ["e", "Join", msgspec.msgpack.encode({"nope": 1})],
        ["E", ["Join"], msgspec.msgpack.encode([{"nope": 1}])],
        ["E", ["system"], msgspec.msgpack.encode([])],
        ["E", "Join", msgspec.msgpack.encode([])],  # names not a list
        ["Q", -1, ["Join"], msgspec.msgpack.encode([])],
        ["Q", None, ["Join", "Finding"], msgspec.msgpack.encode([])],  # untagged, told apart how?
        ["l", [["l", [["l", []]]]]],  # a valid list, but no engine
    ],
)
def test_forged_states_are_refused(node: object) -> None:
    with pytest.raises(StateFormatError):
        load_state(msgspec.msgpack.encode(node))


_MSGPACK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary()
    | st.sampled_from(["o", "r", "l", "L", "d", "m", "a", "A", "n", "e", "E", "T", "q", "Q"]),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(st.one_of(st.binary(), _MSGPACK.map(msgspec.msgpack.encode)))
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes_load_as_an_engine_or_raise_the_format_error(data: bytes) -> None:
    try:
        engine = load_state(data)
    except StateFormatError:
        return
    assert isinstance(engine, PartitionEngine)


def test_a_state_holding_an_unknown_type_is_not_dumped() -> None:
    engine = PartitionEngine(CONFIG)
    engine.unconfirmed = [object()]  # type: ignore[list-item]
    with pytest.raises(StateFormatError, match="not an allowed class"):
        dump_state(engine)
