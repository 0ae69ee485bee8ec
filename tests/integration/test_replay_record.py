"""replay -> Kafka -> record gives back the log; a recording cut by Ctrl-C stays readable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from streams.logs.files import read_lines
from streams.logs.record import record
from streams.logs.replay import replay
from streams.logs.simulate import Room, Scenario, generate, steady, write_log
from streams.settings import load_settings

pytestmark = pytest.mark.kafka


def small_night(path: Path) -> Path:
    scenario = Scenario(
        "small", 120, (Room("room-a", steady(1)), Room("room-b", steady(0.5), ends_at=90))
    )
    write_log(generate(scenario, 4), path)
    return path


def events(path: Path, shift: int = 0) -> Counter[bytes]:
    out: Counter[bytes] = Counter()
    for _, line in read_lines(path):
        event = msgspec.json.decode(line)
        event["ts"] -= shift
        out[msgspec.json.encode(dict(sorted(event.items())))] += 1
    return out


async def test_a_replayed_log_records_back_rebased_in_time(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(environ=isolated_env)
    log = small_night(tmp_path / "night.jsonl.gz")
    first_ts = msgspec.json.decode(next(read_lines(log))[1])["ts"]
    now = int(time.time() * 1000)
    stats = await replay(log, settings, speed=None, rebase_to_ms=now)
    recorded = tmp_path / "recorded.jsonl.gz"
    got = await record(recorded, settings, until_idle_s=3, from_beginning=True)
    assert got.lines == stats.produced and got.skipped == 0
    assert events(recorded, shift=now - first_ts) == events(log)
    # Room events too, through `live.rooms`: both rooms' `live`, room-b's `ended`.
    assert sum(n for e, n in events(log).items() if b'"type":"room"' in e) == 3


def test_ctrl_c_leaves_a_readable_recording(isolated_env: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(environ=isolated_env)
    log = small_night(tmp_path / "night.jsonl")
    out = tmp_path / "cut.jsonl.gz"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "record", "--out", str(out), "--from-beginning"],
        env={**os.environ, **isolated_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(replay(log, settings, speed=None))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 1000):
            time.sleep(0.5)
        time.sleep(1)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    lines = list(read_lines(out))  # a truncated gzip would raise here
    assert lines and all(msgspec.json.decode(line)["room_id"] for _, line in lines)
