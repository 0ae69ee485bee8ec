"""Scale-out and failover (issue 16, item 4): two workers, one killed, a third joining.

Two workers split the partitions of one consumer group. `make demo`'s night is
replayed at 20x (its twenty minutes in one). As soon as the night's first alert
transition is sent (about half-way), the worker whose rooms sent it, A, is killed
with SIGKILL, most likely before a checkpoint covers that transition: after
`group_session_timeout_s` its partitions move to the other, B, which resumes them
from A's last checkpoints and reads again what those do not cover. Two thirds in,
worker C joins: the group rebalances, B hands partitions over with a checkpoint
taken as it gives them up. When the input ends each partition is flushed
(`flush_idle_s`), and then, across B and C:

- every room's series (gauges, counters such as orders, GMV, danmaku, entries,
  latency samples, alerts firing) and every partition-wide series (latency
  histograms, online viewers, window events, alert transition counts) equal the
  backtest of the log (which the single-worker test of the flush,
  test_metrics_match_offline.py, shows a single worker equals): nothing lost,
  nothing applied twice;
- `livewatch_events_total` counts per process what it processed, like any
  Prometheus counter: B and C together counted every message except those A's
  last checkpoints cover, exactly (A's own count died with it). A count above
  that would be a message processed twice by the survivors;
- the alert transitions on the alerts topic, duplicates removed, equal the
  backtest's one for one. Duplicates are expected: A sent the transitions of the
  events after its last checkpoint before it was killed, and B, reading those
  events again from the checkpoint, sends the same transitions again (delivery
  is at-least-once). Each is an exact copy (same fingerprint, state, event time,
  severity, summary and details); the test counts them. The notifier drops a
  copy of any of the last 10,000 transitions it took (streams/notify/dispatch.py,
  tests/streams/notify/test_dispatch.py).

Printed: the time B takes to resume A's partitions after the kill (assigned,
moving, back where A was), the time C takes to get partitions, the duplicates.

`make soak` runs it longer: LIVEWATCH_SOAK_FAILOVER_SPEED (replay speed-up, 20;
1 replays the night in real time, twenty minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from streams.core.events import SOURCE_OF_TYPE
from streams.dev.broker import free_port
from streams.dev.demo import NIGHT, scrape
from streams.logs.files import read_lines
from streams.logs.replay import replay
from streams.settings import env_name
from tests.conftest import RunningWorker
from tests.exposition import Samples, differences
from tests.integration.offline import backtest_exposition, fetch, pipeline_samples
from tests.integration.workers import alert_transitions, checkpointed_offsets, eventually

SPEED = float(os.environ.get("LIVEWATCH_SOAK_FAILOVER_SPEED", "20"))
JOIN_AT = 2 / 3
"""When C starts, as a share of the replay (or once B has taken A's partitions over)."""
FLUSH_IDLE_S = 10
"""Far above any pause of the paced replay in a partition, failover included (its
input keeps arriving, so it is never caught up while it has no owner)."""
LATENESS_MS = 5000
"""The default: at 20x a second of event time is 50 ms on the wire, and topics'
batches reach the broker that far apart."""


def _night_span_s() -> float:
    stamps = [msgspec.json.decode(line)["ts"] for _, line in read_lines(NIGHT)]
    return float(max(stamps) - min(stamps)) / 1000


REPLAY_S = _night_span_s() / SPEED

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(int(300 + 1.5 * REPLAY_S))]

WATERMARK = "livewatch_partition_watermark_timestamp_seconds"
PROCESS_COUNTERS = (
    "livewatch_events_total",
    "livewatch_events_invalid_total",
    "livewatch_events_late_total",
    "livewatch_rooms_evicted_total",
)
"""Counted by the process, not the partitions' state: checked on their own."""
NOT_ADDITIVE = ("livewatch_region_latency_seconds",)
"""Quantiles over all of a worker's partitions: workers' values do not add up."""


def owned(worker: RunningWorker) -> set[int]:
    return set(worker.status()["partitions"])


def watermarks(worker: RunningWorker) -> dict[int, float]:
    found = scrape(worker.metrics_url).get(WATERMARK, {})
    return {int(dict(labels)["partition"]): value for labels, value in found.items()}


def transitions_sent(worker: RunningWorker) -> float:
    return sum(scrape(worker.metrics_url).get("livewatch_alert_transitions_total", {}).values())


def events_by_type(worker: RunningWorker) -> Counter[str]:
    found = scrape(worker.metrics_url).get("livewatch_events_total", {})
    return Counter({dict(labels)["type"]: int(value) for labels, value in found.items()})


def merged(samples: list[Samples]) -> Samples:
    """The workers' series as one worker would export them: a room's or a partition's
    from the one worker holding it, the others added up."""
    out: Samples = {}
    for worker in samples:
        for key, value in worker.items():
            name, labels = key
            if name.startswith(PROCESS_COUNTERS + NOT_ADDITIVE):
                continue
            if any(label in ("room", "partition") for label, _ in labels):
                assert key not in out, f"{key} on two workers"
                out[key] = value
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def canonical(transition: dict[str, Any]) -> str:
    return json.dumps(transition, sort_keys=True)


async def test_two_workers_one_killed_then_a_third_joining_end_as_one_worker(
    isolated_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
) -> None:
    env = {
        **isolated_env,
        env_name("idle_after_s"): "3600",  # no wall-clock drift: the result is exact
        env_name("flush_idle_s"): str(FLUSH_IDLE_S),
        env_name("allowed_lateness_ms"): str(LATENESS_MS),
        env_name("group_session_timeout_s"): "6",  # the group drops the killed member sooner
    }
    pair = (
        worker_factory(env),
        worker_factory({**env, env_name("metrics_port"): str(free_port())}),
    )
    settings = pair[0].settings
    every = set(range(settings.partitions))

    async def split_a_b() -> bool:
        mine, theirs = await asyncio.gather(*(asyncio.to_thread(owned, w) for w in pair))
        return bool(mine) and bool(theirs) and mine | theirs == every and not mine & theirs

    await eventually(split_a_b, within=90)
    backtest, transitions = await asyncio.to_thread(backtest_exposition, NIGHT, settings)
    expected = pipeline_samples(backtest)
    produced: Counter[str] = Counter()
    for (name, labels), value in expected.items():
        if name == "livewatch_events_total":
            produced[dict(labels)["type"]] += int(value)

    started = time.monotonic()
    replaying = asyncio.create_task(replay(NIGHT, settings, speed=SPEED))

    # -- mid-stream, A, the worker whose rooms just sent the night's first alert, is
    # killed (likely before a checkpoint covers it); B takes A's partitions over --
    async def one_alerted() -> bool:
        sent = await asyncio.gather(*(asyncio.to_thread(transitions_sent, w) for w in pair))
        return any(sent)

    await eventually(one_alerted, within=REPLAY_S + 60)
    a, b = pair if transitions_sent(pair[0]) else pair[::-1]
    from_a = await asyncio.to_thread(owned, a)
    last_words = await asyncio.to_thread(scrape, a.metrics_url)
    os.kill(a.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert not replaying.done()
    a_marks = {
        int(dict(labels)["partition"]): value for labels, value in last_words[WATERMARK].items()
    }
    a_counted = int(sum(last_words["livewatch_events_total"].values()))
    await asyncio.to_thread(a.process.wait)
    covered = await checkpointed_offsets(settings)  # A's last: final, B has not started
    assert not await asyncio.to_thread(owned, b) & from_a, "B took over before A's were read"
    covered_a = {tp: offset for tp, offset in covered.items() if tp.partition in from_a}
    moved = {p for p in from_a if p in a_marks}  # A's partitions with data

    async def b_assigned() -> bool:
        return await asyncio.to_thread(owned, b) == every

    restored: dict[int, float] = {}

    async def b_moving() -> bool:
        """Each of A's partitions has moved on from where B first showed it."""
        marks = await asyncio.to_thread(watermarks, b)
        for p in moved & marks.keys():
            restored.setdefault(p, marks[p])
        return restored.keys() == moved and all(marks[p] > restored[p] for p in moved)

    async def b_where_a_was() -> bool:
        marks = await asyncio.to_thread(watermarks, b)
        return all(marks.get(p, 0) >= a_marks[p] for p in moved)

    assigned = await eventually(b_assigned, within=90)
    moving = await eventually(b_moving, within=90)
    caught_up = await eventually(b_where_a_was, within=90)

    # -- C joins: a rebalance while the replay goes on --
    await asyncio.sleep(max(0.0, started + JOIN_AT * REPLAY_S - time.monotonic()))
    assert not replaying.done(), "the replay ended before C joined: nothing mid-stream"
    b_marks = await asyncio.to_thread(watermarks, b)
    launched = time.monotonic()
    c = await asyncio.to_thread(worker_factory, {**env, env_name("metrics_port"): str(free_port())})
    c_up = time.monotonic()

    async def split_b_c() -> bool:
        mine, theirs = await asyncio.gather(
            asyncio.to_thread(owned, b), asyncio.to_thread(owned, c)
        )
        return bool(mine) and bool(theirs) and mine | theirs == every and not mine & theirs

    rebalanced = await eventually(split_b_c, within=90)
    to_c = await asyncio.to_thread(owned, c)

    async def c_moving() -> bool:
        marks = await asyncio.to_thread(watermarks, c)
        return all(marks.get(p, 0) > b_marks[p] for p in to_c if p in b_marks)

    c_moved = await eventually(c_moving, within=90)
    stats = await replaying
    assert stats.skipped == 0 and stats.produced == sum(produced.values())
    replay_ended = time.monotonic()
    assert replay_ended > c_moved, "C's partitions moved before the input ended"

    # -- the end: B and C together equal the backtest --
    want = merged([expected])
    workers = (b, c)

    async def scraped() -> list[Samples]:
        texts = await asyncio.gather(*(asyncio.to_thread(fetch, w.metrics_url) for w in workers))
        return [pipeline_samples(text) for text in texts]

    async def as_one_worker() -> bool:
        return not differences(merged(await scraped()), want, rel_tol=1e-9)

    try:
        equal_at = await eventually(as_one_worker, within=FLUSH_IDLE_S + 120)
    finally:
        wrong = differences(merged(await scraped()), want, rel_tol=1e-9)
        for line in wrong[:40]:
            print("differs:", line)
    assert not wrong
    on_b, on_c = await scraped()
    assert any("room" in dict(k[1]) for k in on_b) and any("room" in dict(k[1]) for k in on_c)
    healths = [await asyncio.to_thread(scrape, w.metrics_url) for w in workers]
    with_data = [key for key in expected if key[0] == WATERMARK]
    flushes = sum(h["livewatch_idle_flushes_total"][()] for h in healths)
    assert flushes == len(with_data)  # once each, at the end: no flush cut the replay
    late = sum(h["livewatch_events_late_total"][()] for h in healths)
    invalid = sum(sum(h["livewatch_events_invalid_total"].values()) for h in healths)
    assert late == invalid == 0
    restores: Counter[str] = Counter()
    for health in healths:
        for labels, value in health["livewatch_checkpoint_restores_total"].items():
            restores[dict(labels)["result"]] += int(value)
    assert restores["restored"] >= len(moved) and restores["failed"] == 0

    # Events: every message counted once by the survivors, but for what A's last
    # checkpoints cover (A counted those, and its count died with it).
    by_topic: Counter[str] = Counter()
    for worker in workers:
        for event_type, count in (await asyncio.to_thread(events_by_type, worker)).items():
            by_topic[settings.source_topics[SOURCE_OF_TYPE[event_type]]] += count
    want_by_topic: Counter[str] = Counter()
    for event_type, count in produced.items():
        want_by_topic[settings.source_topics[SOURCE_OF_TYPE[event_type]]] += count
    for tp, offset in covered_a.items():
        want_by_topic[tp.topic] -= offset
    assert by_topic == want_by_topic
    read_again = a_counted - sum(covered_a.values())

    # Alerts: the backtest's, one for one, with copies of what A sent after its checkpoint.
    wanted = sorted(msgspec.to_builtins(transitions), key=canonical)
    assert len({canonical(t) for t in wanted}) == len(wanted) >= 6
    sent = await alert_transitions(settings)
    copies = Counter(map(canonical, sent))
    distinct = sorted({canonical(t): t for t in sent}.values(), key=canonical)
    assert distinct == wanted
    duplicates = len(sent) - len(distinct)

    print(
        f"replay {REPLAY_S:.0f} s at {SPEED:g}x, {sum(produced.values())} events; A killed at "
        f"{killed - started:.1f} s owning partitions {sorted(from_a)}: B assigned them "
        f"+{assigned - killed:.1f} s, moving +{moving - killed:.1f} s, back where A was "
        f"+{caught_up - killed:.1f} s; A had counted {a_counted} events (last scrape), its "
        f"checkpoints covered {sum(covered_a.values())}: at least {read_again} read again by B. "
        f"C launched at {launched - started:.1f} s, up +{c_up - launched:.1f} s, partitions "
        f"{sorted(to_c)} split off +{rebalanced - launched:.1f} s, moving on C "
        f"+{c_moved - launched:.1f} s; equal to the backtest {equal_at - replay_ended:.1f} s "
        f"after the replay ended ({int(flushes)} idle flushes). Alerts: {len(wanted)} "
        f"transitions, {len(sent)} on the topic, {duplicates} duplicates "
        f"({sorted(c for c in copies.values() if c > 1)})"
    )
