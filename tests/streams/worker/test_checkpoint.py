from __future__ import annotations

import dataclasses
import hashlib
import pickle
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import AlertKey, Finding
from streams.core.config import EngineConfig, MetricsConfig
from streams.core.engine import PartitionEngine
from streams.core.events import Event, Join, Leave, Order, RoomEvent
from streams.worker.checkpoint import (
    CHUNK_BYTES,
    FORMAT_VERSION,
    STATE_CLASSES,
    Checkpoint,
    CheckpointError,
    OutdatedCheckpoint,
    chunk_key,
    join_checkpoint,
    restore_checkpoint,
    split_checkpoint,
    take_checkpoint,
)
from tests.streams.scenarios import CONFIG, T0, interleave, source_streams, state


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


def test_a_room_event_state_survives_a_checkpoint() -> None:
    """A room's stream lifecycle and promotions, and a room event still waiting for the
    watermark, come back from a checkpoint and carry on (format 7 on)."""
    config = EngineConfig(max_clock_skew_ms=3_600_000, metrics=MetricsConfig(ended_grace_s=60))
    engine = PartitionEngine(config)
    engine.ingest(
        [
            RoomEvent("r", T0, "live"),
            *[Join("r", T0 + i, f"u{i}") for i in range(20)],
            RoomEvent("r", T0 + 1_000, "promo_start", "sale-1"),
            RoomEvent("r", T0 + 2_000, "promo_end", "sale-1"),
            RoomEvent("r", T0 + 9_000, "ended"),  # waits for the watermark
        ]
    )
    engine.advance_idle(1_000)  # the watermark at T0 + 5 s: the promotion applied
    assert engine.rooms["r"].promotions and engine.rooms["r"].ended_at is None
    restored, _ = restore_checkpoint(take_checkpoint(engine, 0, {}), config)
    room = restored.rooms["r"]
    assert [(p.promo_id, p.started_at, p.ended_at) for p in room.promotions] == [
        ("sale-1", T0 + 1_000, T0 + 2_000)
    ]
    restored.advance_idle(5_000)
    assert restored.rooms["r"].ended_at == T0 + 9_000 and restored.rooms["r"].live_at == T0
    restored.advance_idle(60_000)
    assert "r" not in restored.rooms  # gone `ended_grace_s` after its end, as before


def test_a_firing_alert_survives_a_checkpoint() -> None:
    """Restored, a firing alert is not announced again, resolves `resolve_after_s`
    after its last finding, and a finding after that fires it again."""
    engine = PartitionEngine(EngineConfig())
    key = AlertKey("traffic_cliff", "r")
    tracker = engine.watch.tracker
    fired = tracker.update(T0, {key: Finding("warning", "entries fell", kind="entries")})
    assert [t.state for t in fired] == ["firing"]
    restored, _ = restore_checkpoint(take_checkpoint(engine, 0, {}), EngineConfig())
    again = restored.watch.tracker
    assert again.update(T0 + 5_000, {key: Finding("warning", "entries", kind="entries")}) == []
    assert again.update(T0 + 60_000, {}) == []
    assert [t.state for t in again.update(T0 + 65_000, {})] == ["resolved"]
    refired = again.update(T0 + 70_000, {key: Finding("warning", "entries", kind="entries")})
    assert [(t.state, t.started_at) for t in refired] == [("firing", T0 + 70_000)]


def test_a_promotion_under_review_survives_a_checkpoint() -> None:
    """Taken in a promotion's after phase (cohort, ebb curve, phase totals kept), a
    checkpoint restored carries the review on as if never stopped (format 8)."""
    config = EngineConfig(max_clock_skew_ms=86_400_000)
    events: list[Event] = [Join("r", T0 + i * 10, f"u{i}") for i in range(60)]
    events += [
        RoomEvent("r", T0 + 60_000, "promo_start", "sale-1"),
        Order("r", T0 + 90_000, "u1", "o1", 25.0),
        RoomEvent("r", T0 + 120_000, "promo_end", "sale-1"),
        *[Leave("r", T0 + 130_000 + i * 5_000, f"u{i}") for i in range(40)],
        Order("r", T0 + 400_000, "u50", "o2", 10.0),
        *[Join("r", T0 + 500_000 + i * 1_000, f"u{i}") for i in range(40)],
    ]
    cut = 70  # after the promotion's end, in the middle of the leaves
    uninterrupted = PartitionEngine(config)
    uninterrupted.ingest(events)
    uninterrupted.flush()
    uninterrupted.advance_idle(900_000)

    before = PartitionEngine(config)
    before.ingest(events[:cut])
    before.advance_idle(1_000)
    assert before.rooms["r"].reviewing  # under review when the checkpoint is taken
    restored, _ = restore_checkpoint(take_checkpoint(before, 0, {}), config)
    restored.ingest(events[cut:])
    restored.flush()
    restored.advance_idle(900_000)
    review = restored.rooms["r"].promotion_metrics()
    assert review == uninterrupted.rooms["r"].promotion_metrics()
    assert review["promotion_orders_during"] == 1 and review["promotion_orders_after"] == 1
    # Ten minutes after the end: the 20 who stayed timed out, the 40 who left are back.
    assert review["promotion_retention_10m"] == pytest.approx(40 / 60)
    assert review["promotion_ebb_half_life_seconds"] is not None


def test_foreign_or_corrupt_checkpoints_are_refused() -> None:
    with pytest.raises(CheckpointError, match="unreadable"):
        restore_checkpoint(b"\x00garbage", CONFIG)
    future = msgspec.msgpack.encode(Checkpoint(FORMAT_VERSION + 1, 0, {}, b""))
    with pytest.raises(OutdatedCheckpoint, match=f"format {FORMAT_VERSION + 1}"):
        restore_checkpoint(future, CONFIG)
    not_an_engine = msgspec.msgpack.encode(
        Checkpoint(FORMAT_VERSION, 0, {}, msgspec.msgpack.encode(["L", [1]]))
    )
    with pytest.raises(CheckpointError, match="does not hold"):
        restore_checkpoint(not_an_engine, CONFIG)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


@pytest.mark.parametrize("version", [5, FORMAT_VERSION])
def test_pickled_checkpoints_are_never_unpickled(tmp_path: Path, version: int) -> None:
    """Version 5 and before were pickles; a pickle under the current version is forged."""
    marker = tmp_path / "ran"
    pickled = msgspec.msgpack.encode(
        Checkpoint(version, 0, {"live.joins": 7}, pickle.dumps(_Payload(marker)))
    )
    with pytest.raises(OutdatedCheckpoint if version == 5 else CheckpointError):
        restore_checkpoint(pickled, CONFIG)
    assert not marker.exists()


@given(
    st.lists(st.binary(max_size=3 * CHUNK_BYTES // 2), min_size=1, max_size=4),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_a_crash_while_writing_leaves_the_last_complete_checkpoint(
    blobs: list[bytes], data: st.DataObject
) -> None:
    """Checkpoints written in turn to a compacted topic (latest value per key wins)."""
    compacted: dict[bytes, bytes] = {}
    complete: tuple[int, bytes] | None = None
    for seq, blob in enumerate(blobs):
        records = split_checkpoint(7, blob, seq)
        if seq == len(blobs) - 1:  # the last write is cut short anywhere
            records = records[: data.draw(st.integers(0, len(records)))]
        compacted.update(records)
        if records and records[-1][0] == b"7":
            complete = (seq, blob)
    if complete is None:
        with pytest.raises(KeyError):
            join_checkpoint(7, compacted.get)
    else:
        assert join_checkpoint(7, compacted.get) == complete


def test_big_states_are_split_below_the_kafka_record_limit() -> None:
    blob = bytes(range(256)) * (5 * CHUNK_BYTES // 256 + 3)
    records = split_checkpoint(0, blob, 4)
    assert len(records) == 7  # 6 chunks and the head
    assert all(len(value) < 1024 * 1024 - 1024 for _, value in records)
    assert join_checkpoint(0, dict(records).get) == (4, blob)


def test_damaged_chunks_are_refused_rather_than_restored() -> None:
    blob = b"x" * (CHUNK_BYTES + 10)
    records = dict(split_checkpoint(2, blob, 0))
    stale = dict(records)
    stale[chunk_key(2, 0, 1)] = dict(split_checkpoint(2, b"y" * (CHUNK_BYTES + 10), 2))[
        chunk_key(2, 0, 1)
    ]
    with pytest.raises(CheckpointError, match="belongs to checkpoint 2"):
        join_checkpoint(2, stale.get)
    missing = {k: v for k, v in records.items() if k != chunk_key(2, 0, 1)}
    with pytest.raises(CheckpointError, match="lacks chunk 1"):
        join_checkpoint(2, missing.get)
    records[chunk_key(2, 0, 0)] = records[chunk_key(2, 0, 0)][:-1] + b"z"
    with pytest.raises(CheckpointError, match="digest"):
        join_checkpoint(2, records.get)
    records[b"2"] = b"\xc1"
    with pytest.raises(CheckpointError, match="unreadable"):
        join_checkpoint(2, records.get)


def test_recall_state_survives_a_checkpoint_without_loss_or_repeat() -> None:
    """Open incidents, remembered stalls and regions, and the viewers already recalled
    come back from a checkpoint (format 8): the restored engine sends exactly the recalls
    the uninterrupted one sends after the cut, none twice and none lost."""
    from tests.streams.core.test_recall import CONFIG as RECALL_CONFIG
    from tests.streams.core.test_recall import Viewer, crowd, events_of

    viewers = crowd("lat") + crowd("st", stalls_every=10_000)
    # Leaves spread over the incidents (both fire around 150-200 s and resolve by 600 s).
    viewers += [
        Viewer("lat", f"east-{i}", "east", joins=(0, 260_000), leaves=(200_000 + i * 10_000,
               300_000 + i * 10_000)) for i in range(10)
    ]  # fmt: skip
    viewers += [
        Viewer("st", f"s-{i}", leaves=(200_000 + i * 10_000,), stalls=(190_000 + i * 10_000,))
        for i in range(10)
    ]
    events = sorted((e for v in viewers for e in events_of(v)), key=lambda e: e.ts)
    uninterrupted = PartitionEngine(RECALL_CONFIG)
    uninterrupted.ingest(events)
    uninterrupted.flush()
    everything = uninterrupted.watch.drain()[1]
    assert {a["reason"] for a in everything} == {
        "latency_incident", "stall_incident", "stalled_then_left"
    }  # fmt: skip

    cut = next(i for i, e in enumerate(events) if e.ts >= T0 + 245_000)
    before = PartitionEngine(RECALL_CONFIG)
    before.ingest(events[:cut])
    sent_before = before.watch.drain()[1]  # what the worker sent before its checkpoint
    assert sent_before and before.rooms["lat"].recall is not None
    assert before.rooms["lat"].recall.incidents[0].recalled  # viewers already recalled
    restored, _ = restore_checkpoint(take_checkpoint(before, 0, {}), RECALL_CONFIG)
    restored.ingest(events[cut:])
    restored.flush()
    sent_after = restored.watch.drain()[1]
    assert sent_before + sent_after == everything
    # `east-*` left at 200-290 s and again at 300-390 s in the same incident: once each.
    east = [a["user_id"] for a in everything if a["reason"] == "latency_incident"]
    assert sorted(east) == sorted(set(east)) and len(east) == 10
    assert restored.watch.recall.candidates == uninterrupted.watch.recall.candidates


def _attributes_of(cls: type) -> list[str]:
    """What a checkpoint stores of an instance of `cls`: its fields, its slots, or the
    names its `__init__` sets (a plain class's attributes)."""
    if dataclasses.is_dataclass(cls):
        return sorted(f.name for f in dataclasses.fields(cls))
    struct_fields = getattr(cls, "__struct_fields__", None)
    if struct_fields is not None:
        return sorted(struct_fields)
    slots = [name for c in cls.__mro__ for name in c.__dict__.get("__slots__", ())]
    if slots:
        return sorted(slots)
    if issubclass(cls, tuple):
        return sorted(getattr(cls, "_fields", ()))
    return sorted(cls.__init__.__code__.co_names)


STATE_FINGERPRINT = {16: "fd1c"}
"""A digest of what every state class stores, per checkpoint format: a class that gains
or loses an attribute changes what a checkpoint holds, and an older checkpoint restores
objects without it (a setting added under format 13 would have failed at its first use
in a room restored from before it). Change the format with the digest."""


def test_what_state_classes_store_changes_only_with_the_format() -> None:
    described = "\n".join(
        f"{cls.__module__}.{cls.__qualname__}: {' '.join(_attributes_of(cls))}"
        for table in (STATE_CLASSES.objects, STATE_CLASSES.tuples, STATE_CLASSES.structs)
        for cls in sorted(table.values(), key=lambda c: (c.__module__, c.__qualname__))
    )
    digest = hashlib.sha256(described.encode()).hexdigest()[:4]
    assert STATE_FINGERPRINT.get(FORMAT_VERSION) == digest, (
        f"state classes changed ({digest}): raise FORMAT_VERSION and record its digest\n"
        + described
    )
