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
- For the last three minutes (the hush) the quiet rooms send nothing: their viewers
  stay online (the session timeout, 5 minutes, outlasts it), as between two samples.

Then the same night again on a fresh broker and worker without its quiet rooms (the
watched rooms' events exactly as before; `--no-baseline` skips it). The difference
in the worker's CPU per second is what the 90,000 quiet rooms cost: over the steady
part (after the joins, before the hush) with their samples, over the hush their
upkeep alone (issue 14's target: at most 10% of a core).

Printed per run: the produce rate achieved, the worker's rooms and consumer lag each
minute, its CPU use per second of wall (= event) time over the steady part and the
hush, its resident memory (peak, and per room over the idle worker's), and when the
worker sent the silent room's alert. If upkeep followed rooms x seconds (every room
ticked every second, about 22 us a room-second), 100,000 rooms would need 2.2
CPU-seconds per second: more than the machine has.

`max_rooms` is set to 30,000 per partition: 100,000 rooms hash unevenly over four
partitions, and the default 25,000 would refuse a few hundred of them.

Run: .venv/bin/python -m benchmarks.many_rooms [--rooms N] [--minutes M] [--no-baseline]
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

from benchmarks.process import cpu_split, memory_mib, sent_alerts, wait_counted, worker_status
from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import start_worker, stop_process, wait_for_metrics
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings

SILENT = "silent-room"
SLICE_S = 0.05
"""The producer sends what has come due every this long."""
STEADY_FROM_S = 90
"""Every viewer has joined (in the first minute) and the worker has caught up."""
HUSH_S = 180
"""The last this many seconds, the quiet rooms send nothing."""
SETTLE_S = 15
"""The hush's CPU is counted from this long after it starts (the worker may still be
working through the quiet rooms' last samples)."""

Due = list[list[tuple[str, dict[str, object]]]]
"""Per second of the run, the events due in it (type, event without `ts`)."""


@dataclass(frozen=True)
class Room:
    name: str
    viewers: int
    sample_every_s: int
    chat: bool
    quiet: bool


def rooms(count: int, seed: int = 1) -> list[Room]:
    rng = random.Random(seed)
    made = []
    for i in range(count):
        if i % 10:  # nine in ten quiet
            made.append(Room(f"q{i}", rng.randint(1, 9), 60, False, True))
        else:
            made.append(Room(f"w{i}", rng.randint(10, 20), 30, True, False))
    made.append(Room(SILENT, 80, 10, True, False))
    return made


def schedule(
    all_rooms: list[Room], seconds: int, silent_at_s: int, hush_at_s: int, seed: int = 2
) -> Due:
    """Each viewer joins in the first minute at a random offset and samples from then
    on, until the silent room falls silent or the quiet rooms hush."""
    rng = random.Random(seed)
    due: Due = [[] for _ in range(seconds)]
    for room in all_rooms:
        last = silent_at_s if room.name == SILENT else hush_at_s if room.quiet else seconds
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


def without(due: Due, names: set[str]) -> Due:
    """The same seconds without the events of rooms `names`."""
    return [[(kind, e) for kind, e in events if e["room_id"] not in names] for events in due]


async def produce(settings: Settings, due: Due, started: float) -> float:
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
    pid: int, port: int, started: float, marks_at: list[int]
) -> list[tuple[float, float]]:
    """Poll the worker once a minute; its CPU seconds (its own, its reaped children's) at
    each of `marks_at` (seconds into the run; the last is the run's end)."""
    cpu: list[tuple[float, float]] = []
    next_report = started + 60
    while len(cpu) < len(marks_at):
        if time.time() >= started + marks_at[len(cpu)]:
            cpu.append(cpu_split(pid))
        elif time.time() >= next_report:
            report(pid, port, round((time.time() - started) / 60))
            next_report += 60
        else:
            time.sleep(0.2)
    return cpu


@dataclass
class Night:
    """What one run measured."""

    events: int
    rate: float
    held: int
    lag: int
    caught_up_s: float
    steady_cpu: float
    """CPU seconds per second over the steady part."""
    hush_cpu: float
    """CPU seconds per second over the hush."""
    steady_children: float
    hush_children: float
    """Of these, the checkpoints' forked children's."""
    idle_mib: float
    end_mib: float
    peak_mib: float
    silent_alert_s: float | None
    """When the silent room's first alert arrived, after its viewers fell silent."""
    others: list[str]
    """Alerts of any other room."""

    def show(self) -> None:
        print(f"produced {self.rate:,.0f} events/s; worker counted {self.events:,} events")
        print(f"rooms held {self.held:,}; final lag {self.lag:,} messages")
        print(f"the worker had counted every event {self.caught_up_s:.0f} s after the last second")
        print(
            f"worker CPU: {self.steady_cpu:.3f} s per second over the steady part "
            f"({self.steady_cpu * 1e6 / max(self.held, 1):.1f} us per room-second), "
            f"{self.hush_cpu:.3f} over the hush; of which checkpoint children "
            f"{self.steady_children:.3f} and {self.hush_children:.3f}"
        )
        print(
            f"worker memory: idle {self.idle_mib:.0f} MiB, end {self.end_mib:.0f} MiB, "
            f"peak {self.peak_mib:.0f} MiB; {self.room_bytes():,.0f} bytes per room held"
        )
        if self.silent_alert_s is None:
            print(f"{SILENT}: NO ALERT arrived")
        else:
            print(f"{SILENT}: alert sent {self.silent_alert_s:.1f} s after its viewers fell silent")
        print(f"other transitions: {len(self.others)} ({sorted(set(self.others))})")

    def room_bytes(self) -> float:
        return (self.end_mib - self.idle_mib) * 2**20 / max(self.held, 1)


def night(due: Due, silent_at_s: int, hush_at_s: int) -> Night:
    """Run one worker on a fresh local broker through `due`, produced in real time."""
    seconds = len(due)
    total = sum(len(events) for events in due)
    marks_at = [STEADY_FROM_S, hush_at_s, hush_at_s + SETTLE_S, seconds]
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
            idle_mib, _ = memory_mib(worker.pid)
            started = time.time() + 2
            rate, cpu = produce_watching(settings, due, started, worker.pid, port, marks_at)
            _, left = wait_counted(port, total, 600)
            if left:
                raise RuntimeError(f"the worker did not count all {total:,} events within 600 s")
            caught_up_s = time.time() - started - seconds
            status = worker_status(port)
            time.sleep(10)  # what the last events set off
            transitions = asyncio.run(sent_alerts(settings))
            end_mib, peak_mib = memory_mib(worker.pid)
        finally:
            stop_process(worker)
    fired = [
        arrived - (started + silent_at_s)
        for arrived, t in transitions
        if t.get("room_id") == SILENT and t.get("state") == "firing"
    ]
    return Night(
        events=int(status["events"]),
        rate=rate,
        held=int(status["rooms"]),
        lag=int(status["lag"]),
        caught_up_s=caught_up_s,
        steady_cpu=per_second(cpu[0], cpu[1], hush_at_s - STEADY_FROM_S),
        hush_cpu=per_second(cpu[2], cpu[3], seconds - hush_at_s - SETTLE_S),
        steady_children=(cpu[1][1] - cpu[0][1]) / (hush_at_s - STEADY_FROM_S),
        hush_children=(cpu[3][1] - cpu[2][1]) / (seconds - hush_at_s - SETTLE_S),
        idle_mib=idle_mib,
        end_mib=end_mib,
        peak_mib=peak_mib,
        silent_alert_s=fired[0] if fired else None,
        others=[str(t.get("alert")) for _, t in transitions if t.get("room_id") != SILENT],
    )


def per_second(start: tuple[float, float], end: tuple[float, float], seconds: float) -> float:
    """CPU seconds (own and children's) per second between two marks."""
    return (sum(end) - sum(start)) / seconds


def produce_watching(
    settings: Settings, due: Due, started: float, pid: int, port: int, marks_at: list[int]
) -> tuple[float, list[tuple[float, float]]]:
    """Produce and watch the worker at once."""

    async def together() -> tuple[float, list[tuple[float, float]]]:
        watching = asyncio.to_thread(watch_worker, pid, port, started, marks_at)
        rate, cpu = await asyncio.gather(produce(settings, due, started), watching)
        return rate, cpu

    return asyncio.run(together())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the night again without its quiet rooms, to tell what they cost",
    )
    args = parser.parse_args()
    seconds = round(args.minutes * 60)
    if seconds < STEADY_FROM_S + 60 + HUSH_S:
        parser.error("--minutes must leave a minute of steady traffic before the hush")
    silent_at, hush_at = seconds * 2 // 3, seconds - HUSH_S
    made = rooms(args.rooms)
    due = schedule(made, seconds, silent_at, hush_at)
    quiet = [room for room in made if room.quiet]
    print(
        f"{len(made):,} rooms ({sum(r.viewers for r in made):,} viewers; {len(quiet):,} quiet "
        f"with {sum(r.viewers for r in quiet):,}), {sum(map(len, due)):,} events over "
        f"{seconds} s of real time; {SILENT} goes silent at {silent_at} s, the quiet rooms "
        f"hush at {hush_at} s",
        flush=True,
    )
    every = night(due, silent_at, hush_at)
    every.show()
    if not args.baseline:
        return
    print("\nthe same night without its quiet rooms:", flush=True)
    names = {room.name for room in quiet}
    watched = night(without(due, names), silent_at, hush_at)
    watched.show()
    steady = due[STEADY_FROM_S:hush_at]
    quiet_events = sum(e["room_id"] in names for events in steady for _, e in events) / len(steady)
    print(
        f"\nwhat {len(quiet):,} quiet rooms cost the worker: "
        f"{every.steady_cpu - watched.steady_cpu:+.3f} CPU-s/s over the steady part "
        f"(with their {quiet_events:,.0f} events/s), "
        f"{every.hush_cpu - watched.hush_cpu:+.3f} over the hush (upkeep alone; target at "
        f"most 0.100); "
        f"{every.end_mib - watched.end_mib:+,.0f} MiB resident at the end"
    )


if __name__ == "__main__":
    main()
