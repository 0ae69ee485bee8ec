"""One room of 1,000,000 concurrent viewers on one partition, live through the broker
(issue 14, item 3).

The room's events all carry its id as their key, so they land on one partition of
each source topic and one worker owns them all: a promotion-peak room is the skewed
key a stream processor must survive. This runs one worker (default settings,
everything on: all metrics, detectors, checkpoints) against a local broker and
produces in real time, each event's `ts` the time it is sent, for `--minutes`:

- joins: the room fills in its first two minutes (`--viewers` / 120 a second), then
  1% of the audience turns over a minute (a leave and a new viewer's join);
- latency samples: every viewer, one every 10 s (`--viewers` / 10 a second), with
  one of 8 regions and a healthy round trip (log-normal about 300 ms);
- chat 2,000 lines a second (varied texts, a tenth of them the same short line, as a
  host's "type 1" call gets), orders 100 a second, stalls 100 a second.

At a million viewers that is about 102,500 events a second once the room is full,
over 90 million in 15 minutes. Both message shapes, one after the other with a
fresh worker: one event per message, and JSON arrays of 100 events (a producer that
batches the hot room's events). The producer is confluent-kafka (librdkafka: the
`bench` extra), so that it costs the machine less than the worker it feeds.

Printed, each minute: events sent and counted, the worker's backlog (sent minus
counted events, and in seconds of the room's rate), its consumer lag in messages,
resident memory and CPU. At the end: whether it kept up (the backlog over the last
half of the run neither large nor growing), how long after the last second it had
counted every event, resident memory per concurrent viewer (issue 14 asks at most
500 bytes: the whole process, idle footprint included, and the growth over it), and
the alerts the healthy room raised (none expected).

Run: .venv/bin/python -m benchmarks.hot_room [--viewers N] [--minutes M] [--shapes 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from benchmarks.process import (
    FamilyPeak,
    cpu_seconds,
    memory_mib,
    sent_alerts,
    wait_counted,
    worker_status,
)
from streams.dev.broker import LocalKafka, free_port
from streams.dev.demo import start_worker, stop_process, wait_for_metrics
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, env_name, load_settings

ROOM = "hot-room"
REGIONS = ("cn-east", "cn-south", "cn-north", "cn-west", "hk", "sg", "us-west", "eu-west")
RAMP_S = 120
SAMPLE_EVERY_S = 10
CHURN_PER_MINUTE = 0.01
CHAT_PER_S = 2_000
ORDERS_PER_S = 100
STALLS_PER_S = 100
SLICES = 20
CATCH_UP_S = 180
"""How long a worker still behind at the end is waited for."""
"""The producer sends each second's events in this many slices, stamped as sent."""
PHRASES = ("好看", "主播好美", "多少钱", "怎么买", "链接呢", "有优惠吗", "已下单", "这个颜色好",
           "来了来了", "支持主播", "什么时候发货", "能便宜点吗", "尺码准吗", "好用吗")  # fmt: skip

LATENCY = '{"type":"latency","room_id":"%s","ts":%d,"user_id":"u%d.%d","value_ms":%d,"region":"%s"}'
JOIN = '{"type":"join","room_id":"%s","ts":%d,"user_id":"u%d.%d","source":"feed"}'
LEAVE = '{"type":"leave","room_id":"%s","ts":%d,"user_id":"u%d.%d"}'
CHAT = '{"type":"danmaku","room_id":"%s","ts":%d,"user_id":"u%d.%d","text":"%s"}'
ORDER = '{"type":"order","room_id":"%s","ts":%d,"user_id":"u%d.%d","order_id":"o%d","amount":%.1f}'
STALL = '{"type":"stall","room_id":"%s","ts":%d,"user_id":"u%d.%d","duration_ms":%d}'


@dataclass
class Crowd:
    """The room's viewers as slots: slot k is viewer `u{k}.{generation[k]}`; a viewer
    who leaves is replaced in the slot by a new one (the next generation)."""

    viewers: int
    generation: np.ndarray = field(init=False)
    turned: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    orders: int = 0

    def __post_init__(self) -> None:
        self.generation = np.zeros(self.viewers, dtype=np.int64)

    def joined_by(self, second: int) -> int:
        return min(self.viewers, self.viewers * second // RAMP_S)

    def second(self, second: int) -> dict[str, list[tuple[str, tuple[object, ...]]]]:
        """The second's events per type, as (template, values without room and ts)."""
        gen, rng = self.generation, self.rng
        due: dict[str, list[tuple[str, tuple[object, ...]]]] = {}
        present = self.joined_by(second)
        fresh = range(present, self.joined_by(second + 1))
        due["join"] = [(JOIN, (k, 0)) for k in fresh]
        due["leave"] = []
        if second >= RAMP_S:
            churn = round(self.viewers * CHURN_PER_MINUTE / 60)
            slots = [(self.turned + i) % self.viewers for i in range(churn)]
            self.turned += churn
            due["leave"] = [(LEAVE, (k, int(gen[k]))) for k in slots]
            gen[slots] += 1
            due["join"] += [(JOIN, (k, int(gen[k]))) for k in slots]
        sampled = np.arange(second % SAMPLE_EVERY_S, present, SAMPLE_EVERY_S)
        rtt = rng.lognormal(5.7, 0.3, len(sampled)).astype(np.int64)
        due["latency"] = [
            (LATENCY, (int(k), int(gen[k]), int(v), REGIONS[int(k) % len(REGIONS)]))
            for k, v in zip(sampled, rtt, strict=True)
        ]
        if present == 0:
            return due
        who = rng.integers(0, present, CHAT_PER_S + ORDERS_PER_S + STALLS_PER_S)
        chat, order, stall = np.split(who, [CHAT_PER_S, CHAT_PER_S + ORDERS_PER_S])
        words = rng.integers(0, len(PHRASES), len(chat))
        due["danmaku"] = [
            (CHAT, (int(k), int(gen[k]), "扣1" if k % 10 == 0 else f"{PHRASES[w]}{k % 97}"))
            for k, w in zip(chat, words, strict=True)
        ]
        amounts = rng.uniform(9.9, 299.0, len(order))
        due["order"] = []
        for k, amount in zip(order, amounts, strict=True):
            self.orders += 1
            due["order"].append((ORDER, (int(k), int(gen[k]), self.orders, float(amount))))
        durations = rng.integers(300, 3_000, len(stall))
        due["stall"] = [
            (STALL, (int(k), int(gen[k]), int(d))) for k, d in zip(stall, durations, strict=True)
        ]
        return due


def messages(events: list[str], shape: int) -> Iterator[str]:
    if shape == 1:
        yield from events
        return
    for start in range(0, len(events), shape):
        yield "[" + ",".join(events[start : start + shape]) + "]"


@dataclass
class Sent:
    """What the producer has sent so far, read by the watcher."""

    events: int = 0
    messages: int = 0
    behind_s: float = 0.0
    """How far the producer's slices ran behind their schedule, at most."""
    done: bool = False


def produce(settings: Settings, crowd: Crowd, seconds: int, shape: int, sent: Sent) -> None:
    """Send each second's events in slices spread over it, each stamped with its send time."""
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1 << 21,
        }
    )
    key = ROOM.encode()
    started = time.time()
    for second in range(seconds):
        due = crowd.second(second)
        for part in range(SLICES):
            wake = started + second + part / SLICES
            sent.behind_s = max(sent.behind_s, time.time() - wake)
            time.sleep(max(0.0, wake - time.time()))
            ts = int(time.time() * 1000)
            for kind, events in due.items():
                due_now = events[part::SLICES]
                texts = [template % (ROOM, ts, *values) for template, values in due_now]
                topic = settings.topic_for_type(kind)
                for value in messages(texts, shape):
                    while True:
                        try:
                            producer.produce(topic, value.encode(), key)
                            break
                        except BufferError:  # librdkafka's queue is full: let it drain
                            producer.poll(0.05)
                    sent.messages += 1
                sent.events += len(texts)
            producer.poll(0)
    producer.flush(60)
    sent.done = True


@dataclass
class Mark:
    at_s: float
    sent: int
    counted: int
    lag: int
    rss_mib: float
    cpu_s: float


def watch(pid: int, port: int, sent: Sent, started: float, every_s: float = 10) -> list[Mark]:
    """The worker's progress every `every_s` until the producer is done."""
    marks: list[Mark] = []
    next_at = started + every_s
    while not sent.done:
        time.sleep(max(0.0, min(1.0, next_at - time.time())))
        if time.time() < next_at:
            continue
        next_at += every_s
        events = sent.events
        try:
            status = worker_status(port)
        except OSError:  # urllib's timeouts included
            print(f"  {time.time() - started:5.0f} s: /status gave no answer in 30 s", flush=True)
            continue
        rss, _ = memory_mib(pid)
        mark = Mark(
            time.time() - started, events, status["events"], status["lag"], rss, cpu_seconds(pid)
        )
        marks.append(mark)
        if len(marks) % round(60 / every_s) == 0:
            print(
                f"  {mark.at_s:5.0f} s: sent {mark.sent:,}, counted {mark.counted:,}, "
                f"backlog {mark.sent - mark.counted:,} events, lag {mark.lag:,} messages, "
                f"RSS {mark.rss_mib:,.0f} MiB",
                flush=True,
            )
    return marks


def verdict(marks: list[Mark], rate: float) -> tuple[bool, str]:
    """Kept up: over the run's second half the backlog stays under 10 s of the room's
    events and does not grow (a least-squares slope under 1% of the rate)."""
    half = [m for m in marks if m.at_s >= marks[-1].at_s / 2]
    if len(half) < 3:
        return False, "too short a run to judge"
    backlog = np.array([m.sent - m.counted for m in half], dtype=float)
    at = np.array([m.at_s for m in half])
    slope = float(np.polyfit(at, backlog, 1)[0])
    worst = float(backlog.max()) / rate
    kept = worst <= 10 and slope <= 0.01 * rate
    return kept, (
        f"second half: backlog at most {backlog.max():,.0f} events ({worst:.1f} s of the room), "
        f"growing {slope:,.0f} events/s"
    )


def run_shape(kafka: LocalKafka, workdir: Path, viewers: int, seconds: int, shape: int) -> None:
    port = free_port()
    env = {
        env_name("bootstrap_servers"): kafka.bootstrap,
        env_name("topic_prefix"): f"hot{shape}.",
        env_name("app_id"): f"livewatch-hot-{shape}",
        env_name("state_dir"): str(workdir / f"state-{shape}"),
        env_name("metrics_port"): str(port),
        env_name("log_level"): "warning",
    }
    settings = load_settings(environ=env)
    asyncio.run(ensure_topics(settings))
    worker = start_worker(env, workdir / f"worker-{shape}.log")
    try:
        wait_for_metrics(f"http://127.0.0.1:{port}/metrics", worker)
        idle_rss, _ = memory_mib(worker.pid)
        family = FamilyPeak(worker.pid)
        family.start()
        crowd, sent = Crowd(viewers), Sent()
        started = time.time()
        producing = threading.Thread(target=produce, args=(settings, crowd, seconds, shape, sent))
        producing.start()
        marks = watch(worker.pid, port, sent, started)
        producing.join()
        produced_s = time.time() - started
        after, left = wait_counted(port, sent.events, CATCH_UP_S)
        rss, peak = memory_mib(worker.pid)
        family.stop()
        status = worker_status(port)
        transitions = asyncio.run(sent_alerts(settings))
    finally:
        stop_process(worker)
    rate = sent.events / produced_s
    steady = [m for m in marks if m.at_s >= RAMP_S + 30]
    cpu = (
        (steady[-1].cpu_s - steady[0].cpu_s) / (steady[-1].at_s - steady[0].at_s)
        if len(steady) > 1
        else float("nan")
    )
    kept, why = verdict(marks, rate)
    print(
        f"sent {sent.events:,} events in {sent.messages:,} messages over {produced_s:.0f} s "
        f"({rate:,.0f} events/s; the producer ran up to {sent.behind_s:.1f} s behind schedule)"
    )
    print(
        f"{'KEPT UP' if kept else 'FELL BEHIND'}: {why}; "
        + (
            f"every event counted {after:.0f} s after the last second"
            if not left
            else f"{left:,} events not counted yet {CATCH_UP_S} s after the last second"
        )
        + f"; {status['late']:,} late, {status['invalid']:,} invalid"
    )
    print(f"worker CPU once the room is full: {cpu:.2f} s per second")
    print(
        f"worker memory: idle {idle_rss:,.0f} MiB, end {rss:,.0f} MiB, peak {peak:,.0f} MiB: "
        f"{peak * 2**20 / viewers:,.0f} bytes per concurrent viewer (peak, whole process), "
        f"{(peak - idle_rss) * 2**20 / viewers:,.0f} over the idle worker"
    )
    child = status["checkpoint_child_peak_rss"] / 2**20
    print(
        f"with the children it forks to take checkpoints (peak RSS {child:,.0f} MiB, every page "
        f"shared with the worker included): together at most {family.peak_mib:,.0f} MiB "
        f"(proportional set sizes summed every {family.every_s} s, "
        f"{family.peak_child_mib:,.0f} MiB of it the child's share), "
        f"{family.peak_mib * 2**20 / viewers:,.0f} bytes per concurrent viewer"
    )
    print(f"alert transitions: {len(transitions)} (a healthy room: none expected)")
    for _, t in transitions:
        at = (t["ts"] / 1000) - started
        print(f"  {at:5.0f} s: {t['alert']} {t['state']} {t['severity']}: {t['summary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--shapes", default="1,100", help="events per message, comma-separated")
    args = parser.parse_args()
    seconds = round(args.minutes * 60)
    if seconds <= RAMP_S + 60:
        parser.error(f"--minutes must leave at least a minute after the {RAMP_S} s ramp")
    with tempfile.TemporaryDirectory() as workdir, LocalKafka(workdir=Path(workdir) / "k") as kafka:
        for shape in (int(s) for s in args.shapes.split(",")):
            print(
                f"\n{ROOM}: {args.viewers:,} viewers, {seconds} s, "
                f"{'one event' if shape == 1 else f'{shape} events'} per message",
                flush=True,
            )
            run_shape(kafka, Path(workdir), args.viewers, seconds, shape)


if __name__ == "__main__":
    main()
