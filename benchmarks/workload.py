"""The throughput benchmarks' events: a platform's rooms at a promotion's peak.

Every path of the engine runs: joins and leaves, chat with varied texts (a share
of it near-duplicate, so spam clustering works), paid and refunded orders,
stalls, and latency samples with regions, which are three quarters of the
traffic (every viewer's player reports one every few seconds). Rooms have
skewed sizes: room `k` of `rooms` draws a share of the traffic proportional to
1/(k+1)^1.1 (Zipf), so a few big rooms carry most of it and most rooms little.
Event time runs at `rate` events per second of event time over the whole
platform, so how many room-seconds close per event is realistic too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

from streams.core.events import SOURCE_OF_TYPE

T0 = 1_764_000_000_000
REGIONS = ("north", "east", "south", "west", "overseas")
MIX = {"latency": 75, "danmaku": 12, "join": 5, "leave": 4, "order": 2, "stall": 2}
"""Share of each event type, in percent."""
TEXTS = ("扣1", "主播好", "这个多少钱", "链接呢", "有优惠吗", "怎么买", "好看", "666", "已拍")


@dataclass(frozen=True)
class Workload:
    events: int
    rooms: int = 1_000
    rate: int = 20_000
    """Events per second of event time, all rooms together."""
    seed: int = 5

    def describe(self) -> str:
        mix = ", ".join(f"{t} {p}%" for t, p in MIX.items())
        return (
            f"{self.events:,} events over {self.rooms:,} rooms (Zipf sizes), "
            f"{self.rate:,} events per second of event time; {mix}"
        )


def generate(workload: Workload) -> Iterator[dict[str, object]]:
    rng = random.Random(workload.seed)
    weights = [1 / (k + 1) ** 1.1 for k in range(workload.rooms)]
    total = sum(weights)
    # Each room's viewers: as many as send its latency samples, one every 10 s each.
    pools = [max(5, int(workload.rate * w / total * MIX["latency"] / 100 * 10)) for w in weights]
    rooms = rng.choices(range(workload.rooms), weights, k=workload.events)
    kinds = rng.choices(list(MIX), list(MIX.values()), k=workload.events)
    step = 1000 / workload.rate
    for i, (room, kind) in enumerate(zip(rooms, kinds, strict=True)):
        event: dict[str, object] = {
            "type": kind,
            "room_id": f"room-{room}",
            "ts": T0 + int(i * step),
            "user_id": f"u{rng.randrange(pools[room])}",
        }
        if kind == "latency":
            event["value_ms"] = round(rng.lognormvariate(5.8, 0.4), 1)
            event["region"] = REGIONS[room % len(REGIONS)]
        elif kind == "danmaku":
            text = rng.choice(TEXTS)
            event["text"] = text if rng.random() < 0.7 else f"{text} {rng.randrange(1000)}"
        elif kind == "join":
            event["source"] = rng.choice(("feed", "follow", "search", "ad"))
        elif kind == "order":
            event |= {"order_id": f"o{i}", "amount": 9.9, "status": "paid"}
            if rng.random() < 0.05:
                event["status"] = "refunded"
        elif kind == "stall":
            event["duration_ms"] = float(rng.randrange(200, 3000))
        yield event


def messages(
    events: Iterator[dict[str, object]],
    topic_of_source: dict[str, str],
    batch: int,
    linger_ms: int = 2_000,
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value); with `batch` > 1, a message holds up to `batch` events of
    one room and topic, sent when full or `linger_ms` of event time after its first
    event (what a producer batching per room sends; within the allowed lateness)."""
    open_runs: dict[tuple[str, str], list[dict[str, object]]] = {}
    out: list[tuple[str, bytes, bytes]] = []

    def send(key: tuple[str, str]) -> None:
        run = open_runs.pop(key)
        out.append((key[0], key[1].encode(), json.dumps(run).encode()))

    swept = 0
    for event in events:
        key = (topic_of_source[SOURCE_OF_TYPE[str(event["type"])]], str(event["room_id"]))
        if batch == 1:
            out.append((key[0], key[1].encode(), json.dumps(event).encode()))
            continue
        ts = int(str(event["ts"]))
        open_runs.setdefault(key, []).append(event)
        if len(open_runs[key]) >= batch:
            send(key)
        if ts - swept >= linger_ms // 10:
            swept = ts
            stale = [k for k, run in open_runs.items() if ts - int(str(run[0]["ts"])) >= linger_ms]
            for key in stale:
                send(key)
    for key in list(open_runs):
        send(key)
    return out
