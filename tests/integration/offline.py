"""The offline computation integration tests compare a worker's scrape with."""

from __future__ import annotations

import os
import urllib.request

import msgspec
from prometheus_client import CollectorRegistry, generate_latest

from detectors.alerts import Transition
from streams.core.config import EngineConfig
from streams.core.engine import Pipeline
from streams.kafka.partitioner import partition_for
from streams.logs.backtest import run_backtest
from streams.logs.files import read_lines
from streams.settings import Settings
from streams.worker.exporter import ExportConfig, PipelineCollector
from streams.worker.health import HealthCollector, WorkerHealth
from tests.exposition import Samples
from tests.exposition import samples as parse


def offline_exposition(path: str | os.PathLike[str], partitions: int, lateness_ms: int) -> str:
    """The sample through the pipeline without Kafka, partitioned as Kafka does."""
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=lateness_ms))
    by_partition: dict[int, tuple[list[bytes], list[int]]] = {}
    for number, line in read_lines(path):
        room = msgspec.json.decode(line)["room_id"]
        lines, numbers = by_partition.setdefault(partition_for(room, partitions), ([], []))
        lines.append(line)
        numbers.append(number)
    for partition, (lines, numbers) in by_partition.items():
        pipeline.process_lines(partition, lines, numbers, str(path))
        # The worker, once every source is caught up, holds the watermark at clock - lateness.
        pipeline.settle(partition, ())
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    return generate_latest(registry).decode()


def backtest_exposition(
    path: str | os.PathLike[str], settings: Settings
) -> tuple[str, list[Transition]]:
    """`livewatch backtest` of the log under the worker's settings: what the worker's
    pipeline exports once its input has ended and been flushed, and the transitions."""
    result = run_backtest(path, settings)
    assert result.pipeline is not None
    registry = CollectorRegistry()
    registry.register(PipelineCollector(result.pipeline, ExportConfig.from_settings(settings)))
    return generate_latest(registry).decode(), result.transitions


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def pipeline_samples(text: str) -> Samples:
    """What the pipeline exports (the worker adds its own health metrics)."""
    health = tuple(family.name for family in HealthCollector(WorkerHealth()).collect())
    return {
        key: value
        for key, value in parse(text).items()
        if key[0].startswith("livewatch_") and not key[0].startswith(health)
    }


def room_state_samples(text: str) -> Samples:
    """What the partitions' state determines, without counters that restart with a worker."""
    return {
        key: value
        for key, value in pipeline_samples(text).items()
        if not key[0].startswith("livewatch_events_")
    }
