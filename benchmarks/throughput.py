"""Worker throughput draining pre-loaded topics, beside the bare clients and the peers.

The workload (benchmarks/workload.py: 1,000 rooms of Zipf sizes, every event
type, latency samples three quarters of it) is produced once per message shape:
one event per message, and per-room batches of up to 100 events. Then, one after
another on the same topics, each consumer drains them from the start: the bare
aiokafka and confluent-kafka clients decoding with livewatch's decoder, Quix
Streams stateless and with a 1 s tumbling window per room, a plain Faust agent,
and the livewatch worker with everything on (all metrics, detectors,
checkpoints). Each figure is events/s from the first record received to the
last event processed; for the worker, from the first events counted on its
/status page (polled every 0.1 s) to the last. Ratios are to the bare aiokafka
client measured in the same run.

Run: .venv/bin/python -m benchmarks.throughput [events] (needs the `bench` extra).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaProducer

from benchmarks.peers import peers
from benchmarks.workload import Workload, generate, messages
from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import start_worker, stop_process, wait_for_metrics
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings

SHAPES = (1, 100)
WORKER = "livewatch worker (everything on)"


async def preload(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> int:
    """Create the source topics and fill them; the partition count."""
    partitions = await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=50, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return partitions


def processed(status_url: str) -> int:
    with urllib.request.urlopen(status_url, timeout=5) as response:
        return int(json.loads(response.read())["events"])


def worker_rate(env: dict[str, str], expected: int, log: Path) -> float:
    process = start_worker(env, log)
    port = env[env_name("metrics_port")]
    try:
        wait_for_metrics(f"http://127.0.0.1:{port}/metrics", process)
        status_url = f"http://127.0.0.1:{port}/status"
        first: tuple[float, int] | None = None
        while (count := processed(status_url)) < expected:
            if count and first is None:
                first = (time.perf_counter(), count)
            time.sleep(0.1)
        done = time.perf_counter()
        if first is None:  # everything in one step between two polls
            raise RuntimeError("the worker finished between two polls: use more events")
        return (count - first[1]) / (done - first[0])
    finally:
        stop_process(process)


def measure_shape(
    kafka: LocalKafka, workload: Workload, batch: int, workdir: Path
) -> dict[str, float]:
    env = {
        env_name("bootstrap_servers"): kafka.bootstrap,
        env_name("topic_prefix"): f"bench{batch}.",
        env_name("app_id"): f"bench-{batch}",
        env_name("state_dir"): str(workdir / f"state{batch}"),
        env_name("metrics_port"): str(free_port()),
        env_name("log_level"): "warning",
    }
    settings = load_settings(environ=env)
    records = messages(generate(workload), settings.source_topics, batch)
    partitions = asyncio.run(preload(settings, records))
    print(f"  {batch} event(s)/message: {len(records):,} messages", flush=True)
    topics = list(settings.source_topics.values())
    rates = {}
    for name, peer in peers(partitions).items():
        rates[name] = peer(kafka.bootstrap, topics, workload.events)
        print(f"    {name:<34} {rates[name]:>12,.0f} events/s", flush=True)
    rates[WORKER] = worker_rate(env, workload.events, workdir / f"worker{batch}.log")
    print(f"    {WORKER:<34} {rates[WORKER]:>12,.0f} events/s", flush=True)
    return rates


def table(rates: dict[int, dict[str, float]]) -> str:
    baseline = next(iter(rates[SHAPES[0]]))
    header = "| consumer | " + " | ".join(f"{b} event(s)/message" for b in SHAPES) + " |"
    lines = [header, "|---|" + "---:|" * len(SHAPES)]
    for name in rates[SHAPES[0]]:
        cells = [
            f"{rates[b][name]:,.0f} ({rates[b][name] / rates[b][baseline]:.2f}x)" for b in SHAPES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="livewatch-bench-"))
    workload = Workload(count)
    print(f"Throughput: {workload.describe()}; 4 partitions; broker on the same 2 cores")
    with LocalKafka(workdir=workdir / "kafka", partitions=4) as kafka:
        rates = {batch: measure_shape(kafka, workload, batch, workdir) for batch in SHAPES}
    print("events/s (x the bare aiokafka client in the same run):")
    print(table(rates))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
