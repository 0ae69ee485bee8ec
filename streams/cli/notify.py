"""`livewatch notify` and `livewatch silence`: alert delivery and its silences.

Each command imports what it runs when it runs, so that `livewatch --help` and
every other command start without loading the HTTP and Kafka clients.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from streams.cli.options import Commands, settings_args, settings_from
from streams.settings import SettingsError, with_assignments


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    notify = commands.add_parser("notify", help="deliver alert transitions to chat webhooks")
    notify.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a setting, e.g. notify.group_wait_s=0 (repeatable)",
    )  # fmt: skip
    settings_args(notify)
    notify.set_defaults(func=run_notify)

    silence = commands.add_parser("silence", help="manage notification silences")
    actions = silence.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="silence matching alerts for a while")
    add.add_argument("--alert", default="*", help="alert type glob (default *)")
    add.add_argument("--room", default="*", help="room id glob (default *)")
    add.add_argument("--region", default="*", help="region glob (default *)")
    add.add_argument(
        "--duration", "--for", dest="duration", required=True, help="how long, e.g. 30m, 2h"
    )
    add.add_argument("--by", help="who (default $USER)")
    add.add_argument("--comment", help="why")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", help="the silence's id, as `silence add` and `list` print it")
    listing = actions.add_parser("list", help="list silences")
    for sub in (silence, add, expire, listing):
        settings_args(sub)
    silence.set_defaults(func=run_silence)


def run_notify(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from streams.notify.config import NotifyConfig
    from streams.notify.service import run_notifier, serve_metrics

    settings = with_assignments(settings_from(args), args.set or [])
    logging.getLogger().setLevel(settings.log_level.upper())
    config = NotifyConfig.from_table(settings.notify)
    registry = CollectorRegistry()
    serve_metrics(settings, registry)

    async def notify() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_notifier(settings, config, stop=stop, registry=registry)

    asyncio.run(notify())
    return 0


def run_silence(args: argparse.Namespace) -> int:
    from streams.notify.config import NotifyConfig
    from streams.notify.silences import SilenceStore

    settings = settings_from(args)
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
