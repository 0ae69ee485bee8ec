"""The committed dashboards: generated from grafana/build.py, every panel explained,
importable into any Grafana and provisioned for the bundled one."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
VARIABLE = {"type": "prometheus", "uid": "${datasource}"}


def datasource_references(node: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every `datasource` field in a dashboard, with where it sits."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((where, value))
            found += datasource_references(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += datasource_references(value, f"{where}/{index}")
    return found


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
        assert panel["datasource"] == VARIABLE, panel["title"]
        assert all(t["datasource"] == VARIABLE for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_reads_the_datasource_variable(path: Path) -> None:
    """No datasource uid is hard-coded: panels, targets, variables and annotations all
    read `$datasource`, a Prometheus picked from the Grafana it runs in."""
    dashboard: dict[str, Any] = json.loads(path.read_text())
    variable = dashboard["templating"]["list"][0]
    assert variable["name"] == "datasource"
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    assert not variable["includeAll"] and not variable["multi"]
    references = datasource_references(dashboard)
    assert len(references) > len(dashboard["panels"])
    for where, reference in references:
        assert reference == VARIABLE, where
    assert "livewatch-prometheus" not in path.read_text()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_import_asks_for_a_prometheus_and_makes_it_the_default(path: Path) -> None:
    """Grafana's import form lists `__inputs` and replaces `${DS_PROMETHEUS}` with the
    chosen datasource's uid; provisioned as a file nothing is replaced, and the
    variable falls back to the default Prometheus."""
    dashboard: dict[str, Any] = json.loads(path.read_text())
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": dashboard["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    assert {("panel", p["type"]) for p in dashboard["panels"]} <= required
    assert "id" not in dashboard or dashboard["id"] is None  # an import creates it
    imported = json.loads(path.read_text().replace("${DS_PROMETHEUS}", "their-prometheus"))
    variable = imported["templating"]["list"][0]
    assert variable["current"]["value"] == "their-prometheus"
    assert imported["panels"] == dashboard["panels"]  # the panels keep reading the variable


def test_the_room_dashboard_has_room_and_region_variables_and_alert_annotations() -> None:
    room = json.loads((GRAFANA / "dashboards" / "livewatch-room.json").read_text())
    assert room["uid"] == "livewatch-room"  # the notifier's deep links point here
    assert [v["name"] for v in room["templating"]["list"]] == ["datasource", "room", "region"]
    assert "livewatch_alerts_firing" in room["annotations"]["list"][0]["expr"]
    slo_line = next(p for p in room["panels"] if "600 ms" in p["title"])
    steps = slo_line["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 0.6} in steps


def test_promotions_are_annotated_on_the_room_dashboard_and_reviewed_in_panels() -> None:
    """Promotion spans come from livewatch_room_promotion_active (issue 18); the review's
    figures have panels; no query groups or filters by a promotion id (not a label)."""
    room = json.loads((GRAFANA / "dashboards" / "livewatch-room.json").read_text())
    promotions = next(a for a in room["annotations"]["list"] if a["name"] == "Promotions")
    assert promotions["expr"] == 'livewatch_room_promotion_active{room="$room"} > 0'
    assert promotions["enable"] and promotions["datasource"] == VARIABLE
    queries = [t["expr"] for p in room["panels"] for t in p["targets"]]
    for family in (
        "livewatch_room_promotion_viewers",
        "livewatch_room_promotion_ebb_half_life_seconds",
        "livewatch_room_promotion_floor_ratio",
        "livewatch_room_promotion_retention_ratio",
        "livewatch_room_promotion_orders_per_viewer_hour",
        "livewatch_room_promotion_danmaku_per_viewer_hour",
    ):
        assert any(family + '{room="$room"}' in q for q in queries), family
    assert not any("promo_id" in q for q in queries)


def test_provisioning_points_at_the_dashboards_and_the_datasource_uid() -> None:
    import yaml

    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "livewatch-prometheus"
    # The dashboards' variable falls back to the default Prometheus: this one.
    assert datasource["datasources"][0]["type"] == "prometheus"
    assert datasource["datasources"][0]["isDefault"] is True
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/livewatch.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
