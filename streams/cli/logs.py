"""`livewatch replay | record | backtest | simulate`: recorded event logs.

Each command imports what it runs when it runs, so that `livewatch --help` and
every other command start without loading the engine or the Kafka clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from typing import Any

import msgspec

from detectors.alerts import Transition
from streams.cli.options import Commands, progress, settings_args, settings_from
from streams.logs.files import EventLogError, Skips, read_chunks
from streams.settings import load_settings, with_assignments


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    from streams.logs.simulate import SCENARIOS

    replay = commands.add_parser("replay", help="produce a recorded event log into Kafka")
    replay.add_argument("file", help="event log (.jsonl or .jsonl.gz)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="event-time speed-up (default 1)")
    pace.add_argument("--max-speed", action="store_true", help="produce as fast as possible")
    replay.add_argument(
        "--rebase-time", action="store_true", help="re-stamp event times to start now"
    )
    settings_args(replay)
    replay.set_defaults(func=run_replay)

    recorder = commands.add_parser("record", help="consume the live topics into an event log")
    recorder.add_argument("--out", required=True, help="event log to write (.jsonl or .jsonl.gz)")
    stop = recorder.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    stop.add_argument("--until-idle", type=float, help="stop after this many seconds of quiet")
    recorder.add_argument(
        "--from-beginning", action="store_true", help="start at the topics' oldest events"
    )
    settings_args(recorder)
    recorder.set_defaults(func=run_record)

    _register_backtest(commands)

    simulate = commands.add_parser("simulate", help="generate a scenario event log with labels")
    simulate.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default="mixed", help="the night (default mixed)"
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--out", required=True, help="event log to write (.jsonl or .jsonl.gz)")
    simulate.add_argument("--labels-out", help="write the injected incidents here (JSON)")
    simulate.set_defaults(func=run_simulate)


def _register_backtest(commands: Commands[argparse.ArgumentParser]) -> None:
    backtest = commands.add_parser(
        "backtest", help="run metrics and detectors over an event log, without Kafka"
    )
    backtest.add_argument("file", help="event log (.jsonl or .jsonl.gz)")
    backtest.add_argument("--alerts-out", help="write alert transitions here (JSON Lines)")
    backtest.add_argument(
        "--actions-out",
        help="write actions here, as the worker sends them to live.actions: mute "
        "suggestions and recall candidates (JSON Lines)",
    )
    backtest.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config file (env LIVEWATCH_CONFIG)"
    )
    backtest.add_argument(
        "--partitions", type=int, help="partitions to group rooms into, as the worker's topics"
    )
    backtest.add_argument("--labels", help="labels JSON (from simulate): print recall and delays")
    backtest.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. detectors.cliff.drop_warning=0.3 (repeatable)",
    )
    backtest.add_argument("--metrics-out", help="write per-room metric snapshots (JSON Lines)")
    backtest.add_argument(
        "--metrics-every", type=int, default=60, help="snapshot every N s of event time (60)"
    )
    backtest.add_argument("--report", help="write an HTML report with charts per room")
    backtest.add_argument(
        "--jobs",
        type=int,
        help="processes sharing the partitions (default: two per core for big logs)",
    )
    backtest.set_defaults(func=run_backtest)


def run_replay(args: argparse.Namespace) -> int:
    from streams.logs.replay import replay

    settings = settings_from(args)
    speed = None if args.max_speed else args.speed
    rebase = int(time.time() * 1000) if args.rebase_time else None
    lines = sum(len(chunk.lines) for chunk in read_chunks(args.file))
    with progress("replay", "events", lines) as advance:
        stats = asyncio.run(
            replay(
                args.file,
                settings,
                speed=speed,
                rebase_to_ms=rebase,
                on_progress=lambda done: advance(
                    done.produced + done.skipped, done.produced + done.skipped
                ),
            )
        )
    _show_skips(stats)
    print(
        f"replayed {stats.produced} events, skipped {stats.skipped} unroutable lines"
        + stats.by_reason()
    )
    return 0


def _show_skips(skips: Skips) -> None:
    for shown in skips.shown:
        print(shown, file=sys.stderr)
    if skips.skipped > len(skips.shown):
        print(f"... and {skips.skipped - len(skips.shown)} more skipped", file=sys.stderr)


def run_backtest(args: argparse.Namespace) -> int:
    from streams.logs import backtest
    from streams.logs.files import estimated_lines
    from streams.logs.report import REPORT_EVERY_S

    settings = load_settings(args.config, overrides={"partitions": args.partitions})
    settings = with_assignments(settings, args.set or [])
    incidents = _read_labels(args.labels) if args.labels else None
    wanted = [args.metrics_every if args.metrics_out else 0, REPORT_EVERY_S if args.report else 0]
    every = math.gcd(*wanted) or None
    jobs = args.jobs or default_jobs(estimated_lines(args.file), settings.partitions)
    with progress("backtest", "lines", os.path.getsize(args.file)) as advance:
        result = backtest.run_backtest(
            args.file, settings, snapshot_every_s=every, on_progress=advance, jobs=jobs
        )
    _write_outputs(args, result.transitions, result.snapshots, result.actions)
    assert result.pipeline is not None
    pipeline = result.pipeline
    reasons = ", ".join(f"{n} {reason}" for reason, n in pipeline.invalid_total.most_common())
    summary = [
        f"{result.lines} lines: {sum(pipeline.events_total.values())} events, "
        f"{sum(pipeline.invalid_total.values())} invalid{f' ({reasons})' if reasons else ''}, "
        f"{pipeline.late_total} late"
        + (f", {pipeline.evicted_total} rooms evicted" if pipeline.evicted_total else "")
    ]
    if incidents is not None:
        summary += _score_lines(incidents, result.transitions)
    print("\n".join(summary))
    for transition in result.transitions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(transition.ts / 1000))
        where = transition.room_id + (f" [{transition.region}]" if transition.region else "")
        print(
            f"{when} {transition.state:8} {transition.severity:8} {transition.alert:14} "
            f"{where}: {transition.summary}"
        )
    if args.report:
        latency_slo_ms = settings.latency_slo_ms
        _write_report(
            args, result.snapshots, result.transitions, latency_slo_ms, incidents, summary
        )
    return 0


def _write_outputs(
    args: argparse.Namespace,
    transitions: list[Transition],
    snapshots: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> None:
    from streams.logs.backtest import write_actions, write_alerts

    if args.alerts_out:
        with open(args.alerts_out, "wb") as out:
            write_alerts(transitions, out)
    if args.actions_out:
        with open(args.actions_out, "wb") as out:
            write_actions(actions, out)
    if args.metrics_out:
        with open(args.metrics_out, "wb") as out:
            encoder = msgspec.json.Encoder()
            for snapshot in _every(snapshots, args.metrics_every):
                out.write(encoder.encode(snapshot) + b"\n")


def _write_report(
    args: argparse.Namespace,
    snapshots: list[dict[str, Any]],
    transitions: list[Transition],
    latency_slo_ms: float,
    incidents: list[dict[str, Any]] | None,
    summary: list[str],
) -> None:
    from streams.logs.report import REPORT_EVERY_S, write_report

    write_report(
        args.report,
        title=f"livewatch backtest of {os.path.basename(args.file)}",
        snapshots=_every(snapshots, REPORT_EVERY_S),
        transitions=transitions,
        latency_slo_ms=latency_slo_ms,
        incidents=incidents,
        summary_lines=summary,
    )
    print(f"report written to {args.report}")


def _every(snapshots: list[dict[str, Any]], seconds: int) -> list[dict[str, Any]]:
    return [s for s in snapshots if s["ts"] % (seconds * 1000) == 0]


def default_jobs(lines: int, partitions: int) -> int:
    """Two lanes a core for big logs, so that the OS evens out partitions of unequal
    size; small logs are not worth starting processes for."""
    if lines < 100_000:
        return 1
    return max(1, min(2 * len(os.sched_getaffinity(0)), partitions))


def _read_labels(labels_path: str) -> list[dict[str, Any]]:
    from streams.logs.scoring import read_labels

    try:
        return read_labels(labels_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EventLogError(f"cannot read labels {labels_path}: {exc}") from None


def _score_lines(incidents: list[dict[str, Any]], transitions: list[Transition]) -> list[str]:
    from streams.logs.scoring import score

    lines = [
        f"{'alert':14} {'incidents':>9} {'recall':>7} {'precision':>9} {'delay s med/max':>16}"
    ]
    for alert, entry in sorted(score(transitions, incidents).items()):
        delays = sorted(entry.delays_s)
        delay = f"{delays[len(delays) // 2]:.0f}/{delays[-1]:.0f}" if delays else "-"
        recall = "-" if entry.recall is None else f"{entry.recall:.2f}"
        precision = "-" if entry.precision is None else f"{entry.precision:.2f}"
        lines.append(f"{alert:14} {entry.incidents:>9} {recall:>7} {precision:>9} {delay:>16}")
    return lines


def run_record(args: argparse.Namespace) -> int:
    from streams.logs.record import record

    settings = settings_from(args)
    stats = asyncio.run(
        record(
            args.out,
            settings,
            duration_s=args.duration,
            until_idle_s=args.until_idle,
            from_beginning=args.from_beginning,
        )
    )
    _show_skips(stats)
    print(
        f"{args.out}: recorded {stats.lines} events, skipped {stats.skipped} messages"
        + stats.by_reason()
    )
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from streams.logs.simulate import SCENARIOS, generate, labels, write_log

    scenario = SCENARIOS[args.scenario]
    count = write_log(generate(scenario, args.seed), args.out)
    print(f"{args.out}: {count} lines of scenario {scenario.name} (seed {args.seed})")
    if args.labels_out:
        with open(args.labels_out, "w", encoding="utf-8") as handle:
            json.dump({"scenario": scenario.name, "seed": args.seed, "incidents": labels(scenario)},
                      handle, indent=1)  # fmt: skip
    return 0
