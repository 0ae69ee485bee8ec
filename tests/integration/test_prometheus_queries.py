"""Every dashboard query against a real Prometheus scraping a worker fed a real night."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.dev.broker import die_with_parent, free_port
from streams.dev.demo import NIGHT
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.integration.prometheus import api

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
VARIABLES = {"$room": "room-beauty", "$region": "cn-south", "$__rate_interval": "30s"}


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                out.append((path.stem, panel["title"], target["expr"]))
    return out


@pytest.fixture
def notifier(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], int]]:
    """A notifier whose webhook is down: its failure counters get series."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> int:
        port = free_port()
        config = tmp_path / "notify.toml"
        config.write_text(
            "[notify]\ngroup_wait_s = 0\n"
            f'silences_file = "{tmp_path / "silences.json"}"\n'
            '[[notify.receivers]]\nname = "down"\nkind = "webhook"\n'
            'url = "http://127.0.0.1:9/nobody-listens"\n'
            '[[notify.routes]]\nreceivers = ["down"]\n'
        )
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli.main", "notify", "--config", str(config)],
                env={**os.environ, **env, env_name("notifier_metrics_port"): str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )
        return port

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


async def test_every_panel_query_is_valid_and_returns_data(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    notifier: Callable[[dict[str, str]], int],
    prometheus: Callable[[str, str], str],
) -> None:
    worker = worker_factory(isolated_env)
    notifier_port = notifier(isolated_env)
    base = prometheus(f"127.0.0.1:{worker.settings.metrics_port}", f"127.0.0.1:{notifier_port}")
    stats = await replay(NIGHT, worker.settings, speed=None)
    assert stats.produced > 100_000

    def answered(expr: str) -> list[Any]:
        result = api(base, "query", query=expr)
        assert result["status"] == "success", (expr, result)
        return list(result["data"]["result"])

    queries = panel_queries()
    assert len(queries) >= 40

    def without_data() -> list[str]:
        empty = []
        for dashboard, title, expr in queries:
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            if not answered(expr):
                empty.append(f"{dashboard} / {title}: {expr}")
        return empty

    # Let the worker finish the night (some panels, such as the promotion's retention
    # 10 minutes after its end, have data only late in the night's event time) and
    # Prometheus scrape and evaluate it: on a loaded machine that takes a while.
    deadline = time.monotonic() + 180
    while (empty := without_data()) and time.monotonic() < deadline:
        assert worker.process.poll() is None, "the worker exited"
        await asyncio.sleep(2)
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # The room dashboard's variables and annotation query.
    rooms = api(base, "label/room/values", **{"match[]": "livewatch_room_online_viewers"})
    assert "room-beauty" in rooms["data"]
    regions = api(base, "label/region/values", **{"match[]": "livewatch_region_latency_seconds"})
    assert "cn-south" in regions["data"]
    assert answered('livewatch_alerts_firing{room="room-outage"} > 0')
    # The delivery panels fall back to 0 when nothing failed: check their series by name.
    assert answered('up{job="livewatch-notifier"} == 1')
    assert answered("livewatch_notification_failures_total")
