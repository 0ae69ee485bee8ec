"""A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, for tests and demos.

The jars come from Maven Central through deploy/kafka/pom.xml and are cached
outside the work tree. The broker runs as a child JVM that dies with its parent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError as ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J2_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"

_PR_SET_PDEATHSIG = 1


class KafkaError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livewatch"


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise KafkaError(f"no <kafka.version> in {POM}")
    return match.group(1)


def libs_dir() -> Path:
    """Where the broker's jars are: $LIVEWATCH_KAFKA_LIBS or the shared cache."""
    configured = os.environ.get("LIVEWATCH_KAFKA_LIBS")
    if configured:
        return Path(configured)
    return cache_dir() / f"kafka-{kafka_version()}" / "libs"


def fetch_jars() -> Path:
    """Download the broker's runtime classpath once; later calls reuse the cache."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaError("Maven (mvn) is needed to fetch the Kafka jars; install it first")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        check=True,
    )
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaError(f"mvn finished but {libs} holds no kafka_2.13 jar")
    marker.touch()
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    # A crashed or killed test run must not leave a JVM behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _server_properties(workdir: Path, port: int, controller_port: int, partitions: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={workdir / 'data'}",
            f"num.partitions={partitions}",
            # livewatch creates its topics explicitly, with co-partitioned counts.
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.dedupe.buffer.size=8388608",
            "",
        ]
    )


class LocalKafka:
    """Start with `start()` or a `with` block; `bootstrap` is then host:port."""

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        port: int | None = None,
        heap_mb: int = 512,
        partitions: int = 4,
        startup_timeout: float = 90.0,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="livewatch-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap_mb = heap_mb
        self.partitions = partitions
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaError("java (17 or newer) is needed to run the Kafka broker")
        return [
            java,
            f"-Xms{min(256, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            f"{fetch_jars()}/*",
            main_class,
            *args,
        ]

    def start(self) -> LocalKafka:
        config = self.workdir / "server.properties"
        config.write_text(
            _server_properties(self.workdir, self.port, self.controller_port, self.partitions)
        )
        cluster_id = _cluster_id()
        formatted = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise KafkaError(f"formatting KRaft storage failed:\n{formatted.stderr}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        # aiokafka logs every refused connection while the JVM boots.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        try:
            self._poll_until_ready(deadline)
        finally:
            logging.getLogger("aiokafka").setLevel(logging.NOTSET)

    def _poll_until_ready(self, deadline: float) -> None:
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise KafkaError(f"the broker exited early; log tail:\n{self.log_tail()}")
            if asyncio.run(answers_metadata(self.bootstrap)):
                return
            if time.monotonic() > deadline:
                raise KafkaError(f"the broker did not answer in time; log tail:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def answers_metadata(bootstrap: str, timeout_ms: int = 3000) -> bool:
    """True once a broker at `bootstrap` answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (TimeoutError, ClientError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own `Uuid.randomUuid`, never one starting
    with "-": the storage tool would read it as an option (1 start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
