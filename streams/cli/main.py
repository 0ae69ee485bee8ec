"""The `livewatch` command line: one module per command group, errors reported here.

Failures the user can fix (settings, logs, the broker, the topics' layout) end
with one line on stderr instead of a traceback, and exit 1; 2 is argparse's,
for usage errors. Results go to stdout, progress and logs to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version

from aiokafka.errors import KafkaConnectionError
from aiokafka.errors import KafkaError as ClientError

from streams.cli import dev, logs, notify, settings, worker
from streams.cli.options import settings_args, settings_from
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
        problem = security_problem(args) or f"cannot reach Kafka: {exc}"
        print(f"livewatch: error: {problem}", file=sys.stderr)
        return 1
    except ClientError as exc:  # e.g. replay gave up: the broker away past its delivery timeout
        print(f"livewatch: error: Kafka: {exc!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def security_problem(args: argparse.Namespace) -> str | None:
    """A refused login or TLS handshake, said as such (aiokafka reports either as
    "Unable to bootstrap"): one more connection, made only after a failure."""
    from streams.kafka.client import connection_problem

    try:
        settings = settings_from(args)
    except (SettingsError, AttributeError):
        return None
    if settings.security_protocol == "PLAINTEXT":
        return None
    return asyncio.run(connection_problem(settings))


if __name__ == "__main__":
    sys.exit(main())
