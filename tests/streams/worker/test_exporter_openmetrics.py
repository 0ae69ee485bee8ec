"""The worker's scrape in both formats: what Prometheus asks for (OpenMetrics) parses
with the OpenMetrics parser, the text format passes `promtool check metrics`, and
the names follow Prometheus' naming practice (docs/metrics.md lists them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.samples import Sample

from streams.core.config import EngineConfig
from streams.core.decode import RawMessage
from streams.core.engine import Pipeline
from streams.dev.demo import SAMPLE
from streams.kafka.partitioner import partition_for
from streams.logs.files import read_lines
from streams.worker.exporter import PipelineCollector, render, sanitize_label_value
from streams.worker.health import HealthCollector, WorkerHealth

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
"""What Prometheus 2.x sends when it scrapes."""
HOSTILE_ROOM = 'evil"} 1\nlivewatch_fake{x="\\\u202e'
PARTITIONS = 4


@cache
def worker_registry() -> CollectorRegistry:
    """The worker's collectors over the demo sample plus a room with a hostile id,
    as the worker registers them (auto_describe, health beside the pipeline)."""
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=2000))
    by_partition: dict[int, tuple[list[bytes], list[int]]] = {}
    last_ts = 0
    for number, line in read_lines(SAMPLE):
        event = msgspec.json.decode(line)
        last_ts = max(last_ts, event["ts"])
        lines, numbers = by_partition.setdefault(
            partition_for(event["room_id"], PARTITIONS), ([], [])
        )
        lines.append(line)
        numbers.append(number)
    for partition, (lines, numbers) in sorted(by_partition.items()):
        pipeline.process_lines(partition, lines, numbers, str(SAMPLE))
    hostile = json.dumps({"type": "join", "room_id": HOSTILE_ROOM, "ts": last_ts, "user_id": "u"})
    partition = partition_for(HOSTILE_ROOM, PARTITIONS)
    message = RawMessage("live.joins", partition, 0, HOSTILE_ROOM.encode(), hostile.encode())
    pipeline.process(partition, [message])
    pipeline.flush()
    health = WorkerHealth()
    health.checkpoint_written(0, 2048, now=100.0)
    health.restores["restored"] += 1
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(pipeline))
    registry.register(
        HealthCollector(
            health,
            clock=lambda: 130.0,
            lag=lambda: {("live.joins", 0): 12},
            watermarks=lambda: {0: 120.0},
        )
    )
    return registry


def samples(families: list[object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in families:
        for s in family.samples:  # type: ignore[attr-defined]
            assert isinstance(s, Sample)
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_gets_openmetrics_that_the_openmetrics_parser_reads() -> None:
    body, headers = render(worker_registry(), PROMETHEUS_ACCEPT)
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = list(openmetrics_families(text))  # raises on a clash, a bad name or escape
    types = {f.name: f.type for f in families}
    assert types["livewatch_room_watch_seconds"] == "counter"  # once a clash with a gauge
    assert types["livewatch_room_latency_seconds"] == "summary"
    assert types["livewatch_region_latency_seconds"] == "summary"
    assert types["livewatch_latency_seconds"] == "histogram"
    assert types["livewatch_partition_watermark_timestamp_seconds"] == "gauge"
    assert types["livewatch_checkpoint_age_seconds"] == "gauge"
    got = samples(families)
    # The untrusted room id survives the round trip, escaped and not breaking lines.
    room = (("room", sanitize_label_value(HOSTILE_ROOM)),)
    assert got[("livewatch_room_online_viewers", room)] == 1
    assert "\nlivewatch_fake" not in text
    # The same values as the text format, which stays the default.
    plain, plain_headers = render(worker_registry(), None)
    assert plain_headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert got == samples(list(text_families(plain.decode())))


def test_openmetrics_is_served_only_when_asked_for() -> None:
    for accept in ("application/openmetrics-text", "application/openmetrics-text; version=1.0.0"):
        assert render(worker_registry(), accept)[1]["Content-Type"].startswith(
            "application/openmetrics-text"
        )
    for accept in (None, "", "text/plain", "*/*", "text/plain;version=0.0.4"):
        assert render(worker_registry(), accept)[1]["Content-Type"].startswith("text/plain")


def test_the_renamed_series_carry_their_labels() -> None:
    families = list(openmetrics_families(render(worker_registry(), PROMETHEUS_ACCEPT)[0].decode()))
    labels = {f.name: {tuple(sorted(s.labels)) for s in f.samples} for f in families}
    assert labels["livewatch_room_retention_ratio"] == {("after", "room", "window")}
    assert labels["livewatch_room_latency_seconds"] == {("quantile", "room", "window")}
    assert labels["livewatch_region_latency_seconds"] == {("quantile", "region", "window")}
    assert labels["livewatch_window_events"] == {("event", "window")}
    got = samples(families)
    quantiles = {dict(k)["quantile"] for n, k in got if n == "livewatch_room_latency_seconds"}
    assert quantiles == {"0.5", "0.95", "0.99"}
    afters = {
        (dict(k)["after"], dict(k)["window"])
        for n, k in got
        if n == "livewatch_room_retention_ratio"
    }
    # The sample lasts two minutes: no session is five minutes old yet.
    assert afters == {("1m", "1m"), ("1m", "5m")}
    # Every ratio is a 0-1 ratio (the ebb's floor, a level relative to another, may pass 1).
    for (name, _), value in got.items():
        if name.endswith("_ratio") and "ebb_floor" not in name:
            assert 0 <= value <= 1, (name, value)


@cache
def family_types() -> dict[str, str]:
    return {
        f.name: f.type
        for f in openmetrics_families(render(worker_registry(), PROMETHEUS_ACCEPT)[0].decode())
    }


def test_names_follow_the_prometheus_naming_practice() -> None:
    for name, kind in family_types().items():
        assert re.fullmatch(r"livewatch_[a-z][a-z0-9_]*[a-z]", name), name
        # OpenMetrics strips `_total` from a counter's family name: none is left on others.
        assert not name.endswith("_total"), name
        for bad in ("per_minute", "per_hour", "_rate", "_share", "_percent", "_ms", "minutes"):
            assert bad not in name, name
        assert not re.search(r"_p\d\d", name), f"{name}: the quantile belongs in a label"
        if "watermark" in name and "delay" not in name:  # a point in time, not a duration
            assert name.endswith("_timestamp_seconds") and kind == "gauge", name
        if "gmv" in name:
            assert name.endswith("_yuan"), name


def test_docs_list_every_exported_family_and_no_renamed_one() -> None:
    docs = (ROOT / "docs/metrics.md").read_text()
    exported = set(family_types())
    health = {"livewatch_checkpoint", "livewatch_consumer_lag", "livewatch_watermark_delay"}
    for name in exported:
        if name.startswith(tuple(health)) or name == "livewatch_redelivered_messages":
            continue  # docs/deploy.md
        shown = f"{name}_total" if family_types()[name] == "counter" else name
        assert f"`{shown}" in docs, shown
    renames = docs[docs.index("### Renamed in issue 17") :]
    old = re.findall(r"^\| `(livewatch_[a-z0-9_]+)", renames, re.M)
    assert len(old) >= 20
    scraped = {f"{n}_total" if family_types()[n] == "counter" else n for n in exported}
    assert not scraped & set(old)


def test_promtool_check_metrics_passes_on_the_scrape() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make test installs Debian's prometheus)")
    text = render(worker_registry(), None)[0].decode()
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (
        lint.stdout + lint.stderr
    )
