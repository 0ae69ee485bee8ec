"""`livewatch demo`: a local broker, a worker, a notifier and a replayed night, watched live.

The top rooms are read from the worker's own /metrics, the alerts are the
console notifier's lines; at the end the same log is backtested and its HTML
report written. Every child process dies with the demo (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from streams.dev.broker import LocalKafka, die_with_parent, free_port
from streams.logs.backtest import run_backtest
from streams.logs.replay import replay
from streams.logs.report import REPORT_EVERY_S, write_report
from streams.settings import Settings, env_name, load_settings

SAMPLES = Path(__file__).parent / "samples"
SAMPLE = SAMPLES / "demo-small.jsonl.gz"
"""Two minutes of three quiet rooms: what the integration tests replay."""
NIGHT = SAMPLES / "demo-night.jsonl.gz"
"""Twenty minutes with a promotion, a cliff, a spam flood, a latency incident and a stream
its host ends (simulate --scenario demo)."""
NIGHT_LABELS = SAMPLES / "demo-night.labels.json"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(url: str, timeout: float = 5) -> Samples:
    """Samples of a /metrics page: name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def wait_for_metrics(
    url: str, process: subprocess.Popen[bytes], timeout: float = 60, name: str = "worker"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_running(process, name)
        try:
            scrape(url)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    raise RuntimeError(f"the {name}'s {url} did not answer within {timeout} s")


def check_running(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the {name} exited with code {process.returncode}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli.main", "worker"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def start_notifier(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`livewatch notify` with the console receiver; its lines come back through a pipe."""
    return subprocess.Popen(
        # Alerts should show as they fire: short grouping for a 10x replay.
        [
            sys.executable,
            "-m",
            "streams.cli.main",
            "notify",
            "--set",
            "notify.group_wait_s=1",
            "--set",
            "notify.group_interval_s=5",
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def _pipe_lines(process: subprocess.Popen[bytes], into: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        into.put(raw.decode(errors="replace").rstrip())


def top_rooms(samples: Samples, count: int = 8) -> Table:
    """The most watched rooms now, from the worker's own /metrics."""

    def per_room(name: str, window: str | None = "1m", **match: str) -> dict[str, float]:
        out = {}
        if window is not None:
            match["window"] = window
        for labels, value in samples.get(name, {}).items():
            found = dict(labels)
            if all(found.get(k) == v for k, v in match.items()):
                out[found["room"]] = value
        return out

    online = per_room("livewatch_room_online_viewers", None)
    entries = per_room("livewatch_room_entries_total", None)
    chat = per_room("livewatch_room_danmaku_total", None)
    p95 = per_room("livewatch_room_latency_seconds", quantile="0.95")
    stalls = per_room("livewatch_room_stall_ratio")
    firing: dict[str, list[str]] = {}
    for labels, value in samples.get("livewatch_alerts_firing", {}).items():
        found = dict(labels)
        if value:
            firing.setdefault(found["room"], []).append(f"{found['alert']} ({found['severity']})")
    table = Table(
        title="top rooms (latency and stalls: the last minute of event time)", expand=True
    )
    for column in ("room", "online", "entries", "chat", "latency p95", "stalls", "firing"):
        table.add_column(column, justify="left" if column in ("room", "firing") else "right")
    for room in sorted(online, key=lambda r: -online[r])[:count]:
        latency = p95.get(room)
        table.add_row(
            escape(room),
            f"{online[room]:,.0f}",
            f"{entries.get(room, 0):,.0f}",
            f"{chat.get(room, 0):,.0f}",
            "-" if latency is None else f"{latency * 1000:,.0f} ms",
            f"{stalls.get(room, 0):.2%}",
            Text(", ".join(firing.get(room, [])), style="bold red"),
        )
    return table


def _styled(line: str) -> Text:
    style = "bold red" if " FIRING " in line else "green" if " RESOLVED " in line else "dim"
    return Text(line, style=style)


async def _replay_and_watch(
    sample: Path,
    settings: Settings,
    speed: float,
    url: str,
    alerts: queue.Queue[str],
    children: dict[str, subprocess.Popen[bytes]],
) -> tuple[int, int]:
    """Replay while showing the top rooms and the notifier's alerts; (events, alert lines).

    A worker or notifier that dies on the way ends the demo with an error: a demo that
    printed no alerts because nobody was listening must not pass for a quiet night."""
    console = Console()
    replaying = asyncio.create_task(replay(sample, settings, speed=speed))
    printed, quiet_polls, previous = 0, 0, None
    with Live(Table(), console=console, refresh_per_second=2) as live:
        while not replaying.done() or quiet_polls < 5:
            await asyncio.sleep(1)
            for name, child in children.items():
                if child.poll() is not None:
                    replaying.cancel()
                    check_running(child, name)
            while not alerts.empty():
                line = alerts.get()
                printed += " FIRING " in line or " RESOLVED " in line
                live.console.print(_styled(line))
            samples = await asyncio.to_thread(scrape, url)
            live.update(top_rooms(samples))
            viewers = samples.get("livewatch_room_online_viewers")
            # The end of the input: every partition with rooms has been flushed.
            flushed = samples.get("livewatch_idle_flushes_total", {}).get((), 0) >= len(
                samples.get("livewatch_partition_watermark_timestamp_seconds", {})
            )
            if replaying.done() and flushed and viewers == previous and alerts.empty():
                quiet_polls += 1
            else:
                quiet_polls = 0
            previous = viewers
    return (await replaying).produced, printed


def run_demo(speed: float, metrics_port: int, report: str, sample: Path = NIGHT) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="livewatch-demo-"))
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    # Any free port: a fixed neighbour of the worker's may be taken, and a notifier
    # that cannot listen exits before it prints a single alert.
    notifier_port = free_port()
    worker = notifier = None
    alerts: queue.Queue[str] = queue.Queue()
    with LocalKafka(workdir=workdir / "kafka") as kafka:
        print(f"Kafka broker up at {kafka.bootstrap}", flush=True)
        env = _demo_env(kafka.bootstrap, metrics_port, notifier_port, workdir)
        try:
            worker = start_worker(env, workdir / "worker.log")
            wait_for_metrics(url, worker)
            notifier = start_notifier(env)
            threading.Thread(target=_pipe_lines, args=(notifier, alerts), daemon=True).start()
            print(f"worker up, metrics at {url} (worker log: {workdir / 'worker.log'})")
            notifier_url = f"http://127.0.0.1:{notifier_port}/metrics"
            wait_for_metrics(notifier_url, notifier, name="notifier")
            print(f"notifier up, metrics at {notifier_url}")
            print(f"replaying {sample.name} at {speed}x ...", flush=True)
            settings = load_settings(environ=env)
            children = {"worker": worker, "notifier": notifier}
            produced, alerted = asyncio.run(
                _replay_and_watch(sample, settings, speed, url, alerts, children)
            )
            online = _summarize(scrape(url), produced, alerted)
        except KeyboardInterrupt:
            print("interrupted, stopping", flush=True)
            return 130
        except RuntimeError as error:
            print(f"demo failed: {error} (worker log: {workdir / 'worker.log'})", file=sys.stderr)
            if notifier is not None and notifier.poll() is not None:
                time.sleep(0.5)  # its last words are still in the pipe
                last = list(alerts.queue)[-20:]
                print("\n".join(f"notifier: {line}" for line in last), file=sys.stderr)
            return 1
        finally:
            for process in (notifier, worker):
                if process is not None:
                    stop_process(process)
    _write_report(sample, report, online)
    return 0


def _demo_env(
    bootstrap: str, metrics_port: int, notifier_port: int, workdir: Path
) -> dict[str, str]:
    return {
        env_name("bootstrap_servers"): bootstrap,
        env_name("metrics_port"): str(metrics_port),
        env_name("notifier_metrics_port"): str(notifier_port),
        env_name("state_dir"): str(workdir / "state"),
        # The night's event time is its own: the wall clock does not age its rooms
        # after the replay, and once the input has been silent for 5 s the last
        # lateness window is applied, so the worker ends where the backtest does.
        env_name("idle_after_s"): "3600",
        env_name("flush_idle_s"): "5",
        env_name("log_level"): "warning",
    }


def _summarize(totals: Samples, produced: int, alerted: int) -> dict[str, int]:
    """Print what the worker counted and sent; its final online viewers by room."""
    events = {dict(k)["type"]: int(v) for k, v in totals["livewatch_events_total"].items()}
    sent = int(sum(totals.get("livewatch_alert_transitions_total", {}).values()))
    print(f"replayed {produced} events; the worker counted {events}")
    print(
        f"the worker sent {sent} alert transitions; the console notifier printed "
        f"{alerted} lines (changes of an alert within group_wait go out as one)"
    )
    return {
        dict(k)["room"]: int(v) for k, v in totals.get("livewatch_room_online_viewers", {}).items()
    }


def _write_report(sample: Path, report: str, online: dict[str, int]) -> None:
    """The offline view of the same night: the backtest and its HTML report, and how
    the worker's final online viewers (`online`) compare."""
    settings = load_settings(environ={})
    result = run_backtest(sample, settings, snapshot_every_s=REPORT_EVERY_S)
    assert result.pipeline is not None
    offline = {
        room.room_id: room.online
        for engine in result.pipeline.engines.values()
        for room in engine.rooms.values()
    }
    differ = {r: (v, offline.get(r)) for r, v in online.items() if offline.get(r) != v}
    print(
        f"the worker's final online viewers equal the backtest's in all {len(online)} rooms"
        if not differ
        else "final online viewers, worker vs backtest: "
        + ", ".join(f"{r} {a} vs {b}" for r, (a, b) in sorted(differ.items()))
    )
    incidents = json.loads(NIGHT_LABELS.read_text())["incidents"] if sample == NIGHT else None
    write_report(
        report,
        title=f"livewatch demo: {sample.name}",
        snapshots=result.snapshots,
        transitions=result.transitions,
        latency_slo_ms=settings.engine_config().metrics.latency_slo_ms,
        incidents=incidents,
        summary_lines=[f"{result.lines} lines, {len(result.transitions)} alert transitions"],
    )
    print(f"the backtest of the same log finds {len(result.transitions)} alert transitions")
    print(f"report written to {Path(report).resolve()}")
