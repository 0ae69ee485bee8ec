"""The Faust worker: consume the event topics, hand batches to the pipeline, emit.

Source records arrive a whole fetch at a time (streams.worker.fetch), not as
Faust events; nothing here processes them beyond grouping them by partition.
Metrics are served by Faust's web server at /metrics.

Each partition's state is checkpointed to a Faust table (a compacted changelog
topic) together with the source offsets it covers. A worker that is assigned a
partition restores the checkpoint and rewinds the partition's consumer group
offsets to what the checkpoint covers, so it resumes exactly where the state
ends whatever was committed since. Source offsets are committed as checkpoints
cover them, so the consumer group's lag is what remains to be made durable.

`Worker` wires its named steps to Faust's hooks, as quix-streams' `Application`
does with `_on_assign` and `_on_revoke`: `consume` (each fetch of source
records), `tick` (a one-second timer), `on_assign` (the checkpoint table
recovered), `on_revoke`, `checkpoint` and `emit`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
import msgspec
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.core.decode import RawMessage, Rejected
from streams.core.engine import Pipeline
from streams.core.events import SPARSE_SOURCES
from streams.kafka.client import client_options
from streams.kafka.deadletter import rejected_letter
from streams.settings import Settings
from streams.worker import fork
from streams.worker.checkpoint import (
    CheckpointError,
    OutdatedCheckpoint,
    Snapshot,
    join_checkpoint,
    restore_checkpoint,
    snapshot,
)
from streams.worker.exporter import ExportConfig, PipelineCollector, render
from streams.worker.fetch import App, BatchSink, Records
from streams.worker.health import HealthCollector, WorkerHealth

log = logging.getLogger(__name__)

TICK_GAP_S = 3.0
"""Ticks (every second) further apart than this were held up (a broker away holds
sends and commits): what a blocked tick could not watch is no quiet time
(`advance_idle`, `flush_idle`)."""
CHECKPOINT_PAUSE = 20
"""A partition's next checkpoint waits at least this many times what the last
checkpoints of all partitions took together."""
FORK_TIMEOUT_S = 300.0
"""A child taking a checkpoint for longer than this is stuck: stopped, and the next
checkpoint is taken in the worker (a million-viewer room's takes a few seconds)."""
UNANSWERED_S = 3.0
"""Live mode: a source whose fetches the broker has not answered for this long holds
the watermark (a caught-up fetch is answered every `FETCH_MAX_WAIT_MS`, 0.1 s, plus
the fetches in flight before it): the broker is away, and its silence says nothing
of what producers hold for it. Below the default allowed lateness (5 s), so event
time moved before it shows makes no event late."""


@dataclass
class Partition:
    """What the worker keeps about one assigned partition number, beside its engine.

    Offsets and times are per source topic of that partition number.
    """

    positions: dict[str, int] = field(default_factory=dict)
    """Next offset to process: all before it is in the state."""
    fetch_positions: dict[str, int] = field(default_factory=dict)
    """Where the consumer starts reading, for topics nothing was processed from."""
    pending_rewinds: dict[str, int] = field(default_factory=dict)
    """Restored offsets not yet committed to the consumer group."""
    last_message: dict[str, float] = field(default_factory=dict)
    """Monotonic time each topic last delivered a message."""
    woke_at: float | None = None
    """Monotonic time input resumed after every topic had been quiet `source_hold_s`."""
    last_activity: float | None = None
    """Monotonic time the partition last received messages or idle time."""
    known_since: float = field(default_factory=time.monotonic)
    """Monotonic time this worker first heard of the partition (its assignment)."""
    held_at: float | None = None
    """Monotonic time a source was last seen holding the watermark (`lagging_sources`)."""
    paused: set[str] = field(default_factory=set)
    """Source topics not fetched now: they ran ahead while too many events waited
    for the watermark (`Worker.pace`)."""
    resumed_at: float = float("-inf")
    """Monotonic time a paused source was last resumed: the silence a pause made is
    no silence of the input (`woke_at`)."""
    flushed: bool = False
    """Its input has ended: flushed after `flush_idle_s` of silence; new input clears it."""
    dirty: bool = False
    """The state changed since its last checkpoint."""
    checkpointed_at: float | None = None
    checkpoint_took: float = 0.0
    """Seconds the last checkpoint took to take (encode and split)."""
    checkpoint_seq: int = 0
    """Sequence number of the next checkpoint."""

    def position(self, topic: str) -> int | None:
        return self.positions.get(topic, self.fetch_positions.get(topic))


@dataclass
class Taking:
    """A checkpoint a forked child is taking."""

    number: int
    positions: dict[str, int]
    """The partition's positions when the child forked: what its checkpoint covers."""
    at: float
    """Monotonic time of the fork."""
    child: fork.Child[Snapshot]


async def assigned_position(consumer: Any, tp: TP) -> int | None:
    """The consumer's position in `tp`, or None if `tp` stopped being ours meanwhile.

    A rebalance may revoke `tp` between reading the assignment and this question,
    which goes through the consumer's thread: aiokafka raises IllegalStateError
    then. `make soak`'s failover run saw it crash the worker's tick timer.
    """
    try:
        position: int | None = await consumer.position(tp)
    except (IllegalStateError, AssertionError, KeyError):
        return None
    return position


def source_holds(
    sparse: bool,
    *,
    highwater: int | None,
    position: int | None,
    answered: float | None,
    answered_since: float,
    recent_message: bool,
    woke: bool,
) -> bool:
    """Whether a source holds its partition's watermark (`Worker.lagging_sources`).

    Any source holds while it has input in Kafka not processed yet, while its
    position or high watermark is unknown, and while the broker does not answer its
    fetches (`answered` older than `answered_since`: its silence is no news). A dense
    source holds besides for `source_hold_s` after its last message (`recent_message`)
    and after the partition's input resumed from a silence (`woke`). A sparse source
    does not: its clock is as old as its last room event, hours maybe, and holding on
    it would stop event time; once its input is processed it holds nothing.
    """
    if highwater is None or position is None or highwater > position:
        return True
    if answered is None or answered < answered_since:
        return True
    return not sparse and (recent_message or woke)


def sources_ahead(
    clocks: Mapping[str, int], holding: Collection[str], margin_ms: int = 0
) -> set[str]:
    """The sources whose event clock is more than `margin_ms` ahead of the slowest one
    `holding` the watermark (every source with a clock when one holding has none yet:
    the watermark waits for its first event). What the watermark does not wait for,
    and what flow control pauses (`Worker.pace`)."""
    if not holding:
        return set()
    held = [clocks.get(source) for source in holding]
    slowest = None if None in held else min(c for c in held if c is not None)
    return {s for s, clock in clocks.items() if slowest is None or clock > slowest + margin_ms}


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


def faust_app(settings: Settings, partitions: int) -> App:
    return App(
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
        broker_max_poll_records=settings.batch_max_messages,
        consumer_max_fetch_size=settings.fetch_max_partition_bytes,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=settings.group_session_timeout_s / 10,
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_port=settings.metrics_port,
    )


class Worker:
    """The Faust app with the pipeline it feeds and the registry it exports."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.settings = settings
        self.app = faust_app(settings, partitions)
        self.pipeline = Pipeline(settings.engine_config())
        self.health = WorkerHealth()
        self.partitions: dict[int, Partition] = {}
        """Assigned partition numbers (their engines are the pipeline's)."""
        self.ticked_at: float | None = None
        """Monotonic time of the last tick."""
        self.source_of_topic = {topic: s for s, topic in settings.source_topics.items()}
        self.snapshot: Taking | None = None
        """The checkpoint a forked child is taking now, if any."""
        self.fork_failed = False
        """The last child failed: the next checkpoint is taken in the worker."""
        self.checkpoints = self.app.Table(
            "checkpoints",
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            help="Partition state checkpoints with the source offsets they cover.",
        )
        """Checkpoint records (see streams.worker.checkpoint)."""
        # Without acks: their offsets are committed as checkpoints cover them.
        self.sources = self.app.topic(*self.source_of_topic, partitions=partitions, acks=False)
        self.deadletters = self.app.topic(settings.topic(settings.topic_deadletter))
        self.alerts = self.app.topic(settings.topic(settings.topic_alerts))
        self.actions = self.app.topic(settings.topic(settings.topic_actions))
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            PipelineCollector(self.pipeline, ExportConfig.from_settings(settings))
        )
        self.registry.register(
            HealthCollector(
                self.health,
                lag=self.consumer_lag,
                watermarks=lambda: {p: ms / 1000 for p, ms in self.pipeline.watermarks().items()},
                held=self.pipeline.held,
                paused=lambda: {n: len(p.paused) for n, p in self.partitions.items()},
            )
        )
        self._wire()

    def _wire(self) -> None:
        app = self.app
        app.topics.add(self.sources)  # subscribed, and co-partitioned by Faust's assignor
        app.sink = BatchSink(frozenset(self.source_of_topic), self.consume)
        app.timer(interval=1.0, name="tick")(self.tick)
        self.checkpoints.on_recover(self.on_assign)
        app.on_before_shutdown.connect(self.on_shutdown)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoke)  # type: ignore[arg-type]

        @app.page("/metrics")
        async def metrics(view: Any, request: Any) -> Any:
            # OpenMetrics when the scraper asks for it (Prometheus does), else the text format.
            body, headers = render(self.registry, request.headers.get("Accept"))
            return view.bytes(body, headers=headers)

        @app.page("/status")
        async def status(view: Any, request: Any) -> Any:
            return view.json(self.status())

    def status(self) -> dict[str, Any]:
        """A cheap summary for scripts and benchmarks (rendering /metrics costs per room)."""
        pipeline = self.pipeline
        return {
            "events": sum(pipeline.events_total.values()),
            "invalid": sum(pipeline.invalid_total.values()),
            "late": pipeline.late_total,
            "rooms": sum(len(e.rooms) for e in pipeline.engines.values()),
            "partitions": sorted(self.assigned()),
            "lag": sum(self.consumer_lag().values()),
            "held": sum(pipeline.held().values()),
            "held_peak": self.health.held_peak,
            "checkpoint_child_peak_rss": self.health.checkpoint_child_peak_rss,
        }

    def partition(self, number: int) -> Partition:
        found = self.partitions.get(number)
        if found is None:
            found = self.partitions[number] = Partition()
        return found

    async def consume(self, records: Records) -> None:
        """One fetch of source records through the pipeline, then emit."""
        try:
            rejected = self.handle_records(records)
            for number in {tp.partition for tp in records}:
                self.pace(number, time.monotonic(), may_pause=True)
            if rejected:
                await self.dead_letter(rejected)
            await self.emit()
        except Exception as exc:
            # A worker that cannot process must not serve /metrics as if healthy:
            # crash, exit non-zero, and let the orchestrator restart it.
            await self.app.crash(exc)
            raise

    def handle_records(self, records: Records) -> list[Rejected]:
        """Group a fetch by partition number and run each group through the pipeline."""
        fresh: dict[int, dict[str, Sequence[Any]]] = {}
        for tp, batch in records.items():
            start = self.partition(tp.partition).positions.get(tp.topic, 0)
            if batch[0].offset < start:
                # Already in the state: Faust re-seeks to committed offsets on a rebalance.
                kept = [r for r in batch if r.offset >= start]
                self.health.redelivered_messages += len(batch) - len(kept)
                batch = kept
            if batch:
                fresh.setdefault(tp.partition, {})[tp.topic] = batch
        now = time.monotonic()
        now_ms = int(time.time() * 1000)
        rejected: list[Rejected] = []
        for number, by_topic in fresh.items():
            partition = self.partition(number)
            quiet_since = (max(t, partition.resumed_at) for t in partition.last_message.values())
            if all(now - t >= self.settings.source_hold_s for t in quiet_since):
                partition.woke_at = now
            messages = [
                RawMessage(topic, number, r.offset, r.key, r.value)
                for topic, batch in by_topic.items()
                for r in batch
            ]
            # Lag as it was before this batch: sources finishing in it still hold. So do
            # the sources delivering in it: after a silence nothing lagged before the
            # batch, and its first topic's events would carry the watermark past the
            # others' events in the same batch (late at the start of every replay).
            lagging = self.lagging_sources(number, now)
            lagging |= {self.source_of_topic[topic] for topic in by_topic}
            rejected += self.pipeline.process(number, messages, now_ms=now_ms, lagging=lagging)
            for topic, batch in by_topic.items():
                partition.positions[topic] = batch[-1].offset + 1
                partition.last_message[topic] = now
            self.pipeline.settle(number, self.lagging_sources(number, now))
            partition.last_activity = now
            partition.flushed = False
            partition.dirty = True
        return rejected

    async def dead_letter(self, rejected: list[Rejected]) -> None:
        # force: sent now rather than buffered with Faust's event context. Awaited
        # here, dead letters are in Kafka before a checkpoint covers their offsets.
        limit = self.settings.deadletter_max_payload_bytes
        await asyncio.gather(
            *[
                await self.deadletters.send(
                    key=r.message.key, value=rejected_letter(r, limit), force=True
                )
                for r in rejected
            ]
        )

    async def emit(self) -> None:
        """Alert transitions and moderation actions the detectors produced, to Kafka."""
        out = self.pipeline.drain()
        sends = [
            await self.alerts.send(
                key=t.fingerprint.encode(), value=msgspec.json.encode(t), force=True
            )
            for t in out.transitions
        ]
        sends += [
            await self.actions.send(
                key=str(a["room_id"]).encode(), value=msgspec.json.encode(a), force=True
            )
            for a in out.actions
        ]
        await asyncio.gather(*sends)

    async def tick(self) -> None:
        """Every second: watermarks follow the sources, silent partitions age, checkpoints."""
        try:
            await self._tick()
        except Exception as exc:  # a timer that dies silently stops event time: crash
            await self.app.crash(exc)
            raise

    async def _tick(self) -> None:
        await self.learn_positions()
        now = time.monotonic()
        for number in self.pipeline.engines:
            self.pipeline.settle(number, self.lagging_sources(number, now))
            self.pace(number, now, may_pause=False)
        blocked = self.ticked_at is not None and now - self.ticked_at > TICK_GAP_S
        self.ticked_at = now
        self.advance_idle(now, blocked=blocked)
        self.flush_idle(now, blocked=blocked)
        await self.emit()
        covered = self.checkpoint(now)
        if covered:
            await self.commit(covered)

    async def on_assign(self) -> None:
        # Runs once the table is recovered and before Faust seeks the source
        # partitions to their committed offsets, so a commit here decides them.
        # Faust resumes every source partition right after: so is our record of them.
        for partition in self.partitions.values():
            partition.paused.clear()
        self.restore()
        await self.commit_rewinds()

    async def on_shutdown(self, sender: Any, **kwargs: Any) -> None:
        asyncio.get_running_loop().call_later(self.settings.stop_timeout_s, self.give_up_stopping)
        self.checkpoint(time.monotonic(), force=True)

    def give_up_stopping(self) -> None:
        """The stop has not finished in `stop_timeout_s`: leave now, as a crash would.

        It waits on what the producer holds: Faust flushes it on the way out, and its
        batches live 20 minutes (`producer_request_timeout`), so a broker that does not
        answer held a stopping worker that long. Leaving is safe: offsets are committed
        only for checkpoints sent, so a successor resumes from the last one and reads
        the rest again (tests/integration/test_worker_stop)."""
        log.error(
            "the stop did not finish in %.0f s (is the broker reachable?): exiting; the "
            "partitions resume from their last checkpoint sent",
            self.settings.stop_timeout_s,
        )
        self.stop_snapshot()
        logging.shutdown()
        os._exit(1)

    async def on_revoke(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        numbers = {tp.partition for tp in revoked if tp.topic in self.source_of_topic}
        if self.checkpoint(time.monotonic(), force=True, only=numbers):
            # Faust flushed its producer before this signal: without a flush of our own
            # these checkpoints wait in its buffer while the partitions' next owner
            # reads the changelog, restores the one before and counts (and alerts)
            # again what this worker already did (tests/integration/test_worker_failover).
            await self.app.producer.flush()
        for number in numbers:
            log.info("partition %d revoked: dropping its room state", number)
            self.pipeline.revoke(number)
            self.health.forget(number)
            self.partitions.pop(number, None)

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        """Per assigned source topic-partition: messages in Kafka not processed yet."""
        lag: dict[tuple[str, int], int] = {}
        for tp in self.source_assignment():
            try:
                highwater = self.app.consumer.highwater(tp)
            except (AssertionError, KeyError):
                continue
            partition = self.partitions.get(tp.partition)
            position = partition.position(tp.topic) if partition is not None else None
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lag

    def lagging_sources(self, number: int, now: float) -> set[str]:
        """Sources that still hold the partition's watermark.

        A source holds while it has input in Kafka this worker has not processed, or
        delivered a message within the last `source_hold_s`: the high watermark is only
        as fresh as the last fetch, and during a fast replay a topic that looks caught
        up has more on the way. Unknown positions count as holding: the safe side.
        Every source holds for `source_hold_s` after the partition's input resumes
        from a silence: the first fetch of a fast replay may bring one topic's seconds
        before the others' same seconds have reached the broker. A sparse source
        (room events) holds only while input of it waits (`source_holds`).
        """
        partition = self.partition(number)
        recent = now - self.settings.source_hold_s
        woke = partition.woke_at is not None and partition.woke_at > recent
        lagging = set()
        answered_since = time.time() - UNANSWERED_S
        for topic, source in self.source_of_topic.items():
            if topic in partition.paused:
                # Not fetched: its high watermark is stale, and its input waits.
                lagging.add(source)
                continue
            try:
                highwater: int | None = self.app.consumer.highwater(TP(topic, number))
                answered = self.app.answered_at(TP(topic, number))
            except (AssertionError, KeyError):  # not assigned (mid-rebalance): hold
                highwater = answered = None
            if source_holds(
                source in SPARSE_SOURCES,
                highwater=highwater,
                position=partition.position(topic),
                answered=answered,
                answered_since=answered_since,
                recent_message=partition.last_message.get(topic, float("-inf")) > recent,
                woke=woke,
            ):
                lagging.add(source)
        return lagging

    def pace(self, number: int, now: float, *, may_pause: bool) -> None:
        """Flow control: bound the events a partition holds for its watermark.

        The watermark follows the slowest source that holds it, and everything newer
        waits in memory. A backlog is not read at the same event-time pace from every
        topic (a topic of sparse joins covers an hour in the fetch that covers a minute
        of latency samples), so without a bound the faster topics' events pile up for
        as long as the backlog lasts: the 14-night burst of `make soak` took the worker
        to 1.6 GiB while a backtest of the same log stayed under 200 MB. Past
        `max_held_events` the sources more than the allowed lateness ahead of the slowest
        one holding the watermark are paused (each then holds it too, at its own clock:
        its input waits) until half as many events wait or they are no longer that far
        ahead. Not those closer: what lies within the lateness of the slowest source waits
        for the watermark however the topics are read, so a room's rate times the
        lateness is held whatever flow control does (a 1M-viewer room, about 600,000
        events): pausing for it saves nothing and stops the room's sources again and
        again (92 pauses in a 4-minute run of benchmarks.hot_room before). As the slowest
        catches up it stops being ahead of anything, so the sources left running are
        always those the watermark waits for. A source holding without an event yet
        (every source does for `source_hold_s` when input resumes) has every other paused
        until it stops holding: a replay's first two seconds brought a whole partition's
        hour before.

        Only `consume` pauses: records a fetch in flight brought for a partition paused
        meanwhile would be dropped (streams.worker.fetch); the tick only resumes.
        """
        limit = self.settings.max_held_events
        partition = self.partitions.get(number)
        engine = self.pipeline.engines.get(number)
        if partition is None or engine is None or self.app.rebalancing or self.app.in_recovery:
            return
        held = engine.held()
        self.health.held_peak = max(self.health.held_peak, held)
        if not limit or held <= (limit // 2 if partition.paused else limit):
            ahead: set[str] = set()
        else:
            early = sources_ahead(
                engine.source_clocks,
                self.lagging_sources(number, now),
                self.settings.allowed_lateness_ms,
            )
            ahead = {t for t, source in self.source_of_topic.items() if source in early}
        consumer = self.app.consumer
        resumed = partition.paused - ahead
        if resumed:
            consumer.resume_partitions({TP(topic, number) for topic in resumed})
            partition.paused -= resumed
            partition.resumed_at = now
        paused = ahead - partition.paused
        if paused and may_pause:
            consumer.pause_partitions({TP(topic, number) for topic in paused})
            partition.paused |= paused
            self.health.source_pauses += len(paused)

    async def learn_positions(self) -> None:
        """Fill in where consumption starts for assigned partitions not read from yet.

        Only to tell whether a source is caught up: the consumer may have fetched past
        messages not processed yet, so this is no position a checkpoint could cover.
        """
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic not in self.source_of_topic:
                continue  # the checkpoint changelog's partitions, standbys included
            partition = self.partition(tp.partition)
            if tp.topic not in partition.positions:
                position = await assigned_position(consumer, tp)
                if position is not None:
                    partition.fetch_positions[tp.topic] = position

    def advance_idle(self, now: float, *, blocked: bool) -> None:
        """Live mode: event time keeps passing in partitions that receive nothing.

        Only in partitions with nothing left to read: one with a backlog that waited
        while the worker was busy elsewhere (a big batch, many dead letters) is not
        idle, and moving its clock would make its backlog late.

        And only as far as the broker vouches for the silence: up to its last answer to
        a fetch of every source, never across a time it did not answer or this worker
        was blocked (a broker away holds commits and sends). Producers keep what they
        could not send meanwhile, stamped in that time: a broker's outage is no silence.
        """
        for number in self.pipeline.engines:
            partition = self.partition(number)
            answered = self.answered_until(number, now)
            if blocked or answered < now - UNANSWERED_S:
                partition.last_activity = now  # silent or not, nobody knows: start again
                continue
            idle = answered - (now if partition.last_activity is None else partition.last_activity)
            if idle >= self.settings.idle_after_s and not self.lagging_sources(number, now):
                self.pipeline.advance_idle(number, int(idle * 1000))
                partition.last_activity = answered
                partition.dirty = True

    def answered_until(self, number: int, now: float) -> float:
        """Monotonic time of the broker's last answer to a fetch of every source of the
        partition (the oldest of the latest); -inf when one is not assigned or unanswered."""
        to_monotonic = now - time.time()
        answers = []
        for topic in self.source_of_topic:
            try:
                answered = self.app.answered_at(TP(topic, number))
            except (AssertionError, KeyError):
                answered = None
            if answered is None:
                return float("-inf")
            answers.append(answered + to_monotonic)
        return min([now, *answers])

    def flush_idle(self, now: float, *, blocked: bool) -> None:
        """The end of input: a partition none of whose sources has held the watermark
        for `flush_idle_s` (`lagging_sources`: nothing left to read, no message within
        `source_hold_s`, the broker answering) applies what waits for the watermark, as
        a backtest does at the end of its log, once until new input arrives.

        Without it a worker that replayed a log (`idle_after_s` long, so event time
        does not follow the wall clock) would hold its last `allowed_lateness_ms`
        forever and never end where the backtest of the log ends. The price: an event
        arriving after the flush that is not newer than the newest flushed one is late,
        hence a silence far longer than any pause of a running producer."""
        wait = self.settings.flush_idle_s
        for number in list(self.pipeline.engines):
            partition = self.partition(number)
            if partition.flushed:
                continue
            if blocked or self.lagging_sources(number, now):
                partition.held_at = now
                continue
            quiet = now - (partition.held_at or partition.known_since)
            if quiet >= wait:
                self.pipeline.flush([number])
                partition.flushed = True
                partition.dirty = True  # the flushed state is what a successor resumes
                self.health.idle_flushes += 1
                log.info("partition %d: every source quiet for %.0f s: flushed", number, quiet)

    def checkpoint(
        self, now: float, *, force: bool = False, only: set[int] | None = None
    ) -> dict[TP, int]:
        """Checkpoint changed partitions whose last checkpoint is older than the interval;
        return the source offsets the checkpoints sent now cover.

        Unless forced, one partition at a time (the longest unsaved), taken by a forked
        child (streams.worker.fork, `checkpoint_fork`) while processing goes on, and sent
        by the tick that finds it done: taken on the processing thread, a checkpoint held
        up processing, and the alerts waiting in it, for as long as it took. Forced (revocation,
        shutdown), the partitions' checkpoints are taken at once, here, where state and
        positions cannot move: a child still at work is stopped.
        """
        forking = self.settings.checkpoint_fork and fork.AVAILABLE
        if not force and forking and not self.fork_failed:
            sent = self.collect(now)
            if self.snapshot is None and not self.fork_failed:
                self.start_snapshot(now)
            return sent
        self.stop_snapshot()
        self.fork_failed = False
        covered: dict[TP, int] = {}
        for number in self.due(now, force=force, only=only):
            partition = self.partitions[number]
            positions = dict(partition.positions)
            engine = self.pipeline.engine(number)
            taken = snapshot(engine, number, positions, partition.checkpoint_seq)
            partition.dirty = False
            covered |= self.send_checkpoint(number, taken, now, positions)
        return covered

    def due(self, now: float, *, force: bool, only: set[int] | None = None) -> list[int]:
        """Changed partitions to checkpoint now, the longest unsaved first: when not
        forced, the first of them if its interval has passed."""
        numbers = self.partitions.keys() if only is None else only & self.partitions.keys()
        due = sorted(
            (n for n in numbers if self.partitions[n].dirty),
            key=lambda n: self.partitions[n].checkpointed_at or float("-inf"),
        )
        if force:
            return due
        return [n for n in due[:1] if self.checkpoint_due(self.partitions[n], now)]

    def start_snapshot(self, now: float) -> None:
        """Fork a child to take the checkpoint of the partition due first, if one is."""
        for number in self.due(now, force=False):
            partition = self.partitions[number]
            engine = self.pipeline.engine(number)
            positions = dict(partition.positions)
            work = partial(snapshot, engine, number, positions, partition.checkpoint_seq)
            try:
                child = fork.spawn(work, Snapshot, directory=self.settings.state_dir)
            except OSError as exc:  # no process or no file to spare
                self.child_failed(number, f"cannot fork: {exc}")
                return
            self.snapshot = Taking(number, positions, now, child)
            partition.dirty = False  # what changes from now on is not in it

    def collect(self, now: float) -> dict[TP, int]:
        """Send the checkpoint a child has finished; the offsets it covers."""
        taking = self.snapshot
        if taking is None:
            return {}
        try:
            taken = taking.child.result()
        except fork.ChildFailed as exc:
            self.child_failed(taking.number, str(exc))
            self.forget_snapshot()
            return {}
        if taken is None:
            if now - taking.at > FORK_TIMEOUT_S:
                self.child_failed(taking.number, "stuck: stopped")
                self.stop_snapshot()
            return {}
        self.snapshot = None
        self.health.checkpoint_child_peak_rss = max(
            self.health.checkpoint_child_peak_rss, taking.child.peak_rss
        )
        if taking.number not in self.partitions:
            return {}
        return self.send_checkpoint(taking.number, taken, taking.at, taking.positions)

    def child_failed(self, number: int, why: str) -> None:
        """A checkpoint no child took. The next is taken here: a failure in encoding then
        shows as it would have, and a child the system kills is not forked again and again."""
        log.error("partition %d: checkpoint child failed: %s", number, why)
        self.health.checkpoint_children_failed += 1
        self.fork_failed = True

    def stop_snapshot(self) -> None:
        """Stop a child still taking a checkpoint: its partition is unsaved again."""
        if self.snapshot is not None:
            self.snapshot.child.kill()
            self.forget_snapshot()

    def forget_snapshot(self) -> None:
        taking, self.snapshot = self.snapshot, None
        if taking is not None and taking.number in self.partitions:
            self.partitions[taking.number].dirty = True

    def send_checkpoint(
        self, number: int, taken: Snapshot, at: float, positions: dict[str, int]
    ) -> dict[TP, int]:
        """Hand a checkpoint taken at `at` to the producer; the source offsets it covers."""
        partition = self.partitions[number]
        for key, value in taken.records:
            self.checkpoints.send_changelog(number, key, value)
        partition.checkpoint_seq += 1
        partition.checkpointed_at = at
        partition.checkpoint_took = taken.took
        self.health.checkpoint_written(number, taken.size, time.time())
        return {TP(t, number): o for t, o in positions.items()}

    def checkpoint_due(self, partition: Partition, now: float) -> bool:
        """The interval has passed, and 20 times what the last checkpoints of all
        partitions took together: taking checkpoints (encoding whole states, in a child
        beside the worker or, forced, in it) stays under 5% of a core however big the
        state grows, at the price of more to replay on a restart."""
        if partition.checkpointed_at is None:
            return True
        took = sum(p.checkpoint_took for p in self.partitions.values())
        wait = max(self.settings.checkpoint_interval_s, CHECKPOINT_PAUSE * took)
        return now - partition.checkpointed_at >= wait

    async def commit(self, covered: dict[TP, int]) -> None:
        """Commit source offsets that checkpoints cover, once the checkpoints are sent.

        Only for the group's lag and for partitions whose checkpoint could not be
        read: a restored checkpoint decides where its partition resumes.
        """
        # Faust's own commit: flushes the producer first, skips revoked partitions.
        await self.app.consumer._commit_offsets(covered)  # type: ignore[attr-defined]

    def source_assignment(self) -> set[TP]:
        """The source topic-partitions this worker consumes now (none before it starts)."""
        try:
            assignment = self.app.consumer.assignment()
        except (ConsumerNotStarted, AssertionError, AttributeError, RuntimeError):  # not started
            return set()
        return {tp for tp in assignment if tp.topic in self.source_of_topic}

    def assigned(self) -> set[int]:
        """Partition numbers whose source topics this worker consumes now."""
        return {tp.partition for tp in self.source_assignment()}

    def restore(self) -> None:
        """Load the checkpoint of every assigned partition that has no state here yet."""
        assigned = self.assigned()
        store = self.checkpoints.data
        for number in sorted(assigned - self.pipeline.engines.keys()):
            try:
                seq, blob = join_checkpoint(number, store.get)
                engine, checkpoint = restore_checkpoint(blob, self.settings.engine_config())
            except KeyError:
                self.health.restores["absent"] += 1
                continue
            except OutdatedCheckpoint as exc:
                log.warning(
                    "partition %d: %s: not read; starting from the committed offsets "
                    "(drain before upgrading: docs/deploy.md)",
                    number,
                    exc,
                )
                self.health.restores["outdated"] += 1
                continue
            except CheckpointError as exc:
                # Starting empty loses the partition's history but keeps the worker up.
                log.error("partition %d: checkpoint not restored: %s", number, exc)
                self.health.restores["failed"] += 1
                continue
            self.pipeline.adopt(number, engine)
            partition = self.partition(number)
            partition.checkpoint_seq = seq + 1
            self.health.restores["restored"] += 1
            for topic, offset in checkpoint.offsets.items():
                if topic in self.source_of_topic:
                    partition.positions[topic] = partition.pending_rewinds[topic] = offset
            log.info("partition %d: restored checkpoint %d at %s", number, seq, checkpoint.offsets)

    async def commit_rewinds(self) -> None:
        """Commit restored offsets so consumption resumes where the restored state ends."""
        rewinds = {
            TP(topic, number): offset
            for number, partition in self.partitions.items()
            for topic, offset in partition.pending_rewinds.items()
        }
        if not rewinds:
            return
        # Faust has no public call to commit given offsets; this is what its own commit uses.
        if await self.app.consumer._commit(rewinds):  # type: ignore[attr-defined]
            log.info("committed restored offsets %s", rewinds)
            for partition in self.partitions.values():
                partition.pending_rewinds.clear()
        else:  # a new rebalance began: retried when its recovery completes
            log.warning("could not commit restored offsets yet: %s", rewinds)
