"""`livewatch backtest --report`: one self-contained HTML page of pictures of a night.

Per room, four aligned panels over event time: online viewers (alert markers; the
spans of its promotions as its room events told them, or, in a room without any,
the promotion peak the ebb tracker inferred and its fitted ebb), chat rate, latency
p95 against the SLO line and the stall ratio, each with the spans its alerts were
firing (and the labelled incidents, when known). A table of every alert transition
follows, and the promotion review: a table of every promotion (the figures of
streams.core.review as its room's latest snapshot had them) and a chart of its
conversion and interaction before, during and after, and its retention.

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
    reviews = promotion_reviews(snapshots)
    # The review's chart comes first in the page: it carries plotly.js when there is one.
    review_chart = ""
    if reviews:
        review_chart = review_figure(reviews).to_html(full_html=False, include_plotlyjs=True)
    sections = []
    for index, room in enumerate(rooms):
        figure = room_figure(
            room,
            sorted(by_room.get(room, []), key=lambda s: s["ts"]),
            [t for t in transitions if t.room_id == room],
            latency_slo_ms,
            [i for i in incidents or [] if i["room_id"] == room],
        )
        chart = figure.to_html(full_html=False, include_plotlyjs=index == 0 and not reviews)
        sections.append(f"<section><h2>{_text(room)}</h2>{chart}</section>")
    page = _PAGE.format(
        title=html.escape(title),
        summary="".join(f"<li>{_text(line)}</li>" for line in summary_lines),
        alerts=_alerts_table(transitions),
        promotions=_reviews_table(reviews) + review_chart,
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
    if any(_promotion_key(s) is not None for s in snapshots):
        _mark_promotions(figure, snapshots)
    else:  # no room events told of a promotion: the tracker's inferred peak, as before
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
                f"inferred promotion peak {peak:,.0f}; "
                f"ebb half-life {half_life / 60:.1f} min{floor_text}"
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


def _promotion_key(snap: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """(start ms, end ms) of the promotion a snapshot reviews, None when none."""
    m = snap["metrics"]
    start, end = m.get("promotion_start_ts"), m.get("promotion_end_ts")
    if start is None and end is None:
        return None
    return (None if start is None else int(start), None if end is None else int(end))


def promotion_reviews(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every promotion of every room, as its room's latest snapshot reviewing it had it:
    `{"room_id", "start", "end", "metrics"}`, in order of room and time."""
    latest: dict[tuple[str, int | None], dict[str, Any]] = {}
    for snap in sorted(snapshots, key=lambda s: s["ts"]):
        key = _promotion_key(snap)
        if key is not None:
            # A running promotion's snapshots and its ended ones share the start.
            ident = key[0] if key[0] is not None else key[1]
            latest[(snap["room_id"], ident)] = {
                "room_id": snap["room_id"],
                "start": key[0],
                "end": key[1],
                "ts": snap["ts"],
                "metrics": snap["metrics"],
            }
    return sorted(latest.values(), key=lambda r: (r["room_id"], r["start"] or r["end"] or 0))


def _mark_promotions(figure: go.Figure, snapshots: list[dict[str, Any]]) -> None:
    """Each promotion its room events told of: its span, and its review in words."""
    last_ts = snapshots[-1]["ts"]
    for review in promotion_reviews(snapshots):
        start, end, m = review["start"], review["end"], review["metrics"]
        x0 = _time(start if start is not None else end)
        figure.add_vrect(
            x0=x0,
            x1=_time(end if end is not None else last_ts),
            fillcolor="#2ca02c",
            opacity=0.12,
            line_width=0,
            annotation_text=_review_words(m),
            annotation_position="top left",
            row=1,
            col=1,
        )


def _review_words(m: dict[str, Any]) -> str:
    parts = ["promotion"]
    if m.get("promotion_active"):
        parts.append("(running)")
    half_life = m.get("promotion_ebb_half_life_seconds")
    if half_life is not None:
        parts.append(f"ebb half-life {half_life / 60:.1f} min")
    floor = m.get("promotion_floor_viewers")
    if floor is not None:
        ratio = m.get("promotion_floor_ratio")
        parts.append(
            f"floor {ratio:.2f}x the level before" if ratio is not None else f"floor {floor:,.0f}"
        )
    return ", ".join(parts)


_REVIEW_COLUMNS: Final = (
    ("viewers before", "promotion_viewers_before", "{:,.0f}"),
    ("at start", "promotion_viewers_start", "{:,.0f}"),
    ("peak", "promotion_viewers_peak", "{:,.0f}"),
    ("at end", "promotion_viewers_end", "{:,.0f}"),
    ("ebb half-life (min)", "promotion_ebb_half_life_seconds", "{:.1f}", 1 / 60),
    ("floor (viewers)", "promotion_floor_viewers", "{:,.0f}"),
    ("floor / before", "promotion_floor_ratio", "{:.2f}"),
    ("still online 10 / 30 / 60 min", "promotion_retention_", "{:.0%}"),
    ("orders b / d / a", "promotion_orders_", "{:,.0f}"),
    ("GMV (yuan) b / d / a", "promotion_gmv_", "{:,.0f}"),
    ("chat per viewer-hour b / d / a", "promotion_interaction_", "{:.1f}"),
    ("orders per viewer-hour b / d / a", "promotion_conversion_", "{:.2f}"),
)
_SPLITS: Final = {
    "promotion_retention_": ("10m", "30m", "60m"),
    **{
        f"promotion_{name}_": ("before", "during", "after")
        for name in ("orders", "gmv", "interaction", "conversion")
    },
}


def _reviews_table(reviews: list[dict[str, Any]]) -> str:
    """The promotion review: one row per promotion (b / d / a: before, during, after;
    a dash where there is nothing to measure yet)."""
    if not reviews:
        return (
            "<p>No promotion events (room events promo_start / promo_end) in this log; "
            "a promotion peak the ebb tracker inferred is marked on its room's chart.</p>"
        )
    rows = []
    for review in reviews:
        m = review["metrics"]
        cells = [
            _text(review["room_id"]),
            _stamp(review["start"]),
            _stamp(review["end"]) + (" (running)" if m.get("promotion_active") else ""),
        ]
        for _, name, form, *scale in _REVIEW_COLUMNS:
            keys = [name + part for part in _SPLITS[name]] if name in _SPLITS else [name]
            factor = scale[0] if scale else 1.0
            cells.append(" / ".join(_figure(m.get(k), form, factor) for k in keys))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(
        f"<th>{html.escape(title)}</th>"
        for title in ("room", "start (UTC)", "end (UTC)", *(c[0] for c in _REVIEW_COLUMNS))
    )
    return f"<table class='review'><tr>{head}</tr>{''.join(rows)}</table>"


def review_figure(reviews: list[dict[str, Any]]) -> go.Figure:
    """Conversion and interaction before, during and after each promotion, and the
    share of its end's viewers still online 10, 30 and 60 minutes later."""
    figure = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "paid orders per viewer-hour",
            "chat messages per viewer-hour",
            "viewers at the end still online (%)",
        ),
    )
    for review in reviews:
        m = review["metrics"]
        name = sanitize_sample(f"{review['room_id']} {_stamp(review['start'] or review['end'])}")
        for col, key in ((1, "promotion_conversion_"), (2, "promotion_interaction_")):
            figure.add_trace(
                go.Bar(
                    x=["before", "during", "after"],
                    y=[m.get(key + phase) for phase in ("before", "during", "after")],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        figure.add_trace(
            go.Bar(
                x=["10 min", "30 min", "60 min"],
                y=[_scaled(m.get(f"promotion_retention_{a}"), 100) for a in ("10m", "30m", "60m")],
                name=name,
                legendgroup=name,
                showlegend=False,
            ),
            row=1,
            col=3,
        )
    figure.update_layout(height=360, barmode="group", template="plotly_white")
    return figure


def _figure(value: float | None, form: str, scale: float = 1.0) -> str:
    return "-" if value is None else form.format(value * scale)


def _stamp(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


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
<h2>Promotion review</h2>
{promotions}
{rooms}
</body></html>
"""
