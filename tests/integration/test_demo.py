"""`make demo` end to end: broker, worker, console notifier, replay, report, nothing left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from streams.dev.broker import free_port

CHILDREN = ("streams.cli.main worker", "streams.cli.main notify", "kafka.Kafka")


def _ours() -> set[int]:
    """Processes of the kinds the demo starts (the session broker included)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(kind in cmdline for kind in CHILDREN):
                found.add(int(entry.name))
    return found


def test_demo_prints_alerts_as_they_fire_writes_the_report_and_cleans_up(tmp_path: Path) -> None:
    before = _ours()
    report = tmp_path / "demo.html"
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "demo", "--speed", "40",
         "--metrics-port", str(free_port()), "--report", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    # The notifier printed each labelled incident as it fired.
    for alert, room in (
        ("traffic_cliff", "room-outage"),
        ("spam_flood", "room-spam"),
        ("latency_slo", "room-latency [cn-south]"),
    ):
        assert any(
            " FIRING " in line and alert in line and room in line for line in out.splitlines()
        ), (alert, out[-3000:])
    assert "top rooms" in out and "room-beauty" in out
    # room-fashion's host ends its stream at minute 14: its viewers leaving page nobody.
    assert not any(" FIRING " in line and "room-fashion" in line for line in out.splitlines())
    # Live equals offline at the end of the input (issue 16, 4b): the worker flushed its
    # last lateness window and ends where the backtest of the night ends.
    assert "the worker's final online viewers equal the backtest's in all 4 rooms" in out, out
    sent = re.search(r"the worker sent (\d+) alert transitions", out)
    found = re.search(r"the backtest of the same log finds (\d+) alert transitions", out)
    assert sent and found and sent.group(1) == found.group(1), out[-3000:]
    assert f"report written to {report}" in out
    page = report.read_text()
    assert report.stat().st_size > 100_000 and "room-outage" in page
    # The review of room-beauty's promotion (its room events: 16:02:00 to 16:05:30 UTC).
    review = page[page.index("<h2>Promotion review</h2>") : page.index("<section>")]
    assert "<td>room-beauty</td><td>16:02:00</td><td>16:05:30</td>" in review, review[:2000]
    # No worker, notifier or broker of the demo outlives it.
    deadline = time.monotonic() + 10
    while _ours() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ours() - before


def _demo(port: int, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "demo", "--speed", "10",
         "--metrics-port", str(port), "--report", str(cwd / "demo.html")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )  # fmt: skip


def _children(parent: int, kind: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if kind in cmdline and ppid == parent:
                found.append(int(entry.name))
    return found


def test_demo_fails_when_its_worker_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = _demo(taken.getsockname()[1], tmp_path)
        out, err = demo.communicate(timeout=180)
    assert demo.returncode == 1, out[-2000:] + err[-2000:]
    assert "demo failed: the worker exited with code" in err, err[-2000:]
    assert "report written" not in out


def test_demo_fails_when_its_notifier_dies(tmp_path: Path) -> None:
    """Nobody listening for alerts is not a quiet night: the demo stops with an error."""
    demo = _demo(free_port(), tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (notifiers := _children(demo.pid, "streams.cli.main notify")):
            assert demo.poll() is None and time.monotonic() < deadline, "no notifier started"
            time.sleep(0.2)
        time.sleep(3)  # into the replay
        os.kill(notifiers[0], signal.SIGKILL)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 1, out[-2000:] + err[-2000:]
    assert f"demo failed: the notifier exited with code {-signal.SIGKILL}" in err, err[-2000:]
    assert "report written" not in out
