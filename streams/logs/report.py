"""`livewatch backtest --report`: one self-contained HTML page of pictures of a night.

Per room, four aligned panels over event time: online viewers (alert markers,
the promotion peak and the fitted ebb), chat rate, latency p95 against the SLO
line and the stall ratio, each with the spans its alerts were firing (and the
labelled incidents, when known). A table of every alert transition follows.

Everything shown that came from producers or users (room ids, regions, alert
summaries) goes through `sanitize_sample` first: plotly renders `<a>` and `<b>`
in labels, and the page must not carry anyone's links or markup.
"""

from __future__ import annotations

import html
import os
import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectors.alerts import Transition
from detectors.config import EbbConfig
from detectors.ebb import floor_words
from detectors.text import sanitize_sample

REPORT_EVERY_S: Final = 10
"""Snapshot interval (event time) the report's lines are drawn from."""

# Which panel shows which alert's firing spans, and the metric each panel plots.
_PANELS: Final = (
    ("online viewers", "online_viewers_live", 1.0, "traffic_cliff"),
    ("chat messages / min", "danmaku_per_minute_1m", 1.0, "spam_flood"),
    ("latency p95 (ms, 1 min)", "latency_p95_seconds_1m", 1000.0, "latency_slo"),
    ("stall ratio (%, 1 min)", "stall_ratio_1m", 100.0, "stall_slo"),
)
_SEVERITY_COLOURS: Final = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
_INCIDENT_COLOUR: Final = "#7f7f7f"


@dataclass(frozen=True, slots=True)
class Span:
    alert: str
    severity: str
    start: int
    end: int
    label: str


def write_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    snapshots: list[dict[str, Any]],
    transitions: list[Transition],
    latency_slo_ms: float,
    incidents: list[dict[str, Any]] | None = None,
    summary_lines: Iterable[str] = (),
) -> None:
    by_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for snap in snapshots:
        by_room[snap["room_id"]].append(snap)
    rooms = sorted(set(by_room) | {t.room_id for t in transitions})
    sections = []
    for index, room in enumerate(rooms):
        figure = room_figure(
            room,
            sorted(by_room.get(room, []), key=lambda s: s["ts"]),
            [t for t in transitions if t.room_id == room],
            latency_slo_ms,
            [i for i in incidents or [] if i["room_id"] == room],
        )
        chart = figure.to_html(full_html=False, include_plotlyjs=index == 0)
        sections.append(f"<section><h2>{_text(room)}</h2>{chart}</section>")
    page = _PAGE.format(
        title=html.escape(title),
        summary="".join(f"<li>{_text(line)}</li>" for line in summary_lines),
        alerts=_alerts_table(transitions),
        rooms="\n".join(sections) or "<p>No rooms in this log.</p>",
    )
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)


def room_figure(
    room: str,
    snapshots: list[dict[str, Any]],
    transitions: list[Transition],
    latency_slo_ms: float,
    incidents: list[dict[str, Any]],
) -> go.Figure:
    figure = make_subplots(
        rows=len(_PANELS),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=[title for title, *_ in _PANELS],
    )
    times = [_time(s["ts"]) for s in snapshots]
    for row, (title, metric, scale, _) in enumerate(_PANELS, start=1):
        values = [_scaled(s["metrics"].get(metric), scale) for s in snapshots]
        figure.add_trace(
            go.Scatter(x=times, y=values, mode="lines", name=title, showlegend=False),
            row=row,
            col=1,
        )
    figure.add_hline(
        y=latency_slo_ms,
        line_dash="dash",
        line_color=_SEVERITY_COLOURS["critical"],
        annotation_text=f"SLO {latency_slo_ms:.0f} ms",
        row=3,
        col=1,
    )
    _mark_ebb(figure, snapshots)
    last_ts = snapshots[-1]["ts"] if snapshots else max((t.ts for t in transitions), default=0)
    _mark_spans(figure, firing_spans(transitions, last_ts), incidents)
    _mark_alerts(figure, snapshots, transitions)
    figure.update_layout(
        height=820,
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        hovermode="x unified",
        template="plotly_white",
    )
    figure.update_yaxes(rangemode="tozero")
    return figure


def _mark_spans(figure: go.Figure, spans: list[Span], incidents: list[dict[str, Any]]) -> None:
    """Shade when alerts fired, and the labelled incidents, on the panel of their alert."""
    panel_of = {alert: row for row, (*_, alert) in enumerate(_PANELS, start=1)}
    for span in spans:
        figure.add_vrect(
            x0=_time(span.start),
            x1=_time(span.end),
            fillcolor=_SEVERITY_COLOURS.get(span.severity, "#1f77b4"),
            opacity=0.18,
            line_width=0,
            row=panel_of.get(span.alert, 1),
            col=1,
        )
    for incident in incidents:
        figure.add_vrect(
            x0=_time(incident["start"]),
            x1=_time(incident["end"]),
            fillcolor=_INCIDENT_COLOUR,
            opacity=0.12,
            line_width=0,
            annotation_text="labelled " + _text(str(incident["alert"])),
            annotation_position="top left",
            row=panel_of.get(incident["alert"], 1),
            col=1,
        )


def firing_spans(transitions: list[Transition], end_ts: int) -> list[Span]:
    """Firing-to-resolved spans per alert (and region); still firing spans end at `end_ts`."""
    open_spans: dict[tuple[str, str | None], Transition] = {}
    spans = []
    for t in sorted(transitions, key=lambda t: t.ts):
        key = (t.alert, t.region)
        if t.state == "firing":
            open_spans.setdefault(key, t)
        elif key in open_spans:
            started = open_spans.pop(key)
            spans.append(Span(t.alert, started.severity, started.ts, t.ts, started.summary))
    for started in open_spans.values():
        spans.append(Span(started.alert, started.severity, started.ts, max(end_ts, started.ts), ""))
    return spans


def _mark_alerts(
    figure: go.Figure, snapshots: list[dict[str, Any]], transitions: list[Transition]
) -> None:
    """A marker on the viewers line at every alert firing, with its summary on hover."""
    firing = [t for t in transitions if t.state == "firing"]
    if not firing:
        return
    stamps = [s["ts"] for s in snapshots]
    viewers = [s["metrics"].get("online_viewers_live") or 0 for s in snapshots]
    for severity in ("warning", "critical", "info"):
        chosen = [t for t in firing if t.severity == severity]
        if not chosen:
            continue
        figure.add_trace(
            go.Scatter(
                x=[_time(t.ts) for t in chosen],
                y=[_value_at(stamps, viewers, t.ts) for t in chosen],
                mode="markers",
                marker={
                    "size": 11,
                    "symbol": "triangle-down",
                    "color": _SEVERITY_COLOURS[severity],
                },
                name=f"{severity} alerts",
                hovertext=[_text(f"{t.alert} {t.region or ''}: {t.summary}", 160) for t in chosen],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )


def _mark_ebb(figure: go.Figure, snapshots: list[dict[str, Any]]) -> None:
    """Each promotion peak the ebb tracker found, and its fitted decay to the floor."""
    latest: dict[int, dict[str, Any]] = {}
    for snap in snapshots:
        peak = snap["metrics"].get("ebb_peak_ts")
        if peak is not None:
            latest[int(peak)] = snap
    for peak_ts, snap in latest.items():
        m = snap["metrics"]
        peak, floor, half_life = (
            m["ebb_peak_viewers"],
            m["ebb_floor_viewers"],
            m["ebb_half_life_seconds"],
        )
        figure.add_vline(x=_time(peak_ts), line_dash="dot", line_color="#2ca02c", row=1, col=1)
        pre_level = m.get("ebb_pre_level_viewers")
        floor_text = (
            f", {_floor_text(snapshots[0], peak_ts, floor, pre_level)}"
            if pre_level is not None
            else ""
        )
        figure.add_annotation(
            x=_time(peak_ts),
            y=peak,
            text=(
                f"promotion peak {peak:,.0f}; ebb half-life {half_life / 60:.1f} min{floor_text}"
            ),
            showarrow=True,
            arrowhead=2,
            ax=60,
            ay=-30,
            row=1,
            col=1,
        )
        steps = range(0, snap["ts"] - peak_ts + 1, 15_000)
        figure.add_trace(
            go.Scatter(
                x=[_time(peak_ts + step) for step in steps],
                y=[floor + (peak - floor) * 2 ** (-step / 1000 / half_life) for step in steps],
                mode="lines",
                line={"dash": "dot", "color": "#2ca02c"},
                name="fitted ebb",
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )


def _floor_text(first: dict[str, Any], peak_ts: int, floor: float, pre_level: float) -> str:
    """The ebb's floor against the level before the promotion, when there was one.

    The tracker's level is the median of the viewers over its window before the
    peak. A room that started from (next to) zero inside that window had no level:
    the median is its own climb into the promotion, and a ratio to it ("floor 0.0x
    the level before it") reads as if the room had lost its audience. The window
    is the default one (`detectors.ebb.pre_window_s`), which snapshots do not carry.
    """
    since_start_ms = peak_ts - first["ts"]
    first_viewers = first["metrics"].get("online_viewers_live") or 0
    if since_start_ms < EbbConfig().pre_window_s * 1000 and first_viewers < 0.1 * pre_level:
        return (
            f"floor {floor:,.0f} viewers, no level before it "
            f"(the room started from zero {since_start_ms / 60_000:.0f} min before the peak)"
        )
    return floor_words(floor, pre_level)


def _alerts_table(transitions: list[Transition]) -> str:
    if not transitions:
        return "<p>No alerts.</p>"
    rows = []
    for t in transitions:
        duration = ""
        if t.state == "resolved":
            duration = f"{(t.ts - t.started_at) / 60_000:.1f} min"
        rows.append(
            "<tr>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t.ts / 1000))}</td>"
            f"<td class='{_text(t.severity)}'>{_text(t.state)} {_text(t.severity)}</td>"
            f"<td>{_text(t.alert)}</td><td>{_text(t.room_id)}</td>"
            f"<td>{_text(t.region or '')}</td><td>{duration}</td>"
            f"<td>{_text(t.summary, 240)}</td>"
            "</tr>"
        )
    head = (
        "<tr><th>time (UTC)</th><th>state</th><th>alert</th><th>room</th>"
        "<th>region</th><th>lasted</th><th>summary</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _text(value: str, limit: int = 128) -> str:
    """Producer- or user-written text, inert (no links, mentions or markup) and escaped."""
    return html.escape(sanitize_sample(value, limit))


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _value_at(stamps: list[int], values: list[float], ts: int) -> float:
    """The latest value at or before `ts` (the first one before any)."""
    index = bisect_right(stamps, ts) - 1
    return values[max(index, 0)] if values else 0.0


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }}
td.critical {{ color: #d62728; }} td.warning {{ color: #c45f00; }}
section {{ margin-top: 2em; }}
</style></head><body>
<h1>{title}</h1>
<ul>{summary}</ul>
<h2>Alerts</h2>
{alerts}
{rooms}
</body></html>
"""
