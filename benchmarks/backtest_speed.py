"""Backtest speed on simulated nights, next to reading and decoding the same log.

For each scenario (default: mixed and promo-night, seed 1) the log is written
once; then (1) the baseline reads and decodes every line (eventlog.read_chunks +
decode.decode_log_lines, what any driver must do), (2) `run_backtest` runs in
one process and (3) with one job per core. Printed figures are lines/s and the
ratio to the baseline measured in the same run.
Run: .venv/bin/python benchmarks/backtest_speed.py [SCENARIO ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streams.backtest import run_backtest
from streams.decode import decode_log_lines
from streams.eventlog import read_chunks
from streams.settings import load_settings
from streams.simulate import SCENARIOS, generate, write_log


def _timed(run: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - started


def _decode_only(log: Path) -> None:
    for first, lines, _ in read_chunks(log):
        decode_log_lines(lines, range(first, first + len(lines)), str(log))


def main(names: list[str]) -> None:
    settings = load_settings(environ={})
    cores = min(len(os.sched_getaffinity(0)), settings.partitions)
    print(f"{'scenario':12} {'lines':>10} {'decode only':>12} {'1 job':>16} {f'{cores} jobs':>16}")
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            log = Path(directory) / f"{name}.jsonl.gz"
            lines = write_log(generate(SCENARIOS[name], 1), log)
            base = lines / _timed(_decode_only, log)
            one = lines / _timed(run_backtest, log, settings)
            many = lines / _timed(run_backtest, log, settings, jobs=cores)
            print(
                f"{name:12} {lines:>10,} {base:>10,.0f}/s {one:>9,.0f}/s {one / base:4.2f}x "
                f"{many:>9,.0f}/s {many / base:4.2f}x"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["mixed", "promo-night"])
