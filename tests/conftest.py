"""Shared fixtures: one real Kafka broker per test session, and worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import start_worker, stop_process, wait_for_metrics
from streams.settings import Settings, env_name, load_settings


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalKafka]:
    """The real broker, started once; stopped even when tests fail."""
    with LocalKafka(heap_mb=512, partitions=4) as broker:
        yield broker


class RunningWorker:
    def __init__(self, process: subprocess.Popen[bytes], settings: Settings, log: Path) -> None:
        self.process = process
        self.settings = settings
        self.log = log

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.metrics_port}/metrics"

    def status(self) -> dict[str, Any]:
        """The worker's /status: a cheap summary (events, late, rooms, partitions, lag,
        held events and their peak)."""
        url = f"http://127.0.0.1:{self.settings.metrics_port}/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))


@pytest.fixture
def isolated_env(kafka: LocalKafka, tmp_path: Path) -> dict[str, str]:
    """Settings for one test: its own topics, consumer group and state."""
    tag = uuid.uuid4().hex[:8]
    return {
        env_name("bootstrap_servers"): kafka.bootstrap,
        env_name("topic_prefix"): f"t{tag}.",
        env_name("app_id"): f"livewatch-test-{tag}",
        env_name("state_dir"): str(tmp_path / "state"),
        env_name("metrics_port"): str(free_port()),
        env_name("metrics_host"): "127.0.0.1",
        env_name("allowed_lateness_ms"): "1000",
        env_name("idle_after_s"): "0.5",
        # Tests that compare with the offline state before the end of input (the last
        # lateness window held) must not see it flushed; those of the flush set it short.
        env_name("flush_idle_s"): "3600",
        env_name("log_level"): "info",
    }


@pytest.fixture
def worker_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[dict[str, str]], RunningWorker]]:
    started: list[RunningWorker] = []

    def start(env: dict[str, str]) -> RunningWorker:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = RunningWorker(start_worker(env, log), load_settings(environ=env), log)
        started.append(worker)
        wait_for_metrics(worker.metrics_url, worker.process)
        return worker

    yield start
    for worker in started:
        stop_process(worker.process)
        if os.environ.get("LIVEWATCH_SHOW_WORKER_LOG") or getattr(
            request.node, "rep_call_failed", True
        ):
            print(f"--- {worker.log} ---\n{worker.log.read_text(errors='replace')[-20000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed  # type: ignore[attr-defined]
    return report
