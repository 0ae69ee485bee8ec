"""The backtest report, opened in a real headless browser.

The demo night is backtested by the CLI into an HTML report, which Debian's
`chromium` (`make system-deps`) loads through playwright, offline, from the
file: every room of the log must have its four panels drawn, the page must run
without a console error or an uncaught exception and fetch nothing from the
network, every alert firing must show as a marker on its room's viewers line,
and the promotion room, which starts from zero viewers, must not have its ebb
floor compared with a "level before" it never had.

The browser is launched once for the module and closed before the assertions
run; the tests skip only when no `chromium` is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from playwright.sync_api import ConsoleMessage, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from streams.dev.demo import NIGHT
from streams.logs.files import read_lines
from streams.logs.report import room_figure

CHROMIUM = shutil.which("chromium")
CLI = [sys.executable, "-m", "streams.cli.main"]
PANELS = ("xy", "x2y2", "x3y3", "x4y4")  # plotly's subplot ids, top to bottom
PROMOTION_ROOM = "room-beauty"  # the demo night's promotion: it opens from zero viewers

pytestmark = pytest.mark.timeout(120)

# True once plotly has laid out and drawn every chart on the page.
ALL_DRAWN = """() => {
  const charts = [...document.querySelectorAll("section .plotly-graph-div")];
  return charts.length > 0 && charts.every(
    (gd) => gd._fullLayout && gd.querySelectorAll(".scatterlayer path.js-line").length >= 4
  );
}"""

# What was drawn, per room section: the lines of each panel (their path length and
# on-screen width against the plot area's), the alert markers on the viewers
# panel, the annotations' text and the first viewers count plotted.
INSPECT = """(panels) => [...document.querySelectorAll("section")].map((section) => {
  const gd = section.querySelector(".plotly-graph-div");
  const svg = section.querySelector(".main-svg");
  const box = (el) => el.getBoundingClientRect();
  const visible = (el) => box(el).width > 0 && box(el).height > 0;
  const panel = (id) => {
    const lines = [...section.querySelectorAll(`g.subplot.${id} .scatterlayer path.js-line`)];
    return lines.map((p) => ({ d: (p.getAttribute("d") || "").length, width: box(p).width }));
  };
  const markers = [...section.querySelectorAll("g.subplot.xy .scatterlayer path.point")];
  const svgBox = svg ? box(svg) : null;
  return {
    room: section.querySelector("h2").textContent,
    plotWidth: gd && gd._fullLayout ? gd._fullLayout._size.w : 0,
    panels: Object.fromEntries(panels.map((id) => [id, panel(id)])),
    markers: markers.filter(visible).length,
    annotations: [...section.querySelectorAll("g.annotation")].map((a) => ({
      text: a.textContent,
      inside: svgBox !== null && box(a).left >= svgBox.left && box(a).right <= svgBox.right,
    })),
    firstViewers: gd && gd.data ? gd.data[0].y[0] : null,
    peakViewers: gd && gd.data ? Math.max(...gd.data[0].y.filter((v) => v !== null)) : null,
  };
})"""


@dataclass(frozen=True)
class Rendered:
    rooms: dict[str, dict[str, Any]]
    """What the browser drew, per room section."""
    problems: list[str]
    """Console errors and uncaught exceptions."""
    fetched: list[str]
    """Requests for anything but the page itself (it must be self-contained)."""
    firing: Counter[str]
    """Alert firings per room, from the backtest's --alerts-out."""
    log_rooms: set[str]


class _RoomOnly(msgspec.Struct):
    room_id: str | None = None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH (`make system-deps` installs it): report not opened")
    out = tmp_path_factory.mktemp("report")
    report, alerts = out / "night.html", out / "alerts.jsonl"
    done = subprocess.run(
        [*CLI, "backtest", str(NIGHT), "--report", str(report), "--alerts-out", str(alerts)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    firing = Counter(
        t["room_id"]
        for t in map(json.loads, alerts.read_text().splitlines())
        if t["state"] == "firing"
    )
    decode = msgspec.json.Decoder(_RoomOnly).decode
    log_rooms = {room for _, line in read_lines(NIGHT) if (room := decode(line).room_id)}

    problems: list[str] = []
    fetched: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def on_request(request: Request) -> None:
        if not request.url.startswith(("file:", "data:", "blob:")):
            fetched.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
            page.on("request", on_request)
            page.goto(report.as_uri(), wait_until="load")
            try:
                page.wait_for_function(ALL_DRAWN, timeout=15_000)
            except PlaywrightError as exc:  # the assertions below say what is missing
                problems.append(f"charts not all drawn: {exc.message.splitlines()[0]}")
            sections = page.evaluate(INSPECT, list(PANELS))
        finally:
            browser.close()  # ends chromium; leaving `sync_playwright` ends the driver
    return Rendered({s["room"]: s for s in sections}, problems, fetched, firing, log_rooms)


def test_the_report_runs_without_errors_offline(rendered: Rendered) -> None:
    assert not rendered.problems, "\n".join(rendered.problems)
    assert not rendered.fetched, f"the page is not self-contained: {rendered.fetched}"


def test_every_room_of_the_log_has_its_four_panels_drawn(rendered: Rendered) -> None:
    assert set(rendered.rooms) == rendered.log_rooms
    for room, section in rendered.rooms.items():
        assert section["plotWidth"] > 300, room
        for panel in PANELS:
            lines = section["panels"][panel]
            assert lines, f"{room}: panel {panel} has no line"
            # A line across the night, not an empty or one-point path.
            widest = max(line["width"] for line in lines)
            assert widest > section["plotWidth"] / 2, f"{room}: panel {panel} line {lines}"
            assert max(line["d"] for line in lines) > 200, f"{room}: panel {panel}"


def test_every_alert_firing_has_a_marker_on_its_rooms_viewers(rendered: Rendered) -> None:
    assert sum(rendered.firing.values()) > 0, "the demo night fires alerts"
    for room, section in rendered.rooms.items():
        assert section["markers"] == rendered.firing[room], room


def test_the_promotion_reads_as_its_review_on_its_room_chart(rendered: Rendered) -> None:
    """The demo's promotion was announced by room events: its room's chart shows the
    review (streams.core.review), not the ebb tracker's inferred peak, and the floor
    is compared only with a level the room had (never "0.0x")."""
    section = rendered.rooms[PROMOTION_ROOM]
    # The premise: the room starts from (next to) nothing and climbs into its peak.
    assert section["firstViewers"] < 0.05 * section["peakViewers"]
    [review] = [a for a in section["annotations"] if a["text"].startswith("promotion")]
    assert "ebb half-life" in review["text"], review
    assert "floor" in review["text"], review
    assert review["inside"], f"the annotation runs off the chart: {review}"
    assert not any("inferred promotion peak" in a["text"] for a in section["annotations"])
    for other in rendered.rooms.values():
        for annotation in other["annotations"]:
            assert not re.search(r"\b0\.0x", annotation["text"]), annotation


def _snapshot(second: int, viewers: float, **ebb: float | None) -> dict[str, Any]:
    return {
        "room_id": "r",
        "ts": 1_764_000_000_000 + second * 1000,
        "metrics": {"online_viewers_live": viewers, **ebb},
    }


def _ebb_text(first_second: int, first_viewers: float) -> str:
    ebb = {
        "ebb_peak_ts": 1_764_000_000_000 + 3000 * 1000,
        "ebb_peak_viewers": 1500.0,
        "ebb_pre_level_viewers": 500.0,
        "ebb_floor_viewers": 600.0,
        "ebb_half_life_seconds": 600.0,
    }
    snapshots = [_snapshot(first_second, first_viewers), _snapshot(3600, 900.0, **ebb)]
    figure = room_figure("r", snapshots, [], 600.0, [])
    [text] = [a.text for a in figure.layout.annotations if "promotion peak" in (a.text or "")]
    return str(text)


def _review_text(floor_ratio: float | None) -> str:
    review = {
        "promotion_start_ts": 1_764_000_000_000 + 600 * 1000,
        "promotion_end_ts": 1_764_000_000_000 + 1200 * 1000,
        "promotion_ebb_half_life_seconds": 600.0,
        "promotion_floor_viewers": 73.0,
        "promotion_floor_ratio": floor_ratio,
    }
    snapshots = [_snapshot(0, 5.0), _snapshot(3600, 900.0, **review)]
    figure = room_figure("r", snapshots, [], 600.0, [])
    [text] = [a.text for a in figure.layout.annotations if (a.text or "").startswith("promotion")]
    return str(text)


def test_a_floor_without_a_level_before_is_given_in_viewers() -> None:
    assert _review_text(None).endswith("floor 73")
    assert _review_text(0.58).endswith("floor 0.58x the level before")


def test_the_floor_is_compared_only_with_a_level_the_room_had() -> None:
    # Started from zero 10 min before the peak: the "level" was its own climb.
    assert "no level before it" in _ebb_text(2400, 10.0)
    # Started from zero, but an hour before the peak: it had a level by then.
    assert "floor 1.2x the level before it" in _ebb_text(0, 10.0)
    # The log began mid-stream at the room's level shortly before the peak.
    assert "floor 1.2x the level before it" in _ebb_text(2400, 480.0)
