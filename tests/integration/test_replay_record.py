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
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.kafka.topics import ensure_topics
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


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_a_readable_recording(isolated_env: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(environ=isolated_env)
    log = small_night(tmp_path / "night.jsonl")
    out = tmp_path / "cut.jsonl.gz"
    # Its output goes to a file, printed afterwards: a pipe nobody reads could fill up.
    output = (tmp_path / "record.log").open("wb")
    recorder = subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "record", "--out", str(out), "--from-beginning"],
        env={**os.environ, **isolated_env},
        stdout=output,
        stderr=subprocess.STDOUT,
        # Ctrl-C as at a terminal: a suite started in the background of a shell without job
        # control inherits SIGINT ignored, and so would the recorder.
        preexec_fn=default_sigint,
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
        output.close()
        print((tmp_path / "record.log").read_text(errors="replace")[-5000:])
    lines = list(read_lines(out))  # a truncated gzip would raise here
    assert lines and all(msgspec.json.decode(line)["room_id"] for _, line in lines)


async def test_a_room_event_is_in_kafka_before_any_line_after_it(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """The worker's watermark does not wait for the sparse rooms topic once it looks
    caught up: a replay must not let later seconds reach the broker before a room event
    (the broker's append time, LogAppendTime, shows the order they arrived in)."""
    settings = load_settings(environ=isolated_env)
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, topic, {"message.timestamp.type": "LogAppendTime"}
                )
                for topic in settings.source_topics.values()
            ]
        )
    finally:
        await admin.close()
    start = 1_764_000_000_000
    lines = [{"type": "room", "room_id": "r", "ts": start, "phase": "promo_end"}]
    lines += [
        {"type": "latency", "room_id": f"r{i % 50}", "ts": start + 1 + i // 10,
         "user_id": f"u{i}", "value_ms": 300.0}
        for i in range(20_000)
    ]  # fmt: skip
    log = tmp_path / "night.jsonl"
    log.write_bytes(b"\n".join(msgspec.json.encode(line) for line in lines) + b"\n")
    await replay(log, settings, speed=None)

    consumer = AIOKafkaConsumer(
        *settings.source_topics.values(),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    appended: dict[str, list[int]] = {}
    try:
        while sum(map(len, appended.values())) < len(lines):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "fewer records in Kafka than lines replayed"
            for tp, records in batch.items():
                appended.setdefault(tp.topic, []).extend(r.timestamp for r in records)
    finally:
        await consumer.stop()
    (room_appended,) = appended[settings.topic_for_type("room")]
    latency = appended[settings.topic_for_type("latency")]
    assert min(latency) >= room_appended
