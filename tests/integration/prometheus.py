"""A real Prometheus for the integration tests: scrapes, rules and its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.dev.broker import die_with_parent, free_port

RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules"


def api(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a real Prometheus (Debian's) scraping a worker and a notifier every
    `scrape_interval` (its timeout is the smaller of that and Prometheus's 10 s),
    evaluating the rules in `rules` (the project's by default) every second; return
    its URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(worker: str, notifier: str, rules: Path = RULES, scrape_interval: str = "1s") -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {scrape_interval}, evaluation_interval: 1s}}\n"
            f"rule_files: ['{rules}/*.yml']\n"
            "scrape_configs:\n"
            f"  - {{job_name: livewatch-worker, static_configs: [{{targets: ['{worker}']}}]}}\n"
            f"  - {{job_name: livewatch-notifier, static_configs: [{{targets: ['{notifier}']}}]}}\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        started.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                api(base, "query", query="up")
                return base
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("prometheus did not start: " + (tmp_path / "prometheus.log").read_text())

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)
