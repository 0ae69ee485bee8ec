"""A worker that cannot process must not look healthy: it exits, and is restarted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.dev.demo import stop_process, wait_for_metrics
from streams.settings import Settings, load_settings

# A worker whose pipeline raises on every batch: any bug in processing, injected.
CRASHING_WORKER = """
import sys
from streams.core.engine import Pipeline
def fail(self, *args, **kwargs):
    raise RuntimeError("injected processing fault")
Pipeline.process = fail
from streams.cli.main import main
sys.exit(main(["worker"]))
"""


def test_a_worker_whose_processing_crashes_exits_non_zero(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(environ=isolated_env)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", CRASHING_WORKER],
            env={**os.environ, **isolated_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_metrics(f"http://127.0.0.1:{settings.metrics_port}/metrics", process)
        asyncio.run(produce_a_join(settings))
        code = process.wait(timeout=120)
        assert code != 0
        assert "injected processing fault" in log.read_text(errors="replace")
    finally:
        stop_process(process)


async def produce_a_join(settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        join = {"type": "join", "room_id": "r", "ts": int(time.time() * 1000), "user_id": "u"}
        await producer.send_and_wait(
            settings.topic_for_type("join"), json.dumps(join).encode(), key=b"r"
        )
    finally:
        await producer.stop()
