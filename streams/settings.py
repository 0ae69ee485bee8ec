"""Worker settings: defaults < TOML config file < LIVEWATCH_* environment < CLI flags.

Validated once at start; a bad value stops the worker with a message naming the
setting, never later in the middle of processing.

Each component owns its configuration type; settings hold the values and build
the core's (`engine_config()`: streams.core.config, with the detectors' from
the `[detectors]` table) only when asked. The notifier turns its own `[notify]`
table into its config (streams.notify.config) when it starts, and refuses it
there with the same kind of error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from detectors.config import DetectorConfigError, DetectorSettings
from streams.core.config import EngineConfig, MetricsConfig
from streams.core.events import SOURCE_OF_TYPE, SOURCES

ENV_PREFIX: Final = "LIVEWATCH_"

Positive = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
TopicName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")]


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    # Kafka connection
    bootstrap_servers: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma-separated host:port."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients reach the brokers."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """With SASL: the mechanism."""
    sasl_username: str | None = None
    """With SASL: the user."""
    sasl_password: str | None = None
    """With SASL: the password (never printed; prefer `sasl_password_file`)."""
    sasl_password_file: str | None = None
    """With SASL: a file holding the password, such as a mounted secret."""
    ssl_cafile: str | None = None
    """PEM file of the CA that signed the brokers' certificates."""
    ssl_certfile: str | None = None
    """PEM client certificate, for mutual TLS."""
    ssl_keyfile: str | None = None
    """PEM key of the client certificate."""

    # Topics
    app_id: Annotated[str, msgspec.Meta(min_length=1)] = "livewatch"
    """The workers' consumer group and the prefix of their internal topics."""
    topic_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]*$")] = ""
    """Put before every topic name: `prod.` reads `prod.live.joins`."""
    topic_danmaku: TopicName = "live.danmaku"
    """Source topic of `danmaku` events."""
    topic_orders: TopicName = "live.orders"
    """Source topic of `order` events."""
    topic_joins: TopicName = "live.joins"
    """Source topic of `join` and `leave` events."""
    topic_stalls: TopicName = "live.stalls"
    """Source topic of `stall` events."""
    topic_latency: TopicName = "live.latency"
    """Source topic of `latency` events."""
    topic_rooms: TopicName = "live.rooms"
    """Source topic of `room` events (a stream's start and end, promotions): sparse, it
    holds the watermark only while its input waits to be processed (docs/events.md)."""
    topic_deadletter: TopicName = "live.deadletter"
    """Rejected input and undeliverable notifications (docs/events.md)."""
    topic_alerts: TopicName = "live.alerts"
    """Alert transitions, from the workers to the notifier."""
    topic_actions: TopicName = "live.actions"
    """Moderation actions: accounts to mute."""
    deadletter_retention_ms: Positive = 604_800_000
    """Retention of the dead-letter topic when livewatch creates it: dead letters carry
    user ids and chat text (7 days)."""
    actions_retention_ms: Positive = 604_800_000
    """Retention of the actions topic when livewatch creates it: actions carry user ids
    (7 days)."""
    partitions: Positive = 4
    """Partitions of the topics livewatch creates; backtest groups rooms into as many."""
    replication_factor: Positive = 1
    """Replication factor of the topics livewatch creates."""

    # Worker
    metrics_host: str = "127.0.0.1"
    """Interface the worker's and the notifier's /metrics listen on: loopback unless
    told otherwise (a container sets `0.0.0.0` for its scrapes and probes)."""
    metrics_port: Port = 9464
    """Port of the worker's /metrics."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the worker and the notifier."""
    state_dir: str = ".livewatch-state"
    """The worker's local data directory."""
    batch_max_messages: Positive = 10_000
    """Most messages one fetch hands to the pipeline (the consumer's max.poll.records);
    a fetch takes what has arrived, without waiting to fill a batch."""
    fetch_max_partition_bytes: Annotated[int, msgspec.Meta(ge=1 << 20)] = 8 << 20
    """Most bytes the broker returns per source partition and fetch
    (max.partition.fetch.bytes): at 1 MiB the worker waited on fetches (docs/performance.md).
    At most this much is buffered per assigned topic-partition."""
    idle_after_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    """Live mode: a partition silent this long lets event time pass with the wall clock."""
    flush_idle_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """Live mode: once no source of a partition has held its watermark for this long
    (each caught up, without a message for `source_hold_s`), what still waits for the
    watermark (the last `allowed_lateness_ms` of input) is applied, as a backtest does
    at the end of its log, so a worker that replayed a log ends where the backtest of
    it does. An event arriving afterwards that is not
    newer than the newest flushed one is late: keep it well above any pause of a
    running producer."""
    source_hold_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    """Live mode: a caught-up source holds the watermark this long after its last message,
    and every source this long after a partition's input resumes from such a silence."""
    max_held_events: Annotated[int, msgspec.Meta(ge=0)] = 200_000
    """Live mode: once more events than this wait for a partition's watermark, the
    worker stops fetching the partition's sources that run more than the allowed
    lateness ahead of its slowest one in event time, until half as many wait (Kafka
    Streams' `buffered.records.per.partition`): a backlog read faster from one topic
    than another must not pile up in memory. What lies within the lateness waits
    however topics are read (a 1M-viewer room: about 600,000 events), so it may exceed
    this. 0: never pause."""
    deadletter_max_payload_bytes: Positive = 65536
    """A dead letter keeps at most this much of what was rejected."""
    group_session_timeout_s: Annotated[float, msgspec.Meta(ge=6, le=1800)] = 60.0
    """How long the consumer group waits for a silent worker before moving its partitions."""
    checkpoint_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Wall-clock time between checkpoints of a changed partition's state, at least
    (when the partitions' last checkpoints took t seconds together, at least 20 t)."""
    stop_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 50.0
    """A stop (SIGTERM) that has not finished after this long exits at once, with status 1,
    as a crash would: Faust's producer keeps an undelivered batch for 20 minutes, so with
    the broker unreachable a stop would wait that long. Nothing is lost: a successor
    resumes from the last checkpoint sent. Keep it under the supervisor's own grace
    (Kubernetes' `terminationGracePeriodSeconds`, 60 in deploy/k8s)."""
    checkpoint_fork: bool = True
    """Take the periodic checkpoints in a forked child, beside the processing. It needs
    memory for the pages it copies (up to the partition's Python objects: 1.1 GB for a
    1M-viewer room); off, they are taken in the worker, and processing waits for each."""

    # Event time
    allowed_lateness_ms: Annotated[int, msgspec.Meta(ge=0)] = 5_000
    """Events up to this far behind their source's newest event are reordered, not late."""
    max_clock_skew_ms: Positive = 86_400_000
    """Events further than this behind their topic's newest event in the partition (for a
    topic's first event, the other dense topics' newest) are rejected (in a
    backtest, ahead of the log's clock too)."""
    max_future_ms: Positive = 300_000
    """Live mode: an event this far ahead of the wall clock is rejected (a producer's
    clock gone wrong), so that it cannot make the rest of its partition late."""
    max_jump_ms: Positive = 300_000
    """An event this far ahead of its partition's event clock is held without moving
    it until the next event in the partition leaps as well (a log resuming after a
    pause); a leap nothing confirms is rejected at the end of a backtest
    (`ts_out_of_bounds`). Live, idle partitions follow the wall clock, so a real pause
    never leaps."""
    source_idle_ms: Positive = 60_000
    """Backtest: a source this far behind the newest event no longer holds the
    watermark."""

    # Metrics (docs/metrics.md)
    session_timeout_s: Positive = 300
    """A viewer with no event for this long has left (no `leave` arrived)."""
    bounce_s: Positive = 10
    """Sessions shorter than this are bounces."""
    latency_slo_ms: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """The latency objective: samples above it are bad."""
    room_idle_s: Positive = 900
    """A room with nobody online and no event for this long is dropped."""
    ended_grace_s: Positive = 300
    """A room whose stream ended (a room event `ended`) is dropped this long after it,
    in event time: its series go, whoever is still counted online."""
    max_rooms: Positive = 25_000
    """Rooms a partition holds state for: beyond it the least recently active rooms
    with nobody online and no alert open are evicted (counted), and an event of a new
    room is dead-lettered (`room_budget`) while every room held is live. The default
    fits 100,000 rooms on a worker owning four partitions (sizing: docs/deploy.md)."""
    top_rooms: Annotated[int, msgspec.Meta(ge=0)] = 200
    """Rooms with per-room series: the most watched, by online viewers."""
    pinned_rooms: str = ""
    """Comma-separated room ids that always get per-room series."""

    # Detectors (docs/detectors.md): the config file's [detectors] table
    detectors: dict[str, Any] = msgspec.field(default_factory=dict)
    """The `[detectors]` table: its keys are listed below, overrides per category and
    room in docs/detectors.md."""

    # Notifier (docs/notify.md): the config file's [notify] table
    notify: dict[str, Any] = msgspec.field(default_factory=dict)
    """The `[notify]` table: its keys are listed below, receivers, routes and inhibition
    in docs/notify.md."""
    notifier_metrics_port: Port = 9465
    """The notifier's /metrics (delivery counters); 0 disables it."""

    def __post_init__(self) -> None:
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_password or self.sasl_password_file
        ):
            raise ValueError("SASL needs sasl_password or sasl_password_file")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: no such file {path}")

    def __repr__(self) -> str:
        # Settings get logged; secrets must not be.
        shown = {
            f: ("***" if f == "sasl_password" and getattr(self, f) else getattr(self, f))
            for f in self.__struct_fields__
        }
        shown["notify"] = {  # an inline webhook URL carries its token
            k: [{**r, "url": "***"} if r.get("url") else r for r in v] if k == "receivers" else v
            for k, v in self.notify.items()
        }
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def source_topics(self) -> dict[str, str]:
        """Source -> its topic: the setting `topic_<source>`, prefixed."""
        return {source: self.topic(getattr(self, f"topic_{source}")) for source in SOURCES}

    def topic_for_type(self, event_type: str) -> str:
        return self.source_topics[SOURCE_OF_TYPE[event_type]]

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            allowed_lateness_ms=self.allowed_lateness_ms,
            max_clock_skew_ms=self.max_clock_skew_ms,
            max_future_ms=self.max_future_ms,
            source_idle_ms=self.source_idle_ms,
            max_rooms=self.max_rooms,
            max_jump_ms=self.max_jump_ms,
            metrics=MetricsConfig(
                session_timeout_s=self.session_timeout_s,
                bounce_s=self.bounce_s,
                latency_slo_ms=self.latency_slo_ms,
                room_idle_s=self.room_idle_s,
                ended_grace_s=self.ended_grace_s,
            ),
            detectors=DetectorSettings.from_table(self.detectors),
        )

    def read_sasl_password(self) -> str | None:
        if self.sasl_password_file:
            return Path(self.sasl_password_file).read_text().strip()
        return self.sasl_password


FIELDS: Final[tuple[str, ...]] = Settings.__struct_fields__


TABLES: Final = ("detectors", "notify")
"""Settings that are tables: `[detectors]` and `[notify]` in the config file."""
NESTED: Final = "__"
"""Between the keys of a table setting's environment variable:
LIVEWATCH_DETECTORS__SPAM__MIN_FRESH_ACCOUNTS=12 is detectors.spam.min_fresh_accounts."""


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def nested_env_name(key: str) -> str:
    """The variable of a dotted table key: detectors.spam.window_s is
    LIVEWATCH_DETECTORS__SPAM__WINDOW_S."""
    return env_name(key.replace(".", NESTED))


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources and validate; raise SettingsError naming the bad setting and
    where its value came from."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    config_file = config_file or environ.get(env_name("config")) or None
    if config_file:
        from_file = _read_config_file(Path(config_file))
        values.update(from_file)
        origins.update(dict.fromkeys(from_file, f"config file {config_file}"))
    for field in FIELDS:
        if env_name(field) in environ:
            raw = environ[env_name(field)]
            values[field] = _table_from_env(field, raw) if field in TABLES else raw
            origins[field] = f"env {env_name(field)}"
    for table, (names, assignments) in _nested_from_env(environ).items():
        values[table] = _deep_merge(values.get(table, {}), parse_assignments(assignments)[table])
        origins[table] = ", ".join(filter(None, (origins.get(table), *names)))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    origins.update(dict.fromkeys(given, "command line"))
    return _validated(values, origins)


def _table_from_env(field: str, raw: str) -> dict[str, Any]:
    """A whole table in one variable: a JSON object."""
    try:
        table = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        table = None
    if not isinstance(table, dict):
        raise SettingsError(
            f"env {env_name(field)}: expected a JSON object; or set one key with "
            f"{env_name(field)}{NESTED}<KEY>[{NESTED}<KEY>...]=<value>"
        )
    return table


def _nested_from_env(environ: Mapping[str, str]) -> dict[str, tuple[list[str], list[str]]]:
    """Table -> (the variables, their `--set`-style assignments), from the
    LIVEWATCH_<TABLE>__<KEY>... variables (keys are lower-cased)."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for name in sorted(environ):
        for table in TABLES:
            prefix = env_name(table) + NESTED
            if name.startswith(prefix) and len(name) > len(prefix):
                path = name[len(prefix) :].lower().replace(NESTED, ".")
                names, assignments = found.setdefault(table, ([], []))
                names.append(f"env {name}")
                assignments.append(f"{table}.{path}={environ[name]}")
    return found


def _validated(values: dict[str, Any], origins: Mapping[str, str]) -> Settings:
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc, origins)) from None
    try:  # the detectors' table is refused at start, not when a worker first needs it
        DetectorSettings.from_table(settings.detectors)
    except DetectorConfigError as exc:
        where = origins.get("detectors", "default")
        raise SettingsError(f"invalid [detectors] setting ({where}): {exc}") from None
    return settings


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _explain(exc: msgspec.ValidationError, origins: Mapping[str, str]) -> str:
    message = str(exc)
    marker = " - at `$."
    if marker in message:
        problem, _, where = message.partition(marker)
        path = where.rstrip("`")
        field = path.split(".")[0].split("[")[0]
        return f"invalid setting {path} ({origins.get(field, 'default')}): {problem}"
    return f"invalid settings: {message}"


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`key=value` pairs (dotted keys nest, values are TOML) as a nested table.

    `--set allowed_lateness_ms=2000 --set detectors.cliff.drop_warning=0.3`
    """
    table: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set {assignment!r}: expected key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string
        *parents, leaf = key.strip().split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"--set {assignment!r}: {part} is not a table")
        node[leaf] = value
    return table


def with_assignments(settings: Settings, assignments: list[str]) -> Settings:
    """`settings` with `--set` assignments applied on top, validated again."""
    changes = parse_assignments(assignments)
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise SettingsError(f"--set: unknown setting(s) {', '.join(unknown)}")
    values = msgspec.to_builtins(settings)
    origins = dict.fromkeys(changes, "--set")
    for table in TABLES:
        values[table] = _deep_merge(values.get(table, {}), changes.pop(table, {}))
    values.update(changes)
    return _validated(values, origins)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
