"""`livewatch notify`: alert transitions from the `live.alerts` topic to people.

The notifier is its own consumer group, so delivery never slows the workers and
survives their restarts. Offsets are committed only after every receiver has
taken a batch, so a notifier restart re-delivers rather than loses.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

import msgspec
from aiokafka import AIOKafkaConsumer

from detectors.alerts import Transition
from streams.kafka_client import client_options
from streams.settings import Settings

_decoder = msgspec.json.Decoder(Transition)


class Receiver(Protocol):
    async def deliver(self, transitions: Sequence[Transition]) -> None:
        """Take transitions for delivery; return once they are safe (sent or queued durably)."""


@dataclass
class ConsoleReceiver:
    """One line per transition on a terminal: the demo's and a laptop's notifier."""

    out: IO[str] = field(default_factory=lambda: sys.stdout)

    async def deliver(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            self.out.write(console_line(t) + "\n")
        self.out.flush()


def console_line(t: Transition) -> str:
    when = time.strftime("%H:%M:%S", time.gmtime(t.ts / 1000))
    where = t.room_id + (f" [{t.region}]" if t.region else "")
    line = f"{when} {t.state.upper():8} {t.severity:8} {t.alert:13} {where}: {t.summary}"
    if t.state == "resolved":
        line += f" (lasted {(t.ts - t.started_at) / 60_000:.1f} min)"
    hints = t.details.get("hints") if isinstance(t.details, dict) else None
    for hint in hints or ():
        line += f"\n    hint: {hint}"
    return line


@dataclass
class NotifierStats:
    delivered: int = 0
    undecodable: int = 0


async def run_notifier(
    settings: Settings,
    receivers: Sequence[Receiver],
    *,
    stop: asyncio.Event | None = None,
    stats: NotifierStats | None = None,
) -> NotifierStats:
    stats = stats or NotifierStats()
    stop = stop or asyncio.Event()
    consumer = AIOKafkaConsumer(
        settings.topic(settings.topic_alerts),
        **client_options(settings),
        group_id=f"{settings.app_id}-notifier",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=250, max_records=500)
            transitions: list[Transition] = []
            for messages in batches.values():
                for message in messages:
                    try:
                        transitions.append(_decoder.decode(message.value or b""))
                    except msgspec.DecodeError:
                        stats.undecodable += 1
            for receiver in receivers:
                await receiver.deliver(transitions)
            stats.delivered += len(transitions)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return stats
