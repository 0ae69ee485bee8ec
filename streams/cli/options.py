"""What the command groups share: the settings options, and a progress bar."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streams.settings import Settings, load_settings

Commands = argparse._SubParsersAction  # the `add_subparsers()` a group adds its commands to


def settings_args(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The settings options, on the `livewatch` parser (`top`) and on each command.

    A command's options default to nothing at all (SUPPRESS), not None: given
    before a subcommand (`livewatch silence --config F add`), a value must not be
    overwritten by the subcommand's default, as argparse does otherwise.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("settings (override config file and LIVEWATCH_* env)")
    group.add_argument("--config", default=default, help="TOML config file (env LIVEWATCH_CONFIG)")
    group.add_argument(
        "--bootstrap", dest="bootstrap_servers", default=default, help="Kafka bootstrap servers"
    )
    group.add_argument(
        "--topic-prefix", dest="topic_prefix", default=default, help="prefix for every topic name"
    )


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """The settings, with the options of `settings_args` and `extra` on top."""
    overrides = {
        "bootstrap_servers": args.bootstrap_servers,
        "topic_prefix": args.topic_prefix,
        **extra,
    }
    return load_settings(args.config, overrides=overrides)


@contextmanager
def progress(label: str, unit: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar with rate and ETA; yields `advance(done, items)`: `done`
    of `total` (a bar in bytes of a file, say) and the `unit`s handled so far."""
    columns = (
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.fields[items]:,} " + unit + ", {task.fields[rate]:,.0f}/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    # Progress goes to stderr: stdout carries the command's results, maybe into a pipe.
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, rate=0.0, items=0)

        def advance(done: int, items: int) -> None:
            rate = items / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, rate=rate, items=items)

        yield advance
