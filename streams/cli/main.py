"""The `livewatch` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aiokafka.errors import KafkaConnectionError

from streams.dev.broker import KafkaError
from streams.kafka.topics import TopicLayoutError
from streams.logs.files import EventLogError
from streams.settings import Settings, SettingsError, load_settings


def _settings_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override config file and LIVEWATCH_* env)")
    group.add_argument("--config", help="TOML config file (env LIVEWATCH_CONFIG)")
    group.add_argument("--bootstrap", dest="bootstrap_servers", help="Kafka bootstrap servers")
    group.add_argument("--topic-prefix", dest="topic_prefix", help="prefix for every topic name")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        "bootstrap_servers": args.bootstrap_servers,
        "topic_prefix": args.topic_prefix,
        **extra,
    }
    return load_settings(args.config, overrides=overrides)


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.kafka.topics import ensure_topics
    from streams.worker.app import Worker

    settings = _settings(
        args,
        metrics_port=args.metrics_port,
        log_level=args.log_level,
        state_dir=args.state_dir,
    )
    partitions = asyncio.run(ensure_topics(settings))
    worker = Worker(settings, partitions)
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_kafka_fetch(args: argparse.Namespace) -> int:
    from streams.dev.broker import fetch_jars

    print(fetch_jars())
    return 0


def cmd_kafka_start(args: argparse.Namespace) -> int:
    from streams.dev.broker import LocalKafka

    with LocalKafka(port=args.port, partitions=args.partitions, heap_mb=args.heap_mb) as kafka:
        print(
            f"Kafka {kafka.bootstrap} is up (logs: {kafka.log_path}); Ctrl-C stops it", flush=True
        )
        _wait_for_signal()
    return 0


def _wait_for_signal() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    signal.pause()


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.kafka.topics import ensure_topics

    settings = _settings(args)
    partitions = asyncio.run(ensure_topics(settings))
    print(
        f"topics ready, {partitions} partitions each: {', '.join(settings.source_topics.values())}"
    )
    return 0


@contextmanager
def _progress(label: str, unit: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar with rate and ETA; yields `advance(done, items)`: `done`
    of `total` (a bar in bytes of a file, say) and the `unit`s handled so far."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.fields[items]:,} " + unit + ", {task.fields[rate]:,.0f}/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(label, total=total, rate=0.0, items=0)

        def advance(done: int, items: int) -> None:
            rate = items / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, rate=rate, items=items)

        yield advance


def _count_lines(path: str) -> int:
    from streams.logs.files import read_chunks

    return sum(len(chunk.lines) for chunk in read_chunks(path))


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.logs.replay import replay

    settings = _settings(args)
    speed = None if args.max_speed else args.speed
    rebase = int(time.time() * 1000) if args.rebase_time else None
    with _progress("replay", "events", _count_lines(args.file)) as advance:
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
    print(f"replayed {stats.produced} events, skipped {stats.skipped} unroutable lines")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import math

    import msgspec

    from streams.logs.backtest import run_backtest, write_alerts
    from streams.logs.files import estimated_lines
    from streams.logs.report import REPORT_EVERY_S, write_report
    from streams.settings import with_assignments

    settings = load_settings(args.config, overrides={"partitions": args.partitions})
    settings = with_assignments(settings, args.set or [])
    incidents = _read_labels(args.labels) if args.labels else None
    wanted = [args.metrics_every if args.metrics_out else 0, REPORT_EVERY_S if args.report else 0]
    every = math.gcd(*wanted) or None
    jobs = args.jobs or _default_jobs(estimated_lines(args.file), settings.partitions)
    with _progress("backtest", "lines", os.path.getsize(args.file)) as advance:
        result = run_backtest(
            args.file, settings, snapshot_every_s=every, on_progress=advance, jobs=jobs
        )
    if args.alerts_out:
        with open(args.alerts_out, "wb") as out:
            write_alerts(result.transitions, out)
    if args.metrics_out:
        with open(args.metrics_out, "wb") as out:
            encoder = msgspec.json.Encoder()
            for snapshot in _every(result.snapshots, args.metrics_every):
                out.write(encoder.encode(snapshot) + b"\n")
    assert result.pipeline is not None
    pipeline = result.pipeline
    summary = [
        f"{result.lines} lines: {sum(pipeline.events_total.values())} events, "
        f"{sum(pipeline.invalid_total.values())} invalid, {pipeline.late_total} late"
    ]
    print(summary[0])
    if incidents is not None:
        summary += _score_lines(incidents, result.transitions)
        print("\n".join(summary[1:]))
    for transition in result.transitions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(transition.ts / 1000))
        where = transition.room_id + (f" [{transition.region}]" if transition.region else "")
        print(
            f"{when} {transition.state:8} {transition.severity:8} {transition.alert:14} "
            f"{where}: {transition.summary}"
        )
    if args.report:
        write_report(
            args.report,
            title=f"livewatch backtest of {os.path.basename(args.file)}",
            snapshots=_every(result.snapshots, REPORT_EVERY_S),
            transitions=result.transitions,
            latency_slo_ms=settings.engine_config().metrics.latency_slo_ms,
            incidents=incidents,
            summary_lines=summary,
        )
        print(f"report written to {args.report}")
    return 0


def _every(snapshots: list[dict[str, Any]], seconds: int) -> list[dict[str, Any]]:
    return [s for s in snapshots if s["ts"] % (seconds * 1000) == 0]


def _default_jobs(lines: int, partitions: int) -> int:
    """Two lanes a core for big logs, so that the OS evens out partitions of unequal
    size; small logs are not worth starting processes for."""
    if lines < 100_000:
        return 1
    return max(1, min(2 * len(os.sched_getaffinity(0)), partitions))


def _read_labels(labels_path: str) -> list[dict[str, Any]]:
    import json

    try:
        with open(labels_path, encoding="utf-8") as handle:
            incidents: list[dict[str, Any]] = json.load(handle)["incidents"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EventLogError(f"cannot read labels {labels_path}: {exc}") from None
    return incidents


def _score_lines(incidents: list[dict[str, Any]], transitions: list[Any]) -> list[str]:
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


def cmd_record(args: argparse.Namespace) -> int:
    from streams.logs.record import record

    settings = _settings(args)
    stats = asyncio.run(
        record(
            args.out,
            settings,
            duration_s=args.duration,
            until_idle_s=args.until_idle,
            from_beginning=args.from_beginning,
        )
    )
    print(f"{args.out}: recorded {stats.lines} events, skipped {stats.skipped} messages")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from streams.notify.config import NotifyConfig
    from streams.notify.service import run_notifier
    from streams.settings import with_assignments

    settings = with_assignments(_settings(args), args.set or [])
    logging.getLogger().setLevel(settings.log_level.upper())
    config = NotifyConfig.from_table(settings.notify)
    registry = CollectorRegistry()
    if settings.notifier_metrics_port:
        start_http_server(settings.notifier_metrics_port, registry=registry)

    async def notify() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_notifier(settings, config, stop=stop, registry=registry)

    asyncio.run(notify())
    return 0


def cmd_silence(args: argparse.Namespace) -> int:
    from streams.notify.config import NotifyConfig
    from streams.notify.silences import SilenceStore

    settings = _settings(args)
    store = SilenceStore(NotifyConfig.from_table(settings.notify).silences_file)
    now_ms = int(time.time() * 1000)
    if args.action == "add":
        silence = store.add(
            alert=args.alert,
            room=args.room,
            region=args.region,
            duration_s=_duration_s(args.duration),
            created_by=args.by or os.environ.get("USER", ""),
            comment=args.comment or "",
        )
        print(f"silence {silence.id} until {_utc(silence.ends_at)}")
    elif args.action == "expire":
        if not store.expire(args.id):
            print(f"no silence {args.id}", file=sys.stderr)
            return 1
        print(f"silence {args.id} expired")
    else:
        for s in store.load():
            state = "active" if s.active(now_ms) else "expired"
            print(
                f"{s.id} {state:7} alert={s.alert} room={s.room} region={s.region} "
                f"until {_utc(s.ends_at)} by {s.created_by or '-'}: {s.comment}"
            )
    return 0


def _duration_s(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1d` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise SettingsError(f"not a duration: {text!r} (e.g. 90s, 30m, 2h)") from None


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from streams.logs.simulate import SCENARIOS, generate, labels, write_log

    scenario = SCENARIOS[args.scenario]
    count = write_log(generate(scenario, args.seed), args.out)
    print(f"{args.out}: {count} lines of scenario {scenario.name} (seed {args.seed})")
    if args.labels_out:
        with open(args.labels_out, "w", encoding="utf-8") as handle:
            json.dump({"scenario": scenario.name, "seed": args.seed, "incidents": labels(scenario)},
                      handle, indent=1)  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.dev.demo import run_demo

    return run_demo(speed=args.speed, metrics_port=args.metrics_port, report=args.report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livewatch", description="Real-time monitoring of live-commerce rooms."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a stream-processing worker")
    _settings_args(worker)
    worker.add_argument("--metrics-port", type=int, help="port serving /metrics")
    worker.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    worker.add_argument("--state-dir", help="directory for local state")
    worker.set_defaults(func=cmd_worker)

    kafka = commands.add_parser("kafka", help="a local single-node Kafka for tests and demos")
    kafka_commands = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    fetch = kafka_commands.add_parser("fetch", help="download the broker jars (cached)")
    fetch.set_defaults(func=cmd_kafka_fetch)
    start = kafka_commands.add_parser("start", help="run a broker in the foreground")
    start.add_argument("--port", type=int, default=9092, help="listener port (default 9092)")
    start.add_argument("--partitions", type=int, default=4, help="default partitions")
    start.add_argument("--heap-mb", type=int, default=512, help="JVM heap (default 512)")
    start.set_defaults(func=cmd_kafka_start)

    topics = commands.add_parser("topics", help="manage livewatch's topics")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topics_commands.add_parser(
        "create", help="create missing topics, check co-partitioning"
    )
    _settings_args(create)
    create.set_defaults(func=cmd_topics_create)

    replay = commands.add_parser("replay", help="produce a recorded event log into Kafka")
    replay.add_argument("file", help="event log (.jsonl or .jsonl.gz)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="event-time speed-up (default 1)")
    pace.add_argument("--max-speed", action="store_true", help="produce as fast as possible")
    replay.add_argument(
        "--rebase-time", action="store_true", help="re-stamp event times to start now"
    )
    _settings_args(replay)
    replay.set_defaults(func=cmd_replay)

    backtest = commands.add_parser(
        "backtest", help="run metrics and detectors over an event log, without Kafka"
    )
    backtest.add_argument("file", help="event log (.jsonl or .jsonl.gz)")
    backtest.add_argument("--alerts-out", help="write alert transitions here (JSON Lines)")
    backtest.add_argument("--config", help="TOML config file (env LIVEWATCH_CONFIG)")
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
    backtest.set_defaults(func=cmd_backtest)

    recorder = commands.add_parser("record", help="consume the live topics into an event log")
    recorder.add_argument("--out", required=True, help="event log to write (.jsonl or .jsonl.gz)")
    stop = recorder.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    stop.add_argument("--until-idle", type=float, help="stop after this many seconds of quiet")
    recorder.add_argument(
        "--from-beginning", action="store_true", help="start at the topics' oldest events"
    )
    _settings_args(recorder)
    recorder.set_defaults(func=cmd_record)

    notify = commands.add_parser("notify", help="deliver alert transitions to chat webhooks")
    notify.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a setting, e.g. notify.group_wait_s=0 (repeatable)",
    )  # fmt: skip
    _settings_args(notify)
    notify.set_defaults(func=cmd_notify)

    silence = commands.add_parser("silence", help="manage notification silences")
    silence_actions = silence.add_subparsers(dest="action", required=True)
    add = silence_actions.add_parser("add", help="silence matching alerts for a while")
    add.add_argument("--alert", default="*", help="alert type glob (default *)")
    add.add_argument("--room", default="*", help="room id glob (default *)")
    add.add_argument("--region", default="*", help="region glob (default *)")
    add.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h")
    add.add_argument("--by", help="who (default $USER)")
    add.add_argument("--comment", help="why")
    expire = silence_actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    listing = silence_actions.add_parser("list", help="list silences")
    for sub in (silence, add, expire, listing):
        _settings_args(sub)
    silence.set_defaults(func=cmd_silence)

    from streams.logs.simulate import SCENARIOS

    simulate = commands.add_parser("simulate", help="generate a scenario event log with labels")
    simulate.add_argument("--scenario", choices=sorted(SCENARIOS), default="mixed")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--out", required=True, help="event log to write (.jsonl or .jsonl.gz)")
    simulate.add_argument("--labels-out", help="write the injected incidents here (JSON)")
    simulate.set_defaults(func=cmd_simulate)

    demo = commands.add_parser("demo", help="local broker + worker + a replayed sample night")
    demo.add_argument("--speed", type=float, default=10.0, help="replay speed-up (default 10)")
    demo.add_argument("--metrics-port", type=int, default=9464, help="port serving /metrics")
    demo.add_argument(
        "--report", default="livewatch-demo-report.html", help="where to write the HTML report"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result: int = args.func(args)
        return result
    except (SettingsError, EventLogError, KafkaError, TopicLayoutError) as exc:
        print(f"livewatch: error: {exc}", file=sys.stderr)
        return 2
    except KafkaConnectionError as exc:
        print(f"livewatch: error: cannot reach Kafka: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
