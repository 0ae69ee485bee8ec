"""A room's online viewers as columns: one id-to-slot map, the times in one array.

A session holds a slot (`slot` maps the viewer's id to it) and that slot's row of
`times`: the ms it started (`JOINED`) and the ms of the viewer's latest event (`SEEN`).
Held as two dicts, the times cost two dict entries a viewer; here they are 16 bytes,
and a million-viewer room's latency samples refresh their `SEEN` in one numpy call per
second instead of a dict update each (the engine alone on the hot room's shape: about
1.2x the events a second). The map from id to slot is the one per-viewer Python
structure left. A session that ends frees its slot for the next.

Expiry reads the oldest `SEEN`, a minimum (a quiet room reads it after every event; it
was the front of an ordered dict): a freed slot holds `FREE`, which is never the
minimum and never idle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np

JOINED: Final = 0
SEEN: Final = 1
FREE: Final = np.iinfo(np.int64).max
"""`SEEN` of a free slot."""
_FIRST_SLOTS: Final = 4
_FEW: Final = 32
"""Up to this many, Python beats a numpy call's overhead (a few microseconds): most
rooms are small, and a quiet room reads its oldest viewer after every event."""


class Viewers:
    """Online viewers: who, since when, last seen when (ms, event time)."""

    __slots__ = ("free", "slot", "times")

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        """Viewer id -> slot."""
        self.times = _NO_TIMES
        """Slot -> (JOINED, SEEN), ms: one array, as a small room's arrays cost more
        than what they hold."""
        self.free: list[int] | None = None
        """Free slots, reused last freed first (None until a session ends)."""

    def __len__(self) -> int:
        return len(self.slot)

    def __contains__(self, user: object) -> bool:
        return user in self.slot

    def __iter__(self) -> Iterator[str]:
        return iter(self.slot)

    def joined_at(self, user: str) -> int | None:
        """The ms the viewer's session started, None when not online."""
        slot = self.slot.get(user)
        return None if slot is None else int(self.times[slot, JOINED])

    def seen_at(self, user: str) -> int:
        """The ms of the online viewer's latest event."""
        return int(self.times[self.slot[user], SEEN])

    def start(self, user: str, ts: int) -> None:
        """A session of `user` (not online) starts at `ts`."""
        if self.free:
            slot = self.free.pop()
        else:
            slot = len(self.slot)  # no slot is free: slots 0 to len - 1 are taken
            if slot == len(self.times):
                self._grow()
        self.slot[user] = slot
        self.times[slot] = ts

    def see(self, user: str, ts: int) -> None:
        """The online viewer was seen at `ts` (an older `ts` changes nothing)."""
        row = self.times[self.slot[user]]
        if ts > row[SEEN]:
            row[SEEN] = ts

    def see_many(self, slots: Sequence[int], ts: Sequence[int]) -> None:
        """Online viewers (by slot) seen at `ts`, in one call."""
        seen = self.times[:, SEEN]
        if len(slots) > _FEW:
            np.maximum.at(seen, np.asarray(slots, np.intp), np.asarray(ts, np.int64))
            return
        for slot, when in zip(slots, ts, strict=True):
            if when > seen[slot]:
                seen[slot] = when

    def end(self, user: str) -> int:
        """The viewer's session ends: the ms it started."""
        slot = self.slot.pop(user)
        if self.free is None:
            self.free = []
        self.free.append(slot)
        joined = int(self.times[slot, JOINED])
        self.times[slot, SEEN] = FREE
        if not self.slot:  # an empty room holds no arrays
            self._clear()
        return joined

    def oldest_seen(self) -> int | None:
        """The ms of the least recently seen viewer's latest event, None when nobody is
        online."""
        if not self.slot:
            return None
        seen = self.times[:, SEEN]
        return int(seen.min()) if len(seen) > _FEW else min(seen.tolist())

    def idle(self, cutoff: int) -> list[str]:
        """Viewers last seen before `cutoff` (ms), by id."""
        if not self.slot:
            return []
        idle = self.times[:, SEEN] < cutoff
        if not idle.any():
            return []
        return sorted(user for user, slot in self.slot.items() if idle[slot])

    def _clear(self) -> None:
        self.free, self.times = None, _NO_TIMES

    def _grow(self) -> None:
        size = max(_FIRST_SLOTS, 2 * len(self.times))
        times = np.full((size, 2), FREE, np.int64)
        times[: len(self.times)] = self.times
        self.times = times


_NO_TIMES: Final = np.full((0, 2), FREE, np.int64)
"""The times of a room nobody is in (shared: never written to)."""
