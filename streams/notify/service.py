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
from wsgiref.simple_server import WSGIServer

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, start_http_server

from detectors.alerts import Transition
from streams.core.decode import DECODE_ERRORS
from streams.kafka.client import client_options, producer_options, start_clients
from streams.kafka.deadletter import dead_letter
from streams.notify.config import NotifyConfig, default_external_url
from streams.notify.delivery import ConsoleSender, DeliveryMetrics, WebhookSender
from streams.notify.dispatch import Dispatcher, Token
from streams.notify.formats import Notification
from streams.notify.silences import SilenceStore
from streams.notify.wording import safe
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
    external_url: str = "",
) -> dict[str, Sender]:
    """One sender per receiver; `external_url`: the notifier's own URL when the
    config does not set one."""
    senders: dict[str, Sender] = {}
    for receiver in config.receivers:
        if receiver.kind == "console":
            senders[receiver.name] = ConsoleSender(out, receiver.text_language())
        else:
            senders[receiver.name] = WebhookSender(
                receiver,
                receiver.resolve_url(environ),
                receiver.resolve_secret(environ),
                client,
                metrics,
                config.options(receiver, external_url),
                config.give_up_after_s,
            )
    return senders


def notifier_metrics(registry: CollectorRegistry) -> tuple[Counter, DeliveryMetrics]:
    """The notifier's metrics (docs/notify.md), registered in `registry`: undecodable
    messages, and the deliveries'."""
    undecodable = Counter(
        "livewatch_notifier_undecodable",
        "Messages on the alerts topic that are not alert transitions (dead-lettered).",
        registry=registry,
    )
    return undecodable, DeliveryMetrics(registry)


def serve_metrics(settings: Settings, registry: CollectorRegistry) -> WSGIServer | None:
    """The notifier's /metrics on `metrics_host` (loopback by default), in a thread.

    prometheus-client's server negotiates the format: OpenMetrics when the scraper's
    Accept header asks for it (Prometheus does), the text format otherwise."""
    if not settings.notifier_metrics_port:
        return None
    server, _ = start_http_server(
        settings.notifier_metrics_port, addr=settings.metrics_host, registry=registry
    )
    return server


async def run_notifier(
    settings: Settings,
    config: NotifyConfig,
    *,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
) -> NotifierStats:
    """Deliver alert transitions until `stop` is set."""
    notifier = Notifier(settings, config, registry or CollectorRegistry())
    environ = os.environ if environ is None else environ
    return await notifier.run(stop or asyncio.Event(), environ, out or sys.stdout)


class Notifier:
    """The stages in order: consume -> dispatch (routes, groups, silences,
    inhibition) -> one delivery queue per receiver -> commit what is done."""

    def __init__(
        self, settings: Settings, config: NotifyConfig, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.config = config
        self.stats = NotifierStats()
        self.undecodable, self.metrics = notifier_metrics(registry)
        self.dispatcher = Dispatcher(config, SilenceStore(config.silences_file))
        self.tracker = OffsetTracker()
        self.consumer = AIOKafkaConsumer(
            settings.topic(settings.topic_alerts),
            **client_options(settings),
            group_id=f"{settings.app_id}-notifier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.producer = AIOKafkaProducer(**producer_options(settings))
        self.queues: dict[str, asyncio.Queue[tuple[Notification, list[Token]]]] = {}
        self.committed: dict[TopicPartition, int] = {}

    async def run(
        self, stop: asyncio.Event, environ: Mapping[str, str], out: IO[str]
    ) -> NotifierStats:
        async with httpx.AsyncClient() as client:
            external_url = default_external_url(self.settings.notifier_metrics_port)
            senders = build_senders(self.config, client, self.metrics, environ, out, external_url)
            self.queues = {name: asyncio.Queue() for name in senders}
            await start_clients(self.producer, self.consumer)
            deliveries = [
                asyncio.create_task(self.deliver(name, sender)) for name, sender in senders.items()
            ]
            try:
                while not stop.is_set():
                    await self.consume()
                    self.dispatch(time.time())
                    await self.commit()
                    for delivery in deliveries:
                        if delivery.done():
                            delivery.result()  # a crashed delivery loop must not pass silently
            finally:
                for delivery in deliveries:
                    delivery.cancel()
                await asyncio.gather(*deliveries, return_exceptions=True)
                await self.consumer.stop()
                await self.producer.stop()
        return self.stats

    async def consume(self) -> None:
        """Hand the transitions of the next batch to the dispatcher."""
        batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
        now = time.time()
        for tp, messages in batches.items():
            for message in messages:
                self.stats.transitions += 1
                try:
                    transition = _decoder.decode(message.value or b"")
                except DECODE_ERRORS as exc:
                    self.stats.undecodable += 1
                    self.undecodable.inc()
                    self.tracker.track(tp, message.offset, 0)
                    await self.dead_letter(
                        "not_a_transition",
                        str(exc),
                        partition=tp.partition,
                        offset=message.offset,
                        key=message.key,
                        payload=message.value or b"",
                    )
                    continue
                owed = self.dispatcher.add(transition, (tp, message.offset), now)
                self.tracker.track(tp, message.offset, owed)

    def dispatch(self, now: float) -> None:
        """Notifications now due to their receivers' queues."""
        for due in self.dispatcher.due(now):
            if due.notification is None:
                for token in due.tokens:
                    self.tracker.done(token)
            else:
                self.queues[due.notification.receiver].put_nowait((due.notification, due.tokens))

    async def commit(self) -> None:
        """Commit the offsets up to which every transition was delivered or given up."""
        ready = self.tracker.committable()
        if ready and ready != self.committed:
            await self.consumer.commit(ready)
            self.committed = dict(ready)
            self.stats.committed = self.committed

    async def deliver(self, name: str, sender: Sender) -> None:
        """One receiver's notifications, one at a time, in order."""
        queue = self.queues[name]
        while True:
            notification, tokens = await queue.get()
            reason = await sender.deliver(notification)
            if reason is not None:
                log.error("receiver %s: notification given up: %s", name, reason)
                await self.dead_letter(
                    "undeliverable",
                    f"receiver {name}: {reason}",
                    partition=None,
                    offset=None,
                    key=notification.room_id.encode(),
                    payload=msgspec.json.encode(_record(notification)),
                )
            self.stats.notifications += 1
            for token in tokens:
                self.tracker.done(token)

    async def dead_letter(
        self,
        reason: str,
        detail: str,
        *,
        partition: int | None,
        offset: int | None,
        key: bytes | None,
        payload: bytes,
    ) -> None:
        settings = self.settings
        self.stats.dead_letters += 1
        letter = dead_letter(
            reason,
            detail,
            topic=settings.topic(settings.topic_alerts),
            partition=partition,
            offset=offset,
            key=key,
            payload=payload,
            max_payload_bytes=settings.deadletter_max_payload_bytes,
        )
        await self.producer.send_and_wait(
            settings.topic(settings.topic_deadletter), letter, key=key
        )


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
