"""Precision, recall and detection delay of the detectors, per source of nights.

    python -m benchmarks.detector_quality [--data DIR] [--split tune|report|all]
                                          [--sources NAME,...] [--seeds N,...]

Sources (each night goes through the backtest and its alerts are scored against the
night's labels by streams.logs.scoring.score, as `livewatch backtest --labels` does):

- `simulate`: every `livewatch simulate` scenario (the project's own nights);
- `nights`: benchmarks/nights.py, a generator written from a different description
  by someone who had not seen `simulate` or the detectors;
- `chat-bilibili`, `chat-twitch`: real public chat captures with injected floods
  (benchmarks/independent/chat.py), read from `DIR` (default $LIVEWATCH_DATA);
- `rtt-atlas`, `rtt-starlink`: real RIPE Atlas RTT traces (50 probes over three
  months, 25 Starlink probes over a day) as regional latency levels
  (benchmarks/independent/rtt.py), from `DIR` too.

Third-party data is never in the repository; a source whose data is missing is
skipped with a note. Detectors were tuned on the `tune` split only (the first seed
of each source, the RIPE Atlas traces before 2016-11-27); `report` is everything
else (the Twitch capture and the Starlink day entirely).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.independent.common import labels_path, write_labels
from streams.logs.backtest import run_backtest
from streams.logs.scoring import Score, read_labels, score
from streams.settings import load_settings

BILIBILI = "bilibili-live-lsf/raw/data/OutPut/11365/type3.csv"
TWITCH = "twitch-admiralbulldog/admiralbulldog_4_30.formatted.csv"
ATLAS = "ripe-atlas-rtt-shao/dataset/real_trace_labelled"
STARLINK = "starlink-atlas-hgreenstein/output.json"

Night = tuple[str, Callable[[Path], int]]
"""A night's name and the function writing its log (labels beside it): lines written."""


@dataclass
class Source:
    name: str
    nights: Callable[[Path, str], Iterator[Night]]
    """The nights of a split, given the data directory."""
    needs: str = ""
    """The path under the data directory the source reads, if any."""


def simulate_nights(_: Path, split: str) -> Iterator[Night]:
    from streams.logs.simulate import SCENARIOS, generate, labels, write_log

    for seed in _generator_seeds(split):
        for name, scenario in SCENARIOS.items():

            def write(log: Path, scenario: Any = scenario, seed: int = seed) -> int:
                write_labels(log, labels(scenario))
                return write_log(generate(scenario, seed), log)

            yield f"{name}-{seed}", write


def generated_nights(_: Path, split: str) -> Iterator[Night]:
    from benchmarks import nights

    for seed in _generator_seeds(split):
        for name in nights.nights():

            def write(log: Path, name: str = name, seed: int = seed) -> int:
                return int(nights.write_night(name, seed, log, labels_path(log)))

            yield f"{name}-{seed}", write


def chat_nights(relative: str, english: bool, tune: list[int], report: list[int]) -> Any:
    def nights(data: Path, split: str) -> Iterator[Night]:
        from benchmarks.independent import chat, common

        read = chat.read_twitch if english else chat.read_bilibili
        messages = read(data / relative)
        for seed in _seeds(split, tune, report):
            room = "twitch-room" if english else "bilibili-room"

            def write(log: Path, seed: int = seed, room: str = room) -> int:
                events, incidents = chat.night(messages, seed, room, english)
                return common.write_night(events, incidents, log)

            yield f"{room}-{seed}", write

    return nights


def rtt_nights(data: Path, split: str) -> Iterator[Night]:
    """Tuned on the traces before 2016-11-27 (one probe's congested morning), reported
    on the later ones (two other probes' congested evenings and mornings)."""
    from benchmarks.independent import common, rtt

    paths = rtt.probes(data / ATLAS)
    middle = 1_480_204_800  # 2016-11-27 00:00 UTC
    for period, seeds in (
        ((0.0, middle), _seeds(split, tune=[1, 2, 3], report=[])),
        ((middle, 2e9), _seeds(split, tune=[], report=[4, 5, 6, 7, 8, 9])),
    ):
        for seed in seeds:

            def write(log: Path, seed: int = seed, period: tuple[float, float] = period) -> int:
                events, incidents, _ = rtt.night(rtt.within(paths, period), seed)
                return common.write_night(events, incidents, log)

            yield f"atlas-{seed}", write


def starlink_nights(data: Path, split: str) -> Iterator[Night]:
    """A day of 25 Starlink probes, 15 min apart, compressed 15x: a sample is a minute."""
    from benchmarks.independent import common, rtt

    series = rtt.read_atlas_results(data / STARLINK)
    for seed in _seeds(split, tune=[], report=[1, 2, 3]):

        def write(log: Path, seed: int = seed) -> int:
            events, incidents, _ = rtt.night(series, seed, compression=15)
            return common.write_night(events, incidents, log)

        yield f"starlink-{seed}", write


SOURCES = (
    Source("simulate", simulate_nights),
    Source("nights", generated_nights),
    Source("chat-bilibili", chat_nights(BILIBILI, False, tune=[1], report=[2, 3, 4]), BILIBILI),
    Source("chat-twitch", chat_nights(TWITCH, True, tune=[], report=[1, 2, 3]), TWITCH),
    Source("rtt-atlas", rtt_nights, ATLAS),
    Source("rtt-starlink", starlink_nights, STARLINK),
)


def _seeds(split: str, tune: list[int], report: list[int]) -> list[int]:
    return {"tune": tune, "report": report}.get(split, tune + report)


GENERATOR_SEEDS: list[int] = []
"""Seeds of the generated sources (`simulate`, `nights`) given by `--seeds`, in place of
the split's: nights nobody has looked at yet."""


def _generator_seeds(split: str) -> list[int]:
    return GENERATOR_SEEDS or _seeds(split, tune=[1], report=[2, 3])


def evaluate(source: Source, data: Path, split: str) -> tuple[dict[str, Score], int, float, int]:
    """Scores of one source's nights, lines, backtest seconds and accounts muted without
    a room alert (moderation actions)."""
    totals: dict[str, Score] = defaultdict(Score)
    lines, elapsed, muted = 0, 0.0, 0
    with tempfile.TemporaryDirectory() as directory:
        for name, write in source.nights(data, split):
            log = Path(directory) / f"{name}.jsonl"
            lines += write(log)
            started = time.perf_counter()
            result = run_backtest(log, load_settings(environ={}))
            elapsed += time.perf_counter() - started
            muted += sum(
                len(a["user_ids"])
                for a in result.actions
                if a["action"] == "mute" and a["fingerprint"] is None
            )
            for alert, entry in score(result.transitions, read_labels(labels_path(log))).items():
                total = totals[alert]
                total.incidents += entry.incidents
                total.detected += entry.detected
                total.alerts += entry.alerts
                total.false_alerts += entry.false_alerts
                total.delays_s += entry.delays_s
                if entry.false_alerts or entry.detected < entry.incidents:
                    print(
                        f"  {name}: {alert} missed {entry.incidents - entry.detected} of "
                        f"{entry.incidents}, {entry.false_alerts} false",
                        file=sys.stderr,
                    )
            log.unlink()
    return totals, lines, elapsed, muted


def table(rows: list[tuple[str, str, Score]]) -> list[str]:
    out = [
        f"{'source':14} {'detector':14} {'incidents':>9} {'detected':>8} {'recall':>7} "
        f"{'false':>5} {'precision':>9} {'delay s med/max':>16}"
    ]
    for source, alert, entry in rows:
        delays = sorted(entry.delays_s)
        delay = f"{delays[len(delays) // 2]:.0f} / {delays[-1]:.0f}" if delays else "-"
        recall = "-" if entry.recall is None else f"{entry.recall:.2f}"
        precision = "-" if entry.precision is None else f"{entry.precision:.2f}"
        out.append(
            f"{source:14} {alert:14} {entry.incidents:>9} {entry.detected:>8} {recall:>7} "
            f"{entry.false_alerts:>5} {precision:>9} {delay:>16}"
        )
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.detector_quality")
    parser.add_argument("--data", default=os.environ.get("LIVEWATCH_DATA", ""))
    parser.add_argument("--split", choices=["tune", "report", "all"], default="all")
    parser.add_argument("--sources", default=",".join(s.name for s in SOURCES))
    parser.add_argument(
        "--seeds", default="", help="seeds of simulate and nights instead of the split's"
    )
    args = parser.parse_args(argv)
    GENERATOR_SEEDS[:] = [int(seed) for seed in args.seeds.split(",") if seed]
    data = Path(args.data) if args.data else None
    rows: list[tuple[str, str, Score]] = []
    for source in SOURCES:
        if source.name not in args.sources.split(","):
            continue
        if source.needs and (data is None or not (data / source.needs).exists()):
            print(f"{source.name}: skipped, no {source.needs} under --data / $LIVEWATCH_DATA")
            continue
        totals, lines, elapsed, muted = evaluate(source, data or Path(), args.split)
        print(
            f"{source.name}: {lines:,} lines, backtest {lines / max(elapsed, 1e-9):,.0f} "
            f"lines/s, {muted} mute action(s) for accounts repeating below a flood"
        )
        rows += [(source.name, alert, entry) for alert, entry in sorted(totals.items())]
    print(f"split: {args.split}" + (f", generator seeds {args.seeds}" if args.seeds else ""))
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main(sys.argv[1:])
