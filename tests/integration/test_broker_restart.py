"""The broker goes down mid-stream and comes back: nothing is restarted by hand.

Two workers, the notifier (with a real webhook receiver), `livewatch record` and
`livewatch replay` of `make demo`'s night run against a broker of this module's own
(the session's must stay up for the other tests). While replay produces and the
workers consume, the broker stops for 30 s and starts again on the same ports with
the same data (`LocalKafka.stop(keep_data=True)`, `start()`). Every process carries
on by itself, and at the end:

- the worker's room metrics and counters (events by type, orders, GMV, online
  viewers...) equal the offline computation of the log, as an uninterrupted run
  gives them: nothing lost, nothing counted twice;
- the alert transitions on the alerts topic are those of the uninterrupted offline
  run, one for one; the notifier delivered the latest state of each (a group sends
  its alerts' latest state, so a transition superseded within `group_interval` is
  not sent on its own), nothing else, and committed them all;
- the recording holds every event of the log exactly once;
- a second worker whose event time follows the wall clock when input pauses
  (`idle_after_s`, `flush_idle_s` at their defaults) counted every event, none late:
  an outage is no silence. Its other series move with the wall clock after the end.

The first worker does not let event time follow the wall clock (`idle_after_s` and
`flush_idle_s` an hour): its result is then exact, as in the other worker tests.
So it holds the last allowed-lateness window pending at the end, as the offline
run it is compared with does (`settle`, not `flush`); `livewatch backtest` flushes
that window at the end of its log: the test prints how many of the backtest's
transitions come from that flush (none on this night).

`make soak` runs it longer: LIVEWATCH_SOAK_BROKER_DOWN_S (seconds down, 30; replay
rides out up to about 110, streams.kafka.client.DELIVERY_TIMEOUT_MS less the
broker's start), LIVEWATCH_SOAK_BROKER_SPEED (replay speed-up, 20: the night's
twenty minutes in one; 1 replays it in real time), LIVEWATCH_SOAK_BROKER_KILL=1
(the broker crashes, SIGKILL, rather than shutting down cleanly).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from detectors.alerts import Transition
from streams.core.config import EngineConfig
from streams.core.engine import Pipeline
from streams.dev.broker import LocalKafka, die_with_parent, free_port
from streams.dev.demo import NIGHT, scrape, stop_process
from streams.kafka.client import client_options
from streams.kafka.partitioner import partition_for
from streams.logs.backtest import run_backtest
from streams.logs.files import read_lines
from streams.settings import Settings, env_name, load_settings
from streams.worker.exporter import PipelineCollector
from tests.conftest import RunningWorker
from tests.exposition import Samples, differences
from tests.integration.offline import fetch, pipeline_samples
from tests.integration.workers import eventually, topic_records
from tests.webhook_server import PlatformServer, platform_server

pytestmark = pytest.mark.kafka

DOWN_S = float(os.environ.get("LIVEWATCH_SOAK_BROKER_DOWN_S", "30"))
SPEED = float(os.environ.get("LIVEWATCH_SOAK_BROKER_SPEED", "20"))
KILL = os.environ.get("LIVEWATCH_SOAK_BROKER_KILL", "") not in ("", "0")
LATENESS_MS = 1000
EVENT_COUNTERS = {
    "livewatch_events_total",
    "livewatch_events_late_total",
    "livewatch_events_invalid_total",
    "livewatch_room_entries_total",
    "livewatch_room_entries_by_source_total",
    "livewatch_room_exits_total",
    "livewatch_room_danmaku_total",
    "livewatch_room_orders_total",
    "livewatch_room_stalls_total",
    "livewatch_room_latency_samples_total",
}
"""Counters of events, whatever the clock did: a worker whose event time follows the
wall clock has them as offline once its input has ended (the rest moves with time)."""
RECORD_IDLE_S = 15
"""`record --until-idle`: shorter than the outage, which must not count as quiet."""
NIGHT_S = 1200
"""The night's length in event time."""
NOISE = (
    "Unable connect to node",
    "Unable to update metadata",
    "Group Coordinator Request failed",
    "NodeNotReadyError",
    "Failed fetch messages",
    "Got error produce response",
    "OffsetCommit failed",
)
"""aiokafka's lines while the broker is away, thousands a second: left out of failures."""


@dataclass
class Broker:
    """The module's broker, and the one thread that stops and starts it: the JVM dies
    with the thread that started it (PR_SET_PDEATHSIG)."""

    kafka: LocalKafka
    thread: ThreadPoolExecutor

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self.thread, lambda: self.kafka.stop(keep_data=True, kill=KILL)
        )

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self.kafka.start)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """A broker of this module's own: the session's must stay up for the other tests."""
    thread = ThreadPoolExecutor(1, thread_name_prefix="broker")
    kafka = LocalKafka(heap_mb=512, partitions=4)
    try:
        thread.submit(kafka.start).result()
        yield Broker(kafka, thread)
    finally:
        thread.submit(kafka.stop).result()
        thread.shutdown()


@dataclass
class Offline:
    """The log through the pipeline without Kafka, as an uninterrupted worker runs it."""

    exposition: str
    transitions: list[Transition]
    events: Counter[str] = field(default_factory=Counter)


def offline_run(path: Path, partitions: int) -> Offline:
    """tests/integration/offline.py's computation, with the transitions it produces."""
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=LATENESS_MS))
    by_partition: dict[int, tuple[list[bytes], list[int]]] = {}
    events: Counter[str] = Counter()
    for number, line in read_lines(path):
        event = msgspec.json.decode(line)
        events[event["type"]] += 1
        lines, numbers = by_partition.setdefault(
            partition_for(event["room_id"], partitions), ([], [])
        )
        lines.append(line)
        numbers.append(number)
    for partition, (lines, numbers) in by_partition.items():
        pipeline.process_lines(partition, lines, numbers, str(path))
        pipeline.settle(partition, ())  # the worker holds the watermark at clock - lateness
    transitions = pipeline.drain().transitions  # counted as the worker emits them
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    return Offline(generate_latest(registry).decode(), transitions, events)


def backtest_run(path: Path, settings: Settings) -> Offline:
    """`livewatch backtest` of the log: the end of the log flushes the pending window."""
    result = run_backtest(path, settings)
    assert result.pipeline is not None
    registry = CollectorRegistry()
    registry.register(PipelineCollector(result.pipeline))
    return Offline(generate_latest(registry).decode(), result.transitions)


def command(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli.main", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def transition_key(t: Transition) -> bytes:
    return msgspec.json.encode(t)


async def read_alerts(settings: Settings) -> list[Transition]:
    """Every transition on the alerts topic, from the beginning to its end now."""
    records = await topic_records(settings, settings.topic(settings.topic_alerts))
    return [msgspec.json.decode(value, type=Transition) for _, _, value in records]


async def notifier_committed_all(settings: Settings) -> bool:
    """The notifier's group has committed the alerts topic up to its end."""
    topic = settings.topic(settings.topic_alerts)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=f"{settings.app_id}-notifier")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        committed = [(await consumer.committed(tp)) or 0 for tp in tps]
        return committed == [ends[tp] for tp in tps]
    finally:
        await consumer.stop()


def delivered(server: PlatformServer) -> list[tuple[str, str]]:
    return [
        (t["fingerprint"], t["state"])
        for r in server.delivered("hook")
        for t in r.body["transitions"]
    ]


def counted(url: str) -> int:
    return int(sum(scrape(url).get("livewatch_events_total", {}).values()))


def line_count(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def show(name: str, log: Path) -> None:
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if not any(noise in line for noise in NOISE)
    ]
    print(f"--- {name}: {log} ---\n" + "\n".join(lines[-80:]))


def event_counters(text: str) -> Samples:
    """What counts events, whatever the clock: per type, late, per room and kind."""
    return {k: v for k, v in pipeline_samples(text).items() if k[0] in EVENT_COUNTERS}


@pytest.mark.timeout(int(300 + DOWN_S + 2 * NIGHT_S / SPEED))
async def test_worker_notifier_replay_and_record_ride_out_a_broker_restart(
    broker: Broker,
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    tag = f"{time.monotonic_ns() % 10**8}"
    env = {
        env_name("bootstrap_servers"): broker.kafka.bootstrap,
        env_name("topic_prefix"): f"r{tag}.",
        env_name("app_id"): f"livewatch-restart-{tag}",
        env_name("state_dir"): str(tmp_path / "state"),
        env_name("metrics_port"): str(free_port()),
        env_name("metrics_host"): "127.0.0.1",
        env_name("notifier_metrics_port"): str(free_port()),
        env_name("allowed_lateness_ms"): str(LATENESS_MS),
        env_name("idle_after_s"): "3600",  # event time does not follow the wall clock
        env_name("flush_idle_s"): "3600",
        env_name("log_level"): "info",
    }
    # The same topics, its own group, state and outputs, and the default clock: event
    # time follows the wall clock when input pauses (and 1 s of allowed lateness, not 5:
    # an outage that passed for silence would make more of the events late).
    clock = (env_name("idle_after_s"), env_name("flush_idle_s"))
    live_env = {
        **{name: value for name, value in env.items() if name not in clock},
        env_name("app_id"): f"livewatch-restart-{tag}-live",
        env_name("state_dir"): str(tmp_path / "state-live"),
        env_name("metrics_port"): str(free_port()),
        env_name("topic_alerts"): "live.alerts.live-clock",
        env_name("topic_actions"): "live.actions.live-clock",
    }
    settings = load_settings(environ=env)
    offline = await asyncio.to_thread(offline_run, NIGHT, settings.partitions)
    backtest = await asyncio.to_thread(backtest_run, NIGHT, settings)
    live_backtest = await asyncio.to_thread(backtest_run, NIGHT, load_settings(environ=live_env))
    total = sum(offline.events.values())
    logs = {name: tmp_path / f"{name}.log" for name in ("notifier", "record", "replay")}
    recorded = tmp_path / "recorded.jsonl"
    processes: dict[str, subprocess.Popen[bytes]] = {}

    async with platform_server() as server:
        config = tmp_path / "notify.toml"
        config.write_text(
            "[notify]\n"
            "group_wait_s = 0.2\ngroup_interval_s = 0.5\n"
            f'silences_file = "{tmp_path / "silences.json"}"\n'
            '[[notify.receivers]]\nname = "hook"\nkind = "webhook"\nurl_env = "TEST_HOOK_URL"\n'
            '[[notify.routes]]\nreceivers = ["hook"]\n'
        )
        workers = [worker_factory(env), worker_factory(live_env)]  # the first creates topics
        url, live_url = (w.metrics_url for w in workers)
        try:
            processes["notifier"] = command(
                "notify",
                "--config",
                str(config),
                env={**env, "TEST_HOOK_URL": f"{server.url}/hook"},
                log=logs["notifier"],
            )
            processes["record"] = command(
                "record",
                "--out",
                str(recorded),
                "--from-beginning",
                "--until-idle",
                str(RECORD_IDLE_S),
                env=env,
                log=logs["record"],
            )
            processes["replay"] = command(
                "replay", str(NIGHT), "--speed", str(SPEED), env=env, log=logs["replay"]
            )
            replay = processes["replay"]

            # Mid-stream: alerts already delivered, the replay and the workers busy.
            async def alerting() -> bool:
                return bool(server.delivered("hook"))

            await eventually(alerting, within=60 + NIGHT_S / SPEED)
            before = await asyncio.to_thread(counted, url)
            assert replay.poll() is None and 0 < before < total, (before, total)

            went_down = time.monotonic()
            await broker.stop()
            stopped = time.monotonic()
            await asyncio.sleep(DOWN_S)  # the fault itself: nothing to wait for
            for name, process in processes.items():
                assert process.poll() is None, f"{name} exited while the broker was down"
            await broker.start()
            back = time.monotonic()
            at_back = {u: await asyncio.to_thread(counted, u) for u in (url, live_url)}
            lines_at_back = line_count(recorded)
            deliveries_at_back = len(server.delivered("hook"))

            async def worker_moves() -> bool:
                return await asyncio.to_thread(counted, url) > at_back[url]

            async def live_worker_moves() -> bool:
                return await asyncio.to_thread(counted, live_url) > at_back[live_url]

            async def record_grows() -> bool:
                return line_count(recorded) > lines_at_back

            async def notifier_delivers() -> bool:
                return len(server.delivered("hook")) > deliveries_at_back

            async def replay_ends() -> bool:
                return replay.poll() is not None

            budget = 120 + NIGHT_S / SPEED
            checks = {
                "worker": worker_moves,
                "live-clock worker": live_worker_moves,
                "record": record_grows,
                "notifier": notifier_delivers,
                "replay finished": replay_ends,
            }
            times = await asyncio.gather(*(eventually(c, budget) for c in checks.values()))
            recovered = dict(zip(checks, times, strict=True))
            assert replay.returncode == 0, logs["replay"].read_text(errors="replace")
            assert f"replayed {total} events" in logs["replay"].read_text(errors="replace")

            # The worker: room metrics and every counter as an uninterrupted offline run.
            expected = pipeline_samples(offline.exposition)

            async def worker_done() -> bool:
                return pipeline_samples(await asyncio.to_thread(fetch, url)) == expected

            try:
                done_at = await eventually(worker_done, within=120)
            finally:
                scraped = pipeline_samples(await asyncio.to_thread(fetch, url))
                assert scraped == expected, differences(scraped, expected)
            by_type = {dict(k)["type"]: v for k, v in scrape(url)["livewatch_events_total"].items()}
            assert by_type == dict(offline.events)

            # The live-clock worker: every event counted once and none late.
            counters = event_counters(live_backtest.exposition)
            assert counters[("livewatch_events_late_total", ())] == 0

            async def live_worker_done() -> bool:
                return event_counters(await asyncio.to_thread(fetch, live_url)) == counters

            try:
                live_done_at = await eventually(live_worker_done, within=60)
            finally:
                scraped = event_counters(await asyncio.to_thread(fetch, live_url))
                assert scraped == counters, differences(scraped, counters)

            # The recording: every event once.
            record = processes["record"]

            async def record_ends() -> bool:
                return record.poll() is not None

            record_ended = await eventually(record_ends, within=RECORD_IDLE_S + 60)
            assert record.returncode == 0, logs["record"].read_text(errors="replace")
            assert Counter(line for _, line in read_lines(recorded)) == Counter(
                line for _, line in read_lines(NIGHT)
            )

            # The alerts: one for one as offline, and the notifier delivered each.
            emitted = await read_alerts(settings)
            assert Counter(map(transition_key, emitted)) == Counter(
                map(transition_key, offline.transitions)
            )

            async def notifier_done() -> bool:
                return await notifier_committed_all(settings)

            await eventually(notifier_done, within=60)
            latest = {t.fingerprint: t.state for t in emitted}
            sent = delivered(server)
            assert set(latest.items()) <= set(sent)
            assert set(sent) <= {(t.fingerprint, t.state) for t in emitted}
            for name, process in [*processes.items(), *(("worker", w.process) for w in workers)]:
                assert process.poll() is None or name in ("replay", "record"), f"{name} exited"
        except BaseException:
            for name, log in logs.items():
                show(name, log)
            raise
        finally:
            for process in processes.values():
                stop_process(process)

    flushed = Counter(map(transition_key, backtest.transitions)) - Counter(
        map(transition_key, offline.transitions)
    )
    missing = Counter(map(transition_key, offline.transitions)) - Counter(
        map(transition_key, backtest.transitions)
    )
    print(
        f"broker down {back - went_down:.1f} s (stopping took {stopped - went_down:.1f} s, "
        f"starting {back - stopped - DOWN_S:.1f} s) at {before / total:.0%} of the night; "
        "after it answered again: "
        + ", ".join(f"{name} +{at - back:.1f} s" for name, at in recovered.items())
        + f", worker equal to offline +{done_at - back:.1f} s, live-clock worker's counters "
        f"+{live_done_at - back:.1f} s, record ended +{record_ended - back:.1f} s; "
        f"{total} events, {len(emitted)} transitions ({len(sent)} delivered in "
        f"{len(server.delivered('hook'))} webhooks); backtest: {len(backtest.transitions)} "
        f"transitions, {sum(flushed.values())} more from its end-of-log flush, "
        f"{sum(missing.values())} not in it"
    )
