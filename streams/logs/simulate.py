"""`livewatch simulate`: realistic promotion nights as event logs, with labelled incidents.

Viewers arrive as a Poisson process whose rate follows the room's traffic plan
(a steady level, a promotion ramp, then an exponential ebb to a floor), stay
for lognormal times, and while present send latency samples, chat, orders and
the odd stall as Poisson processes of their own. Incidents are injected on top
and listed in the labels. Everything is drawn in bulk with numpy from one seed,
so a seed gives the same file every time, fast.

Each room also says what the platform knows of it (room events, the `live.rooms`
topic): `live` when the night starts, `promo_start` and `promo_end` around each
promotion (its ramp to the peak), and `ended` when the host ends the stream
(`Room.ends_at`: nobody arrives afterwards, everyone present leaves within a
minute). A room that goes silent (`silent_at`, its ingest died) says nothing more.
Room events draw nothing from the seed and take no part in a dirty night's
disorder, so the viewers' events of a night are what they were before room
events existed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from streams.logs.files import create_log

T0: Final = 1_764_000_000_000
"""Event time of second 0 of every scenario (2025-11-24 16:00 UTC), ms."""
REGIONS: Final = ("cn-east", "cn-north", "cn-south", "cn-west")
REGION_WEIGHTS: Final = (0.35, 0.3, 0.2, 0.15)
CHANNELS: Final = ("feed", "follow", "search", "ad", "share")
CHANNEL_WEIGHTS: Final = (0.55, 0.25, 0.08, 0.07, 0.05)
ORGANIC_CHAT: Final = (
    "这个多少钱", "主播好美", "有优惠吗", "链接在哪", "几号链接", "能便宜点吗", "发货快吗",
    "已下单", "质量怎么样", "尺码偏大吗", "来了来了", "主播辛苦了", "1", "666", "好看",
)  # fmt: skip
HYPE_CHAT: Final = ("1", "扣1", "想要", "？？？", "哈哈哈哈哈", "冲冲冲", "好耶")
SPAM_TEMPLATES: Final = (
    "加微信 {id} 领福利 {n}",
    "加 微 信：{id} 免费领 {n}",
    "V信 {id} 私聊有惊喜{n}",
    "低价代购 加vx {id} ~{n}",
)

Arrivals = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def steady(rate: float) -> Arrivals:
    return lambda s: np.full(len(s), rate)


@dataclass(frozen=True)
class PromotionPlan:
    """Arrivals per second: base, a ramp to the peak while the promotion runs (from
    `ramp_at` to `peak_at`, its `promo_start` and `promo_end`), then an ebb to the floor."""

    base: float
    peak: float
    ramp_at: int
    peak_at: int
    half_life_s: float
    floor: float

    def __call__(self, s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        base, peak, ramp_at, peak_at = self.base, self.peak, self.ramp_at, self.peak_at
        ramp = base + (peak - base) * np.clip((s - ramp_at) / max(peak_at - ramp_at, 1), 0, 1)
        ebb = self.floor + (peak - self.floor) * np.exp2(
            -np.maximum(s - peak_at, 0) / self.half_life_s
        )
        return np.where(s < peak_at, ramp, ebb)


def promotion(base: float, peak: float, ramp_at: int, peak_at: int, half_life_s: float,
              floor: float) -> PromotionPlan:  # fmt: skip
    """Arrivals per second: base, a ramp to the peak, then an ebb to the floor."""
    return PromotionPlan(base, peak, ramp_at, peak_at, half_life_s, floor)


@dataclass(frozen=True)
class Room:
    room_id: str
    arrivals: Arrivals
    stay_s: float = 300.0
    latency_ms: float = 250.0
    outage: tuple[int, int] | None = None
    """(start, end) s: viewers drop out within 20 s, nobody arrives until the end."""
    feed_cut_at: int | None = None
    silent_at: int | None = None
    """From this second the room's events stop entirely (its ingest died)."""
    slow_region: tuple[str, int, int] | None = None
    stall_storm: tuple[int, int] | None = None
    bot_flood: tuple[int, int] | None = None
    """(start s, bots)."""
    hype_at: tuple[int, ...] = ()
    ends_at: int | None = None
    """The host ends the stream at this second (`ended`): nobody arrives afterwards,
    everyone present leaves within a minute. No incident: it must not page."""

    @property
    def promotions(self) -> tuple[PromotionPlan, ...]:
        return (self.arrivals,) if isinstance(self.arrivals, PromotionPlan) else ()


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: int
    rooms: tuple[Room, ...]
    dirty: bool = False


def labels(scenario: Scenario) -> list[dict[str, Any]]:
    """Every injected incident: alert type, room and event-time span (ms)."""
    out = []
    for room in scenario.rooms:
        spans: list[tuple[str, int, int]] = []
        if room.outage:
            spans.append(("traffic_cliff", room.outage[0], room.outage[1]))
        if room.feed_cut_at is not None:
            spans.append(("traffic_cliff", room.feed_cut_at, scenario.seconds))
        if room.silent_at is not None:
            spans.append(("traffic_cliff", room.silent_at, scenario.seconds))
        if room.slow_region:
            spans.append(("latency_slo", room.slow_region[1], room.slow_region[2]))
        if room.stall_storm:
            spans.append(("stall_slo", *room.stall_storm))
        if room.bot_flood:
            spans.append(("spam_flood", room.bot_flood[0], room.bot_flood[0] + 20))
        for alert, start, end in spans:
            out.append(
                {"alert": alert, "room_id": room.room_id, "start": T0 + start * 1000,
                 "end": T0 + end * 1000}
            )  # fmt: skip
    return out


def _scenarios() -> dict[str, Scenario]:
    night = 2400

    def promo_rooms() -> list[Room]:
        return [
            Room("room-beauty", promotion(2, 14, 600, 900, 300, 2.5), stay_s=240, hype_at=(950,)),
            Room("room-snacks", promotion(1.5, 8, 1200, 1380, 420, 2), stay_s=200),
            Room("room-phones", steady(3), stay_s=360, hype_at=(1500,)),
            Room("room-tiny", steady(0.03), stay_s=400),
        ]

    base = promo_rooms()
    return {
        # A stream ending normally is part of a promotion night: its audience leaving
        # it is no traffic cliff.
        "promo-night": Scenario(
            "promo-night", night, (*base, Room("room-fashion", steady(2.5), ends_at=1800))
        ),
        "cliff": Scenario(
            "cliff", night, (*base, Room("room-outage", steady(2.5), outage=(1500, 1800)))
        ),
        "spam": Scenario(
            "spam", night, (*base, Room("room-spam", steady(2), bot_flood=(1300, 40)))
        ),
        "latency": Scenario(
            "latency",
            night,
            (*base, Room("room-latency", steady(3), slow_region=("cn-south", 1200, 1700))),
        ),
        "mixed": Scenario(
            "mixed",
            night,
            (
                *base,
                Room("room-outage", steady(2.5), outage=(1500, 1800)),
                Room("room-feedcut", steady(4), feed_cut_at=1600),
                Room("room-spam", steady(2), bot_flood=(1300, 40), hype_at=(1000,)),
                Room("room-latency", steady(3), slow_region=("cn-south", 1200, 1700)),
                Room("room-stalls", steady(2), stall_storm=(1400, 1800)),
            ),
            dirty=True,
        ),
        # `make demo`'s bundled night: twenty minutes, one incident of each kind, a
        # promotion (room-beauty) and a stream its host ends (room-fashion, which must
        # not page; it is gone `ended_grace_s` later, before the night is over).
        "demo": Scenario(
            "demo",
            1200,
            (
                Room(
                    "room-beauty", promotion(1.5, 8, 120, 330, 200, 2), stay_s=240, hype_at=(400,)
                ),
                Room("room-outage", steady(2), outage=(690, 900)),
                Room("room-spam", steady(1.5), bot_flood=(570, 40)),
                Room("room-latency", steady(2), slow_region=("cn-south", 480, 960)),
                Room("room-fashion", steady(2), ends_at=840),
            ),
        ),
    }


SCENARIOS: Final = _scenarios()


@dataclass
class _Lines:
    ts: list[npt.NDArray[np.int64]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, ts: npt.NDArray[np.int64], lines: list[str]) -> None:
        self.ts.append(ts)
        self.lines += lines


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _room_events(room: Room, seconds: int, rng: np.random.Generator, out: _Lines) -> None:
    # Each step draws from `rng` in a fixed order: the same seed, the same night.
    viewers = _Viewers.arrive(room, seconds, rng)
    viewers.presence(out)
    viewers.latency(out)
    viewers.chat(out)
    viewers.stalls(out)
    viewers.orders(out)
    viewers.hype(out)
    _bot_flood(room, rng, out)


@dataclass
class _Viewers:
    """A room's simulated audience: who joined when, from which channel and region."""

    room: Room
    rng: np.random.Generator
    join: npt.NDArray[np.int64]
    leave: npt.NDArray[np.int64]
    channel: npt.NDArray[np.int64]
    region: npt.NDArray[np.int64]
    users: list[str]
    stop: int
    """Events end here: the room goes silent, or the night ends."""
    present_until: npt.NDArray[np.int64]
    """Each viewer's last moment in the room: their leave, or `stop`."""

    @classmethod
    def arrive(cls, room: Room, seconds: int, rng: np.random.Generator) -> _Viewers:
        second = np.arange(seconds, dtype=np.float64)
        counts = rng.poisson(room.arrivals(second))
        if room.outage:
            counts[room.outage[0] : room.outage[1]] = 0
        if room.ends_at is not None:
            counts[room.ends_at :] = 0
        joined_s = np.repeat(second, counts)
        join = (T0 + (joined_s + rng.random(len(joined_s))) * 1000).astype(np.int64)
        channel = rng.choice(len(CHANNELS), len(join), p=CHANNEL_WEIGHTS)
        if room.feed_cut_at is not None:
            keep = ~((channel == 0) & (joined_s >= room.feed_cut_at))
            join, channel = join[keep], channel[keep]
        n = len(join)
        leave = join + (rng.lognormal(math.log(room.stay_s), 0.8, n) * 1000).astype(np.int64)
        if room.outage:
            start = T0 + room.outage[0] * 1000
            caught = (join < start) & (leave > start)
            leave[caught] = start + (rng.random(int(caught.sum())) * 20_000).astype(np.int64)
        if room.ends_at is not None:
            ended = T0 + room.ends_at * 1000
            staying = leave > ended
            leave[staying] = ended + (rng.random(int(staying.sum())) * 60_000).astype(np.int64)
        region = rng.choice(len(REGIONS), n, p=REGION_WEIGHTS)
        users = [f"{room.room_id}-u{i}" for i in range(n)]
        end = T0 + seconds * 1000
        stop = T0 + room.silent_at * 1000 if room.silent_at is not None else end
        present_until = np.minimum(leave, stop)
        return cls(room, rng, join, leave, channel, region, users, stop, present_until)

    def per_viewer(self, every_s: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(viewer index, ts) of a Poisson process while each viewer is present."""
        duration = np.maximum(self.present_until - self.join, 0)
        k = self.rng.poisson(duration / 1000 / every_s)
        idx = np.repeat(np.arange(len(self.join)), k)
        ts = self.join[idx] + (self.rng.random(len(idx)) * duration[idx]).astype(np.int64)
        return idx, ts

    def presence(self, out: _Lines) -> None:
        rid, join, leave, users = self.room.room_id, self.join, self.leave, self.users
        names = [CHANNELS[c] for c in self.channel]
        before_stop = join < self.stop
        out.add(
            join[before_stop],
            [
                f'{{"type":"join","room_id":"{rid}","ts":{join[i]},"user_id":"{users[i]}",'
                f'"source":"{names[i]}"}}'
                for i in np.nonzero(before_stop)[0]
            ],
        )
        leaving = leave < self.stop
        out.add(
            leave[leaving],
            [
                f'{{"type":"leave","room_id":"{rid}","ts":{leave[i]},"user_id":"{users[i]}"}}'
                for i in np.nonzero(leaving)[0]
            ],
        )

    def latency(self, out: _Lines) -> None:
        room, rng = self.room, self.rng
        idx, ts = self.per_viewer(20)
        value = rng.lognormal(math.log(room.latency_ms), 0.3, len(idx))
        if room.slow_region:
            name, a, b = room.slow_region
            in_region = self.region[idx] == REGIONS.index(name)
            slow = in_region & (ts >= T0 + a * 1000) & (ts < T0 + b * 1000)
            value[slow] = rng.uniform(900, 2000, int(slow.sum()))
        regions = [REGIONS[r] for r in self.region[idx]]
        rows = zip(idx.tolist(), ts.tolist(), value.tolist(), regions, strict=True)
        out.add(
            ts,
            [
                f'{{"type":"latency","room_id":"{room.room_id}","ts":{t},'
                f'"user_id":"{self.users[i]}","value_ms":{v:.1f},"region":"{g}"}}'
                for i, t, v, g in rows
            ],
        )

    def chat(self, out: _Lines) -> None:
        idx, ts = self.per_viewer(150)
        picks = self.rng.integers(len(ORGANIC_CHAT), size=len(idx))
        texts = [_text(ORGANIC_CHAT[c]) for c in picks]
        out.add(ts, _danmaku(self.room.room_id, ts, [self.users[i] for i in idx], texts))

    def stalls(self, out: _Lines) -> None:
        room, rng, join = self.room, self.rng, self.join
        idx, ts = self.per_viewer(2000)
        if room.stall_storm:
            a, b = (T0 + x * 1000 for x in room.stall_storm)
            overlap = np.clip(np.minimum(self.present_until, b) - np.maximum(join, a), 0, None)
            k = rng.poisson(overlap / 1000 / 10)
            extra = np.repeat(np.arange(len(join)), k)
            offset = (rng.random(len(extra)) * overlap[extra]).astype(np.int64)
            idx, ts = (
                np.concatenate([idx, extra]),
                np.concatenate([ts, np.maximum(join[extra], a) + offset]),
            )
        durations = rng.uniform(500, 4000, len(idx)).tolist()
        out.add(
            ts,
            [
                f'{{"type":"stall","room_id":"{room.room_id}","ts":{t},'
                f'"user_id":"{self.users[i]}","duration_ms":{d:.0f}}}'
                for i, t, d in zip(idx.tolist(), ts.tolist(), durations, strict=True)
            ],
        )

    def orders(self, out: _Lines) -> None:
        rid, rng = self.room.room_id, self.rng
        idx, ts = self.per_viewer(1200)
        amounts = rng.lognormal(math.log(80), 0.6, len(idx))
        refunded = rng.random(len(idx)) < 0.05
        rows = zip(idx.tolist(), ts.tolist(), amounts.tolist(), refunded.tolist(), strict=True)
        out.add(
            ts,
            [
                f'{{"type":"order","room_id":"{rid}","ts":{t},"user_id":"{self.users[i]}",'
                f'"order_id":"{rid}-o{k}","amount":{a:.2f}'
                + (',"status":"refunded"}' if r else "}")
                for k, (i, t, a, r) in enumerate(rows)
            ],
        )

    def hype(self, out: _Lines) -> None:
        """Moments the audience cheers: 40% of those present chat within ten seconds."""
        rng, present_until = self.rng, self.present_until
        for at in self.room.hype_at:
            moment = T0 + at * 1000
            present = np.nonzero((self.join <= moment) & (present_until > moment))[0]
            who = present[rng.random(len(present)) < 0.4]
            ts = moment + (rng.random(len(who)) * 10_000).astype(np.int64)
            texts = [_text(HYPE_CHAT[c]) for c in rng.integers(len(HYPE_CHAT), size=len(who))]
            out.add(ts, _danmaku(self.room.room_id, ts, [self.users[i] for i in who], texts))


def _bot_flood(room: Room, rng: np.random.Generator, out: _Lines) -> None:
    """Fresh bot accounts joining together, each posting spam templates twice."""
    if not room.bot_flood:
        return
    rid = room.room_id
    at, bots = room.bot_flood
    ids = [f"bot{rng.integers(10**6)}" for _ in range(bots)]
    bot_join = T0 + at * 1000 + (rng.random(bots) * 20_000).astype(np.int64)
    out.add(
        bot_join,
        [
            f'{{"type":"join","room_id":"{rid}","ts":{t},"user_id":"{u}"}}'
            for t, u in zip(bot_join.tolist(), ids, strict=True)
        ],
    )
    who = np.repeat(np.arange(bots), 2)
    ts = bot_join[who] + 200 + (rng.random(len(who)) * 2000).astype(np.int64)
    texts = [
        _text(
            SPAM_TEMPLATES[rng.integers(len(SPAM_TEMPLATES))].format(
                id="vip_777", n=rng.integers(10**4)
            )
        )
        for _ in who
    ]
    out.add(ts, _danmaku(rid, ts, [ids[i] for i in who], texts))


def _danmaku(rid: str, ts: npt.NDArray[np.int64], users: list[str], texts: list[str]) -> list[str]:
    return [
        f'{{"type":"danmaku","room_id":"{rid}","ts":{t},"user_id":"{u}","text":{x}}}'
        for t, u, x in zip(ts.tolist(), users, texts, strict=True)
    ]


def _room_phases(room: Room, seconds: int) -> tuple[list[int], list[str]]:
    """The room's own events (ts, lines): `live` at the start, each promotion's start
    and end, `ended`; none from when the room goes silent, none after the night."""
    rid = room.room_id
    stop = seconds if room.silent_at is None else min(seconds, room.silent_at)
    phases: list[tuple[int, str, str | None]] = [(0, "live", None)]
    for n, promo in enumerate(room.promotions, 1):
        phases += [(promo.ramp_at, "promo_start", f"{rid}-sale-{n}"),
                   (promo.peak_at, "promo_end", f"{rid}-sale-{n}")]  # fmt: skip
    if room.ends_at is not None:
        phases.append((room.ends_at, "ended", None))
    stamps, lines = [], []
    for at, phase, promo_id in sorted(p for p in phases if p[0] < stop):
        ts = T0 + at * 1000
        named = f',"promo_id":"{promo_id}"' if promo_id is not None else ""
        stamps.append(ts)
        lines.append(f'{{"type":"room","room_id":"{rid}","ts":{ts},"phase":"{phase}"{named}}}')
    return stamps, lines


MALFORMED: Final = (
    '{"type":"danmaku","room_id":',
    "not json at all",
    '{"type":"teleport","room_id":"room-beauty","ts":1764000000000,"user_id":"x"}',
    '{"type":"order","room_id":"room-beauty","ts":1764000000000,"user_id":"x","amount":-3}',
)


def generate(scenario: Scenario, seed: int) -> Iterator[str]:
    """The scenario's lines in file order (event-time order, unless the scenario is dirty)."""
    rng = np.random.default_rng(seed)
    out = _Lines()
    for room in scenario.rooms:
        _room_events(room, scenario.seconds, rng, out)
    ts = np.concatenate(out.ts) if out.ts else np.zeros(0, dtype=np.int64)
    lines = out.lines
    order_key = ts.astype(np.float64)
    if scenario.dirty:
        # Late by up to 3 s in file order, duplicated (at-least-once), and malformed lines.
        late = rng.random(len(ts)) < 0.01
        order_key[late] += rng.uniform(0, 3000, int(late.sum()))
        dup = np.nonzero(rng.random(len(ts)) < 0.005)[0]
        order_key = np.concatenate([order_key, order_key[dup] + rng.uniform(0, 2000, len(dup))])
        lines = lines + [lines[i] for i in dup]
        bad = int(len(ts) * 0.001) + 1
        order_key = np.concatenate([order_key, rng.uniform(ts.min(), ts.max(), bad)])
        lines = lines + [MALFORMED[i % len(MALFORMED)] for i in range(bad)]
    # Room events first on a tie (a `live` before its room's first viewers), in
    # their own place: the viewers' events and their disorder stay what they were.
    stamps: list[int] = []
    phases: list[str] = []
    for room in scenario.rooms:
        room_stamps, room_lines = _room_phases(room, scenario.seconds)
        stamps += room_stamps
        phases += room_lines
    order_key = np.concatenate([np.array(stamps, dtype=np.float64), order_key])
    lines = phases + lines
    for i in np.argsort(order_key, kind="stable").tolist():
        yield lines[i]


def write_log(lines: Iterator[str], path: str | os.PathLike[str]) -> int:
    """Write lines to `path` (gzip when it ends in .gz); return how many."""
    count = 0
    with create_log(path, compresslevel=3) as handle:  # level 3: fast, nearly as small
        for chunk in _chunks(lines, 50_000):
            handle.write(("\n".join(chunk) + "\n").encode())
            count += len(chunk)
    return count


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
