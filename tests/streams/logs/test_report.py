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
    # One chart section per room, plotly.js embedded once for an offline page.
    assert page.count("<section>") == 3
    assert page.count("Plotly.newPlot") == 3
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    # The alerts table holds every transition; the scores made it to the summary.
    assert page.count("<tr>") == len(transitions) + 1
    assert "spam_flood" in page and "recall" in page
    # The promotion's ebb is annotated on the viewers chart.
    assert "promotion peak" in page and "ebb half-life" in page
    # The hostile room id is shown, but inert: no live link, no mention, no tag.
    assert f"<h2>{html.escape(sanitize_sample(HOSTILE))}</h2>" in page
    assert "hxxps(:)//evil(.)example" in page
    assert "https://evil" not in page and "@all" not in page
