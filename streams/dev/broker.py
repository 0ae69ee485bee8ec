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
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
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


def _server_properties(
    workdir: Path,
    port: int,
    controller_port: int,
    partitions: int,
    sasl_ssl_port: int | None = None,
) -> str:
    # The PLAINTEXT listener stays, for the broker itself and the tooling; a SASL_SSL
    # one is added beside it when asked (LocalKafka's `sasl_ssl_users`).
    secured = f",SASL_SSL://127.0.0.1:{sasl_ssl_port}" if sasl_ssl_port else ""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port}{secured},"
            f"CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}{secured}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
            + (",SASL_SSL:SASL_SSL" if sasl_ssl_port else ""),
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


SCRAM_MECHANISM = "SCRAM-SHA-512"
"""The SASL mechanism of LocalKafka's SASL_SSL listener."""


def make_tls_keys(directory: Path, password: str) -> None:
    """A small CA and a broker key it signs, made with the JDK's keytool.

    `broker.p12` (PKCS12, `password`) is the broker's keystore; `ca.pem`, the CA's
    certificate, is the clients' `ssl_cafile`. The broker's certificate names
    127.0.0.1 and localhost, so clients verify the host name as well."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, broker = directory / "ca.p12", directory / "broker.p12"
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", "30")
    _keytool(ca, password, "-genkeypair", "-alias", "ca", "-dname", "CN=livewatch test CA",
             "-ext", "bc:c", *key)  # fmt: skip
    _keytool(ca, password, "-exportcert", "-rfc", "-alias", "ca", "-file", f"{directory}/ca.pem")
    _keytool(broker, password, "-genkeypair", "-alias", "broker", "-dname", "CN=localhost", *key)
    _keytool(broker, password, "-certreq", "-alias", "broker", "-file", f"{directory}/broker.csr")
    _keytool(ca, password, "-gencert", "-alias", "ca", "-rfc", "-validity", "30",
             "-infile", f"{directory}/broker.csr", "-outfile", f"{directory}/broker.pem",
             "-ext", "san=ip:127.0.0.1,dns:localhost", "-ext", "eku=serverAuth")  # fmt: skip
    # The CA first, so that keytool can verify the signed certificate it replaces.
    _keytool(broker, password, "-importcert", "-alias", "ca", "-file", f"{directory}/ca.pem")
    _keytool(
        broker, password, "-importcert", "-alias", "broker", "-file", f"{directory}/broker.pem"
    )


def _keytool(keystore: Path, password: str, *args: str) -> None:
    keytool = shutil.which("keytool")
    if keytool is None:
        raise KafkaError("the JDK's keytool is needed to make the broker's TLS keys")
    store = ("-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", password)
    done = subprocess.run([keytool, *args, *store, "-noprompt"], capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaError(f"keytool {args[0]} failed: {done.stdout}{done.stderr}")


def make_client_certificate(
    tls: Path, password: str, name: str, directory: Path
) -> tuple[Path, Path]:
    """A client key (PEM, unencrypted, made with openssl) and its certificate signed by
    the CA `make_tls_keys` made in `tls` (PEM, made with keytool), in `directory`: a
    client's `ssl_certfile` and `ssl_keyfile` for mutual TLS."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaError("openssl is needed to make a client's TLS key")
    key, request, certificate = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    done = subprocess.run(
        [openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise KafkaError(f"openssl req failed: {done.stdout}{done.stderr}")
    _keytool(tls / "ca.p12", password, "-gencert", "-alias", "ca", "-rfc",
             "-validity", "30", "-infile", str(request), "-outfile", str(certificate),
             "-ext", "eku=clientAuth")  # fmt: skip
    return certificate, key


def _sasl_ssl_properties(keystore: Path, password: str, client_auth: bool = False) -> str:
    # The broker's keystore also holds the CA's certificate as a trusted entry: with
    # client authentication it is the truststore that checks clients' certificates.
    clients = [
        "listener.name.sasl_ssl.ssl.client.auth=required",
        "ssl.truststore.type=PKCS12",
        f"ssl.truststore.location={keystore}",
        f"ssl.truststore.password={password}",
    ]
    return "\n".join(
        [
            f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
            f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={keystore}",
            f"ssl.keystore.password={password}",
            f"ssl.key.password={password}",
            *(clients if client_auth else []),
            "",
        ]
    )


def _scram_user(name: str, password: str) -> str:
    """The storage tool's `--add-scram` value: the user's SCRAM credential, written
    into the cluster's metadata when its storage is formatted."""
    if not re.fullmatch(r"[A-Za-z0-9._@+-]+", name + password):
        raise KafkaError(
            f"SCRAM user {name!r}: use letters, digits and ._@+- in names and passwords"
        )
    return f"{SCRAM_MECHANISM}=[name={name},password={password}]"


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
        sasl_ssl_users: Mapping[str, str] | None = None,
        client_auth: bool = False,
    ) -> None:
        """`sasl_ssl_users` (name -> password): add a SASL_SSL listener
        (`sasl_ssl_bootstrap`) with these SCRAM-SHA-512 users and a TLS key signed by
        a CA made for this broker (`ca_file`), beside the PLAINTEXT one. `client_auth`:
        that listener also wants a client certificate signed by the same CA (mutual
        TLS; `client_certificate` makes one)."""
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="livewatch-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap_mb = heap_mb
        self.partitions = partitions
        self.startup_timeout = startup_timeout
        self.sasl_ssl_users = dict(sasl_ssl_users or {})
        self.sasl_ssl_port = free_port() if self.sasl_ssl_users else None
        self.client_auth = client_auth
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """host:port of the SASL_SSL listener (SCRAM-SHA-512 over TLS)."""
        if self.sasl_ssl_port is None:
            raise KafkaError("this broker has no SASL_SSL listener (see sasl_ssl_users)")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ca_file(self) -> Path:
        """PEM certificate of the CA that signed the SASL_SSL listener's key."""
        return self.workdir / "tls" / "ca.pem"

    def _security_properties(self) -> str:
        """The SASL_SSL listener's settings, with its TLS keys made the first time."""
        if not self.sasl_ssl_users:
            return ""
        tls = self.workdir / "tls"
        if not tls.exists():  # made aside, so that a failure leaves no half a keystore
            making = self.workdir / "tls.new"
            shutil.rmtree(making, ignore_errors=True)
            making.mkdir(mode=0o700)
            password = secrets.token_urlsafe(18)
            make_tls_keys(making, password)
            (making / "keystore-password").write_text(password)
            making.rename(tls)
        password = (tls / "keystore-password").read_text()
        return _sasl_ssl_properties(tls / "broker.p12", password, self.client_auth)

    def client_certificate(self, name: str, directory: Path) -> tuple[Path, Path]:
        """(certificate, key) PEM files in `directory` for a client called `name`, signed
        by this broker's CA (the keys exist once the broker has started)."""
        tls = self.workdir / "tls"
        password = (tls / "keystore-password").read_text()
        directory.mkdir(parents=True, exist_ok=True)
        return make_client_certificate(tls, password, name, directory)

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
            _server_properties(
                self.workdir, self.port, self.controller_port, self.partitions, self.sasl_ssl_port
            )
            + self._security_properties()
        )
        if not self.formatted:  # a restart keeps the cluster, its topics and offsets
            self._format(config)
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

    @property
    def formatted(self) -> bool:
        """The KRaft storage holds a cluster: `start()` runs it rather than format anew."""
        return (self.workdir / "data" / "meta.properties").exists()

    def _format(self, config: Path) -> None:
        scram = [
            a for n, p in self.sasl_ssl_users.items() for a in ("--add-scram", _scram_user(n, p))
        ]
        formatted = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config), *scram
            ),
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise KafkaError(f"formatting KRaft storage failed:\n{formatted.stderr}")

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

    def stop(self, timeout: float = 30.0, *, keep_data: bool = False, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, a clean shutdown; SIGKILL after `timeout`, or at
        once with `kill`) and delete the work directory it made itself, unless
        `keep_data`: then `start()` runs the same broker again (see `restart`)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_workdir and not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, down_for: float = 0.0, *, kill: bool = False) -> LocalKafka:
        """Stop the broker, leave it down `down_for` seconds, and start it again on the
        same ports with the same data: topics, messages and committed offsets survive,
        as after a real broker's restart. `kill`: a crash (SIGKILL) rather than a clean
        shutdown. The JVM dies with the thread that starts it (PR_SET_PDEATHSIG): call
        this from a thread that outlives the broker's use, not a short-lived one."""
        self.stop(keep_data=True, kill=kill)
        time.sleep(down_for)
        return self.start()

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
