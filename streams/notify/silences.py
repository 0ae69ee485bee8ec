"""Silences: matchers on alert, room and region with an expiry, kept in a JSON file.

Managed with `livewatch silence add|list|expire`; the notifier re-reads the file
when it changes, so a silence takes effect without a restart. Times are wall
clock (a silence is a human decision now), in epoch milliseconds.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from fnmatch import fnmatchcase
from pathlib import Path

import msgspec

from detectors.alerts import Transition


class Silence(msgspec.Struct, frozen=True):
    id: str
    alert: str = "*"
    """Glob on the alert type."""
    room: str = "*"
    """Glob on the room id."""
    region: str = "*"
    ends_at: int = 0
    created_at: int = 0
    created_by: str = ""
    comment: str = ""

    def active(self, now_ms: int) -> bool:
        return now_ms < self.ends_at

    def matches(self, t: Transition) -> bool:
        return (
            fnmatchcase(t.alert, self.alert)
            and fnmatchcase(t.room_id, self.room)
            and fnmatchcase(t.region or "", self.region)
        )


class SilenceStore:
    """The silences file; writes are atomic (a temp file renamed over it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self.silences: list[Silence] = []

    def load(self) -> list[Silence]:
        """Re-read the file if it changed since the last load."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self.silences = None, []
            return self.silences
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self.silences = msgspec.json.decode(self.path.read_bytes(), type=list[Silence])
            self._stamp = stamp
        return self.silences

    def silenced(self, t: Transition, now_ms: int) -> bool:
        return any(s.active(now_ms) and s.matches(t) for s in self.load())

    def add(
        self,
        *,
        alert: str = "*",
        room: str = "*",
        region: str = "*",
        duration_s: float,
        created_by: str = "",
        comment: str = "",
        now_ms: int | None = None,
    ) -> Silence:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        silence = Silence(
            id=secrets.token_hex(4),
            alert=alert,
            room=room,
            region=region,
            ends_at=now_ms + int(duration_s * 1000),
            created_at=now_ms,
            created_by=created_by,
            comment=comment,
        )
        # Expired silences are dropped when the file is rewritten: it stays small.
        self._save([s for s in self.load() if s.active(now_ms)] + [silence])
        return silence

    def expire(self, silence_id: str, now_ms: int | None = None) -> bool:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        current = self.load()
        if not any(s.id == silence_id for s in current):
            return False
        self._save(
            [
                msgspec.structs.replace(s, ends_at=now_ms) if s.id == silence_id else s
                for s in current
            ]
        )
        return True

    def _save(self, silences: list[Silence]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=self.path.parent, delete=False) as out:
            out.write(msgspec.json.format(msgspec.json.encode(silences)))
        os.replace(out.name, self.path)
        self._stamp = None
