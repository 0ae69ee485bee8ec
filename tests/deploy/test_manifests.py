"""docker-compose and Kubernetes files, checked structurally (no Docker here).

They parse, every image is pinned to a version, the services have probes, the
settings they carry load, and every LIVEWATCH_* variable they set is one the
code reads.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.notify.config import NotifyConfig
from streams.settings import FIELDS, env_name, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PINNED = re.compile(
    r"^[a-z0-9./-]+:(?!latest$)[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*(@sha256:[a-f0-9]{64})?$"
)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def k8s() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "k8s/livewatch.yaml").read_text()) if d]


def containers() -> list[dict[str, Any]]:
    return [
        c
        for doc in k8s()
        if doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]


def config_tables() -> list[dict[str, Any]]:
    configmap = next(d for d in k8s() if d["kind"] == "ConfigMap")
    return [
        tomllib.loads((DEPLOY / "livewatch.toml").read_text()),
        tomllib.loads(configmap["data"]["livewatch.toml"]),
    ]


def readable_variables() -> set[str]:
    """LIVEWATCH_<SETTING>, the config file variable, and the secrets the configs name."""
    names = {env_name(f) for f in FIELDS} | {env_name("config")}
    for table in config_tables():
        for receiver in NotifyConfig.from_table(table.get("notify", {})).receivers:
            names |= {n for n in (receiver.url_env, receiver.secret_env) if n}
    return names


def test_compose_has_the_full_stack_with_pinned_images() -> None:
    services = compose()["services"]
    assert {
        "kafka",
        "worker-1",
        "worker-2",
        "notifier",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    for name, service in services.items():
        assert PINNED.match(service["image"]), (name, service["image"])
    assert services["worker-1"]["command"] == ["worker"]
    assert services["notifier"]["command"] == ["notify"]


PROBES = ("readinessProbe", "livenessProbe")


def test_kubernetes_workers_scale_with_probes_config_and_secrets() -> None:
    kinds = [d["kind"] for d in k8s()]
    assert {"ConfigMap", "Secret", "Deployment", "HorizontalPodAutoscaler"} <= set(kinds)
    for container in containers():
        assert PINNED.match(container["image"]), container["image"]
        assert container["readinessProbe"] and container["livenessProbe"], container["name"]
    worker = next(
        d
        for d in k8s()
        if d["metadata"]["name"] == "livewatch-worker" and d["kind"] == "Deployment"
    )
    assert worker["spec"]["replicas"] >= 2
    # Prometheus's scrape timeout: a worker catching up answers slowly, and must not be
    # restarted for it (Kubernetes' default is 1 s).
    probes = [c[p] for c in worker["spec"]["template"]["spec"]["containers"] for p in PROBES]
    assert all(probe.get("timeoutSeconds", 1) >= 10 for probe in probes), probes
    hpa = next(d for d in k8s() if d["kind"] == "HorizontalPodAutoscaler")
    partitions = config_tables()[1]["partitions"]
    assert hpa["spec"]["maxReplicas"] <= partitions  # more workers than partitions idle


def test_every_variable_set_is_one_the_code_reads() -> None:
    readable = readable_variables()
    set_here: set[str] = set()
    for service in compose()["services"].values():
        set_here |= {k for k in (service.get("environment") or {}) if k.startswith("LIVEWATCH_")}
    for container in containers():
        set_here |= {e["name"] for e in container.get("env", [])}
    assert set_here and set_here <= readable, set_here - readable
    image_env = re.findall(r"^ENV (\w+)=", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert set(image_env) <= readable


@pytest.mark.parametrize("which", [0, 1], ids=["compose", "kubernetes"])
def test_the_shipped_settings_load(which: int, tmp_path: Path) -> None:
    table = config_tables()[which]
    for key in ("sasl_password_file", "ssl_cafile"):  # files that only exist in the pod
        if key in table:
            (tmp_path / key).write_text("x")
            table[key] = str(tmp_path / key)
    settings = load_settings(environ={}, overrides=table)
    config = NotifyConfig.from_table(settings.notify)
    assert any(r.kind in ("feishu", "console") for r in config.receivers)


def test_dockerfile_base_is_pinned_and_runs_as_a_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and PINNED.match(base.group(1))
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)


def test_prometheus_scrapes_the_compose_services() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    services = compose()["services"]
    for target in targets:
        host, _ = target.split(":")
        assert host in services, target
    assert "notifier:9465" in targets and "worker-1:9464" in targets


def test_what_is_scraped_or_probed_listens_beyond_loopback() -> None:
    """/metrics binds to loopback by default; each container that Prometheus scrapes
    or a probe checks says it listens on every interface."""
    services = compose()["services"]
    for name in ("worker-1", "worker-2", "notifier"):
        assert services[name]["environment"]["LIVEWATCH_METRICS_HOST"] == "0.0.0.0", name
    checked = []
    for container in containers():
        probed = any(container.get(p) for p in ("readinessProbe", "livenessProbe"))
        if probed or any(port.get("name") == "metrics" for port in container.get("ports", [])):
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env.get("LIVEWATCH_METRICS_HOST") == "0.0.0.0", container["name"]
            checked.append(container["name"])
    assert sorted(checked) == ["notifier", "worker"]  # not passing for want of containers
    assert load_settings(environ={}).metrics_host == "127.0.0.1"
