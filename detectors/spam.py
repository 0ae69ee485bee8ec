"""Chat spam floods: coordinated near-duplicate bursts, busy fresh accounts, contact ads.

Organic hype is the hard negative: hundreds of viewers typing "1", "扣1", "想要"
or "？？？" when the host asks. Those messages have almost no content (few
distinct characters after normalization), so they never form content clusters.
So is organic repetition with content: a crowd of newcomers asking the price once
each, regulars chanting an emote line, a fan announcing every gift.

Content-bearing messages become templates (normalized, digit runs masked, as log
parsers mask parameters) and are grouped into near-duplicate clusters by MinHash
over character bigrams with LSH bands (Broder 1997), each band collision checked
against the cluster's first signature so that unrelated texts sharing common
bigrams (long Latin-script chat) neither join nor chain clusters: random suffixes,
inserted symbols, changing ids and look-alike letters land in the same cluster.
A room alert needs coordination: a cluster repeated by several fresh accounts (seen
in the room only just before they began writing), by a few fresh accounts again and
again, or carrying contact ids or links; many fresh accounts each writing fast; or
one account over the platforms' rate limit. What one or a few established accounts
do is moderation: a mute action, no alert. Everything is windowed on event time.
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, NamedTuple, TypeVar

import msgspec
import numpy as np

from detectors.alerts import Finding, Transition
from detectors.config import Severity, SpamConfig
from detectors.text import analyze, sanitize_sample

_PRIME: Final = (1 << 61) - 1
_RNG = np.random.default_rng(20071)
_HASHES: Final = 16
_A: Final = _RNG.integers(1, _PRIME, _HASHES, dtype=np.int64).astype(object)
_B: Final = _RNG.integers(0, _PRIME, _HASHES, dtype=np.int64).astype(object)
K = TypeVar("K")
_AGREEING: Final = 7
_BANDS: Final = 8  # 8 bands of 2 hashes: pairs with Jaccard 0.5 collide with p ~ 0.9


class _Message(msgspec.Struct, frozen=True, gc=False):
    """One chat line in the window. A Struct: a busy room's window holds tens of
    thousands, and a checkpoint stores them in one piece (streams.core.persist)."""

    ts: int
    user: str
    text: str
    cluster: int | None
    fresh: bool
    """The account was fresh when it began writing in the window (see `SpamDetector.add`)."""
    contact: bool


class Verdict(NamedTuple):
    """What one room's chat window calls for."""

    flood: Finding | None
    """A room alert: a coordinated flood."""
    mute: list[str]
    """The flood's accounts to mute."""
    repeaters: list[str]
    """Accounts repeating themselves below any flood: a mute action, no room alert."""


@lru_cache(maxsize=1 << 16)
def _shingle_hashes(shingle: str) -> tuple[int, ...]:
    """The bigram's value under each of the MinHash functions: chat reuses its bigrams,
    so each is computed once (big-integer arithmetic is most of the cost)."""
    h = zlib.crc32(shingle.encode())
    return tuple((a * h + b) % _PRIME for a, b in zip(_A, _B, strict=True))


@lru_cache(maxsize=1 << 14)
def minhash(normalized: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """MinHash signature of the text's character bigrams and its LSH band keys (cached:
    rooms of a partition see the same texts, which `SpamDetector` caches per room)."""
    shingles = {normalized[i : i + 2] for i in range(len(normalized) - 1)} or {normalized}
    signature = tuple(map(min, zip(*map(_shingle_hashes, shingles), strict=True)))
    rows = _HASHES // _BANDS
    bands = tuple(
        hash((band, *signature[band * rows : (band + 1) * rows])) & 0xFFFFFFFFFFFF
        for band in range(_BANDS)
    )
    return signature, bands


def similar(first: tuple[int, ...], second: tuple[int, ...]) -> bool:
    """Signatures agreeing on enough hashes (estimated Jaccard >= 7/16): the check after
    an LSH band collision, so that unrelated texts sharing a band (common bigrams of
    long Latin-script chat) neither join a cluster nor chain two clusters."""
    return sum(a == b for a, b in zip(first, second, strict=True)) >= _AGREEING


@dataclass
class SpamDetector:
    """One room's chat over the last `window_s` of event time."""

    config: SpamConfig = field(default_factory=SpamConfig)
    messages: deque[_Message] = field(default_factory=deque)
    per_user: Counter[str] = field(default_factory=Counter)
    content_per_user: Counter[str] = field(default_factory=Counter)
    """Messages with content (in a cluster) per user in the window."""
    fresh_users: dict[str, bool] = field(default_factory=dict)
    """Per user in the window: was it fresh at its first message in the window."""
    cluster_of_band: dict[int, int] = field(default_factory=dict)
    cluster_of_text: dict[str, int] = field(default_factory=dict)
    cluster_size: Counter[int] = field(default_factory=Counter)
    signatures: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Each cluster's first signature: what a newcomer to it must resemble."""
    next_cluster: int = 0
    contact_per_user: Counter[str] = field(default_factory=Counter)
    """Messages with contact ids or links per user in the window."""
    flooders: set[str] = field(default_factory=set)
    """Users with at least `per_user_messages` messages in the window."""
    busy: set[str] = field(default_factory=set)
    """Users with at least `busy_messages` content messages in the window."""
    muted: dict[str, int] = field(default_factory=dict)
    """Users a moderation mute was asked for, and when: asked again only after
    `mute_again_s`."""

    def add(self, ts: int, user: str, text: str, fresh: bool) -> None:
        """One danmaku, in event-time order; `fresh`: the user just appeared in the room.

        An account is judged by how it began: a bot that joined and wrote at once
        stays fresh while it keeps writing, a regular stays a regular."""
        c = self.config
        _, shape, contact = analyze(text)
        cluster = None
        if len(set(shape)) >= c.min_distinct_chars:
            cluster = self._cluster(shape)
            self.cluster_size[cluster] += 1
            self.content_per_user[user] += 1
            if self.content_per_user[user] == c.busy_messages:
                self.busy.add(user)
        fresh = self.fresh_users.setdefault(user, fresh)
        self.messages.append(_Message(ts, user, text, cluster, fresh, contact))
        self.per_user[user] += 1
        if self.per_user[user] == c.per_user_messages:
            self.flooders.add(user)
        if contact:
            self.contact_per_user[user] += 1

    def _cluster(self, shape: str) -> int:
        known = self.cluster_of_text.get(shape)  # exact repeats skip the hashing
        if known is not None:
            return known
        signature, bands = minhash(shape)
        cluster = next(
            (
                self.cluster_of_band[b]
                for b in bands
                if b in self.cluster_of_band
                and similar(signature, self.signatures[self.cluster_of_band[b]])
            ),
            None,
        )
        if cluster is None:
            cluster = self.next_cluster
            self.next_cluster += 1
            self.signatures[cluster] = signature
        for band in bands:
            self.cluster_of_band.setdefault(band, cluster)
        self.cluster_of_text[shape] = cluster
        return cluster

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.config.window_s * 1000
        messages = self.messages
        while messages and messages[0].ts <= cutoff:
            self._forget(messages.popleft())
        if not messages:  # forget cluster indexes between bursts: bounded memory
            self.cluster_of_band.clear()
            self.cluster_of_text.clear()
            self.signatures.clear()
        elif len(self.cluster_of_text) > 20 * len(messages) + 1000:
            self._reindex()
        asked_before = now_ms - self.config.mute_again_s * 1000
        for user in [u for u, ts in self.muted.items() if ts <= asked_before]:
            del self.muted[user]

    def _forget(self, old: _Message) -> None:
        c, user = self.config, old.user
        if old.contact:
            _decrement(self.contact_per_user, user)
        if self.per_user[user] == c.per_user_messages:
            self.flooders.discard(user)
        if not _decrement(self.per_user, user):
            del self.fresh_users[user]
        if old.cluster is not None:
            if self.content_per_user[user] == c.busy_messages:
                self.busy.discard(user)
            _decrement(self.content_per_user, user)
            _decrement(self.cluster_size, old.cluster)

    def _reindex(self) -> None:
        live = set(self.cluster_size)
        self.cluster_of_band = {b: c for b, c in self.cluster_of_band.items() if c in live}
        self.cluster_of_text = {t: c for t, c in self.cluster_of_text.items() if c in live}
        self.signatures = {c: s for c, s in self.signatures.items() if c in live}

    def evaluate(self, now_ms: int) -> Verdict:
        """Floods and lone repeaters in the window ending at `now_ms`."""
        c = self.config
        self.expire(now_ms)
        kinds, flagged, repeaters = self._repeated()
        contact: list[_Message] = []
        if self.contact_per_user:
            contact = [m for m in self.messages if m.contact]
            if len(contact) >= c.contact_messages and len(self.contact_per_user) >= (
                c.min_contact_accounts
            ):
                kinds.append("contact_ads")
                flagged += contact
            else:
                repeaters += [u for u, n in self.contact_per_user.items() if n >= c.mute_messages]
        fresh_busy = [u for u in self.busy if self.fresh_users[u]]
        if len(fresh_busy) >= c.min_fresh_accounts:
            kinds.append("fresh_accounts_burst")
            burst = set(fresh_busy)
            flagged += [m for m in self.messages if m.user in burst and m.cluster is not None]
        if self.flooders:
            kinds.append("per_user_flood")
            flagged += [m for m in self.messages if m.user in self.flooders]
        flood, mute = self._finding(kinds, flagged, bool(contact)) if flagged else (None, [])
        return Verdict(flood, mute, self._newly_muted(repeaters, set(mute), now_ms))

    def _newly_muted(self, repeaters: list[str], in_flood: set[str], now_ms: int) -> list[str]:
        fresh = sorted({u for u in repeaters if u not in in_flood and u not in self.muted})
        for user in fresh:
            self.muted[user] = now_ms
        return fresh[: self.config.max_mute]

    def _repeated(self) -> tuple[list[str], list[_Message], list[str]]:
        """Big clusters of near-identical messages that look like spam, by kind, and the
        accounts repeating themselves in clusters too thinly written to be a flood."""
        c = self.config
        kinds: list[str] = []
        flagged: list[_Message] = []
        repeaters: list[str] = []
        members_of: dict[int, list[_Message]] = {
            cluster: []
            for cluster, size in self.cluster_size.items()
            if size >= min(c.min_cluster_messages, c.mute_messages)
        }
        if members_of:  # one pass over the window for every big cluster
            for message in self.messages:
                if message.cluster in members_of:
                    members_of[message.cluster].append(message)
        for members in members_of.values():
            per_account = Counter(m.user for m in members)
            repeating = sum(1 for n in per_account.values() if n > 1)
            if len(members) < c.min_cluster_messages or repeating < c.min_accounts:
                # Fewer accounts repeating themselves than a coordinated flood needs.
                repeaters += [u for u, n in per_account.items() if n >= c.mute_messages]
                continue
            kind = self._cluster_kind(members, per_account)
            if kind is None:
                repeaters += [u for u, n in per_account.items() if n >= c.mute_messages]
            else:
                kinds.append(kind)
                flagged += members
        return kinds, flagged, repeaters

    def _cluster_kind(self, members: list[_Message], per_account: Counter[str]) -> str | None:
        """Why a cluster written by several accounts is a flood, or None when it is chat."""
        c = self.config
        accounts = len(per_account)
        fresh = sum(m.fresh for m in members) / len(members)
        if accounts <= c.few_accounts:
            # Sock puppets made for the job post again and again. Regulars chanting an
            # emote line every two seconds (real Twitch chat) are a moderation matter.
            few = len(members) >= c.few_repeat * accounts and fresh >= c.fresh_share
            return "repeated_by_few_accounts" if few else None
        if sum(m.contact for m in members) * 2 >= len(members):
            return "repeated_contact_ads"
        if len(members) < c.min_repeat * accounts:
            return None  # one message per account: a crowd saying the same thing
        fresh_accounts = sum(self.fresh_users[u] for u in per_account)
        if fresh >= c.fresh_share and fresh_accounts >= c.min_fresh_accounts:
            return "repeated_by_fresh_accounts"
        return None

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
            "window_s": c.window_s,
            "top_accounts": offenders,
            "samples": samples,
        }
        mute = [u for u, _ in by_user.most_common(c.max_mute)]
        return Finding(severity, summary, details), mute


def _decrement(counter: Counter[K], key: K) -> int:
    """Count one less of `key`, dropping it at zero; the count left."""
    left = counter[key] - 1
    if left:
        counter[key] = left
    else:
        del counter[key]
    return left


def flood_action(transition: Transition, mute: list[str]) -> dict[str, Any]:
    """The `live.actions` record of a flood alert firing: mute its accounts."""
    return {
        "action": "mute",
        "room_id": transition.room_id,
        "user_ids": mute,
        "reason": transition.summary,
        "ts": transition.ts,
        "fingerprint": transition.fingerprint,
    }


def moderation_action(room_id: str, repeaters: list[str], ts: int) -> dict[str, Any]:
    """The `live.actions` record for accounts repeating themselves below a flood: a
    moderation matter, not a room alert, so no alert fingerprint."""
    return {
        "action": "mute",
        "room_id": room_id,
        "user_ids": repeaters,
        "reason": f"{len(repeaters)} account(s) repeating the same text in the chat",
        "ts": ts,
        "fingerprint": None,
    }
