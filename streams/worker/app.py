"""The Faust worker: consume the event topics, hand batches to the pipeline, emit.

Agents stay thin: no processing happens here beyond grouping a batch of raw
messages by partition. Metrics are served by Faust's web server at /metrics.

Each partition's state is checkpointed to a Faust table (a compacted changelog
topic) together with the source offsets it covers. A worker that is assigned a
partition restores the checkpoint and rewinds the partition's consumer group
offsets to what the checkpoint covers, so it resumes exactly where the state
ends whatever Faust had committed since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.core.decode import RawMessage, Rejected
from streams.core.engine import SOURCES
from streams.core.pipeline import Pipeline
from streams.kafka.client import client_options
from streams.kafka.deadletter import encode_dead_letter
from streams.settings import Settings
from streams.worker.checkpoint import (
    CheckpointError,
    join_checkpoint,
    restore_checkpoint,
    split_checkpoint,
    take_checkpoint,
)
from streams.worker.exporter import PipelineCollector
from streams.worker.health import HealthCollector, WorkerHealth

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """The Faust app with the pipeline it feeds and the registry it exports."""

    settings: Settings
    app: faust.App
    pipeline: Pipeline
    registry: CollectorRegistry
    checkpoints: Any
    """The Faust table holding checkpoint records (see streams.worker.checkpoint)."""
    health: WorkerHealth = field(default_factory=WorkerHealth)
    last_activity: dict[int, float] = field(default_factory=dict)
    """Monotonic time each partition last received messages or idle time."""
    positions: dict[TP, int] = field(default_factory=dict)
    """Next offset to process, per source topic-partition: all before it is in the state."""
    fetch_positions: dict[TP, int] = field(default_factory=dict)
    """Where the consumer starts reading, for topic-partitions nothing was processed from."""
    pending_rewinds: dict[TP, int] = field(default_factory=dict)
    """Restored offsets not yet committed to the consumer group."""
    dirty: set[int] = field(default_factory=set)
    """Partitions whose state changed since their last checkpoint."""
    checkpointed_at: dict[int, float] = field(default_factory=dict)
    checkpoint_seq: dict[int, int] = field(default_factory=dict)
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
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=settings.group_session_timeout_s / 10,
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_port=settings.metrics_port,
    )
    pipeline = Pipeline(settings.engine_config())
    checkpoints = app.Table(
        "checkpoints",
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="Partition state checkpoints with the source offsets they cover.",
    )
    registry = CollectorRegistry(auto_describe=True)
    worker = Worker(settings, app, pipeline, registry, checkpoints)
    registry.register(PipelineCollector(pipeline, settings.export_config()))
    registry.register(
        HealthCollector(
            worker.health,
            lag=lambda: consumer_lag(worker),
            watermarks=lambda: {
                p: e.watermark / 1000
                for p, e in worker.pipeline.engines.items()
                if e.watermark is not None
            },
        )
    )
    worker.source_of_topic = dict(zip(settings.source_topics, SOURCES, strict=True))

    sources = app.topic(*settings.source_topics, partitions=partitions)
    deadletters = app.topic(settings.topic(settings.topic_deadletter))
    alerts = app.topic(settings.topic(settings.topic_alerts))
    actions = app.topic(settings.topic(settings.topic_actions))

    async def send_alerts() -> None:
        """Alert transitions and moderation actions the detectors produced, to Kafka."""
        sends = []
        for engine in worker.pipeline.engines.values():
            transitions, moves = engine.watch.drain()
            for transition in transitions:
                sends.append(
                    await alerts.send(
                        key=transition.fingerprint.encode(),
                        value=msgspec.json.encode(transition),
                        force=True,
                    )
                )
            for action in moves:
                sends.append(
                    await actions.send(
                        key=str(action["room_id"]).encode(),
                        value=msgspec.json.encode(action),
                        force=True,
                    )
                )
        await asyncio.gather(*sends)

    @app.agent(sources, concurrency=1)
    async def process(stream: StreamT[bytes]) -> None:
        # take_events: raw batches of Faust events, acked after our loop body returns.
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max_messages, settings.batch_within_s
        )
        async for events in batches:
            rejected = handle_batch(worker, events)
            if rejected:
                # force: otherwise Faust may attach the send to the batch's last event,
                # to happen at its commit, which waits for this very loop body: deadlock.
                # Delivered here, dead letters are in Kafka before the offsets commit.
                await asyncio.gather(
                    *[
                        await deadletters.send(
                            key=r.source.key,
                            value=encode_dead_letter(r, settings.deadletter_max_payload_bytes),
                            force=True,
                        )
                        for r in rejected
                    ]
                )
            await send_alerts()

    @app.timer(interval=1.0)
    async def advance_idle_partitions() -> None:
        await learn_positions(worker)
        now = time.monotonic()
        for partition, engine in worker.pipeline.engines.items():
            engine.settle(lagging_sources(worker, partition, now))
        advance_idle(worker, now)
        await send_alerts()
        write_checkpoints(worker, now)

    @checkpoints.on_recover
    async def restore_assigned() -> None:
        # Runs once the table is recovered and before Faust seeks the source
        # partitions to their committed offsets, so a commit here decides them.
        restore_partitions(worker)
        await commit_rewinds(worker)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def checkpoint_at_shutdown(sender: Any, **kwargs: Any) -> None:
        write_checkpoints(worker, time.monotonic(), force=True)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the content type.
        content_type = CONTENT_TYPE_LATEST.split("; charset")[0]
        return web.text(generate_latest(registry).decode(), content_type=content_type)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic in settings.source_topics}
        write_checkpoints(worker, time.monotonic(), force=True, only=partitions)
        for partition in partitions:
            log.info("partition %d revoked: dropping its room state", partition)
            worker.pipeline.revoke(partition)
            worker.health.forget(partition)
            for per_partition in (worker.last_activity, worker.checkpointed_at):
                per_partition.pop(partition, None)
            worker.dirty.discard(partition)
        for tp in revoked:
            for per_tp in (
                worker.positions,
                worker.fetch_positions,
                worker.last_message,
                worker.pending_rewinds,
            ):
                per_tp.pop(tp, None)

    return worker


def handle_batch(worker: Worker, events: list[EventT[bytes]]) -> list[Rejected]:
    """Group a Faust batch by partition and run each group through the pipeline."""
    by_partition: dict[int, list[RawMessage]] = {}
    positions = worker.positions
    for event in events:
        m = event.message
        if m.offset < positions.get(TP(m.topic, m.partition), 0):
            # Already in the state: Faust re-seeks to committed offsets on a rebalance.
            worker.health.redelivered_messages += 1
            continue
        raw = RawMessage(m.topic, m.partition, m.offset, m.key, m.value)
        by_partition.setdefault(m.partition, []).append(raw)
    now = time.monotonic()
    now_ms = int(time.time() * 1000)
    rejected: list[Rejected] = []
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
        worker.dirty.add(partition)
    return rejected


def consumer_lag(worker: Worker) -> dict[tuple[str, int], int]:
    """Per assigned source topic-partition: messages in Kafka not processed yet."""
    lag: dict[tuple[str, int], int] = {}
    try:
        consumer = worker.app.consumer
        assigned = consumer.assignment()
    except (ConsumerNotStarted, AssertionError, AttributeError, RuntimeError):  # not started yet
        return lag
    for tp in assigned:
        if tp.topic not in worker.source_of_topic:
            continue
        try:
            highwater = consumer.highwater(tp)
        except (AssertionError, KeyError):
            continue
        position = worker.positions.get(tp, worker.fetch_positions.get(tp))
        if highwater is not None and position is not None:
            lag[(tp.topic, tp.partition)] = max(0, highwater - position)
    return lag


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
        position = worker.positions.get(tp, worker.fetch_positions.get(tp))
        if (
            highwater is None
            or position is None
            or highwater > position
            or worker.last_message.get(tp, float("-inf")) > recent
        ):
            lagging.add(source)
    return lagging


async def learn_positions(worker: Worker) -> None:
    """Fill in where consumption starts for assigned partitions not read from yet.

    Only to tell whether a source is caught up: the consumer may have fetched past
    messages not processed yet, so this is no position a checkpoint could cover.
    """
    consumer = worker.app.consumer
    for tp in consumer.assignment():
        if tp.topic in worker.source_of_topic and tp not in worker.positions:
            position = await consumer.position(tp)
            if position is not None:
                worker.fetch_positions[tp] = position


def advance_idle(worker: Worker, now: float) -> None:
    """Live mode: event time keeps passing in partitions that receive nothing."""
    for partition, engine in worker.pipeline.engines.items():
        idle = now - worker.last_activity.get(partition, now)
        if idle >= worker.settings.idle_after_s:
            engine.advance_idle(int(idle * 1000))
            worker.last_activity[partition] = now
            worker.dirty.add(partition)


def write_checkpoints(
    worker: Worker, now: float, *, force: bool = False, only: set[int] | None = None
) -> None:
    """Checkpoint changed partitions whose last checkpoint is older than the interval.

    Synchronous on purpose: state and positions cannot move while it runs.
    """
    interval = worker.settings.checkpoint_interval_s
    for partition in sorted(worker.dirty if only is None else worker.dirty & only):
        if not force and now - worker.checkpointed_at.get(partition, -interval) < interval:
            continue
        offsets = {
            tp.topic: offset for tp, offset in worker.positions.items() if tp.partition == partition
        }
        blob = take_checkpoint(worker.pipeline.engine(partition), partition, offsets)
        seq = worker.checkpoint_seq.get(partition, 0)
        for key, value in split_checkpoint(partition, blob, seq):
            worker.checkpoints.send_changelog(partition, key, value)
        worker.checkpoint_seq[partition] = seq + 1
        worker.checkpointed_at[partition] = now
        worker.dirty.discard(partition)
        worker.health.checkpoint_written(partition, len(blob), time.time())


def restore_partitions(worker: Worker) -> None:
    """Load the checkpoint of every assigned partition that has no state here yet."""
    sources = worker.source_of_topic
    assigned = {tp.partition for tp in worker.app.consumer.assignment() if tp.topic in sources}
    store = worker.checkpoints.data
    for partition in sorted(assigned - worker.pipeline.engines.keys()):
        try:
            seq, blob = join_checkpoint(partition, store.get)
            engine, checkpoint = restore_checkpoint(blob, worker.settings.engine_config())
        except KeyError:
            worker.health.restores["absent"] += 1
            continue
        except CheckpointError as exc:
            # Starting empty loses the partition's history but keeps the worker up.
            log.error("partition %d: checkpoint not restored: %s", partition, exc)
            worker.health.restores["failed"] += 1
            continue
        worker.pipeline.engines[partition] = engine
        worker.checkpoint_seq[partition] = seq + 1
        worker.health.restores["restored"] += 1
        for topic, offset in checkpoint.offsets.items():
            if topic in worker.source_of_topic:
                tp = TP(topic, partition)
                worker.positions[tp] = worker.pending_rewinds[tp] = offset
        log.info("partition %d: restored checkpoint %d at %s", partition, seq, checkpoint.offsets)


async def commit_rewinds(worker: Worker) -> None:
    """Commit restored offsets so consumption resumes where the restored state ends."""
    if not worker.pending_rewinds:
        return
    # Faust has no public call to commit given offsets; this is what its own commit uses.
    if await worker.app.consumer._commit(dict(worker.pending_rewinds)):  # type: ignore[attr-defined]
        log.info("committed restored offsets %s", worker.pending_rewinds)
        worker.pending_rewinds.clear()
    else:  # a new rebalance began: retried when its recovery completes
        log.warning("could not commit restored offsets yet: %s", worker.pending_rewinds)
