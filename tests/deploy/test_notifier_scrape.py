"""The notifier's /metrics as Prometheus scrapes it: OpenMetrics when asked for,
parsed by the OpenMetrics parser; the text format otherwise, passing `promtool
check metrics`. (The worker's scrape: tests/streams/worker/test_exporter_openmetrics.py.)"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from streams.dev.broker import free_port
from streams.notify.service import notifier_metrics, serve_metrics
from streams.settings import load_settings

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture
def notifier_url() -> Iterator[str]:
    registry = CollectorRegistry()
    undecodable, delivery = notifier_metrics(registry)
    undecodable.inc()
    delivery.sent.labels(receiver="oncall").inc()
    delivery.failures.labels(receiver="oncall", reason="http_5xx").inc(2)
    delivery.latency.labels(receiver="oncall").observe(0.4)
    settings = load_settings(environ={"LIVEWATCH_NOTIFIER_METRICS_PORT": str(free_port())})
    server = serve_metrics(settings, registry)
    assert server is not None
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def scrape(url: str, accept: str | None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_prometheus_gets_openmetrics_from_the_notifier(notifier_url: str) -> None:
    content_type, text = scrape(notifier_url, PROMETHEUS_ACCEPT)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["livewatch_notification_failures"].type == "counter"
    assert families["livewatch_notification_delivery_seconds"].type == "histogram"
    failures = [
        s.value
        for s in families["livewatch_notification_failures"].samples
        if s.name == "livewatch_notification_failures_total"
    ]
    assert failures == [2]
    assert "livewatch_notifier_undecodable" in families


def test_the_text_format_by_default_passes_promtool(notifier_url: str) -> None:
    content_type, text = scrape(notifier_url, None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "livewatch_notifications_sent_total" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make test installs Debian's prometheus)")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (
        lint.stdout + lint.stderr
    )
