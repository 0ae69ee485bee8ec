"""What the independent nights share: viewers coming and going, latency samples, a log."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

REGIONS = ("north", "east", "south")

Event = dict[str, Any]


def presence(
    rng: np.random.Generator, room: str, start_ms: int, end_ms: int, online: float, prefix: str
) -> tuple[list[Event], list[tuple[str, int, int]]]:
    """Passive viewers: Poisson arrivals for `online` concurrent on average, lognormal
    stays (median 5 min); their joins and leaves, and (user, join, leave) spans."""
    stay_median_s = 300.0
    mean_stay_s = stay_median_s * float(np.exp(0.5))  # lognormal sigma 1
    rate_per_s = online / mean_stay_s
    span_s = (end_ms - start_ms) / 1000
    arrivals = int(rng.poisson(rate_per_s * (span_s + mean_stay_s)))
    joins = start_ms - mean_stay_s * 1000 + rng.random(arrivals) * (span_s + mean_stay_s) * 1000
    stays = rng.lognormal(np.log(stay_median_s), 1.0, arrivals) * 1000
    events: list[Event] = []
    spans = []
    channels = rng.choice(["feed", "follow", "search", "share"], arrivals, p=[0.6, 0.25, 0.1, 0.05])
    for i in range(arrivals):
        join, leave = int(max(joins[i], start_ms)), int(joins[i] + stays[i])
        if leave <= start_ms:
            continue
        user = f"{prefix}{i}"
        events.append(
            {
                "type": "join",
                "room_id": room,
                "ts": join,
                "user_id": user,
                "source": str(channels[i]),
            }
        )
        if leave < end_ms:
            events.append({"type": "leave", "room_id": room, "ts": leave, "user_id": user})
        spans.append((user, join, min(leave, end_ms)))
    return events, spans


def latency_samples(
    rng: np.random.Generator,
    room: str,
    spans: list[tuple[str, int, int]],
    level_ms: Any,
    every_s: float = 30.0,
    sigma: float = 0.35,
) -> list[Event]:
    """A sample every `every_s` per viewer while online, lognormal (`sigma`) around
    `level_ms(region, ts_ms_array)` of the viewer's region."""
    events: list[Event] = []
    for user, join, leave in spans:
        region = REGIONS[zlib.crc32(user.encode()) % len(REGIONS)]
        first = join + rng.random() * every_s * 1000
        ts = np.arange(first, leave, every_s * 1000).astype(np.int64)
        if not len(ts):
            continue
        values = level_ms(region, ts) * rng.lognormal(0.0, sigma, len(ts))
        events += [
            {
                "type": "latency",
                "room_id": room,
                "ts": int(t),
                "user_id": user,
                "value_ms": round(float(v), 1),
                "region": region,
            }
            for t, v in zip(ts, values, strict=True)
        ]
    return events


def write_night(events: Iterable[Event], incidents: list[dict[str, Any]], log: Path) -> int:
    """The events sorted by time as a log; the incidents as labels next to it."""
    ordered = sorted(events, key=lambda e: e["ts"])
    with log.open("w", encoding="utf-8") as handle:
        for event in ordered:
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
    write_labels(log, incidents)
    return len(ordered)


def labels_path(log: Path) -> Path:
    """Where a night's labels lie beside its log."""
    return log.with_suffix(".labels.json")


def write_labels(log: Path, incidents: list[dict[str, Any]]) -> None:
    """The incidents as the labels `livewatch backtest --labels` reads."""
    labels_path(log).write_text(json.dumps({"incidents": incidents}, indent=1), encoding="utf-8")
