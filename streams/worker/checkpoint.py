"""Checkpoints of a partition's state together with the input offsets they cover.

A checkpoint is what a restarted or newly assigned worker resumes from: the
engine state after processing every message before `offsets` (per source
topic), so consumption restarts exactly there. The engine state is stored as
data (streams.core.persist, `STATE_CLASSES`): reading a checkpoint never runs code, whoever wrote
it. Formats before 6 were pickles; they are never read (see `OutdatedCheckpoint`).

A big room's state runs to megabytes, above Kafka's default 1 MB record limit,
so a checkpoint is stored as chunks plus a head record written last. Chunks go
to one of two slots, alternately, and the head names the slot of the last
complete checkpoint: a crash in the middle of writing one leaves the previous
checkpoint intact. Compaction keeps only the latest record per key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Final

import msgspec

from detectors.alerts import AlertKey, AlertTracker, Finding, Transition, _Active
from detectors.cliff import CliffDetector, CliffReading
from detectors.config import (
    BurnWindow,
    CliffConfig,
    DetectorConfig,
    DetectorSettings,
    EbbConfig,
    LevelConfig,
    LifecycleConfig,
    RecallConfig,
    SloConfig,
    SpamConfig,
    StallStepConfig,
)
from detectors.ebb import EbbEstimate, EbbTracker
from detectors.recall import Incident, Recall, RoomRecall
from detectors.slo import BurnRate
from detectors.spam import SpamDetector, Verdict, _Message
from streams.core.config import EngineConfig, MetricsConfig
from streams.core.distinct import DistinctCount
from streams.core.engine import PartitionEngine
from streams.core.events import Danmaku, Join, Latency, Leave, Order, RoomEvent, Stall
from streams.core.latency import LatencySamples, LatencyStats
from streams.core.persist import Classes, StateFormatError, dump, load
from streams.core.review import PromotionReview
from streams.core.rolling import LastSeen, LevelRing, SecondRing, WindowedSketch
from streams.core.room import Promotion, RoomState
from streams.core.sketch import LatencySketch
from streams.core.viewers import Viewers
from streams.core.watch import PartitionWatch, RoomWatch, Traffic

FORMAT_VERSION: Final = 16
"""The format of the state in a checkpoint. 16: a room's online viewers are columns
(`Viewers`: an id-to-slot map, the session starts and last-seen times in arrays), not
the maps `joined_at` and `last_seen`. 15: an alert tracker no longer remembers
resolved keys (the cooldown went: a recurrence fires again), nor detector settings a
`cooldown_s`. 14: a room's detector settings hold the stall
step (`StallStepConfig`), and its latency level the step's settings (`LevelConfig`'s
`step_window_s`, `before_s`, `step_ratio`, `part_share`, added under format 13 by
d866211: a format-13 checkpoint written before it would have failed at its rooms' first
evaluation of a degraded region; `tests/streams/worker/test_checkpoint.py` now holds the
state classes' attributes to the format). 13: a room's viewers online per second are
spans of a level (`LevelRing`), a sparse ring is two arrays of (second, field) pairs
(`SecondRing.keys`, `values`), a window of last-seen users holds no ring or map until
someone is seen (`LastSeen`), and a burn rate's total, bad and count rows are made when
they first hold a value (`BurnRate.rows`). 12: a dense ring holds rows only for the
fields that hold values (`SecondRing.rows`, `pruned_at`); a windowed sketch keeps
samples added a few at a time in two flat arrays (`few_seconds`, `few_values`:
`array.array`, the "A" form of streams.core.persist); a room's promotions are a list,
its entries by channel only the channels seen, and a distinct count nobody was added to
holds no set. 11: an alert tracker remembers what each
key resolved with (`Resolved`: severity and kinds), not only when. 10: spam windows'
messages (`_Message`) are msgspec Structs, and lists and deques of Structs are stored
in one piece (the "E" and "Q" forms of streams.core.persist); a latency sketch's busy
second is one array of counts per bucket. 9: a room's `RoomRecall` remembers the firing
incidents its cap refused (`refused`), so their re-announcements are not counted again.
8: each promotion keeps its review
(`PromotionReview`: phase amounts, the ebb curve, the retention cohort), rooms the
promotions under review (`reviewing`) and the second they were first seen (`born`);
recall candidates (`Recall` per partition, a room's `RoomRecall`: its open and recently
resolved latency and stall incidents with the viewers already recalled for each, its
viewers' recent stalls and regions), the detector settings' `RecallConfig`.
7: room events (`RoomEvent` waiting for
the watermark), rooms keep their stream's lifecycle (`live_at`, `ended_at`) and
promotions (`Promotion`), the metrics config `ended_grace_s`, and count distinct users
since live in `DistinctCount`s (exact, then a sketch) instead of sets; cliff detectors keep
entries by traffic channel, burn rates a count row beside their amounts, a room's traffic
detectors the time of each viewer's latest latency sample. 6: data only
(streams.core.persist); before, pickles. 2: the engine keeps latency samples by
second (`_pending_latency`); 3: modules
moved into subpackages (pickles name their classes' modules), rooms count entries
by traffic channel (`channels`), rings start sparse; 4: spam detectors keep fresh
status, content and contact counts per account, cluster signatures and mutes, burn
rates their first active second, cliff detectors the room's usual entries."""
STATE_CLASSES: Final = Classes(
    PartitionEngine,
    RoomState,
    Viewers,
    Promotion,
    PromotionReview,
    DistinctCount,
    SecondRing,
    LastSeen,
    LevelRing,
    WindowedSketch,
    LatencySketch,
    LatencySamples,
    LatencyStats,
    PartitionWatch,
    RoomWatch,
    Traffic,
    AlertTracker,
    _Active,
    AlertKey,
    Finding,
    Transition,
    CliffDetector,
    CliffReading,
    EbbTracker,
    EbbEstimate,
    BurnRate,
    SpamDetector,
    _Message,
    Verdict,
    Join,
    Leave,
    Danmaku,
    Order,
    Stall,
    Latency,
    RoomEvent,
    EngineConfig,
    MetricsConfig,
    DetectorSettings,
    DetectorConfig,
    LifecycleConfig,
    CliffConfig,
    EbbConfig,
    BurnWindow,
    SloConfig,
    SpamConfig,
    LevelConfig,
    StallStepConfig,
    Recall,
    RoomRecall,
    Incident,
    RecallConfig,
)
"""What an engine's state is made of: the only classes reading a checkpoint creates."""
CHUNK_BYTES: Final = 512 * 1024
"""Well under Kafka's default max.message.bytes (1 MiB) with headroom for the envelope."""


class CheckpointError(ValueError):
    pass


class OutdatedCheckpoint(CheckpointError):
    """A checkpoint of another format version: never read (before 6 they were pickles,
    which run code when read). The partition starts from its committed offsets."""


class Checkpoint(msgspec.Struct, frozen=True):
    version: int
    partition: int
    offsets: dict[str, int]
    """Source topic -> next offset to read: everything before it is in `state`."""
    state: bytes


class CheckpointHead(msgspec.Struct, frozen=True):
    seq: int
    slot: int
    chunks: int
    sha256: str


class CheckpointChunk(msgspec.Struct, frozen=True):
    seq: int
    data: bytes


class Snapshot(msgspec.Struct, frozen=True):
    """A partition's checkpoint as the records that store it, ready to send."""

    records: list[tuple[bytes, bytes]]
    size: int
    """Bytes of the checkpoint (before it is cut into chunks)."""
    took: float
    """Seconds taking it took."""


def snapshot(
    engine: PartitionEngine, partition: int, offsets: dict[str, int], seq: int
) -> Snapshot:
    """Checkpoint number `seq` of `engine` at `offsets`, as records (`split_checkpoint`)."""
    started = time.perf_counter()
    blob = take_checkpoint(engine, partition, offsets)
    records = split_checkpoint(partition, blob, seq)
    return Snapshot(records, len(blob), time.perf_counter() - started)


def take_checkpoint(engine: PartitionEngine, partition: int, offsets: dict[str, int]) -> bytes:
    state = dump(engine, STATE_CLASSES)
    return msgspec.msgpack.encode(Checkpoint(FORMAT_VERSION, partition, dict(offsets), state))


def restore_checkpoint(data: bytes, config: EngineConfig) -> tuple[PartitionEngine, Checkpoint]:
    """The engine a checkpoint holds, running under the current `config`."""
    try:
        checkpoint = msgspec.msgpack.decode(data, type=Checkpoint)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"unreadable checkpoint: {exc}") from None
    if checkpoint.version != FORMAT_VERSION:
        raise OutdatedCheckpoint(
            f"checkpoint format {checkpoint.version}, expected {FORMAT_VERSION}"
        )
    try:
        engine = load(checkpoint.state, STATE_CLASSES, PartitionEngine)
    except StateFormatError as exc:
        raise CheckpointError(f"checkpoint state: {exc}") from None
    engine.config = config
    # New settings reach rooms that start from now on and the alert lifecycle;
    # the rooms in the checkpoint keep the detector settings they started with.
    engine.watch.settings = config.detectors
    engine.watch.tracker.config = config.detectors.base.lifecycle
    engine.watch.recall.config = config.detectors.base.recall
    metrics = config.metrics
    engine.watch.session_linger_s = metrics.session_timeout_s + metrics.expiry_scan_every_s
    engine.watch.recall.linger_s = engine.watch.session_linger_s
    return engine, checkpoint


def head_key(partition: int) -> bytes:
    return b"%d" % partition


def chunk_key(partition: int, slot: int, index: int) -> bytes:
    return b"%d/%d/%d" % (partition, slot, index)


def split_checkpoint(partition: int, blob: bytes, seq: int) -> list[tuple[bytes, bytes]]:
    """(key, value) records storing `blob` as checkpoint number `seq`; the head comes last."""
    slot = seq % 2
    # Views, not copies: a big room's blob is hundreds of MB, and its chunks are a copy.
    view = memoryview(blob)
    pieces = [view[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [view]
    records = [
        # msgspec encodes a memoryview as it does bytes.
        (chunk_key(partition, slot, index), msgspec.msgpack.encode(CheckpointChunk(seq, piece)))  # type: ignore[arg-type]
        for index, piece in enumerate(pieces)
    ]
    head = CheckpointHead(seq, slot, len(pieces), hashlib.sha256(blob).hexdigest())
    records.append((head_key(partition), msgspec.msgpack.encode(head)))
    return records


def join_checkpoint(partition: int, lookup: Callable[[bytes], bytes | None]) -> tuple[int, bytes]:
    """The sequence number and blob of the partition's last complete checkpoint.

    `lookup` gives the latest value stored under a key (None when absent).
    Raises KeyError when the partition has no checkpoint at all.
    """
    head_value = lookup(head_key(partition))
    if head_value is None:
        raise KeyError(partition)
    try:
        head = msgspec.msgpack.decode(head_value, type=CheckpointHead)
        pieces = []
        for index in range(head.chunks):
            value = lookup(chunk_key(partition, head.slot, index))
            if value is None:
                raise CheckpointError(f"checkpoint {head.seq} lacks chunk {index}")
            chunk = msgspec.msgpack.decode(value, type=CheckpointChunk)
            if chunk.seq != head.seq:
                raise CheckpointError(
                    f"checkpoint {head.seq}: chunk {index} belongs to checkpoint {chunk.seq}"
                )
            pieces.append(chunk.data)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"unreadable checkpoint record: {exc}") from None
    blob = b"".join(pieces)
    if hashlib.sha256(blob).hexdigest() != head.sha256:
        raise CheckpointError(f"checkpoint {head.seq} does not match its digest")
    return head.seq, blob
