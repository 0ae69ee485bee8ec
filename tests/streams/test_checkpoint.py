from __future__ import annotations

import pickle

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    restore_checkpoint,
    take_checkpoint,
)
from streams.engine import PartitionEngine
from streams.events import Event
from tests.streams.scenarios import CONFIG, interleave, source_streams, state


@given(source_streams(), st.data())
@settings(max_examples=100, deadline=None)
def test_a_restored_engine_continues_exactly_like_one_never_stopped(
    streams: dict[str, list[Event]], data: st.DataObject
) -> None:
    events = interleave(streams, 1)
    cut = data.draw(st.integers(0, len(events)))
    uninterrupted = PartitionEngine(CONFIG)
    uninterrupted.ingest(events)
    uninterrupted.flush()

    before = PartitionEngine(CONFIG)
    before.ingest(events[:cut])
    blob = take_checkpoint(before, 3, {"live.joins": cut})
    restored, checkpoint = restore_checkpoint(blob, CONFIG)
    assert checkpoint.partition == 3 and checkpoint.offsets == {"live.joins": cut}
    restored.ingest(events[cut:])
    restored.flush()
    assert state(restored) == state(uninterrupted)


def test_foreign_or_corrupt_checkpoints_are_refused() -> None:
    with pytest.raises(CheckpointError, match="unreadable"):
        restore_checkpoint(b"\x00garbage", CONFIG)
    future = msgspec.msgpack.encode(Checkpoint(FORMAT_VERSION + 1, 0, {}, b""))
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1}"):
        restore_checkpoint(future, CONFIG)
    not_an_engine = msgspec.msgpack.encode(Checkpoint(FORMAT_VERSION, 0, {}, pickle.dumps([1])))
    with pytest.raises(CheckpointError, match="does not hold"):
        restore_checkpoint(not_an_engine, CONFIG)
