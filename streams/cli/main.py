"""The `livewatch` command line: one module per command group, errors reported here.

Failures the user can fix (settings, logs, the broker, the topics' layout) end
with one line on stderr instead of a traceback, and exit 1; 2 is argparse's,
for usage errors. Results go to stdout, progress and logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version

from aiokafka.errors import KafkaConnectionError

from streams.cli import dev, logs, notify, settings, worker
from streams.cli.options import settings_args
from streams.core.runtime import tune_gc
from streams.dev.broker import KafkaError
from streams.kafka.topics import TopicLayoutError
from streams.logs.files import EventLogError
from streams.settings import SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livewatch", description="Real-time monitoring of live-commerce rooms."
    )
    parser.add_argument("--version", action="version", version=f"livewatch {version('livewatch')}")
    settings_args(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (worker, dev, logs, notify, settings):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result: int = args.func(args)
        return result
    except (SettingsError, EventLogError, KafkaError, TopicLayoutError) as exc:
        print(f"livewatch: error: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectionError as exc:
        print(f"livewatch: error: cannot reach Kafka: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
