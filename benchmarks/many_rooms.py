"""Many small rooms on one worker, live through the broker (issue 14, item 4).

A platform at peak has tens of thousands of concurrent rooms per worker, most with
a handful of viewers. This runs one worker (everything on) against a local broker
and produces in real time (each event's `ts` is its send time), for `--minutes`:

- `--rooms` rooms (default 100,000). 90% are quiet: 1 to 9 viewers (5 on average)
  who join in the first minute and then send a latency sample a minute. 10% are
  watched: 10 to 20 viewers with a latency sample every 30 s and a line of chat
  a minute from one of them.
- One more watched room, `silent-room`, with 80 viewers sampling every 10 s, goes
  silent (its viewers stop sending anything, as when the stream dies) two thirds
  of the way through: its `traffic_cliff` must still fire, on `live.alerts`.

Printed: the produce rate achieved, the worker's rooms and consumer lag each
minute, its CPU use per second of wall (= event) time over the steady part (after
the joins), its resident memory (peak, and per room over the idle worker's), and
when the worker sent the silent room's alert. If upkeep followed rooms x seconds (every
room ticked every second, about 22 us a room-second), 100,000 rooms would need
2.2 CPU-seconds per second: more than the machine has.

`max_rooms` is set to 30,000 per partition: 100,000 rooms hash unevenly over four
partitions, and the default 25,000 would refuse a few hundred of them.

Run: .venv/bin/python -m benchmarks.many_rooms [--rooms N] [--minutes M]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaProducer

from benchmarks.process import cpu_seconds, memory_mib, sent_alerts, wait_counted, worker_status
from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import start_worker, stop_process, wait_for_metrics
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings

SILENT = "silent-room"
SLICE_S = 0.05
"""The producer sends what has come due every this long."""


@dataclass(frozen=True)
class Room:
    name: str
    viewers: int
    sample_every_s: int
    chat: bool


def rooms(count: int, seed: int = 1) -> list[Room]:
    rng = random.Random(seed)
    made = []
    for i in range(count):
        if i % 10:  # nine in ten quiet
            made.append(Room(f"q{i}", rng.randint(1, 9), 60, False))
        else:
            made.append(Room(f"w{i}", rng.randint(10, 20), 30, True))
    made.append(Room(SILENT, 80, 10, True))
    return made


def schedule(
    all_rooms: list[Room], seconds: int, silent_at_s: int, seed: int = 2
) -> list[list[tuple[str, dict[str, object]]]]:
    """Per second of the run, the events due in it (type, event without `ts`), each
    viewer joining in the first minute at a random offset and sampling from then on."""
    rng = random.Random(seed)
    due: list[list[tuple[str, dict[str, object]]]] = [[] for _ in range(seconds)]
    for room in all_rooms:
        last = silent_at_s if room.name == SILENT else seconds
        for v in range(room.viewers):
            user = f"{room.name}-v{v}"
            first = rng.randrange(60)
            due[first].append(("join", {"room_id": room.name, "user_id": user}))
            for second in range(first + 1, last, room.sample_every_s):
                value = rng.lognormvariate(5.7, 0.3)  # about 300 ms, healthy
                due[second].append(
                    ("latency", {"room_id": room.name, "user_id": user, "value_ms": value})
                )
            if room.chat and v == 0:
                for second in range(first + 5, last, 60):
                    due[second].append(
                        ("danmaku", {"room_id": room.name, "user_id": user, "text": "好看"})
                    )
    return due


async def produce(
    settings: Settings, due: list[list[tuple[str, dict[str, object]]]], started: float
) -> float:
    """Send each second's events spread over it, stamped with the time they are sent;
    the events per second achieved."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    sent = 0
    try:
        for second, events in enumerate(due):
            slices = round(1 / SLICE_S)
            for part in range(slices):
                wake = started + second + part * SLICE_S
                await asyncio.sleep(max(0.0, wake - time.time()))
                ts = int(time.time() * 1000)
                for kind, event in events[part::slices]:
                    value = msgspec.json.encode({"type": kind, "ts": ts, **event})
                    key = str(event["room_id"]).encode()
                    await producer.send(settings.topic_for_type(kind), value, key=key)
                    sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent / (time.time() - started)


def report(pid: int, port: int, minute: int) -> None:
    rss, _ = memory_mib(pid)
    asked = time.time()
    try:
        status = worker_status(port)
    except OSError:  # urllib's timeouts included
        print(f"  minute {minute}: /status gave no answer in 30 s; RSS {rss:.0f} MiB", flush=True)
        return
    print(
        f"  minute {minute}: rooms {status['rooms']:,}, events {status['events']:,}, "
        f"lag {status['lag']:,} messages, RSS {rss:.0f} MiB "
        f"(/status answered in {time.time() - asked:.1f} s)",
        flush=True,
    )


def watch_worker(
    pid: int, port: int, started: float, seconds: int, steady_from_s: int
) -> dict[str, float]:
    """Poll the worker once a minute; CPU per second over the steady part."""
    marks: dict[str, float] = {}
    next_report = started + 60
    while time.time() < started + seconds:
        if time.time() >= started + steady_from_s and "cpu_start" not in marks:
            marks["cpu_start"], marks["wall_start"] = cpu_seconds(pid), time.time()
        if time.time() >= next_report:
            report(pid, port, round((time.time() - started) / 60))
            next_report += 60
        time.sleep(1)
    marks["cpu_end"], marks["wall_end"] = cpu_seconds(pid), time.time()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=8.0)
    args = parser.parse_args()
    seconds = round(args.minutes * 60)
    silent_at = seconds * 2 // 3
    made = rooms(args.rooms)
    due = schedule(made, seconds, silent_at)
    total = sum(len(events) for events in due)
    print(
        f"{len(made):,} rooms ({sum(r.viewers for r in made):,} viewers), {total:,} events over "
        f"{seconds} s of real time; {SILENT} goes silent at {silent_at} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as workdir, LocalKafka(workdir=Path(workdir) / "k") as kafka:
        port = free_port()
        env = {
            env_name("bootstrap_servers"): kafka.bootstrap,
            env_name("state_dir"): str(Path(workdir) / "state"),
            env_name("metrics_port"): str(port),
            env_name("max_rooms"): "30000",
            env_name("log_level"): "warning",
        }
        settings = load_settings(environ=env)
        asyncio.run(ensure_topics(settings))
        worker = start_worker(env, Path(workdir) / "worker.log")
        try:
            wait_for_metrics(f"http://127.0.0.1:{port}/metrics", worker)
            idle_rss, _ = memory_mib(worker.pid)
            started = time.time() + 2
            result = run(settings, due, started, worker.pid, port, seconds)
            _, left = wait_counted(port, total, 600)
            if left:
                raise RuntimeError(f"the worker did not count all {total:,} events within 600 s")
            status = worker_status(port)
            time.sleep(10)  # what the last events set off
            transitions = asyncio.run(sent_alerts(settings))
            rss, peak = memory_mib(worker.pid)
            print(
                f"the worker had counted every event {time.time() - started - seconds:.0f} s "
                "after the producer's last second"
            )
        finally:
            stop_process(worker)
    rate, marks = result
    steady_cpu = (marks["cpu_end"] - marks["cpu_start"]) / (marks["wall_end"] - marks["wall_start"])
    held = int(status["rooms"])  # type: ignore[call-overload]
    print(f"produced {rate:,.0f} events/s; worker counted {status['events']:,} events")
    print(f"rooms held {held:,}; final lag {status['lag']:,} messages")
    print(
        f"worker CPU over the steady part (after the joins): {steady_cpu:.2f} s per second "
        f"({steady_cpu * 1e6 / max(held, 1):.1f} us per room-second)"
    )
    print(
        f"worker memory: idle {idle_rss:.0f} MiB, end {rss:.0f} MiB, peak {peak:.0f} MiB; "
        f"{(rss - idle_rss) * 2**20 / max(held, 1):,.0f} bytes per room held"
    )
    fired = [
        (arrived, t)
        for arrived, t in transitions
        if t.get("room_id") == SILENT and t.get("state") == "firing"
    ]
    if fired:
        arrived, first = fired[0]
        print(
            f"{SILENT}: {first['alert']} {first['severity']} "
            f"sent {arrived - (started + silent_at):.1f} s after its viewers fell silent"
        )
    else:
        print(f"{SILENT}: NO ALERT arrived")
    others = {t.get("alert") for _, t in transitions if t.get("room_id") != SILENT}
    print(f"other transitions: {len(transitions) - len(fired)} ({sorted(map(str, others))})")


def run(
    settings: Settings,
    due: list[list[tuple[str, dict[str, object]]]],
    started: float,
    pid: int,
    port: int,
    seconds: int,
) -> tuple[float, dict[str, float]]:
    """Produce and watch the worker at once."""

    async def together() -> tuple[float, dict[str, float]]:
        watching = asyncio.to_thread(watch_worker, pid, port, started, seconds, 90)
        rate, marks = await asyncio.gather(produce(settings, due, started), watching)
        return rate, marks

    return asyncio.run(together())


if __name__ == "__main__":
    main()
