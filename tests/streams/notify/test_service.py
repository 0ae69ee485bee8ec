from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, Counter

from streams.dev.broker import free_port
from streams.notify.service import serve_metrics
from streams.settings import load_settings


def test_the_notifier_serves_metrics_on_loopback_unless_told_otherwise() -> None:
    registry = CollectorRegistry()
    Counter("livewatch_test_sent", "A counter to find.", registry=registry).inc()
    settings = load_settings(environ={"LIVEWATCH_NOTIFIER_METRICS_PORT": str(free_port())})
    server = serve_metrics(settings, registry)
    assert server is not None
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "livewatch_test_sent_total 1.0" in response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    off = load_settings(environ={"LIVEWATCH_NOTIFIER_METRICS_PORT": "0"})
    assert serve_metrics(off, registry) is None
