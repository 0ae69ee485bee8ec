"""Checkpoints of a partition's state together with the input offsets they cover.

A checkpoint is what a restarted or newly assigned worker resumes from: the
engine state after processing every message before `offsets` (per source
topic), so consumption restarts exactly there. The engine state is pickled: it
is an object graph of dicts, sets and numpy arrays written and read only by
livewatch workers (the changelog topic must not be writable by anyone else).
"""

from __future__ import annotations

import pickle
from typing import Final

import msgspec

from streams.engine import EngineConfig, PartitionEngine

FORMAT_VERSION: Final = 1


class CheckpointError(ValueError):
    pass


class Checkpoint(msgspec.Struct, frozen=True):
    version: int
    partition: int
    offsets: dict[str, int]
    """Source topic -> next offset to read: everything before it is in `state`."""
    state: bytes


def take_checkpoint(engine: PartitionEngine, partition: int, offsets: dict[str, int]) -> bytes:
    state = pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
    return msgspec.msgpack.encode(Checkpoint(FORMAT_VERSION, partition, dict(offsets), state))


def restore_checkpoint(data: bytes, config: EngineConfig) -> tuple[PartitionEngine, Checkpoint]:
    """The engine a checkpoint holds, running under the current `config`."""
    try:
        checkpoint = msgspec.msgpack.decode(data, type=Checkpoint)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"unreadable checkpoint: {exc}") from None
    if checkpoint.version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {checkpoint.version}, expected {FORMAT_VERSION}")
    engine = pickle.loads(checkpoint.state)  # written by livewatch workers only
    if not isinstance(engine, PartitionEngine):
        raise CheckpointError("checkpoint does not hold a partition engine")
    engine.config = config
    return engine, checkpoint
