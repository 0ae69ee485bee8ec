"""Backtest speed on simulated nights, next to reading and decoding the same log.

For each scenario (default: mixed, promo-night and cliff, seed 1) the log is
written once; then (1) the baseline reads and decodes every line
(files.read_chunks + decode.decode_log_lines, what any driver must do),
(2) `run_backtest` runs in one process, (3) with the lanes `livewatch backtest`
starts by default (two per core, at most one per partition) and (4) the command
itself runs, start-up included. Printed figures are lines/s and the ratio to
the baseline measured in the same run.
Run: .venv/bin/python -m benchmarks.backtest_speed [SCENARIO ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streams.cli.logs import default_jobs
from streams.core.decode import decode_log_lines
from streams.logs.backtest import run_backtest
from streams.logs.files import read_chunks
from streams.logs.simulate import SCENARIOS, generate, write_log
from streams.settings import load_settings


def _timed(run: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - started


def _decode_only(log: Path) -> None:
    for first, lines, _ in read_chunks(log):
        decode_log_lines(lines, range(first, first + len(lines)), str(log))


def _command(log: Path) -> None:
    command = [sys.executable, "-m", "streams.cli.main", "backtest", str(log)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main(names: list[str]) -> None:
    settings = load_settings(environ={})
    lanes = default_jobs(1 << 30, settings.partitions)
    print(
        f"{'scenario':12} {'lines':>10} {'decode only':>12} {'1 process':>16} "
        f"{f'{lanes} lanes':>16} {'command':>16}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            log = Path(directory) / f"{name}.jsonl.gz"
            lines = write_log(generate(SCENARIOS[name], 1), log)
            base = lines / _timed(_decode_only, log)
            figures = [
                lines / _timed(run_backtest, log, settings),
                lines / _timed(run_backtest, log, settings, jobs=lanes),
                lines / _timed(_command, log),
            ]
            print(
                f"{name:12} {lines:>10,} {base:>10,.0f}/s "
                + " ".join(f"{f:>9,.0f}/s {f / base:4.2f}x" for f in figures)
            )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main(sys.argv[1:] or ["mixed", "promo-night", "cliff"])
