"""Precision, recall and detection delay of the detectors on labelled synthetic nights.

    python -m benchmarks.detector_quality [SEED ...]

Each night (tests/fixtures/nights.py) holds an outage, a feed cut, a bot flood,
a regional latency incident and a stall storm in their own rooms, plus a
promotion with its ebb and a hype burst, and a small room: rooms without an
incident must stay quiet. An alert is a true positive when its room has an
incident of its type and it fires at or after the incident's start.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from streams.backtest import run_backtest
from streams.settings import load_settings
from tests.fixtures.nights import promo_night, simulate, write


def main(seeds: list[int]) -> None:
    hits: dict[str, list[float]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    false: dict[str, int] = defaultdict(int)
    events = 0
    elapsed = 0.0
    with tempfile.TemporaryDirectory() as directory:
        for seed in seeds:
            rooms, incidents = promo_night()
            night = simulate(rooms, 1500, seed=seed)
            events += len(night)
            log = write(night, Path(directory) / f"night-{seed}.jsonl")
            started = time.perf_counter()
            result = run_backtest(log, load_settings(environ={}))
            elapsed += time.perf_counter() - started
            firing = [t for t in result.transitions if t.state == "firing"]
            for room, (alert, start) in incidents.items():
                matching = [t.ts for t in firing if t.room_id == room and t.alert == alert]
                matching = [ts for ts in matching if ts >= start]
                if matching:
                    hits[alert].append((min(matching) - start) / 1000)
                else:
                    missed[alert] += 1
            for t in firing:
                if incidents.get(t.room_id, ("", 0))[0] != t.alert:
                    false[t.alert] += 1
    print(f"{len(seeds)} nights, {events:,} events, backtest {events / elapsed:,.0f} events/s")
    delay_header = "delay s (median/max)"
    print(f"{'detector':14} {'incidents':>9} {'recall':>7} {'precision':>9} {delay_header:>21}")
    for alert in sorted(set(hits) | set(missed) | set(false)):
        found = len(hits[alert])
        incidents_total = found + missed[alert]
        recall = found / incidents_total if incidents_total else float("nan")
        firing_total = found + false[alert]
        precision = found / firing_total if firing_total else float("nan")
        delays = hits[alert]
        delay = f"{statistics.median(delays):.0f} / {max(delays):.0f}" if delays else "-"
        print(f"{alert:14} {incidents_total:>9} {recall:>7.2f} {precision:>9.2f} {delay:>21}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [7, 11, 23, 31, 47])
