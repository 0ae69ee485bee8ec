"""The notifier's configuration: receivers, routes, grouping, inhibition.

It lives in the `[notify]` table of the worker's TOML file. Webhook URLs and
signing secrets never sit in the file: each receiver names the environment
variable or file holding them (`url_env` / `url_file`, `secret_env` /
`secret_file`), and they are never logged (receivers are named by `name`).

    [notify]
    grafana_url = "https://grafana.example.com"
    external_url = "https://livewatch-notifier.example.com"   # Alertmanager's externalURL
    runbook_url = "https://wiki.example.com/livewatch/{alert}"  # optional

    [[notify.receivers]]
    name = "oncall"
    kind = "feishu"
    url_env = "LIVEWATCH_FEISHU_URL"
    secret_env = "LIVEWATCH_FEISHU_SECRET"
    language = "zh-CN"          # or "en"; the default depends on the kind (below)

    [[notify.routes]]
    receivers = ["oncall"]
    severities = ["critical"]
    rooms = ["room-*"]
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from detectors.alerts import Transition
from streams.notify.catalogue import Language
from streams.notify.formats import Kind, Options
from streams.settings import SettingsError

Seconds = Annotated[float, msgspec.Meta(ge=0)]
Rate = Annotated[float, msgspec.Meta(gt=0)]

DEFAULT_LIMITS: Final[dict[str, tuple[float | None, float | None]]] = {
    # (per second, per minute), as each platform documents for one bot or webhook.
    "slack": (1.0, None),
    "feishu": (5.0, 100.0),
    "dingtalk": (None, 20.0),
    "wecom": (None, 20.0),
}

DEFAULT_LANGUAGES: Final[dict[str, Language]] = {
    # Feishu, DingTalk and WeCom groups read Chinese; the rest English.
    "feishu": "zh-CN",
    "dingtalk": "zh-CN",
    "wecom": "zh-CN",
}


class NotifyConfigError(SettingsError):
    pass


class ReceiverConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    kind: Kind
    url: str | None = None
    """Only for URLs that are not secret; prefer url_env / url_file."""
    url_env: str | None = None
    url_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    per_second: Rate | None = None
    per_minute: Rate | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    language: Language | None = None
    """The language of this receiver's messages: "zh-CN" or "en". Unset: Chinese
    for feishu, dingtalk and wecom, English for the others."""

    def __repr__(self) -> str:  # the URL may carry a token
        return f"ReceiverConfig(name={self.name!r}, kind={self.kind!r})"

    def text_language(self) -> Language:
        return self.language or DEFAULT_LANGUAGES.get(self.kind, "en")

    def limits(self) -> tuple[float | None, float | None]:
        per_second, per_minute = DEFAULT_LIMITS.get(self.kind, (None, None))
        return self.per_second or per_second, self.per_minute or per_minute

    def resolve_url(self, environ: Mapping[str, str]) -> str:
        if self.kind == "console":
            return ""
        url = _secret(self.name, "url", self.url, self.url_env, self.url_file, environ)
        if not url:
            raise NotifyConfigError(f"receiver {self.name}: no url (set url_env or url_file)")
        return url

    def resolve_secret(self, environ: Mapping[str, str]) -> str | None:
        return _secret(self.name, "secret", None, self.secret_env, self.secret_file, environ)


def _secret(
    receiver: str,
    what: str,
    inline: str | None,
    env: str | None,
    file: str | None,
    environ: Mapping[str, str],
) -> str | None:
    if env:
        if env not in environ:
            raise NotifyConfigError(f"receiver {receiver}: {what} variable {env} is not set")
        return environ[env].strip()
    if file:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            raise NotifyConfigError(
                f"receiver {receiver}: cannot read {what} file {file}: {exc.strerror}"
            ) from None
    return inline


class Route(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Alerts matching every non-empty list go to `receivers` (all matching routes apply)."""

    receivers: list[str]
    alerts: list[str] = []
    severities: list[str] = []
    rooms: list[str] = []
    """Room id globs (fnmatch, case-sensitive)."""

    def matches(self, t: Transition) -> bool:
        return (
            (not self.alerts or t.alert in self.alerts)
            and (not self.severities or t.severity in self.severities)
            and (not self.rooms or any(fnmatchcase(t.room_id, g) for g in self.rooms))
        )


class Inhibit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """While `source_alert` fires in a room, that room's `target_alerts` are not sent."""

    source_alert: str
    target_alerts: list[str]


class NotifyConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    receivers: list[ReceiverConfig] = msgspec.field(
        default_factory=lambda: [ReceiverConfig(name="console", kind="console")]
    )
    routes: list[Route] = msgspec.field(default_factory=lambda: [Route(receivers=["console"])])
    inhibit: list[Inhibit] = msgspec.field(
        # A room whose traffic fell off a cliff (an outage) has meaningless stall and
        # latency ratios: the cliff is the page.
        default_factory=lambda: [
            Inhibit(source_alert="traffic_cliff", target_alerts=["stall_slo", "latency_slo"])
        ]
    )
    group_wait_s: Seconds = 10.0
    """Wait this long after a group's first alert, to send what fires together at once."""
    group_interval_s: Seconds = 60.0
    """Then send a group's changes at most this often."""
    repeat_interval_s: Seconds = 3600.0
    """Remind of alerts still firing this often."""
    give_up_after_s: Seconds = 3600.0
    """A notification undeliverable for this long becomes a dead letter."""
    grafana_url: str = "http://localhost:3000"
    """Where alerts link to the room dashboard."""
    external_url: str = ""
    """The notifier's own URL, as people reach it: the `externalURL` of the Alertmanager
    webhook body. Empty: `http://<hostname>:<notifier_metrics_port>`, as Alertmanager
    derives its own."""
    runbook_url: str = ""
    """A runbook page per alert type for the Alertmanager body's `runbook_url`
    annotation, `{alert}` replaced by the alert type (`traffic_cliff`, ...). Empty: no
    `runbook_url`; the runbook's text is in `description` either way."""
    silences_file: str = ".livewatch-state/silences.json"
    """The silences `livewatch silence` writes and the notifier reads."""

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> NotifyConfig:
        try:
            config = msgspec.convert(table, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise NotifyConfigError(f"invalid [notify] setting: {exc}") from None
        names = [r.name for r in config.receivers]
        if len(set(names)) != len(names):
            raise NotifyConfigError("[notify] receivers: names must be unique")
        for route in config.routes:
            unknown = sorted(set(route.receivers) - set(names))
            if unknown:
                raise NotifyConfigError(f"[notify] route to unknown receiver(s) {unknown}")
        return config

    def options(self, receiver: ReceiverConfig, derived_url: str) -> Options:
        """How `receiver`'s messages are worded and where they link (`derived_url`:
        the notifier's URL when `external_url` is not set)."""
        return Options(
            grafana_url=self.grafana_url,
            external_url=self.external_url or derived_url,
            runbook_url=self.runbook_url,
            language=receiver.text_language(),
        )

    def receivers_for(self, t: Transition) -> list[str]:
        chosen: list[str] = []
        for route in self.routes:
            if route.matches(t):
                chosen += [r for r in route.receivers if r not in chosen]
        return chosen


def default_external_url(metrics_port: int, hostname: str | None = None) -> str:
    """Where the notifier is reached when `external_url` is not set: its host and the
    port it serves /metrics on (Alertmanager derives its own the same way)."""
    host = hostname or socket.gethostname()
    return f"http://{host}:{metrics_port}" if metrics_port else f"http://{host}"
