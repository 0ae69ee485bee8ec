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
which must not page (`_incidents` has the details).
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
DEGRADED_MS = 500.0
TOLERATED_S = 300
SAMPLE_SIGMA = 0.35
"""Viewers' samples are lognormal around their region's level with this sigma."""
MIN_INCIDENT_S = 120
NIGHT_S = 5400
START_MS = 1_780_000_000_000

Series = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
"""Epoch seconds and RTT ms of one probe."""


def read_probe(path: Path) -> Series:
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


def read_atlas_results(path: Path) -> list[Series]:
    """(epoch seconds, RTT ms) per probe of a RIPE Atlas ping measurement's results
    (the API's JSON array), lost pings left out."""
    import json

    by_probe: dict[int, list[tuple[float, float]]] = {}
    for result in json.loads(path.read_text()):
        if result.get("type") == "ping" and result.get("min", -1) > 0:
            by_probe.setdefault(result["prb_id"], []).append((result["timestamp"], result["min"]))
    return [
        (np.array([t for t, _ in rows]), np.array([r for _, r in rows]))
        for rows in (sorted(rows) for rows in by_probe.values())
        if len(rows) > 10
    ]


def within(paths: list[Path], period: tuple[float, float]) -> list[Series]:
    """The probes' series cut to `period` (epoch seconds), those long enough for a night."""
    series = []
    for path in paths:
        times, rtts = read_probe(path)
        inside = (times >= period[0]) & (times < period[1])
        if inside.sum() > NIGHT_S * COMPRESSION / 240:
            series.append((times[inside], rtts[inside]))
    return series


def night(
    series: list[Series], seed: int, compression: float = COMPRESSION, rooms: int = 6
) -> tuple[list[Event], list[dict[str, Any]], dict[str, int]]:
    """Rooms whose regions follow stretches of the given series, time compressed;
    events, incidents and the count of spikes (runs over the objective shorter than
    an incident)."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    incidents: list[dict[str, Any]] = []
    spikes = 0
    sizes = [30, 90, 240, 600, 1200, 2000]
    for number in range(rooms):
        room = f"rtt-room-{number}"
        levels = {region: _level(rng, series, compression) for region in REGIONS}
        end = START_MS + NIGHT_S * 1000
        joins, spans = presence(rng, room, START_MS, end, float(sizes[number % 6]), "v")
        events += joins

        def level_ms(region: str, ts: npt.NDArray[np.int64], levels=levels) -> Any:
            return levels[region][np.clip((ts - START_MS) // 1000, 0, NIGHT_S - 1)]

        events += latency_samples(rng, room, spans, level_ms, every_s=10, sigma=SAMPLE_SIGMA)
        for region, level in levels.items():
            found, short = _incidents(level)
            incidents += [{"alert": "latency_slo", "room_id": room, "region": region, **i}
                          for i in found]  # fmt: skip
            spikes += short
    return events, incidents, {"spikes": spikes}


def _level(
    rng: np.random.Generator, series: list[Series], compression: float
) -> npt.NDArray[np.float64]:
    """A region's latency level per second of the night: a stretch of a probe's RTTs,
    compressed, scaled. Half the stretches are centred near one of the
    period's congested hours (`_congested`), so that incidents are not rare."""
    span = NIGHT_S * compression
    congested = [(i, t) for i, (times, rtts) in enumerate(series) for t in _congested(times, rtts)]
    if congested and rng.random() < 0.5:
        index, centre = congested[int(rng.integers(len(congested)))]
        begin = centre - rng.uniform(0.2, 0.8) * span
    else:
        index = int(rng.integers(len(series)))
        begin = rng.uniform(series[index][0][0], series[index][0][-1] - span)
    times, rtts = series[index]
    begin = float(np.clip(begin, times[0], max(times[0], times[-1] - span)))
    seconds = begin + np.arange(NIGHT_S) * compression
    # Each measurement holds until the next (no shape is invented between them): a
    # single bad 4-minute sample is a one-minute plateau once compressed.
    raw = rtts[np.clip(np.searchsorted(times, seconds, side="right") - 1, 0, len(rtts) - 1)]
    return raw * rng.uniform(280, 340) / float(np.median(rtts))


def _congested(times: npt.NDArray[np.float64], rtts: npt.NDArray[np.float64]) -> list[float]:
    """Middles of the hours whose mean RTT is 1.6x the probe's median or more, at least
    two hours apart."""
    hourly = np.convolve(rtts, np.ones(15) / 15, "same")
    out: list[float] = []
    for i in np.nonzero(hourly >= 1.6 * np.median(rtts))[0]:
        if not out or times[i] - out[-1] > 7200:
            out.append(float(times[i]))
    return out


def _incidents(level: npt.NDArray[np.float64]) -> tuple[list[dict[str, Any]], int]:
    """Incidents of a region's level (ms per second of the night), and its spikes.

    An incident is a run of the level over the objective (over half of the samples
    bad) lasting `MIN_INCIDENT_S` or more. A shorter run is a spike: an alert on it is
    false, unless the region around it is degraded anyway. Degraded is where the
    level stays over `DEGRADED_MS` (about 30% of samples bad) for `TOLERATED_S` or
    more, or where the expected bad share over the last 12 minutes is 20% or more
    (what the 12-minute burn rate warns on): there an alert is fair but not demanded
    (`required: false`), and the start of a degradation that grows into an incident
    is the incident's onset (an alert from then on is early, not false)."""
    found: list[dict[str, Any]] = []
    spikes = 0
    for first, last in _runs(level > SLO_MS):
        if last - first + 1 < MIN_INCIDENT_S:
            spikes += 1
            continue
        onset = first
        while onset > 0 and level[onset - 1] > DEGRADED_MS:
            onset -= 1
        found.append({"start": _ms(first), "end": _ms(last), "onset": _ms(onset)})
    bad = 1 - _normal_cdf(np.log(SLO_MS / level) / SAMPLE_SIGMA)
    recent = np.convolve(bad, np.ones(720) / 720)[: len(bad)]
    degraded = recent >= 0.2
    for first, last in _runs(level > DEGRADED_MS):
        if last - first + 1 >= TOLERATED_S:
            degraded[first : last + 1] = True
    for first, last in _runs(degraded):
        found.append({"start": _ms(first), "end": _ms(last), "required": False})
    return found, spikes


def _normal_cdf(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from math import erf, sqrt

    return np.vectorize(lambda v: 0.5 * (1 + erf(v / sqrt(2))))(x)  # type: ignore[no-any-return]


def _ms(second: int) -> int:
    return START_MS + second * 1000


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
