"""`livewatch kafka` and `livewatch demo`: the local development broker and the demo."""

from __future__ import annotations

import argparse
import signal

from streams.cli.options import Commands


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    kafka = commands.add_parser("kafka", help="a local single-node Kafka for tests and demos")
    actions = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download the broker jars (cached)")
    fetch.set_defaults(func=fetch_broker)
    start = actions.add_parser("start", help="run a broker in the foreground")
    start.add_argument("--port", type=int, default=9092, help="listener port (default 9092)")
    start.add_argument("--partitions", type=int, default=4, help="default partitions")
    start.add_argument("--heap-mb", type=int, default=512, help="JVM heap (default 512)")
    start.set_defaults(func=start_broker)

    demo = commands.add_parser("demo", help="local broker + worker + a replayed sample night")
    demo.add_argument("--speed", type=float, default=10.0, help="replay speed-up (default 10)")
    demo.add_argument("--metrics-port", type=int, default=9464, help="port serving /metrics")
    demo.add_argument(
        "--report", default="livewatch-demo-report.html", help="where to write the HTML report"
    )
    demo.set_defaults(func=run_demo)


def fetch_broker(args: argparse.Namespace) -> int:
    from streams.dev.broker import fetch_jars

    print(fetch_jars())
    return 0


def start_broker(args: argparse.Namespace) -> int:
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


def run_demo(args: argparse.Namespace) -> int:
    from streams.dev.demo import run_demo

    return run_demo(speed=args.speed, metrics_port=args.metrics_port, report=args.report)
