"""Chat spam floods: near-duplicate bursts, per-user flooding and contact/ad patterns.

Organic hype is the hard negative: hundreds of viewers typing "1", "扣1", "想要"
or "？？？" when the host asks. Those messages have almost no content (few
distinct characters after normalization), so they never form content clusters;
only per-user flooding (Twitch's 20 messages per 30 s) applies to them.

Content-bearing messages are grouped into near-duplicate clusters by MinHash
over character bigrams of the normalized text, with LSH bands (Broder 1997):
random suffixes, inserted symbols and look-alike letters land in the same
cluster. A cluster is a flood when it is big and comes from few accounts, or
mostly from fresh accounts (seen in the room only just before writing), or
carries contact ids or links. Everything is windowed on event time.
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from detectors.alerts import Finding
from detectors.config import Severity, SpamConfig
from detectors.text import analyze, sanitize_sample

_PRIME: Final = (1 << 61) - 1
_RNG = np.random.default_rng(20071)
_HASHES: Final = 16
_A: Final = _RNG.integers(1, _PRIME, _HASHES, dtype=np.int64).astype(object)
_B: Final = _RNG.integers(0, _PRIME, _HASHES, dtype=np.int64).astype(object)
_BANDS: Final = 8  # 8 bands of 2 hashes: pairs with Jaccard 0.5 collide with p ~ 0.9


@dataclass(slots=True)
class _Message:
    ts: int
    user: str
    text: str
    cluster: int | None
    fresh: bool
    contact: bool


@lru_cache(maxsize=1 << 16)
def _shingle_hashes(shingle: str) -> tuple[int, ...]:
    """The bigram's value under each of the MinHash functions: chat reuses its bigrams,
    so each is computed once (big-integer arithmetic is most of the cost)."""
    h = zlib.crc32(shingle.encode())
    return tuple((a * h + b) % _PRIME for a, b in zip(_A, _B, strict=True))


@lru_cache(maxsize=1 << 14)
def minhash_bands(normalized: str) -> tuple[int, ...]:
    """LSH band keys of the MinHash signature of the text's character bigrams (cached:
    rooms of a partition see the same texts, which `SpamDetector` caches per room)."""
    shingles = {normalized[i : i + 2] for i in range(len(normalized) - 1)} or {normalized}
    signature = list(map(min, zip(*map(_shingle_hashes, shingles), strict=True)))
    rows = _HASHES // _BANDS
    return tuple(
        hash((band, *signature[band * rows : (band + 1) * rows])) & 0xFFFFFFFFFFFF
        for band in range(_BANDS)
    )


@dataclass
class SpamDetector:
    """One room's chat over the last `window_s` of event time."""

    config: SpamConfig = field(default_factory=SpamConfig)
    messages: deque[_Message] = field(default_factory=deque)
    per_user: Counter[str] = field(default_factory=Counter)
    cluster_of_band: dict[int, int] = field(default_factory=dict)
    cluster_of_text: dict[str, int] = field(default_factory=dict)
    cluster_size: Counter[int] = field(default_factory=Counter)
    next_cluster: int = 0
    contacts: int = 0
    """Messages in the window with contact ids or links."""
    flooders: set[str] = field(default_factory=set)
    """Users with at least `per_user_messages` messages in the window."""

    def add(self, ts: int, user: str, text: str, fresh: bool) -> None:
        """One danmaku, in event-time order; `fresh`: the user just appeared in the room."""
        core, contact = analyze(text)
        cluster = None
        if len(set(core)) >= self.config.min_distinct_chars:
            cluster = self._cluster(core)
            self.cluster_size[cluster] += 1
        self.messages.append(_Message(ts, user, text, cluster, fresh, contact))
        self.per_user[user] += 1
        if self.per_user[user] == self.config.per_user_messages:
            self.flooders.add(user)
        self.contacts += contact

    def _cluster(self, core: str) -> int:
        known = self.cluster_of_text.get(core)  # exact repeats skip the hashing
        if known is not None:
            return known
        bands = minhash_bands(core)
        cluster = next((self.cluster_of_band[b] for b in bands if b in self.cluster_of_band), None)
        if cluster is None:
            cluster = self.next_cluster
            self.next_cluster += 1
        for band in bands:
            self.cluster_of_band.setdefault(band, cluster)
        self.cluster_of_text[core] = cluster
        return cluster

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.config.window_s * 1000
        messages = self.messages
        while messages and messages[0].ts <= cutoff:
            old = messages.popleft()
            self.contacts -= old.contact
            self.per_user[old.user] -= 1
            if self.per_user[old.user] == self.config.per_user_messages - 1:
                self.flooders.discard(old.user)
            if not self.per_user[old.user]:
                del self.per_user[old.user]
            if old.cluster is not None:
                self.cluster_size[old.cluster] -= 1
                if not self.cluster_size[old.cluster]:
                    del self.cluster_size[old.cluster]
        if not messages:  # forget cluster indexes between bursts: bounded memory
            self.cluster_of_band.clear()
            self.cluster_of_text.clear()
        elif len(self.cluster_of_text) > 20 * len(messages) + 1000:
            self._reindex()

    def _reindex(self) -> None:
        live = set(self.cluster_size)
        self.cluster_of_band = {b: c for b, c in self.cluster_of_band.items() if c in live}
        self.cluster_of_text = {t: c for t, c in self.cluster_of_text.items() if c in live}

    def evaluate(self, now_ms: int) -> tuple[Finding, list[str]] | None:
        """A flood in the window ending at `now_ms`, with the accounts to mute."""
        self.expire(now_ms)
        kinds, flagged = self._repeated()
        contact = [m for m in self.messages if m.contact] if self.contacts else []
        if len(contact) >= self.config.contact_messages:
            kinds.append("contact_ads")
            flagged += contact
        flooders = self.flooders
        if flooders:
            kinds.append("per_user_flood")
            flagged += [m for m in self.messages if m.user in flooders]
        if not flagged:
            return None
        return self._finding(kinds, flagged, bool(contact))

    def _repeated(self) -> tuple[list[str], list[_Message]]:
        """Big clusters of near-identical messages that look like spam, by kind."""
        c = self.config
        kinds: list[str] = []
        flagged: list[_Message] = []
        members_of: dict[int, list[_Message]] = {
            cluster: []
            for cluster, size in self.cluster_size.items()
            if size >= c.min_cluster_messages
        }
        if members_of:  # one pass over the window for every big cluster
            for message in self.messages:
                if message.cluster in members_of:
                    members_of[message.cluster].append(message)
        for members in members_of.values():
            users = {m.user for m in members}
            fresh_users = {m.user for m in members if m.fresh}
            fresh = sum(m.fresh for m in members) / len(members)
            if len(users) <= c.few_accounts:
                kinds.append("repeated_by_few_accounts")
            elif fresh >= c.fresh_share and len(fresh_users) >= c.min_fresh_accounts:
                kinds.append("repeated_by_fresh_accounts")
            elif sum(m.contact for m in members) * 2 >= len(members):
                kinds.append("repeated_contact_ads")
            else:
                continue
            flagged += members
        return kinds, flagged

    def _finding(
        self, kinds: list[str], flagged: list[_Message], contact: bool
    ) -> tuple[Finding, list[str]]:
        c = self.config
        unique = {id(m): m for m in flagged}.values()
        by_user = Counter(m.user for m in unique)
        texts = Counter(m.text for m in unique)
        severity: Severity = (
            "critical" if len(unique) >= c.critical_messages or contact else "warning"
        )
        offenders = [
            {"user_id": sanitize_sample(u, 64), "messages": n} for u, n in by_user.most_common(5)
        ]
        samples = [sanitize_sample(t) for t, _ in texts.most_common(3)]
        summary = (
            f"chat flood: {len(unique)} spam messages in {c.window_s}s from "
            f"{len(by_user)} accounts ({', '.join(sorted(set(kinds)))})"
        )
        details = {
            "kinds": sorted(set(kinds)),
            "messages": len(unique),
            "accounts": len(by_user),
            "window_messages": len(self.messages),
            "top_accounts": offenders,
            "samples": samples,
        }
        mute = [u for u, _ in by_user.most_common(c.max_mute)]
        return Finding(severity, summary, details), mute
