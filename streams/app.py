"""The Faust worker: consume the event topics, hand batches to the pipeline, emit.

Agents stay thin: no processing happens here beyond grouping a batch of raw
messages by partition. Metrics are served by Faust's web server at /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP, EventT, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.deadletter import encode_dead_letter
from streams.decode import RawMessage, Rejected
from streams.engine import SOURCES
from streams.exporter import PipelineCollector
from streams.kafka_client import client_options
from streams.pipeline import Pipeline
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """The Faust app with the pipeline it feeds and the registry it exports."""

    settings: Settings
    app: faust.App
    pipeline: Pipeline
    registry: CollectorRegistry
    last_activity: dict[int, float] = field(default_factory=dict)
    """Monotonic time each partition last received messages or idle time."""
    positions: dict[TP, int] = field(default_factory=dict)
    """Next offset to process, per source topic-partition."""
    last_message: dict[TP, float] = field(default_factory=dict)
    """Monotonic time each source topic-partition last delivered a message."""
    source_of_topic: dict[str, str] = field(default_factory=dict)


def faust_credentials(settings: Settings) -> Any:
    options = client_options(settings)
    ssl_context = options.get("ssl_context")
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def create_worker(settings: Settings, partitions: int) -> Worker:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        datadir=settings.state_dir,
        store="memory://",
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_port=settings.metrics_port,
    )
    pipeline = Pipeline(settings.engine_config())
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(pipeline, settings.export_config()))
    worker = Worker(settings, app, pipeline, registry)
    worker.source_of_topic = dict(zip(settings.source_topics, SOURCES, strict=True))

    sources = app.topic(*settings.source_topics, partitions=partitions)
    deadletters = app.topic(settings.topic(settings.topic_deadletter))

    @app.agent(sources, concurrency=1)
    async def process(stream: StreamT[bytes]) -> None:
        # take_events: raw batches of Faust events, acked after our loop body returns.
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max_messages, settings.batch_within_s
        )
        async for events in batches:
            rejected = handle_batch(worker, events)
            if rejected:
                await asyncio.gather(
                    *[
                        await deadletters.send(
                            key=r.source.key,
                            value=encode_dead_letter(r, settings.deadletter_max_payload_bytes),
                        )
                        for r in rejected
                    ]
                )

    @app.timer(interval=1.0)
    async def advance_idle_partitions() -> None:
        await learn_positions(worker)
        now = time.monotonic()
        for partition, engine in worker.pipeline.engines.items():
            engine.settle(lagging_sources(worker, partition, now))
        advance_idle(worker, now)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the content type.
        content_type = CONTENT_TYPE_LATEST.split("; charset")[0]
        return web.text(generate_latest(registry).decode(), content_type=content_type)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        for partition in {tp.partition for tp in revoked if tp.topic in settings.source_topics}:
            log.info("partition %d revoked: dropping its room state", partition)
            worker.pipeline.revoke(partition)
            worker.last_activity.pop(partition, None)
        for tp in revoked:
            worker.positions.pop(tp, None)
            worker.last_message.pop(tp, None)

    return worker


def handle_batch(worker: Worker, events: list[EventT[bytes]]) -> list[Rejected]:
    """Group a Faust batch by partition and run each group through the pipeline."""
    by_partition: dict[int, list[RawMessage]] = {}
    for event in events:
        m = event.message
        raw = RawMessage(m.topic, m.partition, m.offset, m.key, m.value)
        by_partition.setdefault(m.partition, []).append(raw)
    now = time.monotonic()
    now_ms = int(time.time() * 1000)
    rejected: list[Rejected] = []
    positions = worker.positions
    for partition, messages in by_partition.items():
        # Lag as it was before this batch: sources finishing in it still hold.
        lagging = lagging_sources(worker, partition, now)
        rejected += worker.pipeline.process(partition, messages, now_ms=now_ms, lagging=lagging)
        for raw in messages:
            tp = TP(raw.topic, partition)
            positions[tp] = max(positions.get(tp, 0), raw.offset + 1)
            worker.last_message[tp] = now
        worker.pipeline.engine(partition).settle(lagging_sources(worker, partition, now))
        worker.last_activity[partition] = now
    return rejected


def lagging_sources(worker: Worker, partition: int, now: float) -> set[str]:
    """Sources that still hold the partition's watermark.

    A source holds while it has input in Kafka this worker has not processed, or
    delivered a message within the last `source_hold_s`: the high watermark is only
    as fresh as the last fetch, and during a fast replay a topic that looks caught
    up has more on the way. Unknown positions count as holding: the safe side.
    """
    lagging = set()
    recent = now - worker.settings.source_hold_s
    for topic, source in worker.source_of_topic.items():
        tp = TP(topic, partition)
        try:
            highwater = worker.app.consumer.highwater(tp)
        except (AssertionError, KeyError):  # not assigned (mid-rebalance): hold
            highwater = None
        position = worker.positions.get(tp)
        if (
            highwater is None
            or position is None
            or highwater > position
            or worker.last_message.get(tp, float("-inf")) > recent
        ):
            lagging.add(source)
    return lagging


async def learn_positions(worker: Worker) -> None:
    """Fill in where consumption starts for assigned partitions not read from yet."""
    consumer = worker.app.consumer
    for tp in consumer.assignment():
        if tp.topic in worker.source_of_topic and tp not in worker.positions:
            position = await consumer.position(tp)
            if position is not None:
                worker.positions[tp] = position


def advance_idle(worker: Worker, now: float) -> None:
    """Live mode: event time keeps passing in partitions that receive nothing."""
    for partition, engine in worker.pipeline.engines.items():
        idle = now - worker.last_activity.get(partition, now)
        if idle >= worker.settings.idle_after_s:
            engine.advance_idle(int(idle * 1000))
            worker.last_activity[partition] = now
