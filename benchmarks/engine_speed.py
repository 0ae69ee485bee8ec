"""The engine alone, without Kafka: what the worker's processing costs per event.

The throughput workload (benchmarks/workload.py) as the worker would receive it:
messages grouped by partition, fetches of up to 8,000 records, live mode with
every source lagging (the sparse rooms source aside: the workload has none).
Prints events/s with the interpreter's default garbage collector and with the
worker's (streams.core.runtime), and how the rate changes as state accumulates,
which is what a profile should explain.
Profile it: py-spy record -o engine.svg -- .venv/bin/python -m benchmarks.engine_speed

Run: .venv/bin/python -m benchmarks.engine_speed [events]
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from itertools import pairwise

from benchmarks.workload import Workload, generate, messages
from streams.core.decode import RawMessage
from streams.core.engine import Pipeline
from streams.core.events import SOURCES, SPARSE_SOURCES
from streams.core.runtime import tune_gc
from streams.kafka.partitioner import partition_for
from streams.settings import load_settings

FETCH = 8_000
PARTITIONS = 4


def fetches(count: int) -> list[dict[int, list[RawMessage]]]:
    settings = load_settings(environ={})
    records = messages(generate(Workload(count)), settings.source_topics, 1)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for start in range(0, len(records), FETCH):
        by_partition: dict[int, list[RawMessage]] = {}
        for topic, key, value in records[start : start + FETCH]:
            partition = partition_for(key.decode(), PARTITIONS)
            offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
            by_partition.setdefault(partition, []).append(
                RawMessage(topic, partition, offset, key, value)
            )
        out.append(by_partition)
    return out


def run(count: int) -> None:
    batches = fetches(count)
    pipeline = Pipeline(load_settings(environ={}).engine_config())
    now_ms = Workload(count).events * 1000 // Workload(count).rate + 1_764_000_001_000
    # The workload has no room events: a worker never names the (sparse) rooms source.
    lagging = set(SOURCES) - SPARSE_SOURCES
    started = time.perf_counter()
    marks = []
    for number, fetch in enumerate(batches, 1):
        for partition, batch in fetch.items():
            pipeline.process(partition, batch, now_ms=now_ms, lagging=lagging)
            pipeline.settle(partition, lagging)
        pipeline.drain()
        if number % (len(batches) // 4 or 1) == 0:
            marks.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    events = sum(pipeline.events_total.values())
    quarters = [marks[0]] + [b - a for a, b in pairwise(marks)]
    rates = ", ".join(f"{count / 4 / q:,.0f}" for q in quarters)
    print(f"{events / elapsed:,.0f} events/s (by quarter of the input: {rates})")


def main(count: int) -> None:
    """Each configuration in a fresh interpreter, so neither inherits the other's heap."""
    print(f"Engine alone: {Workload(count).describe()}")
    for mode in ("default", "tuned"):
        print(f"  garbage collector {mode}: ", end="", flush=True)
        subprocess.run(
            [sys.executable, "-m", "benchmarks.engine_speed", str(count), mode], check=True
        )


if __name__ == "__main__":
    if len(sys.argv) > 2:
        if sys.argv[2] == "tuned":
            tune_gc()
        else:
            gc.collect()
        run(int(sys.argv[1]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_200_000)
