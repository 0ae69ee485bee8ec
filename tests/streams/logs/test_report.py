"""The HTML report: a chart section per room, the alerts table, nothing hostile."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

from detectors.alerts import Transition
from detectors.text import sanitize_sample
from streams.logs.report import firing_spans
from streams.logs.simulate import Room, Scenario, generate, labels, promotion, steady, write_log

CLI = [sys.executable, "-m", "streams.cli.main"]
HOSTILE = "<a href='https://evil.example/x'>@all</a>"


def _transition(state: str, ts: int, alert: str = "spam_flood") -> Transition:
    return Transition(alert, state, "r", ts, "critical", "s", "f" * 16, {}, None, ts, "")


def test_without_promotion_events_the_peak_is_inferred_and_labelled_so(tmp_path: Path) -> None:
    """A log without room events (as before `live.rooms`): no review, the ebb tracker's
    peak on the chart, called inferred."""
    scenario = Scenario(
        "inferred", 1500, (Room("room-promo", promotion(1.0, 8.0, 200, 500, 240.0, 2.0)),)
    )
    log, report = tmp_path / "night.jsonl.gz", tmp_path / "night.html"
    write_log((line for line in generate(scenario, 3) if '"type":"room"' not in line), log)
    subprocess.run(
        [*CLI, "backtest", str(log), "--report", str(report)], check=True, capture_output=True
    )
    page = report.read_text(encoding="utf-8")
    assert "inferred promotion peak" in page and "ebb half-life" in page
    assert "No promotion events" in page and "<table class='review'>" not in page


def test_firing_spans_pair_firing_with_resolved_and_run_open_ones_to_the_end() -> None:
    spans = firing_spans(
        [
            _transition("firing", 10),
            _transition("firing", 15),
            _transition("resolved", 40),
            _transition("firing", 50, "stall_slo"),
        ],
        end_ts=90,
    )
    assert [(s.alert, s.start, s.end) for s in spans] == [
        ("spam_flood", 10, 40),
        ("stall_slo", 50, 90),
    ]


def test_report_draws_every_room_and_lists_every_alert(tmp_path: Path) -> None:
    scenario = Scenario(
        "report",
        1500,
        (
            Room("room-promo", promotion(1.0, 8.0, 200, 500, 240.0, 2.0)),
            Room("room-spam", steady(2.0), bot_flood=(700, 40)),
            Room(HOSTILE, steady(0.5)),
        ),
    )
    log, labels_file = tmp_path / "night.jsonl.gz", tmp_path / "labels.json"
    write_log(generate(scenario, 3), log)
    labels_file.write_text(json.dumps({"incidents": labels(scenario)}))
    report, alerts = tmp_path / "night.html", tmp_path / "alerts.jsonl"
    done = subprocess.run(
        [
            *CLI,
            "backtest",
            str(log),
            "--report",
            str(report),
            "--alerts-out",
            str(alerts),
            "--labels",
            str(labels_file),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert f"report written to {report}" in done.stdout
    page = report.read_text(encoding="utf-8")
    transitions = alerts.read_text().splitlines()
    assert any('"spam_flood"' in line for line in transitions)
    # One chart section per room and the promotion review's chart, plotly.js embedded
    # once for an offline page.
    assert page.count("<section>") == 3
    assert page.count("Plotly.newPlot") == 4
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    # The alerts table holds every transition, the review table its header and the one
    # promotion; the scores made it to the summary.
    assert page.count("<tr>") == len(transitions) + 1 + 2
    assert "spam_flood" in page and "recall" in page
    # The promotion its room events told of: reviewed (200 s to 500 s after 16:00 UTC),
    # its span on the viewers chart; no inferred peak in a room that has promotion events.
    review = page[page.index("<h2>Promotion review</h2>") : page.index("<section>")]
    assert "<td>room-promo</td><td>16:03:20</td><td>16:08:20</td>" in review
    assert "paid orders per viewer-hour" in review and "still online" in review
    assert "ebb half-life" in page and "inferred promotion peak" not in page
    # The hostile room id is shown, but inert: no live link, no mention, no tag.
    assert f"<h2>{html.escape(sanitize_sample(HOSTILE))}</h2>" in page
    assert "hxxps(:)//evil(.)example" in page
    assert "https://evil" not in page and "@all" not in page
