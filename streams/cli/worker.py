"""`livewatch worker` and `livewatch topics`: the stream processor and its topics.

Each command imports what it runs when it runs, so that `livewatch --help` and
every other command start without loading Faust.
"""

from __future__ import annotations

import argparse
import asyncio

from streams.cli.options import Commands, settings_args, settings_from


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser("worker", help="run a stream-processing worker")
    settings_args(worker)
    worker.add_argument("--metrics-port", type=int, help="port serving /metrics")
    worker.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    worker.add_argument("--state-dir", help="directory for local state")
    worker.set_defaults(func=run_worker)

    topics = commands.add_parser("topics", help="manage livewatch's topics")
    actions = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create missing topics, check co-partitioning")
    settings_args(create)
    create.set_defaults(func=create_topics)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.kafka.topics import ensure_topics
    from streams.worker.app import Worker

    settings = settings_from(
        args, metrics_port=args.metrics_port, log_level=args.log_level, state_dir=args.state_dir
    )
    partitions = asyncio.run(ensure_topics(settings))
    worker = Worker(settings, partitions)
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def create_topics(args: argparse.Namespace) -> int:
    from streams.kafka.topics import ensure_topics

    settings = settings_from(args)
    partitions = asyncio.run(ensure_topics(settings))
    topics = ", ".join(settings.source_topics.values())
    print(f"topics ready, {partitions} partitions each: {topics}")
    return 0
