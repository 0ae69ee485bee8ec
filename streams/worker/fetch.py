"""Source records reach the pipeline a whole fetch at a time, below Faust's event path.

Faust's consumer turns every fetched record into a Message, then an Event, puts
it on a channel queue, and tracks its ack before the offset may be committed.
At one event per Kafka message that machinery costs more than all of
livewatch's processing: a plain Faust agent that only counts events per room
drains about 11k messages/s on this project's machine, the bare aiokafka client
240k-360k (docs/performance.md). `BatchConsumer` keeps Faust's consumer for what it
does well (group membership, the co-partitioned assignment, rebalances, flow
control, pausing partitions while tables recover) and changes one thing: the
records of the source topics leave at the fetch, one fetch at a time, for the
`BatchSink` to process. Records of every other topic, the checkpoint changelog
Faust reads back during recovery, take Faust's usual path.

Source offsets are not acked message by message (their topic is declared
without acks, so Faust never commits them): the worker commits what its
checkpoints cover (streams.worker.app). The fetch waits for its batch to be
processed before fetching again, which is the back pressure; the group's
heartbeats run in the consumer's own thread meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP

log = logging.getLogger(__name__)
Records = Mapping[TP, Sequence[Any]]
"""Fetched records (aiokafka's ConsumerRecord) by topic-partition, in offset order."""

FETCH_MAX_WAIT_MS: Final = 100
"""How long the broker may hold a fetch for data (fetch.max.wait.ms); Faust fixes 1,500.
aiokafka keeps one fetch in flight per broker, and leaves out of it every partition
whose last fetch is not consumed yet: while a hot partition's records are processed,
the fetch in flight asks only for the quiet partitions, and the broker holds it until
this wait runs out. The hot partition's next records wait behind it: with 1.5 s, a
1M-viewer room's worker idled at 40% of a core while its backlog grew by 60,000 events
a second (benchmarks.hot_room)."""


class BatchSink:
    """Where the source records go: the topics that are sources, and their handler."""

    def __init__(
        self, topics: frozenset[str], handle: Callable[[Records], Awaitable[None]]
    ) -> None:
        self.topics = topics
        self.handle = handle


class BatchConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, its aiokafka consumer waiting `FETCH_MAX_WAIT_MS` at most."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes 1,500 to the constructor; aiokafka reads it when it starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer, handing source records to its app's `sink` per fetch."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        # The loop of Consumer._drain_messages (run by Faust's Fetcher service),
        # one fetch at a time instead of one message at a time.
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(timeout=1.0)
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # A rebalance began during the fetch: what it read may belong
                    # to partitions that are no longer ours. Read again from the
                    # committed offsets, as Faust does; and as Faust does, a seek that
                    # fails because the assignment changed under it (aiokafka's
                    # IllegalStateError "No current assignment") is only logged: the
                    # rebalance under way seeks the new assignment again.
                    await self._rewind(records)
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        log.warning("seek during a rebalance failed, retried after it: %r", exc)
                    continue
                ours = {
                    tp: rs
                    for tp, rs in records.items()
                    if rs and (active is None or tp in active or tp in self._buffered_partitions)
                }
                await self._rewind({tp: rs for tp, rs in records.items() if tp not in ours})
                await self._dispatch(ours)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _rewind(self, records: Records) -> None:
        """Seek each partition of `records`, which are not processed, back to its first.

        The consumer's position has moved past them. Faust's seek to the committed
        offsets moves only partitions that have one, so a partition never committed (no
        checkpoint yet: its worker gone before the first, or its first events written
        while no worker ran) would skip them for good: a fetch during a restart's
        recovery, its partitions not active yet, lost every event of such partitions
        (tests/integration/test_worker_restart). A partition no longer ours needs
        nothing: its next owner reads from the committed offsets."""
        for tp, rs in records.items():
            if rs:
                try:
                    await self.seek(tp, rs[0].offset)
                except (IllegalStateError, AssertionError, KeyError) as exc:
                    log.debug("%s not rewound (no longer assigned): %r", tp, exc)

    def answered_at(self, tp: TP) -> float | None:
        """Wall-clock time (s) the broker last answered a fetch of `tp`; None before its
        first answer. A caught-up partition is answered at least every `FETCH_MAX_WAIT_MS`
        (and a fetch's round trip): an older answer means the broker is away, and the high
        watermark is stale. Raises AssertionError when `tp` is not assigned."""
        stamp = self._thread._ensure_consumer().last_poll_timestamp(tp)
        return None if stamp is None else float(stamp) / 1000

    async def _dispatch(self, records: Records) -> None:
        sink = getattr(self.app, "sink", None)
        batch = {}
        for tp, rs in records.items():
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if sink is not None and tp.topic in sink.topics:
                batch[tp] = rs
            else:
                await self._deliver(tp, rs)
        if batch and sink is not None:
            await sink.handle(batch)

    async def _deliver(self, tp: TP, records: Sequence[Any]) -> None:
        """Faust's own path, one message at a time (the changelog during recovery)."""
        read_offset = self._read_offset
        for record in records:
            offset = record.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue  # read before a seek back: Faust drops these too
            if last and offset - last > 1 and self.app.topics.acks_enabled_for(tp.topic):
                await self._add_gap(tp, last + 1, offset)
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset


class App(faust.App):
    """A Faust app whose consumer hands the `sink`'s topics over in batches (the sink
    is looked up at each fetch: Faust creates the consumer whenever it first needs it)."""

    sink: BatchSink | None = None

    def answered_at(self, tp: TP) -> float | None:
        """BatchConsumer.answered_at of this app's consumer."""
        consumer = self.consumer
        assert isinstance(consumer, BatchConsumer)
        return consumer.answered_at(tp)

    def _new_consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )
