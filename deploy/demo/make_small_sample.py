"""Regenerates streams/dev/samples/demo-small.jsonl.gz: two minutes of three rooms.

Deterministic (fixed seed, gzip mtime 0). `livewatch simulate` will supersede it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "streams" / "dev" / "samples" / "demo-small.jsonl.gz"
START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
DURATION_S = 120
ROOMS = {"room-beauty": 3.0, "room-snacks": 1.5, "room-phones": 0.6}  # joins per second
CHANNELS = ["feed", "follow", "search", "ad", "share", "other"]
REGIONS = ["cn-east", "cn-north", "cn-south"]


def room_events(rng: np.random.Generator, room: str, rate: float) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    arrivals = np.cumsum(rng.exponential(1 / rate, size=int(rate * DURATION_S * 2)))
    arrivals = arrivals[arrivals < DURATION_S]
    for n, arrival in enumerate(arrivals):
        user = f"{room[5:]}-u{n}"
        join = START_MS + int(arrival * 1000)
        stay = float(rng.lognormal(np.log(60), 0.9))
        source = CHANNELS[int(rng.choice(6, p=[0.5, 0.15, 0.1, 0.1, 0.1, 0.05]))]
        events.append(
            {"type": "join", "room_id": room, "ts": join, "user_id": user, "source": source}
        )
        leave = join + int(stay * 1000)
        end = min(leave, START_MS + DURATION_S * 1000)
        region = REGIONS[n % 3]
        for t in range(join + 2000, end, 15_000):
            value = float(rng.lognormal(np.log(350), 0.35))
            events.append(
                {
                    "type": "latency",
                    "room_id": room,
                    "ts": t,
                    "user_id": user,
                    "value_ms": round(value, 1),
                    "region": region,
                }
            )
        for _ in range(rng.poisson((end - join) / 1000 / 40)):
            t = int(rng.integers(join, max(end, join + 1)))
            text = str(rng.choice(["1", "扣1", "想要", "好看", "多少钱", "链接呢", "？？？"]))
            events.append(
                {"type": "danmaku", "room_id": room, "ts": t, "user_id": user, "text": text}
            )
        if rng.random() < 0.08:
            t = int(rng.integers(join, max(end, join + 1)))
            events.append(
                {
                    "type": "order",
                    "room_id": room,
                    "ts": t,
                    "user_id": user,
                    "order_id": f"o-{room}-{n}",
                    "amount": round(float(rng.uniform(9, 299)), 2),
                }
            )
        if rng.random() < 0.05:
            t = int(rng.integers(join, max(end, join + 1)))
            events.append(
                {
                    "type": "stall",
                    "room_id": room,
                    "ts": t,
                    "user_id": user,
                    "duration_ms": round(float(rng.exponential(1500)), 1),
                }
            )
        if leave < START_MS + DURATION_S * 1000:
            events.append({"type": "leave", "room_id": room, "ts": leave, "user_id": user})
    return events


def main() -> None:
    rng = np.random.default_rng(20251124)
    events = [e for room, rate in ROOMS.items() for e in room_events(rng, room, rate)]
    events.sort(key=lambda e: (e["ts"], e["room_id"], e["user_id"]))  # type: ignore[return-value]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for event in events:
            out.write(msgspec.json.encode(event) + b"\n")
    print(f"{len(events)} events -> {OUT}")


if __name__ == "__main__":
    main()
