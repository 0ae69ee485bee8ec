# ruff: noqa: RUF001  (look-alike characters are what flooders use)
"""Real live-room chat with bot floods injected: organic repetition left as it is.

Two public captures (docs/detectors.md says where to get them): a 4-hour Bilibili live
room (41k danmaku from 1,847 senders, LittleSaltFish/bilibili_live_data_analyse) and a
3-hour Twitch channel (26k messages, dsteffan/twitch_chat_analysis). Every message keeps
its time, sender and text. Senders join a while before their first message (lognormal,
median 2 min: a few write within seconds of arriving) and leave after their last;
passive viewers come and go around them and report latency at normal levels.

Into that, floods written here (not by `livewatch simulate`): 15-35 accounts that join
seconds before writing, each posting every 2-6 s for 1-4 minutes, texts from 2-3
templates advertising a contact, an id or amount changing per message, disguised
(full-width or look-alike letters, a separator somewhere, emoji or !! appended).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.independent.common import Event, latency_samples, presence

ZH_TEMPLATES = (
    "内部渠道价看主页 {id}",
    "想要同款的私我 {id}",
    "兼职日结{n}元 联系{id}",
    "免费领{n}元红包戳头像",
    "正品低价代购 q{n}",
    "粉丝福利群{n}速来",
)
EN_TEMPLATES = (
    "free skins at skinz{n} dot gg",
    "follow {id} for a giveaway",
    "cheap viewers and followers {id} promo {n}",
    "win {n} dollars now, dm {id}",
    "best prices on coins, add {id}",
)
_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х"})


def read_bilibili(path: Path) -> list[tuple[int, str, str]]:
    """(ts ms, sender, text) of a capture's danmaku CSV (`_DeltaTime` after the first
    row's wall-clock time, UTC+8; the writer did not quote commas inside texts)."""
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        start: float | None = None
        origin = 0
        for row in rows:
            if len(row) < 8 or row[-2] != "danmaku":
                continue
            delta = float(row[0])
            if start is None:
                start = delta
                wall = datetime.strptime(f"{row[2]} {row[1]}", "%Y.%m.%d %H:%M:%S")
                origin = int(wall.replace(tzinfo=timezone(timedelta(hours=8))).timestamp() * 1000)
            out.append((origin + int((delta - start) * 1000), row[-3], ",".join(row[4:-3])))
    return sorted(out)


_TWITCH = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),([^,]+),[^,]*,(.*)$")


def read_twitch(path: Path) -> list[tuple[int, str, str]]:
    """(ts ms, sender, text) of the parsed Twitch CSV (1 s resolution, spread evenly
    over the second)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        match = _TWITCH.match(line)
        if match:
            second = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()
            rows.append((int(second * 1000), match[2], match[3]))
    out, i = [], 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        out += [(ts + (k - i) * 1000 // (j - i), u, t) for k, (ts, u, t) in enumerate(rows[i:j], i)]
        i = j
    return sorted(out)


def night(
    messages: list[tuple[int, str, str]], seed: int, room: str, english: bool, floods: int = 3
) -> tuple[list[Event], list[dict[str, Any]]]:
    """The chat as a room's night, with `floods` injected floods; events and incidents."""
    rng = np.random.default_rng(seed)
    start, end = messages[0][0], messages[-1][0] + 60_000
    events: list[Event] = [
        {"type": "danmaku", "room_id": room, "ts": ts, "user_id": f"c:{user}", "text": text}
        for ts, user, text in messages
    ]
    events += _chatters(rng, messages, room, start, end)
    passive, spans = presence(rng, room, start, end, online=1500, prefix="p")
    events += passive
    events += latency_samples(rng, room, spans, lambda region, ts: 260.0, every_s=60)
    incidents = []
    slots = rng.choice(np.arange(start + 600_000, end - 600_000, 900_000), floods, replace=False)
    for number, at in enumerate(sorted(int(s) for s in slots)):
        flood, span = _flood(rng, room, at + int(rng.integers(0, 300_000)), number, english)
        events += flood
        incidents.append({"alert": "spam_flood", "room_id": room, "start": span[0], "end": span[1]})
    return events, incidents


def _chatters(
    rng: np.random.Generator, messages: list[tuple[int, str, str]], room: str, start: int, end: int
) -> list[Event]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for ts, user, _ in messages:
        first.setdefault(user, ts)
        last[user] = ts
    events: list[Event] = []
    for user, ts in first.items():
        join = max(start - 60_000, ts - int(rng.lognormal(np.log(120), 1.5) * 1000))
        events.append({"type": "join", "room_id": room, "ts": join, "user_id": f"c:{user}"})
        leave = last[user] + int(rng.uniform(30, 600) * 1000)
        if leave < end:  # the capture ends with the stream: no traffic after it
            events.append({"type": "leave", "room_id": room, "ts": leave, "user_id": f"c:{user}"})
    return events


def _flood(
    rng: np.random.Generator, room: str, at: int, number: int, english: bool
) -> tuple[list[Event], tuple[int, int]]:
    pool = EN_TEMPLATES if english else ZH_TEMPLATES
    templates = [pool[i] for i in rng.choice(len(pool), int(rng.integers(2, 4)), replace=False)]
    accounts = int(rng.integers(15, 36))
    duration = int(rng.uniform(60, 240) * 1000)
    events: list[Event] = []
    stamps = []
    for account in range(accounts):
        user = f"bot{number}-{account}"
        ts = at + int(rng.uniform(0, 20_000))
        events.append({"type": "join", "room_id": room, "ts": ts - int(rng.uniform(1, 8) * 1000),
                       "user_id": user, "source": "search"})  # fmt: skip
        while ts < at + duration:
            template = templates[int(rng.integers(len(templates)))]
            text = template.format(n=int(rng.integers(100, 100_000)), id=_handle(rng))
            events.append({"type": "danmaku", "room_id": room, "ts": ts, "user_id": user,
                           "text": _disguise(rng, text)})  # fmt: skip
            stamps.append(ts)
            ts += int(rng.uniform(2, 6) * 1000)
    return events, (min(stamps), max(stamps))


def _handle(rng: np.random.Generator) -> str:
    letters = "".join(rng.choice(list("abcdefghjkmnpqrstuvwxyz"), int(rng.integers(2, 5))))
    return f"{letters}{int(rng.integers(10, 100_000))}"


def _disguise(rng: np.random.Generator, text: str) -> str:
    roll = rng.random()
    if roll < 0.3:
        text = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)
    elif roll < 0.5:
        text = text.translate(_CYRILLIC)
    if rng.random() < 0.7:
        cut = int(rng.integers(1, len(text)))
        text = text[:cut] + str(rng.choice(["·", "~", ".", " ", "|", "-"])) + text[cut:]
    return text + str(rng.choice(["", "", "!!", "🎁", "💰💰", "😀"]))
