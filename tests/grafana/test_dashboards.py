"""The committed dashboards: generated from grafana/build.py, every panel explained."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def test_the_committed_json_is_what_build_py_generates(tmp_path: Path) -> None:
    build = runpy.run_path(str(GRAFANA / "build.py"))
    for name, make in build["DASHBOARDS"].items():
        committed = json.loads((GRAFANA / "dashboards" / f"livewatch-{name}.json").read_text())
        assert committed == make(), f"run: python grafana/build.py ({name} is stale)"
    assert len(DASHBOARDS) == 4


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_a_unit_a_description_and_a_query(path: Path) -> None:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    assert dashboard["uid"].startswith("livewatch-") and dashboard["title"]
    for panel in dashboard["panels"]:
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "livewatch-prometheus"


def test_the_room_dashboard_has_room_and_region_variables_and_alert_annotations() -> None:
    room = json.loads((GRAFANA / "dashboards" / "livewatch-room.json").read_text())
    assert room["uid"] == "livewatch-room"  # the notifier's deep links point here
    assert {v["name"] for v in room["templating"]["list"]} == {"room", "region"}
    assert "livewatch_alerts_firing" in room["annotations"]["list"][0]["expr"]
    slo_line = next(p for p in room["panels"] if "600 ms" in p["title"])
    steps = slo_line["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 0.6} in steps


def test_provisioning_points_at_the_dashboards_and_the_datasource_uid() -> None:
    import yaml

    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "livewatch-prometheus"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/livewatch.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
