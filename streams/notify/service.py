"""`livewatch notify`: alert transitions from the `live.alerts` topic to people.

The notifier is its own consumer group, so delivery never slows the workers and
survives their restarts. Transitions go through the dispatcher (routes,
grouping per room, silences, inhibition) and each receiver delivers its
notifications one at a time (delivery.py). A transition's offset is committed
only once every notification carrying it was delivered, or given up on and
written to the dead-letter topic: a webhook outage or a notifier restart
delays alerts but loses none (a restart may repeat some).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from detectors.alerts import Transition
from streams.kafka.client import client_options
from streams.notify.config import NotifyConfig
from streams.notify.delivery import ConsoleSender, DeliveryMetrics, WebhookSender
from streams.notify.dispatch import Dispatcher, Token
from streams.notify.formats import Notification, safe
from streams.notify.silences import SilenceStore
from streams.settings import Settings

log = logging.getLogger(__name__)
# httpx logs every request's URL at INFO: webhook URLs carry tokens (WeCom `key`,
# DingTalk `access_token`, Slack's path). Never log them.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)
_decoder = msgspec.json.Decoder(Transition)


class Sender(Protocol):
    async def deliver(self, n: Notification) -> str | None: ...


class OffsetTracker:
    """Which consumed offsets are done, so only a done prefix is committed."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, OrderedDict[int, int]] = {}
        """Partition -> offset -> deliveries still owed, in consumption order."""
        self.next_offset: dict[TopicPartition, int] = {}

    def track(self, tp: TopicPartition, offset: int, owed: int) -> None:
        self.next_offset[tp] = offset + 1
        if owed:
            self.pending.setdefault(tp, OrderedDict())[offset] = owed

    def done(self, token: Token) -> None:
        assert isinstance(token, tuple)
        tp: TopicPartition = token[0]
        offset: int = token[1]
        owed = self.pending.get(tp, OrderedDict())
        if offset in owed:
            owed[offset] -= 1
            if not owed[offset]:
                del owed[offset]

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition: the offset up to which (exclusive) everything is done."""
        out = {}
        for tp, next_offset in self.next_offset.items():
            owed = self.pending.get(tp)
            out[tp] = next(iter(owed)) if owed else next_offset
        return out


@dataclass
class NotifierStats:
    transitions: int = 0
    undecodable: int = 0
    notifications: int = 0
    dead_letters: int = 0
    committed: dict[TopicPartition, int] = field(default_factory=dict)


def build_senders(
    config: NotifyConfig,
    client: httpx.AsyncClient,
    metrics: DeliveryMetrics,
    environ: Mapping[str, str],
    out: IO[str],
) -> dict[str, Sender]:
    senders: dict[str, Sender] = {}
    for receiver in config.receivers:
        if receiver.kind == "console":
            senders[receiver.name] = ConsoleSender(out)
        else:
            senders[receiver.name] = WebhookSender(
                receiver,
                receiver.resolve_url(environ),
                receiver.resolve_secret(environ),
                client,
                metrics,
                config.grafana_url,
                config.give_up_after_s,
            )
    return senders


async def run_notifier(
    settings: Settings,
    config: NotifyConfig,
    *,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
) -> NotifierStats:
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    stats = NotifierStats()
    undecodable = Counter(
        "livewatch_notifier_undecodable",
        "Messages on the alerts topic that are not alert transitions (dead-lettered).",
        registry=registry,
    )
    metrics = DeliveryMetrics(registry)
    dispatcher = Dispatcher(config, SilenceStore(config.silences_file))
    tracker = OffsetTracker()
    consumer = AIOKafkaConsumer(
        settings.topic(settings.topic_alerts),
        **client_options(settings),
        group_id=f"{settings.app_id}-notifier",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    async with httpx.AsyncClient() as client:
        senders = build_senders(
            config, client, metrics, os.environ if environ is None else environ, out or sys.stdout
        )
        queues: dict[str, asyncio.Queue[tuple[Notification, list[Token]]]] = {
            name: asyncio.Queue() for name in senders
        }

        async def dead_letter(reason: str, record: dict[str, Any], key: str) -> None:
            stats.dead_letters += 1
            payload = msgspec.json.encode({"kind": "notification", "reason": reason, **record})
            await producer.send_and_wait(
                settings.topic(settings.topic_deadletter), payload, key=key.encode()
            )

        async def deliver(name: str) -> None:
            sender, queue = senders[name], queues[name]
            while True:
                notification, tokens = await queue.get()
                reason = await sender.deliver(notification)
                if reason is not None:
                    log.error("receiver %s: notification given up: %s", name, reason)
                    await dead_letter(reason, _record(notification), name)
                stats.notifications += 1
                for token in tokens:
                    tracker.done(token)

        await producer.start()
        await consumer.start()
        workers = [asyncio.create_task(deliver(name)) for name in senders]
        committed: dict[TopicPartition, int] = {}
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                now = time.time()
                for tp, messages in batches.items():
                    for message in messages:
                        stats.transitions += 1
                        try:
                            transition = _decoder.decode(message.value or b"")
                        except msgspec.DecodeError as exc:
                            stats.undecodable += 1
                            undecodable.inc()
                            tracker.track(tp, message.offset, 0)
                            await dead_letter(
                                "not_a_transition",
                                {"detail": str(exc), "topic": tp.topic, "offset": message.offset},
                                "notifier",
                            )
                            continue
                        owed = dispatcher.add(transition, (tp, message.offset), now)
                        tracker.track(tp, message.offset, owed)
                for due in dispatcher.due(now):
                    if due.notification is None:
                        for token in due.tokens:
                            tracker.done(token)
                    else:
                        queues[due.notification.receiver].put_nowait((due.notification, due.tokens))
                ready = tracker.committable()
                if ready and ready != committed:
                    await consumer.commit(ready)
                    committed = dict(ready)
                    stats.committed = committed
                for worker in workers:
                    if worker.done():
                        worker.result()  # a crashed delivery loop must not pass silently
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
    return stats


def _record(n: Notification) -> dict[str, Any]:
    """A dead letter for a notification: enough to deliver it by hand."""
    return {
        "receiver": n.receiver,
        "room_id": safe(n.room_id, 128),
        "alerts": [
            {
                "alert": a.alert,
                "state": a.state,
                "severity": a.severity,
                "ts": a.ts,
                "fingerprint": a.fingerprint,
                "summary": safe(a.summary, 300),
            }
            for a in n.alerts
        ],
    }
