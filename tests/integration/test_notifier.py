"""The notifier through a real broker: a webhook outage and a kill -9 lose nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detectors.alerts import Transition
from streams.dev.broker import die_with_parent, free_port
from streams.kafka.client import client_options
from streams.kafka.topics import ensure_topics
from streams.settings import env_name, load_settings
from tests.webhook_server import PlatformServer, platform_server

pytestmark = pytest.mark.kafka
T0 = 1_764_000_000_000


def transitions() -> list[Transition]:
    out = []
    for i, room in enumerate(["room-a", "room-b", "room-c", "room-d"]):
        for alert in ("traffic_cliff", "spam_flood"):
            fingerprint = f"{room}-{alert}"
            out.append(
                Transition(
                    alert,
                    "firing",
                    room,
                    T0 + i * 1000,
                    "critical",
                    "s",
                    fingerprint,
                    {},
                    None,
                    T0,
                    "",
                )
            )
        out.append(
            Transition(
                "spam_flood",
                "resolved",
                room,
                T0 + 600_000,
                "critical",
                "s",
                f"{room}-spam_flood",
                {},
                None,
                T0,
                "",
            )
        )
    return out


def notifier(env: dict[str, str], config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "notify", "--config", str(config)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def delivered(server: PlatformServer) -> set[tuple[str, str]]:
    return {
        (t["fingerprint"], t["state"])
        for r in server.delivered("hook")
        for t in r.body["transitions"]
    }


async def committed(env: dict[str, str]) -> int:
    settings = load_settings(environ=env)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=f"{settings.app_id}-notifier")
    await consumer.start()
    try:
        topic = settings.topic(settings.topic_alerts)
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in parts]
        return sum(o or 0 for o in offsets)
    finally:
        await consumer.stop()


async def wait_for(condition: Callable[[], bool], within_s: float = 60) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the condition is another process's doing
            await asyncio.sleep(0.2)


async def test_a_notifier_killed_during_a_webhook_outage_loses_nothing(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(environ=isolated_env)
    await ensure_topics(settings)
    sent = transitions()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    for t in sent:
        await producer.send_and_wait(
            settings.topic(settings.topic_alerts),
            msgspec.json.encode(t),
            key=t.fingerprint.encode(),
        )
    await producer.send_and_wait(settings.topic(settings.topic_alerts), b"{not a transition")
    await producer.stop()

    async with platform_server() as server:
        config = tmp_path / "notify.toml"
        config.write_text(
            "[notify]\n"
            "group_wait_s = 0.2\ngroup_interval_s = 0.5\n"
            f'silences_file = "{tmp_path / "silences.json"}"\n'
            '[[notify.receivers]]\nname = "hook"\nkind = "webhook"\nurl_env = "TEST_HOOK_URL"\n'
            '[[notify.routes]]\nreceivers = ["hook"]\n'
        )
        env = {
            **isolated_env,
            "TEST_HOOK_URL": f"{server.url}/hook",
            env_name("notifier_metrics_port"): str(free_port()),
        }

        server.always_fail = True  # the webhook is down
        first = notifier(env, config)
        try:
            await wait_for(lambda: len(server.attempts) >= 3)
            assert delivered(server) == set()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        # Only the undecodable message (dead-lettered at once) may have been committed.
        assert await committed(env) <= 1

        server.always_fail = False  # the webhook is back
        second = notifier(env, config)
        try:
            # Each group sends its alerts' latest state: a spam flood that fired and
            # resolved during the outage arrives as its resolution.
            expected = {
                (t.fingerprint, t.state)
                for t in sent
                if t.alert == "traffic_cliff" or t.state == "resolved"
            }
            await wait_for(lambda: delivered(server) >= expected)
            assert delivered(server) == expected
            await wait_for_async(lambda: committed(env), len(sent) + 1)
        finally:
            second.terminate()
            second.wait(timeout=30)


async def wait_for_async(
    probe: Callable[[], Awaitable[int]], expected: int, within_s: float = 30
) -> None:
    async with asyncio.timeout(within_s):
        while (value := await probe()) != expected:  # noqa: ASYNC110 - polling Kafka
            await asyncio.sleep(0.5)
    assert value == expected
