"""livewatch on a secured cluster (issue 16, security): a broker of its own with a
SASL_SSL listener, its TLS keys made with the JDK's keytool and its SCRAM-SHA-512 user
with Kafka's storage tool (streams.dev.broker.LocalKafka's `sasl_ssl_users`).

The worker, the notifier, `replay` and `record` connect with the settings of
docs/deploy.md and work end to end; a wrong password or an untrusted certificate ends
each with one clear line and exit 1, no traceback; the password appears in no log,
output, recording, dead letter or /metrics; /metrics listens on loopback by default.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from detectors.alerts import Transition
from streams.dev.broker import (
    SCRAM_MECHANISM,
    KafkaError,
    LocalKafka,
    _scram_user,
    _server_properties,
    die_with_parent,
    free_port,
)
from streams.dev.demo import scrape, stop_process, wait_for_metrics
from streams.kafka.client import client_options
from streams.logs.files import read_lines
from streams.logs.simulate import Room, Scenario, generate, steady, write_log
from streams.settings import Settings, env_name, load_settings, nested_env_name
from tests.conftest import RunningWorker

pytestmark = pytest.mark.kafka

USER = "livewatch"
PASSWORD = f"lw-{secrets.token_hex(16)}"
"""The user's real password: it must never be seen again."""
WRONG = f"wrong-{secrets.token_hex(8)}"
CLI = [sys.executable, "-m", "streams.cli.main"]


@pytest.fixture(scope="module")
def secured_kafka() -> Iterator[LocalKafka]:
    """A broker for this module only, with the SASL_SSL listener the tests use."""
    with LocalKafka(heap_mb=384, partitions=2, sasl_ssl_users={USER: PASSWORD}) as broker:
        yield broker


@pytest.fixture
def secured_env(secured_kafka: LocalKafka, tmp_path: Path) -> dict[str, str]:
    return env_for(secured_kafka, tmp_path)


def env_for(broker: LocalKafka, tmp_path: Path) -> dict[str, str]:
    """docs/deploy.md's settings for a secured cluster, the password in a file; no
    `metrics_host`: the default is what is checked."""
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    tag = uuid.uuid4().hex[:8]
    return {
        env_name("bootstrap_servers"): broker.sasl_ssl_bootstrap,
        env_name("security_protocol"): "SASL_SSL",
        env_name("sasl_mechanism"): SCRAM_MECHANISM,
        env_name("sasl_username"): USER,
        env_name("sasl_password_file"): str(password_file),
        env_name("ssl_cafile"): str(broker.ca_file),
        env_name("topic_prefix"): f"s{tag}.",
        env_name("app_id"): f"livewatch-secure-{tag}",
        env_name("state_dir"): str(tmp_path / "state"),
        env_name("metrics_port"): str(free_port()),
        env_name("notifier_metrics_port"): str(free_port()),
        env_name("allowed_lateness_ms"): "1000",
        env_name("idle_after_s"): "0.5",
        env_name("log_level"): "debug",  # the most a log can say
        nested_env_name("notify.group_wait_s"): "0.2",
        nested_env_name("notify.silences_file"): str(tmp_path / "silences.json"),
    }


def with_password(env: dict[str, str], password: str) -> dict[str, str]:
    """`env` with the password in LIVEWATCH_SASL_PASSWORD instead of a file."""
    without_file = {k: v for k, v in env.items() if k != env_name("sasl_password_file")}
    return {**without_file, env_name("sasl_password"): password}


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def small_log(path: Path) -> int:
    """A minute of two rooms that ended a few seconds ago: the worker's clocks follow
    the wall clock once its partitions are idle, and its sessions end after 5 min."""
    scenario = Scenario("secure", 60, (Room("room-a", steady(1)), Room("room-b", steady(0.5))))
    events = [msgspec.json.decode(line) for line in generate(scenario, 7)]
    shift = int(time.time() * 1000) - 5_000 - max(e["ts"] for e in events)
    restamped = (msgspec.json.encode({**e, "ts": e["ts"] + shift}).decode() for e in events)
    return write_log(restamped, path)


async def produce(settings: Settings, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def dead_letters(settings: Settings, at_least: int, within_s: float = 60) -> list[bytes]:
    """Keys, values and headers of the dead letters, read over SASL_SSL."""
    consumer = AIOKafkaConsumer(
        settings.topic(settings.topic_deadletter),
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[bytes] = []
    try:
        async with asyncio.timeout(within_s):
            while len(found) < at_least:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        found.append(
                            b"|".join([r.key or b"", r.value or b"", *(v for _, v in r.headers)])
                        )
    finally:
        await consumer.stop()
    return found


def eventually(check: Callable[[], bool], within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.5)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (/proc/net/tcp, tcp6)."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(family, words))
    return found


def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # no packet is sent: only a route is chosen
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def assert_loopback_only(port: int) -> None:
    assert listening_addresses(port) == {"127.0.0.1"}, port
    outside = outside_address()
    if outside is not None:
        with pytest.raises(OSError), socket.create_connection((outside, port), timeout=3):
            pass


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def test_worker_notifier_replay_and_record_work_over_sasl_ssl_and_never_show_the_password(
    secured_env: dict[str, str],
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    env = secured_env
    settings = load_settings(environ=env)
    worker = worker_factory(env)  # the password from sasl_password_file
    notifier_out, notifier_err = tmp_path / "notifier.out", tmp_path / "notifier.err"
    with notifier_out.open("wb") as out, notifier_err.open("wb") as err:
        notifier = subprocess.Popen(
            [*CLI, "notify"],
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    notifier_url = f"http://127.0.0.1:{settings.notifier_metrics_port}/metrics"
    try:
        wait_for_metrics(notifier_url, notifier)
        night = tmp_path / "night.jsonl"
        lines = small_log(night)
        # replay with the password in LIVEWATCH_SASL_PASSWORD, the other documented way
        replayed = run_cli(["replay", str(night), "--max-speed"], with_password(env, PASSWORD))
        assert replayed.returncode == 0, replayed.stderr
        assert f"replayed {lines} events" in replayed.stdout
        now = int(time.time() * 1000)
        alert = Transition(
            "traffic_cliff", "firing", "room-sec", now, "critical", "s", "fp-sec", {}, None, now, ""
        )
        asyncio.run(
            produce(
                settings,
                [  # a worker's dead letter (not UTF-8), an alert, a notifier's dead letter
                    (settings.source_topics["joins"], b"room-a", b"\xff\xfe not json"),
                    (settings.topic(settings.topic_alerts), b"fp-sec", msgspec.json.encode(alert)),
                    (settings.topic(settings.topic_alerts), None, b"{not a transition"),
                ],
            )
        )

        def worker_done() -> bool:
            samples = scrape(worker.metrics_url)
            counted = sum(samples.get("livewatch_events_total", {}).values())
            invalid = sum(samples.get("livewatch_events_invalid_total", {}).values())
            rooms = {dict(k)["room"] for k in samples.get("livewatch_room_online_viewers", {})}
            return (counted, invalid, rooms) == (lines, 1, {"room-a", "room-b"})

        eventually(worker_done)
        eventually(lambda: "room-sec" in notifier_out.read_text(errors="replace"))
        eventually(
            lambda: scrape(notifier_url).get("livewatch_notifier_undecodable_total", {}) == {(): 1}
        )
        recording = tmp_path / "recorded.jsonl.gz"
        recorded = run_cli(
            ["record", "--out", str(recording), "--from-beginning", "--until-idle", "4"], env
        )
        assert recorded.returncode == 0, recorded.stderr
        assert f"recorded {lines} events, skipped 1 messages" in recorded.stdout
        assert sorted(line for _, line in read_lines(recording)) == sorted(
            line for _, line in read_lines(night)
        )
        letters = asyncio.run(dead_letters(settings, at_least=2))
        scrapes = [
            get(worker.metrics_url),
            get(notifier_url),
            get(f"http://127.0.0.1:{settings.metrics_port}/status"),
        ]
        for port in (settings.metrics_port, settings.notifier_metrics_port):
            assert_loopback_only(port)
    finally:
        stop_process(notifier)
    stop_process(worker.process)

    logs = {
        "worker log": worker.log.read_text(errors="replace"),
        "notifier stdout": notifier_out.read_text(errors="replace"),
        "notifier stderr": notifier_err.read_text(errors="replace"),
        "replay": replayed.stdout + replayed.stderr,
        "record": recorded.stdout + recorded.stderr,
    }
    # They did talk SCRAM over TLS: the only listener in their settings is SASL_SSL.
    assert f"Authenticated as {USER} via {SCRAM_MECHANISM}" in logs["worker log"]
    assert f"Authenticated as {USER} via {SCRAM_MECHANISM}" in logs["notifier stderr"]
    seen = {
        **logs,
        "recording": "\n".join(line.decode(errors="replace") for _, line in read_lines(recording)),
        "dead letters": b"\n".join(letters).decode(errors="replace"),
        "/metrics and /status": "\n".join(scrapes),
    }
    assert all(text for text in seen.values()), [name for name, text in seen.items() if not text]
    assert [name for name, text in seen.items() if PASSWORD in text] == []


def untrusted(env: dict[str, str]) -> dict[str, str]:
    """`env` with the right password, but no CA to check the broker's certificate with:
    the system's CAs did not sign it."""
    return {k: v for k, v in env.items() if k != env_name("ssl_cafile")}


@pytest.mark.parametrize(
    ("command", "make_env", "expected"),
    [
        (["worker"], lambda env: with_password(env, WRONG), "authentication failed"),
        (["notify"], lambda env: with_password(env, WRONG), "authentication failed"),
        (["replay", "{log}", "--max-speed"], lambda env: with_password(env, WRONG),
         "authentication failed"),
        (["record", "--out", "{out}", "--duration", "5"], lambda env: with_password(env, WRONG),
         "authentication failed"),
        (["replay", "{log}", "--max-speed"], untrusted, "TLS handshake"),
    ],
    ids=["worker", "notify", "replay", "record", "replay-untrusted-certificate"],
)  # fmt: skip
def test_a_refused_connection_ends_with_one_clear_line_and_no_traceback(
    secured_env: dict[str, str],
    tmp_path: Path,
    command: list[str],
    make_env: Callable[[dict[str, str]], dict[str, str]],
    expected: str,
) -> None:
    log = tmp_path / "night.jsonl"
    small_log(log)
    args = [a.format(log=log, out=tmp_path / "out.jsonl") for a in command]
    started = time.monotonic()
    done = run_cli(args, make_env(secured_env), timeout=90)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("livewatch: error:")]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"livewatch: error: {expected}"), errors[0]
    if expected == "authentication failed":
        assert f"for user '{USER}' (SASL_SSL {SCRAM_MECHANISM})" in errors[0]
    assert "Traceback" not in output and "Unclosed" not in output, output
    assert PASSWORD not in output and WRONG not in output
    assert done.stderr.rstrip().endswith(errors[0])  # the last word, nothing after it
    assert took < 60


def test_a_broker_without_users_has_no_secured_listener(tmp_path: Path) -> None:
    """The default LocalKafka is configured as before; a SCRAM password that would break
    the storage tool's `[name=...,password=...]` is refused, not half-applied."""
    broker = LocalKafka(workdir=tmp_path)
    with pytest.raises(KafkaError, match="no SASL_SSL listener"):
        _ = broker.sasl_ssl_bootstrap
    default = _server_properties(tmp_path, 1, 2, 4)
    assert "listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2\n" in default
    assert "SASL" not in default and "ssl." not in default
    secured = _server_properties(tmp_path, 1, 2, 4, sasl_ssl_port=3)
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:3\n" in secured
    with pytest.raises(KafkaError, match="letters, digits"):
        _scram_user("livewatch", "a],b")


@pytest.fixture(scope="module")
def mutual_tls_kafka() -> Iterator[LocalKafka]:
    """A broker whose SASL_SSL listener also wants a client certificate from its CA."""
    with LocalKafka(
        heap_mb=384, partitions=2, sasl_ssl_users={USER: PASSWORD}, client_auth=True
    ) as broker:
        yield broker


def test_mutual_tls_with_a_client_certificate_works_and_without_one_is_refused(
    mutual_tls_kafka: LocalKafka,
    worker_factory: Callable[[dict[str, str]], RunningWorker],
    tmp_path: Path,
) -> None:
    """docs/deploy.md's `ssl_certfile` and `ssl_keyfile`: the worker, `replay` and
    `record` present the client's certificate; a client without one is refused with
    one clear line."""
    without = env_for(mutual_tls_kafka, tmp_path)
    certificate, key = mutual_tls_kafka.client_certificate("livewatch", tmp_path / "client")
    env = {
        **without,
        env_name("ssl_certfile"): str(certificate),
        env_name("ssl_keyfile"): str(key),
    }
    worker = worker_factory(env)
    night = tmp_path / "night.jsonl"
    lines = small_log(night)
    replayed = run_cli(["replay", str(night), "--max-speed"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {lines} events" in replayed.stdout

    def counted() -> float:
        return sum(scrape(worker.metrics_url).get("livewatch_events_total", {}).values())

    eventually(lambda: counted() == lines)
    recording = tmp_path / "recorded.jsonl.gz"
    recorded = run_cli(
        ["record", "--out", str(recording), "--from-beginning", "--until-idle", "4"], env
    )
    assert recorded.returncode == 0, recorded.stderr
    assert sorted(line for _, line in read_lines(recording)) == sorted(
        line for _, line in read_lines(night)
    )

    refused = run_cli(["replay", str(night), "--max-speed"], without, timeout=90)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    errors = [line for line in refused.stderr.splitlines() if line.startswith("livewatch: error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert errors[0].startswith("livewatch: error: TLS handshake"), errors[0]
    assert "CERTIFICATE_REQUIRED" in errors[0], errors[0]
    assert counted() == lines  # nothing of the refused replay arrived
