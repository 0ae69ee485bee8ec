"""Real RTT traces as rooms' regional latency levels.

Fifty RIPE Atlas probes' ping RTTs to b-root, Oct-Dec 2016, one sample every 240 s,
with hand-labelled change points (Shao et al., ITC 2017; WenqinSHAO/rtt, MIT).
Each region of a room follows a stretch of one probe's series, time compressed 4x (a
240 s sample becomes a minute, so the real hour-long congestion episodes become
incidents of 5-25 minutes and single bad samples one-minute spikes), scaled so that
the probe's usual RTT is a usual live latency (280-340 ms). Viewers' samples are
lognormal around the level: where the level is over 600 ms, over half of them are.

Labels come from the level, not from any detector: a run of the level over 600 ms
lasting at least 2 minutes is a `latency_slo` incident; a shorter run is a spike,
which must not page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.independent.common import REGIONS, Event, latency_samples, presence

COMPRESSION = 4
SLO_MS = 600.0
MIN_INCIDENT_S = 120
NIGHT_S = 5400
START_MS = 1_780_000_000_000


def read_probe(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(epoch seconds, RTT ms) of one probe, errors (negative RTTs) left out."""
    times, rtts = [], []
    for line in path.read_text().splitlines()[1:]:
        stamp, rtt, _ = line.split(";")
        if float(rtt) < 0:
            continue
        fmt = "%d/%m/%Y %H:%M" if "/" in stamp else "%Y-%m-%d %H:%M:%S"
        times.append(datetime.strptime(stamp, fmt).replace(tzinfo=UTC).timestamp())
        rtts.append(float(rtt))
    return np.array(times), np.array(rtts)


def probes(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.csv"))


def night(
    paths: list[Path], seed: int, rooms: int = 6
) -> tuple[list[Event], list[dict[str, Any]], dict[str, int]]:
    """Rooms whose regions follow stretches of the given probes; events, incidents and
    the count of spikes (runs over the objective shorter than an incident)."""
    rng = np.random.default_rng(seed)
    series = [read_probe(p) for p in paths]
    events: list[Event] = []
    incidents: list[dict[str, Any]] = []
    spikes = 0
    sizes = [30, 90, 240, 600, 1200, 2000]
    for number in range(rooms):
        room = f"rtt-room-{number}"
        levels = {region: _level(rng, series) for region in REGIONS}
        end = START_MS + NIGHT_S * 1000
        joins, spans = presence(rng, room, START_MS, end, float(sizes[number % 6]), "v")
        events += joins

        def level_ms(region: str, ts: npt.NDArray[np.int64], levels=levels) -> Any:
            return levels[region][np.clip((ts - START_MS) // 1000, 0, NIGHT_S - 1)]

        events += latency_samples(rng, room, spans, level_ms, every_s=10)
        for region, level in levels.items():
            for first, last in _runs(level > SLO_MS):
                if last - first + 1 >= MIN_INCIDENT_S:
                    incidents.append({"alert": "latency_slo", "room_id": room, "region": region,
                                      "start": START_MS + first * 1000,
                                      "end": START_MS + last * 1000})  # fmt: skip
                else:
                    spikes += 1
    return events, incidents, {"spikes": spikes}


def _level(
    rng: np.random.Generator, series: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
) -> npt.NDArray[np.float64]:
    """A region's latency level per second of the night: a stretch of a probe's RTTs,
    compressed, interpolated, scaled. Half the stretches are picked around the probe's
    worst hour so that incidents are not rare."""
    times, rtts = series[int(rng.integers(len(series)))]
    span = NIGHT_S * COMPRESSION
    usual = float(np.median(rtts))
    if rng.random() < 0.5:
        worst = times[int(np.argmax(np.convolve(rtts, np.ones(15), "same")))]
        begin = worst - rng.uniform(0.2, 0.8) * span
    else:
        begin = rng.uniform(times[0], max(times[0], times[-1] - span))
    begin = float(np.clip(begin, times[0], max(times[0], times[-1] - span)))
    seconds = begin + np.arange(NIGHT_S) * COMPRESSION
    raw = np.interp(seconds, times, rtts)
    return raw * rng.uniform(280, 340) / usual


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
