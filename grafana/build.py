"""Generates grafana/dashboards/*.json: run `python grafana/build.py` after editing.

Dashboards are data, kept here as code so every panel has a unit and a
description, and tests (tests/grafana/) can send every query to a real
Prometheus. Standard library only.

Every query reads the Prometheus the `datasource` variable picks, so the files
import into any Grafana: the import form asks for a Prometheus (`__inputs`,
DS_PROMETHEUS) and makes it the variable's default. Provisioned as files (the
bundled stack, kube-prometheus-stack's sidecar), no input is substituted and the
variable falls back to the default Prometheus datasource.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
INPUT = "DS_PROMETHEUS"
GRAFANA_VERSION = "10.0.0"
"""The oldest Grafana the dashboards are written for (schema 39, `__requires`)."""
RATE = "$__rate_interval"
SLO_MS = 600


def target(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "instant": instant,
        "range": not instant,
    }


def panel(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    kind: str = "timeseries",
    width: int = 12,
    height: int = 8,
    thresholds: list[tuple[float, str]] | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    steps = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in thresholds or []]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if decimals is not None:
        defaults["decimals"] = decimals
    if thresholds and kind == "timeseries":
        defaults["custom"] = {"thresholdsStyle": {"mode": "line+area"}}
    for ref, t in zip("ABCDEFGH", targets, strict=False):
        t["refId"] = ref
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right"}}
        if kind == "timeseries"
        else {},
        "gridPos": {"w": width, "h": height},
    }


def datasource_variable() -> dict[str, Any]:
    """The Prometheus every panel reads; its default is the one chosen at import."""
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": f"${{{INPUT}}}", "value": f"${{{INPUT}}}"},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": 0,
        "includeAll": False,
        "multi": False,
    }


PANEL_NAMES = {"stat": "Stat", "table": "Table", "timeseries": "Time series"}


def requires(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an import checks the target Grafana has: the version, Prometheus, the panels."""
    kinds = sorted({p["type"] for p in panels})
    return [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        *({"type": "panel", "id": k, "name": PANEL_NAMES[k], "version": ""} for k in kinds),
    ]


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    x = y = row_height = 0
    for index, p in enumerate(panels, start=1):
        p["id"] = index
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        p["gridPos"].update({"x": x, "y": y})
        x += w
        row_height = max(row_height, h)
    return {
        "__inputs": [
            {
                "name": INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the livewatch workers and notifier.",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": requires(panels),
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["livewatch"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "editable": True,
        "templating": {"list": [datasource_variable(), *extra.get("variables", [])]},
        "annotations": {"list": extra.get("annotations", [])},
        "links": [{"title": "livewatch", "type": "dashboards", "tags": ["livewatch"]}],
        "panels": panels,
    }


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "vars"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "includeAll": False,
        "multi": False,
    }


def overview() -> dict[str, Any]:
    return dashboard(
        "livewatch-overview",
        "livewatch: live overview",
        "All rooms at a glance: audience, traffic, alerts and the post-promotion ebb.",
        [
            panel("Rooms live", "Rooms with state in the workers.", "none",
                  [target("sum(livewatch_rooms)", instant=True)], kind="stat", width=4, height=4),
            panel("Online viewers", "Viewers online in all rooms now.", "short",
                  [target("sum(livewatch_online_viewers)", instant=True)], kind="stat", width=4,
                  height=4),
            panel("Alerts firing", "Alerts firing now, all rooms.", "none",
                  [target("sum(livewatch_alerts_firing) or vector(0)", instant=True)],
                  kind="stat", width=4, height=4, thresholds=[(1, "red")]),
            panel("Events per second", "Valid events accepted per second, all types.", "ops",
                  [target(f"sum(rate(livewatch_events_total[{RATE}]))", instant=True)],
                  kind="stat", width=4, height=4),
            panel("Invalid events", "Share of input rejected (dead-lettered).", "percentunit",
                  [target(f"sum(rate(livewatch_events_invalid_total[{RATE}])) / clamp_min("
                          f"sum(rate(livewatch_events_total[{RATE}])), 1e-9)", instant=True)],
                  kind="stat", width=4, height=4, thresholds=[(0.01, "orange"), (0.05, "red")]),
            panel("Late events", "Events dropped as later than the allowed lateness, per second.",
                  "ops", [target(f"sum(rate(livewatch_events_late_total[{RATE}]))", instant=True)],
                  kind="stat", width=4, height=4),
            panel("Online viewers", "Viewers online, all rooms of each worker summed.", "short",
                  [target("sum(livewatch_online_viewers)", "online")]),
            panel("Entries and exits", "Viewer entries and exits in the last minute of event "
                  "time (so: per minute), all rooms.", "short",
                  [target('sum by (event) (livewatch_window_events{event=~"entry|exit",'
                          'window="1m"})', "{{event}}/min")]),
            panel("Top rooms", "The most watched rooms now (online viewers).", "short",
                  [target("topk(15, livewatch_room_online_viewers)", "{{room}}", instant=True)],
                  kind="table", width=12),
            panel("Alerts firing by room", "Which alerts fire where (severity in the legend).",
                  "none", [target("sum by (room, alert, severity) (livewatch_alerts_firing) "
                                  "or vector(0)", "{{room}} {{alert}} {{severity}}")]),
            panel("Ebb half-life", "Post-promotion ebb: time for online viewers to fall half "
                  "way from the peak to the floor, per room. Longer is a gentler ebb.", "s",
                  [target("livewatch_room_ebb_half_life_seconds", "{{room}}")]),
            panel("Ebb floor", "Level the ebb settles at relative to the level before the "
                  "promotion (1 = back to where it was).", "percentunit",
                  [target("livewatch_room_ebb_floor_ratio", "{{room}}")], decimals=2),
        ],
    )  # fmt: skip


def room() -> dict[str, Any]:
    r = 'room="$room"'
    return dashboard(
        "livewatch-room",
        "livewatch: room",
        "One room in depth: retention, interaction, orders, QoE, the review of its latest "
        "promotion. Alerts and promotions are annotated.",
        [
            panel("Online viewers", "Viewers in the room now and its peak since live.", "short",
                  [target(f"livewatch_room_online_viewers{{{r}}}", "online"),
                   target(f"livewatch_room_peak_online_viewers{{{r}}}", "peak")]),
            panel("Entries and exits", "Viewer entries and exits per minute (rate of the "
                  "room's counters).", "short",
                  [target(f"sum(rate(livewatch_room_entries_total{{{r}}}[{RATE}])) * 60",
                          "entries/min"),
                   target(f"sum(rate(livewatch_room_exits_total{{{r}}}[{RATE}])) * 60",
                          "exits/min")]),
            panel("Retention", "Share of the sessions started in the 5 minute window still "
                  "open 1 and 5 minutes later; bounce rate: sessions under 10 s.", "percentunit",
                  [target(f'livewatch_room_retention_ratio{{{r},window="5m",after="1m"}}',
                          "1 min retention"),
                   target(f'livewatch_room_retention_ratio{{{r},window="5m",after="5m"}}',
                          "5 min retention"),
                   target(f'livewatch_room_bounce_ratio{{{r},window="5m"}}', "bounce rate")]),
            panel("Average stay", "Watch time per unique viewer over the 5 minute window.", "s",
                  [target(f'livewatch_room_average_stay_seconds{{{r},window="5m"}}', "stay")]),
            panel("Chat", "Danmaku per minute and the distinct chatters of the last 5 minutes.",
                  "short",
                  [target(f"sum(rate(livewatch_room_danmaku_total{{{r}}}[{RATE}])) * 60",
                          "danmaku/min"),
                   target(f'livewatch_room_unique_chatters{{{r},window="5m"}}', "chatters (5m)")]),
            panel("Interaction rate", "Unique chatters / unique viewers (5 min window).",
                  "percentunit",
                  [target(f'livewatch_room_interaction_ratio{{{r},window="5m"}}', "interaction")]),
            panel("Orders", "Paid orders per minute (rate of the room's counter).", "short",
                  [target(f"sum(rate(livewatch_room_orders_total{{{r}}}[{RATE}])) * 60",
                          "orders/min")]),
            panel("GMV and GPM", "Gross merchandise value over 5 minutes in yuan (refunds "
                  "subtracted) and GPM, GMV per thousand viewers.", "currencyCNY",
                  [target(f'livewatch_room_gmv_yuan{{{r},window="5m"}}', "GMV (5m)"),
                   target(f'1000 * livewatch_room_gmv_per_viewer_yuan{{{r},window="5m"}}',
                          "GPM (5m)")]),
            panel("Latency p95 vs the 600 ms SLO", "End-to-end latency quantiles over the "
                  "1 minute window; the red line is the SLO.", "s",
                  [target(f'livewatch_room_latency_seconds{{{r},window="1m",quantile="0.95"}}',
                          "p95"),
                   target(f'livewatch_room_latency_seconds{{{r},window="1m",quantile="0.5"}}',
                          "p50")],
                  thresholds=[(SLO_MS / 1000, "red")]),
            panel("Stall ratio", "Stall time / watch time over the 1 minute window.",
                  "percentunit",
                  [target(f'livewatch_room_stall_ratio{{{r},window="1m"}}', "stall ratio")],
                  thresholds=[(0.01, "red")]),
            panel("Region latency p95", "p95 end-to-end latency of region $region (all rooms "
                  "of the partition's region sketch), 1 minute window.", "s",
                  [target('livewatch_region_latency_seconds{region="$region",window="1m",'
                          'quantile="0.95"}', "$region p95")], thresholds=[(SLO_MS / 1000, "red")]),
            panel("Alerts firing", "This room's alerts firing now.", "none",
                  [target(f"sum by (alert, severity) (livewatch_alerts_firing{{{r}}}) "
                          "or vector(0)", "{{alert}} {{severity}}")]),
            panel("Promotion review: viewers", "The room's latest promotion (its spans are "
                  "annotated): viewers before it (mean of the 5 minutes before its start), at "
                  "its start, peak and end, and the floor its ebb settles at.", "short",
                  [target(f"livewatch_room_promotion_viewers{{{r}}}", "{{at}}", instant=True)],
                  kind="stat"),
            panel("Promotion review: ebb and retention", "The latest promotion's ebb half-life "
                  "after its end, its floor relative to the level before, and the share of "
                  "the viewers online at its end still online 10, 30 and 60 minutes later.",
                  "none",
                  [target(f"livewatch_room_promotion_ebb_half_life_seconds{{{r}}} / 60",
                          "half-life (min)", instant=True),
                   target(f"livewatch_room_promotion_floor_ratio{{{r}}}", "floor / before",
                          instant=True),
                   target(f"livewatch_room_promotion_retention_ratio{{{r}}}",
                          "still online after {{after}}", instant=True)],
                  kind="stat", decimals=2),
            panel("Promotion review: conversion", "The latest promotion: paid orders per "
                  "viewer-hour (conversion) and chat messages per viewer-hour (interaction) "
                  "before, during and after it (after: the hour from its end, so far).",
                  "short",
                  [target(f"livewatch_room_promotion_orders_per_viewer_hour{{{r}}}",
                          "orders/viewer-hour {{phase}}", instant=True),
                   target(f"livewatch_room_promotion_danmaku_per_viewer_hour{{{r}}}",
                          "chat/viewer-hour {{phase}}", instant=True)],
                  kind="stat", width=24, decimals=2),
        ],
        variables=[
            variable("room", "label_values(livewatch_room_online_viewers, room)", "Room"),
            variable("region", "label_values(livewatch_region_latency_seconds, region)",
                     "Region"),
        ],
        annotations=[{
            "name": "Alerts", "enable": True, "iconColor": "red", "datasource": DATASOURCE,
            "expr": f"livewatch_alerts_firing{{{r}}} > 0", "step": "30s",
            "titleFormat": "{{alert}} ({{severity}})", "tagKeys": "alert,severity",
            "useValueForTime": False,
        }, {
            "name": "Promotions", "enable": True, "iconColor": "green", "datasource": DATASOURCE,
            "expr": f"livewatch_room_promotion_active{{{r}}} > 0", "step": "30s",
            "titleFormat": "promotion", "textFormat": "a promotion runs (promo_start to "
            "promo_end, from the room's events)", "useValueForTime": False,
        }],
    )  # fmt: skip


def slo() -> dict[str, Any]:
    return dashboard(
        "livewatch-slo",
        "livewatch: QoE and latency SLO",
        "The 600 ms latency objective (95% of samples) and stalls, per region: error-budget "
        "burn rates as the SRE Workbook's multi-window alerts read them.",
        [
            panel("Latency error-budget burn (5 min)", "Bad share of samples over the last "
                  "5 minutes / the 5% budget, per region. 14.4 pages if it lasts.", "short",
                  [target("livewatch:latency_burn_rate:5m", "{{region}}")],
                  thresholds=[(6, "orange"), (14.4, "red")]),
            panel("Latency error-budget burn (1 h)", "The same over the last hour.", "short",
                  [target("livewatch:latency_burn_rate:1h", "{{region}}")],
                  thresholds=[(6, "orange"), (14.4, "red")]),
            panel("Samples within 600 ms", "Share of end-to-end latency samples at or under "
                  "the SLO, per region, 5 minutes.", "percentunit",
                  [target("livewatch:latency_within_slo:ratio_rate5m", "{{region}}")],
                  thresholds=[(0.95, "green")], decimals=3),
            panel("Latency p95 by region", "p95 end-to-end latency per region, 1 minute "
                  "window.", "s",
                  [target('livewatch_region_latency_seconds{window="1m",quantile="0.95"}',
                          "{{region}}")],
                  thresholds=[(SLO_MS / 1000, "red")]),
            panel("Latency p99 by region", "p99 end-to-end latency per region, 1 minute "
                  "window.", "s",
                  [target('livewatch_region_latency_seconds{window="1m",quantile="0.99"}',
                          "{{region}}")],
                  thresholds=[(SLO_MS / 1000, "red")]),
            panel("Stall ratio, all rooms", "Stall time / watch time over 5 minutes, all rooms "
                  "(objective: under 1%).", "percentunit",
                  [target("livewatch:stall_ratio:rate5m", "stall ratio")],
                  thresholds=[(0.01, "red")]),
            panel("Stall ratio by room", "The rooms stalling most (1 minute window).",
                  "percentunit",
                  [target('topk(10, livewatch_room_stall_ratio{window="1m"})', "{{room}}")]),
            panel("Stalls per viewer-hour by room", "Stall frequency: playback stalls per hour "
                  "watched, the rooms stalling most often.", "short",
                  [target(f"topk(10, sum by (room) (rate(livewatch_room_stalls_total[{RATE}])) "
                          f"/ sum by (room) (rate(livewatch_room_watch_seconds_total[{RATE}])) "
                          "* 3600)", "{{room}}")]),
            panel("SLO alerts firing", "Latency and stall SLO alerts firing now.", "none",
                  [target('sum by (alert, room) (livewatch_alerts_firing{alert=~"latency_slo|'
                          'stall_slo"}) or vector(0)', "{{room}} {{alert}}")]),
        ],
    )  # fmt: skip


def health() -> dict[str, Any]:
    return dashboard(
        "livewatch-health",
        "livewatch: processor health",
        "The workers and the notifier: throughput, bad input, lag, checkpoints, delivery.",
        [
            panel("Events per second by type", "Valid events accepted per second.", "ops",
                  [target(f"sum by (type) (rate(livewatch_events_total[{RATE}]))", "{{type}}")]),
            panel("Invalid and late events", "Rejected input per second by reason (each one "
                  "a dead letter), and events dropped as late.", "ops",
                  [target(f"sum by (reason) (rate(livewatch_events_invalid_total[{RATE}]))",
                          "{{reason}}"),
                   target(f"sum(rate(livewatch_events_late_total[{RATE}]))", "late")]),
            panel("Consumer lag", "Messages not processed yet, per source topic-partition.",
                  "short", [target("sum by (topic, partition) (livewatch_consumer_lag_messages)",
                                   "{{topic}}/{{partition}}")]),
            panel("Processing delay", "Wall clock minus the partition's event-time watermark "
                  "(a replay of an old log shows its age).", "s",
                  [target("max by (partition) (livewatch_watermark_delay_seconds)",
                          "partition {{partition}}")]),
            panel("Checkpoint age", "Time since each partition's state was last checkpointed.",
                  "s", [target("max by (partition) (livewatch_checkpoint_age_seconds)",
                               "partition {{partition}}")], thresholds=[(120, "red")]),
            panel("Checkpoint size", "Size of each partition's last checkpoint.", "bytes",
                  [target("max by (partition) (livewatch_checkpoint_size_bytes)",
                          "partition {{partition}}")]),
            panel("Webhook delivery failures", "Failed delivery attempts per second by receiver "
                  "and reason, and notifications given up on (dead letters).", "ops",
                  [target(f"sum by (receiver, reason) (rate(livewatch_notification_failures_total"
                          f"[{RATE}])) or vector(0)", "{{receiver}} {{reason}}"),
                   target(f"sum(rate(livewatch_notifications_dead_lettered_total[{RATE}])) "
                          "or vector(0)", "dead letters")]),
            panel("Notifications sent", "Notifications delivered per second by receiver.", "ops",
                  [target(f"sum by (receiver) (rate(livewatch_notifications_sent_total[{RATE}])) "
                          "or vector(0)", "{{receiver}}")]),
            panel("Workers up", "Scrape targets answering.", "none",
                  [target('sum by (job) (up{job=~"livewatch.*"})', "{{job}}")]),
        ],
    )  # fmt: skip


DASHBOARDS = {
    "overview": overview,
    "room": room,
    "slo": slo,
    "health": health,
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        (OUT / f"livewatch-{name}.json").write_text(text)


if __name__ == "__main__":
    main()
