"""Precision, recall and detection delay of the detectors on simulated nights.

    python -m benchmarks.detector_quality [SEED ...]

Runs every `livewatch simulate` scenario for each seed through the backtest and
scores the alerts against the scenario's labels (streams.logs.scoring.score):
promo-night must stay quiet; cliff, spam, latency and mixed hold incidents.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

from streams.logs.backtest import run_backtest
from streams.logs.scoring import Score, score
from streams.logs.simulate import SCENARIOS, generate, labels, write_log
from streams.settings import load_settings


def main(seeds: list[int]) -> None:
    import tempfile
    from pathlib import Path

    totals: dict[str, Score] = defaultdict(Score)
    events, elapsed = 0, 0.0
    with tempfile.TemporaryDirectory() as directory:
        for name, scenario in SCENARIOS.items():
            for seed in seeds:
                log = Path(directory) / f"{name}-{seed}.jsonl"
                events += write_log(generate(scenario, seed), log)
                started = time.perf_counter()
                result = run_backtest(log, load_settings(environ={}))
                elapsed += time.perf_counter() - started
                for alert, entry in score(result.transitions, labels(scenario)).items():
                    total = totals[alert]
                    total.incidents += entry.incidents
                    total.detected += entry.detected
                    total.alerts += entry.alerts
                    total.false_alerts += entry.false_alerts
                    total.delays_s += entry.delays_s
                    if entry.false_alerts:
                        print(f"  false {alert} alert(s) in {name} seed {seed}")
    print(
        f"{len(SCENARIOS)} scenarios x {len(seeds)} seeds, {events:,} lines, "
        f"backtest {events / elapsed:,.0f} lines/s"
    )
    delay_header = "delay s (median/max)"
    print(f"{'detector':14} {'incidents':>9} {'recall':>7} {'precision':>9} {delay_header:>21}")
    for alert, entry in sorted(totals.items()):
        delays = sorted(entry.delays_s)
        delay = f"{delays[len(delays) // 2]:.0f} / {delays[-1]:.0f}" if delays else "-"
        recall = "-" if entry.recall is None else f"{entry.recall:.2f}"
        precision = "-" if entry.precision is None else f"{entry.precision:.2f}"
        print(f"{alert:14} {entry.incidents:>9} {recall:>7} {precision:>9} {delay:>21}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 2, 3])
