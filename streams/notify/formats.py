# ruff: noqa: RUF001  (look-alike characters replace markup ones on purpose)
"""Alert notifications rendered for each chat platform, signed as each documents.

Pure: a `Notification` (one room's group of alerts for one receiver) in, the
HTTP request to make out. Every piece of text that came from producers or users
(room ids, regions, chat samples, account names, and the summaries quoting
them) goes through `sanitize_sample` (no links, mentions, markup brackets or
control characters, bounded length) and then through the format's own escaping,
so nobody can ping a group or plant a link through an alert.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, quote_plus, urlencode

from detectors.alerts import Transition
from detectors.text import sanitize_sample

Kind = Literal["slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager", "console"]
ROOM_DASHBOARD: Final = "/d/livewatch-room/livewatch-room"
"""Path of the room drill-down dashboard in Grafana (grafana/dashboards/)."""
WECOM_MAX_BYTES: Final = 4096
_SUMMARY_LIMIT: Final = 300
_MARKDOWN_SPECIALS: Final = str.maketrans(
    # No "_": our own alert names have it, and emphasis is cosmetic; links and
    # images need "[" "]", which sanitize_sample has already replaced.
    {"*": "∗", "#": "＃", "~": "～", "|": "｜", "`": "'", ">": "›", "<": "‹", "!": "！"}
)


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    room_id: str
    alerts: tuple[Transition, ...]
    """The group's alerts to announce: firing ones, and those resolved since the last message."""
    group_key: str = ""

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if any(a.state == "firing" for a in self.alerts) else "resolved"


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def safe(text: str, limit: int = 120) -> str:
    """User- or producer-written text made inert (see detectors.text.sanitize_sample)."""
    return sanitize_sample(str(text), limit)


def dashboard_link(grafana_url: str, alert: Transition) -> str:
    """The room dashboard around the alert: 15 min before it started to 15 min after."""
    start = alert.started_at - 15 * 60_000
    end = alert.ts + 15 * 60_000
    query = urlencode({"var-room": alert.room_id, "from": start, "to": end}, quote_via=quote)
    return f"{grafana_url.rstrip('/')}{ROOM_DASHBOARD}?{query}"


@dataclass(frozen=True, slots=True)
class AlertText:
    """The parts of one alert's message, already inert (not yet format-escaped)."""

    headline: str
    facts: list[str]
    link: str


def _where(alert: Transition) -> str:
    return safe(alert.room_id, 128) + (f" [{safe(alert.region, 64)}]" if alert.region else "")


def alert_text(alert: Transition, grafana_url: str) -> AlertText:
    where = _where(alert)
    since = time.strftime("%H:%M:%S UTC", time.gmtime(alert.started_at / 1000))
    if alert.state == "firing":
        headline = f"{alert.severity.upper()} {alert.alert} in {where}"
        facts = [safe(alert.summary, _SUMMARY_LIMIT), f"since {since}"]
    else:
        lasted = (alert.ts - alert.started_at) / 60_000
        headline = f"RESOLVED {alert.alert} in {where}"
        facts = [f"after {lasted:.1f} min (since {since})", safe(alert.summary, _SUMMARY_LIMIT)]
    details = alert.details if isinstance(alert.details, dict) else {}
    facts += [f"hint: {safe(h, 200)}" for h in details.get("hints", [])[:3]]
    samples = details.get("samples", [])[:3]
    if samples:
        facts.append("samples: " + " / ".join(f"“{safe(s, 60)}”" for s in samples))
    accounts = [safe(a.get("user_id", ""), 32) for a in details.get("top_accounts", [])[:5]]
    if accounts:
        facts.append("accounts: " + ", ".join(accounts))
    if alert.state == "firing" and alert.runbook:
        facts.append(f"runbook: {safe(alert.runbook, 300)}")
    return AlertText(headline, facts, dashboard_link(grafana_url, alert))


def _title(n: Notification) -> str:
    firing = sum(a.state == "firing" for a in n.alerts)
    resolved = len(n.alerts) - firing
    counts = ", ".join(
        part
        for part in (
            f"{firing} firing" if firing else "",
            f"{resolved} resolved" if resolved else "",
        )
        if part
    )
    return f"livewatch: {safe(n.room_id, 128)} ({counts})"


# -- Slack --------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack's three control characters; mentions and links need < > to exist.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(n: Notification, url: str, grafana_url: str) -> Request:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(n)[:150]}}
    ]
    lines = []
    for alert in n.alerts:
        part = alert_text(alert, grafana_url)
        body = "\n".join(f"• {_slack_escape(f)}" for f in part.facts)
        text = f"*{_slack_escape(part.headline)}*\n{body}\n<{part.link}|Room dashboard>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        lines.append(_slack_escape(part.headline))
    return Request(
        url, {"text": _slack_escape(_title(n)) + ": " + "; ".join(lines), "blocks": blocks[:50]}
    )


# -- Feishu / Lark ------------------------------------------------------------


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """HMAC-SHA256 keyed with `timestamp + "\\n" + secret` over an empty message, base64."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def feishu(n: Notification, url: str, grafana_url: str, secret: str | None, now_s: int) -> Request:
    content: list[list[dict[str, str]]] = []
    for alert in n.alerts:
        part = alert_text(alert, grafana_url)
        content.append([{"tag": "text", "text": part.headline}])
        content += [[{"tag": "text", "text": fact}] for fact in part.facts]
        content.append([{"tag": "a", "text": "Room dashboard", "href": part.link}])
    body: dict[str, Any] = {
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": _title(n), "content": content}}},
    }
    if secret:
        body = {"timestamp": str(now_s), "sign": feishu_sign(secret, now_s), **body}
    return Request(url, body)


# -- DingTalk -----------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """HMAC-SHA256 keyed with the secret over `timestamp + "\\n" + secret`, base64, URL-encoded."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def _markdown(n: Notification, grafana_url: str) -> list[str]:
    """One markdown block per alert; text escaped so it cannot become markup."""
    blocks = []
    for alert in n.alerts:
        part = alert_text(alert, grafana_url)
        facts = "\n".join(f"- {f.translate(_MARKDOWN_SPECIALS)}" for f in part.facts)
        headline = part.headline.translate(_MARKDOWN_SPECIALS)
        blocks.append(f"**{headline}**\n{facts}\n[Room dashboard]({part.link})")
    return blocks


def dingtalk(
    n: Notification, url: str, grafana_url: str, secret: str | None, now_ms: int
) -> Request:
    if secret:
        separator = "&" if "?" in url else "?"
        url = f"{url}{separator}timestamp={now_ms}&sign={dingtalk_sign(secret, now_ms)}"
    title = _title(n).translate(_MARKDOWN_SPECIALS)
    text = f"### {title}\n\n" + "\n\n".join(_markdown(n, grafana_url))
    return Request(
        url,
        {
            "msgtype": "markdown",
            "markdown": {"title": title[:64], "text": text},
            "at": {"isAtAll": False, "atMobiles": [], "atUserIds": []},
        },
    )


# -- WeCom --------------------------------------------------------------------


def wecom(n: Notification, url: str, grafana_url: str) -> Request:
    title = _title(n).translate(_MARKDOWN_SPECIALS)
    blocks = _markdown(n, grafana_url)
    content = f"### {title}"
    for index, block in enumerate(blocks):
        more = f"\n\n…and {len(blocks) - index} more alerts"
        candidate = f"{content}\n\n{block}"
        if len(candidate.encode()) + len(more.encode()) > WECOM_MAX_BYTES:
            content += more
            break
        content = candidate
    return Request(
        url, {"msgtype": "markdown", "markdown": {"content": _fit(content, WECOM_MAX_BYTES)}}
    )


def _fit(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[: limit - 3].decode(errors="ignore") + "…"


# -- Generic JSON and Alertmanager ----------------------------------------------


def webhook(n: Notification, url: str) -> Request:
    """Our own contract: the transitions as the worker published them."""
    return Request(
        url,
        {
            "receiver": n.receiver,
            "room_id": safe(n.room_id, 128),
            "status": n.status,
            "transitions": [_inert_transition(a) for a in n.alerts],
        },
    )


def _inert(value: Any) -> Any:
    """Every string inside `value` made inert (keys too); numbers, booleans, null kept."""
    if isinstance(value, str):
        return safe(value, 200)
    if isinstance(value, dict):
        return {safe(str(k), 64): _inert(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_inert(v) for v in value]
    return value


def _inert_transition(alert: Transition) -> dict[str, Any]:
    details = _inert(alert.details) if isinstance(alert.details, dict) else {}
    return {
        "alert": alert.alert,
        "state": alert.state,
        "room_id": safe(alert.room_id, 128),
        "region": safe(alert.region, 64) if alert.region else None,
        "ts": alert.ts,
        "started_at": alert.started_at,
        "severity": alert.severity,
        "summary": safe(alert.summary, _SUMMARY_LIMIT),
        "fingerprint": alert.fingerprint,
        "runbook": safe(alert.runbook, 300),
        "details": details,
    }


_NEVER: Final = "0001-01-01T00:00:00Z"
"""Alertmanager's endsAt of an alert still firing (Go's zero time)."""


def _rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def alertmanager(n: Notification, url: str, grafana_url: str) -> Request:
    """Alertmanager's webhook payload (version 4), so existing tooling can take it."""
    alerts: list[dict[str, Any]] = []
    for alert in n.alerts:
        labels = {
            "alertname": alert.alert,
            "room": safe(alert.room_id, 128),
            "severity": alert.severity,
        }
        if alert.region:
            labels["region"] = safe(alert.region, 64)
        alerts.append(
            {
                "status": alert.state,
                "labels": labels,
                "annotations": {
                    "summary": safe(alert.summary, _SUMMARY_LIMIT),
                    "runbook": safe(alert.runbook, 300),
                },
                "startsAt": _rfc3339(alert.started_at),
                "endsAt": _rfc3339(alert.ts) if alert.state == "resolved" else _NEVER,
                "generatorURL": dashboard_link(grafana_url, alert),
                "fingerprint": alert.fingerprint,
            }
        )
    common = (
        {
            k: v
            for k, v in alerts[0]["labels"].items()
            if all(a["labels"].get(k) == v for a in alerts)
        }
        if alerts
        else {}
    )
    return Request(
        url,
        {
            "version": "4",
            "groupKey": n.group_key or f'{{}}:{{room="{safe(n.room_id, 128)}"}}',
            "truncatedAlerts": 0,
            "status": n.status,
            "receiver": n.receiver,
            "groupLabels": {"room": safe(n.room_id, 128)},
            "commonLabels": common,
            "commonAnnotations": {},
            "externalURL": grafana_url,
            "alerts": alerts,
        },
    )


def console_lines(n: Notification) -> list[str]:
    """The console receiver's lines: one per alert, hints indented below it."""
    lines = []
    for t in n.alerts:
        when = time.strftime("%H:%M:%S", time.gmtime(t.ts / 1000))
        where = _where(t)
        summary = safe(t.summary, 300)
        line = f"{when} {t.state.upper():8} {t.severity:8} {t.alert:13} {where}: {summary}"
        if t.state == "resolved":
            line += f" (lasted {(t.ts - t.started_at) / 60_000:.1f} min)"
        lines.append(line)
        hints = t.details.get("hints", []) if isinstance(t.details, dict) else []
        lines += [f"    hint: {safe(h, 200)}" for h in hints]
    return lines


def render(
    kind: Kind, n: Notification, url: str, grafana_url: str, secret: str | None, now_ms: int
) -> Request:
    if kind == "slack":
        return slack(n, url, grafana_url)
    if kind == "feishu":
        return feishu(n, url, grafana_url, secret, now_ms // 1000)
    if kind == "dingtalk":
        return dingtalk(n, url, grafana_url, secret, now_ms)
    if kind == "wecom":
        return wecom(n, url, grafana_url)
    if kind == "alertmanager":
        return alertmanager(n, url, grafana_url)
    return webhook(n, url)
