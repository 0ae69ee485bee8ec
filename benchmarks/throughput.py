"""Worker throughput draining a pre-loaded topic, next to a bare aiokafka consumer.

For one event per message and for 100-event batched messages, the same events
are produced once; then (1) a bare aiokafka consumer reads and decodes them with
the same msgspec decoder, (2) a livewatch worker process drains them. Printed
figures are events/s and the worker's ratio to the baseline measured in the same
run. Run: .venv/bin/python benchmarks/throughput.py [events]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.core.decode import RawMessage, decode_messages
from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import scrape, start_worker, stop_process, wait_for_metrics
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings

T0 = 1_764_000_000_000


def generate(count: int) -> list[dict[str, object]]:
    rng = random.Random(5)
    kinds = ["join"] * 2 + ["danmaku"] * 4 + ["latency"] * 3 + ["order", "stall"]
    events: list[dict[str, object]] = []
    for i in range(count):
        room, user, kind = (
            f"room-{rng.randrange(50)}",
            f"u{rng.randrange(20_000)}",
            rng.choice(kinds),
        )
        event: dict[str, object] = {
            "type": kind,
            "room_id": room,
            "ts": T0 + i * 2,
            "user_id": user,
        }
        if kind == "danmaku":
            event["text"] = "扣1"
        elif kind == "latency":
            event["value_ms"] = float(rng.randrange(100, 900))
        elif kind == "order":
            event |= {"order_id": f"o{i}", "amount": 9.9}
        elif kind == "stall":
            event["duration_ms"] = 500.0
        events.append(event)
    return events


def messages(
    events: list[dict[str, object]], settings: Settings, batch: int
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value); batched messages hold up to `batch` events of one room and topic."""
    open_runs: dict[tuple[str, str], list[dict[str, object]]] = {}
    out: list[tuple[str, bytes, bytes]] = []
    for event in events:
        key = (settings.topic_for_type(str(event["type"])), str(event["room_id"]))
        run = open_runs.setdefault(key, [])
        run.append(event)
        if len(run) >= batch:
            out.append((key[0], key[1].encode(), json.dumps(run if batch > 1 else run[0]).encode()))
            open_runs[key] = []
    out += [(t, r.encode(), json.dumps(run).encode()) for (t, r), run in open_runs.items() if run]
    return out


async def produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=50, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bare_consumer(settings: Settings, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        *settings.source_topics.values(),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    decoded, started = 0, None
    try:
        while decoded < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            started = started or time.perf_counter()
            for tp, records in batch.items():
                out = decode_messages(
                    [RawMessage(tp.topic, tp.partition, r.offset, r.key, r.value) for r in records]
                )
                decoded += len(out.events)
        assert started is not None
        return decoded / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def worker_rate(env: dict[str, str], expected: int, log: Path) -> float:
    process = start_worker(env, log)
    url = f"http://127.0.0.1:{env[env_name('metrics_port')]}/metrics"
    try:
        wait_for_metrics(url, process)
        first: tuple[float, float] | None = None
        while True:
            counted = sum(scrape(url).get("livewatch_events_total", {}).values())
            now = time.perf_counter()
            if counted and first is None:
                first = (now, counted)
            if counted >= expected:
                assert first is not None
                return (counted - first[1]) / max(now - first[0], 1e-9)
            time.sleep(0.2)
    finally:
        stop_process(process)


async def preload_and_baseline(
    settings: Settings, records: list[tuple[str, bytes, bytes]], count: int
) -> float:
    await ensure_topics(settings)
    await produce(settings, records)
    return await bare_consumer(settings, count)


def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="livewatch-bench-"))
    events = generate(count)
    with LocalKafka(workdir=workdir / "kafka", partitions=4) as kafka:
        print(f"{count} events, 4 partitions, 2 cores shared by broker, producer and consumer")
        for batch in (1, 100):
            env = {
                env_name("bootstrap_servers"): kafka.bootstrap,
                env_name("topic_prefix"): f"bench{batch}.",
                env_name("app_id"): f"bench-{batch}",
                env_name("state_dir"): str(workdir / f"state{batch}"),
                env_name("metrics_port"): str(free_port()),
                env_name("log_level"): "warning",
            }
            settings = load_settings(environ=env)
            records = messages(events, settings, batch)
            baseline = asyncio.run(preload_and_baseline(settings, records, count))
            rate = worker_rate(env, count, workdir / f"worker{batch}.log")
            print(
                f"{batch:>3} event(s)/message, {len(records)} messages: bare aiokafka + msgspec "
                f"{baseline:,.0f} events/s; livewatch worker {rate:,.0f} events/s "
                f"({rate / baseline:.2f}x the baseline)"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
