"""`livewatch demo`: a local broker, a worker, and a replayed sample, watched live."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.kafka_local import LocalKafka, die_with_parent
from streams.replay import replay
from streams.settings import Settings, env_name, load_settings

SAMPLE = Path(__file__).parent / "samples" / "demo-small.jsonl.gz"


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples of a /metrics page: name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def room_viewers(url: str) -> dict[str, int]:
    series = scrape(url).get("livewatch_room_online_viewers", {})
    return {dict(labels)["room"]: int(value) for labels, value in series.items()}


def wait_for_metrics(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with code {process.returncode}")
        try:
            scrape(url)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    raise RuntimeError(f"the worker's {url} did not answer within {timeout} s")


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
            [sys.executable, "-m", "streams.cli", "worker"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def _print_viewers(viewers: dict[str, int], previous: dict[str, int]) -> None:
    cells = []
    for room, count in sorted(viewers.items()):
        delta = count - previous.get(room, 0)
        cells.append(f"{room} {count:4d} ({delta:+d})")
    print(time.strftime("%H:%M:%S"), "  ".join(cells), flush=True)


async def _replay_and_watch(sample: Path, settings: Settings, speed: float, url: str) -> int:
    """Replay while printing room viewers; cancelled cleanly by Ctrl-C."""
    replaying = asyncio.create_task(replay(sample, settings, speed=speed))
    previous: dict[str, int] = {}
    quiet_polls = 0
    while not replaying.done() or quiet_polls < 4:
        await asyncio.sleep(1)
        viewers = await asyncio.to_thread(room_viewers, url)
        if viewers != previous:
            _print_viewers(viewers, previous)
            previous, quiet_polls = viewers, 0
        elif replaying.done():
            quiet_polls += 1
    return (await replaying).produced


def run_demo(speed: float, metrics_port: int, sample: Path = SAMPLE) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="livewatch-demo-"))
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    worker = None
    with LocalKafka(workdir=workdir / "kafka") as kafka:
        print(f"Kafka broker up at {kafka.bootstrap}", flush=True)
        env = {
            env_name("bootstrap_servers"): kafka.bootstrap,
            env_name("metrics_port"): str(metrics_port),
            env_name("state_dir"): str(workdir / "state"),
            env_name("idle_after_s"): "1",
            env_name("log_level"): "warning",
        }
        try:
            worker = start_worker(env, workdir / "worker.log")
            wait_for_metrics(url, worker)
            print(f"worker up, metrics at {url} (worker log: {workdir / 'worker.log'})", flush=True)
            settings = load_settings(environ=env)
            print(f"replaying {sample.name} at {speed}x ...", flush=True)
            produced = asyncio.run(_replay_and_watch(sample, settings, speed, url))
            totals = scrape(url)
            events = {dict(k)["type"]: int(v) for k, v in totals["livewatch_events_total"].items()}
            print(f"done: replayed {produced} events; worker counted {events}", flush=True)
        except KeyboardInterrupt:
            print("interrupted, stopping", flush=True)
        finally:
            if worker is not None:
                stop_process(worker)
    return 0
