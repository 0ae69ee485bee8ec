# ruff: noqa: RUF001  (look-alike characters replace markup ones on purpose)
"""Alert notifications rendered for each chat platform, signed as each documents.

Pure: a `Notification` (one room's group of alerts for one receiver) in, the
HTTP request to make out, its text in the receiver's language (streams.notify.wording).
Every piece of text that came from producers or users (room ids, regions, alert
names, chat samples, account names, the summaries, hints and runbooks, every
string of the JSON formats' details) goes through `safe` (detectors.text.sanitize_sample:
no links, mentions, markup brackets or control characters, bounded length) or is
a number formatted anew, and then through the format's own escaping, so nobody can
ping a group or plant a link through an alert.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, quote_plus, urlencode

from detectors.alerts import Transition
from streams.notify.catalogue import Language
from streams.notify.wording import (
    SUMMARY_LIMIT,
    Words,
    hints,
    resolve_reason,
    runbook,
    safe,
    summary,
    where,
    words,
)

Kind = Literal["slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager", "console"]
ROOM_DASHBOARD: Final = "/d/livewatch-room/livewatch-room"
"""Path of the room drill-down dashboard in Grafana (grafana/dashboards/)."""
WECOM_MAX_BYTES: Final = 4096
_MARKDOWN_SPECIALS: Final = str.maketrans(
    # No "_": our own alert names have it, and emphasis is cosmetic; links and
    # images need "[" "]", which sanitize_sample has already replaced.
    {"*": "∗", "#": "＃", "~": "～", "|": "｜", "`": "'", ">": "›", "<": "‹", "!": "！"}
)
_FEISHU_LOCALES: Final[dict[Language, str]] = {"zh-CN": "zh_cn", "en": "en_us"}
"""The language keys of a Feishu `post`."""


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
class Options:
    """How one receiver's messages are worded and where they link."""

    grafana_url: str = "http://localhost:3000"
    """The room dashboard's Grafana (notify.grafana_url)."""
    external_url: str = ""
    """The notifier's own URL: the Alertmanager body's `externalURL`."""
    runbook_url: str = ""
    """A runbook link per alert type, `{alert}` replaced by it (notify.runbook_url); empty: none."""
    language: Language = "en"


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def dashboard_link(grafana_url: str, alert: Transition) -> str:
    """The room dashboard around the alert: 15 min before it started to 15 min after."""
    start = alert.started_at - 15 * 60_000
    end = alert.ts + 15 * 60_000
    query = urlencode({"var-room": alert.room_id, "from": start, "to": end}, quote_via=quote)
    return f"{grafana_url.rstrip('/')}{ROOM_DASHBOARD}?{query}"


def runbook_link(runbook_url: str, alert: Transition) -> str:
    """`runbook_url` with `{alert}` replaced by the alert type (URL-encoded)."""
    return runbook_url.replace("{alert}", quote(alert.alert, safe=""))


@dataclass(frozen=True, slots=True)
class AlertText:
    """One alert's message in the receiver's language, already inert (not yet
    format-escaped)."""

    headline: str
    summary: str
    facts: list[str]
    """Every line under the headline: the summary, when, then the notes."""
    notes: list[str]
    """Hints, samples, accounts, why it resolved, the runbook: what the summary does not say."""
    hints: list[str]
    runbook: str
    """The runbook of a firing alert ("" when resolved)."""
    link: str


def alert_text(alert: Transition, options: Options) -> AlertText:
    language = options.language
    w = words(language)
    since = w.clock(alert.started_at)
    what = summary(alert, language)
    said = hints(alert, language)
    notes = [w("hint", text=h) for h in said] + _chat_notes(alert, w)
    book = runbook(alert, language) if alert.state == "firing" and alert.runbook else ""
    name = w.name(alert.alert)
    if alert.state == "firing":
        severity = w.severity(alert.severity)
        headline = w("headline.firing", severity=severity, alert=name, where=where(alert))
        facts = [what, w("since", time=since)]
    else:
        minutes = w.number((alert.ts - alert.started_at) / 60_000, "#,##0.0")
        headline = w("headline.resolved", alert=name, where=where(alert))
        facts = [w("lasted", minutes=minutes, time=since), what]
        reason = resolve_reason(alert, language)
        notes = [reason, *notes] if reason else notes
    if book:
        notes.append(w("runbook", text=book))
    link = dashboard_link(options.grafana_url, alert)
    return AlertText(headline, what, facts + notes, notes, said, book, link)


def _chat_notes(alert: Transition, w: Words) -> list[str]:
    """A flood's sample messages and top accounts (user text: made inert)."""
    details = alert.details if isinstance(alert.details, dict) else {}
    notes = []
    samples = details.get("samples")
    if isinstance(samples, list) and samples:
        notes.append(w("samples", samples=" / ".join(f"“{safe(s, 60)}”" for s in samples[:3])))
    top = details.get("top_accounts")
    accounts = [
        safe(a.get("user_id", ""), 32)
        for a in (top if isinstance(top, list) else [])[:5]
        if isinstance(a, dict)
    ]
    if accounts:
        notes.append(w("accounts", accounts=w.listing(accounts)))
    return notes


def _title(n: Notification, w: Words) -> str:
    firing = sum(a.state == "firing" for a in n.alerts)
    resolved = len(n.alerts) - firing
    counts = [
        w(key, n=w.number(count))
        for key, count in (("count.firing", firing), ("count.resolved", resolved))
        if count
    ]
    return w("title", room=safe(n.room_id, 128), counts=w("count.separator").join(counts))


# -- Slack --------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack's three control characters; mentions and links need < > to exist.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(n: Notification, url: str, options: Options) -> Request:
    w = words(options.language)
    title = _title(n, w)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    lines = []
    label = _slack_escape(w("dashboard"))
    for alert in n.alerts:
        part = alert_text(alert, options)
        body = "\n".join(f"• {_slack_escape(f)}" for f in part.facts)
        text = f"*{_slack_escape(part.headline)}*\n{body}\n<{part.link}|{label}>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        lines.append(_slack_escape(part.headline))
    return Request(
        url, {"text": _slack_escape(title) + ": " + "; ".join(lines), "blocks": blocks[:50]}
    )


# -- Feishu / Lark ------------------------------------------------------------


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """HMAC-SHA256 keyed with `timestamp + "\\n" + secret` over an empty message, base64."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def feishu(n: Notification, url: str, options: Options, secret: str | None, now_s: int) -> Request:
    w = words(options.language)
    content: list[list[dict[str, str]]] = []
    for alert in n.alerts:
        part = alert_text(alert, options)
        content.append([{"tag": "text", "text": part.headline}])
        content += [[{"tag": "text", "text": fact}] for fact in part.facts]
        content.append([{"tag": "a", "text": w("dashboard"), "href": part.link}])
    post = {_FEISHU_LOCALES[options.language]: {"title": _title(n, w), "content": content}}
    body: dict[str, Any] = {"msg_type": "post", "content": {"post": post}}
    if secret:
        body = {"timestamp": str(now_s), "sign": feishu_sign(secret, now_s), **body}
    return Request(url, body)


# -- DingTalk -----------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """HMAC-SHA256 keyed with the secret over `timestamp + "\\n" + secret`, base64, URL-encoded."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def _markdown(n: Notification, options: Options) -> list[str]:
    """One markdown block per alert; text escaped so it cannot become markup."""
    label = words(options.language)("dashboard").translate(_MARKDOWN_SPECIALS)
    blocks = []
    for alert in n.alerts:
        part = alert_text(alert, options)
        facts = "\n".join(f"- {f.translate(_MARKDOWN_SPECIALS)}" for f in part.facts)
        headline = part.headline.translate(_MARKDOWN_SPECIALS)
        blocks.append(f"**{headline}**\n{facts}\n[{label}]({part.link})")
    return blocks


def dingtalk(
    n: Notification, url: str, options: Options, secret: str | None, now_ms: int
) -> Request:
    if secret:
        separator = "&" if "?" in url else "?"
        url = f"{url}{separator}timestamp={now_ms}&sign={dingtalk_sign(secret, now_ms)}"
    title = _title(n, words(options.language)).translate(_MARKDOWN_SPECIALS)
    text = f"### {title}\n\n" + "\n\n".join(_markdown(n, options))
    return Request(
        url,
        {
            "msgtype": "markdown",
            "markdown": {"title": title[:64], "text": text},
            "at": {"isAtAll": False, "atMobiles": [], "atUserIds": []},
        },
    )


# -- WeCom --------------------------------------------------------------------


def wecom(n: Notification, url: str, options: Options) -> Request:
    w = words(options.language)
    title = _title(n, w).translate(_MARKDOWN_SPECIALS)
    blocks = _markdown(n, options)
    content = f"### {title}"
    for index, block in enumerate(blocks):
        more = "\n\n" + w("more", n=w.number(len(blocks) - index))
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


def webhook(n: Notification, url: str, options: Options) -> Request:
    """Our own contract: the transitions as the worker published them, each with its
    text in the receiver's language."""
    return Request(
        url,
        {
            "receiver": n.receiver,
            "room_id": safe(n.room_id, 128),
            "status": n.status,
            "language": options.language,
            "title": _title(n, words(options.language)),
            "transitions": [_inert_transition(a, options) for a in n.alerts],
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


def _inert_transition(alert: Transition, options: Options) -> dict[str, Any]:
    details = _inert(alert.details) if isinstance(alert.details, dict) else {}
    part = alert_text(alert, options)
    return {
        "alert": safe(alert.alert, 64),
        "state": alert.state,
        "room_id": safe(alert.room_id, 128),
        "region": safe(alert.region, 64) if alert.region else None,
        "ts": alert.ts,
        "started_at": alert.started_at,
        "severity": alert.severity,
        "summary": safe(alert.summary, SUMMARY_LIMIT),
        "fingerprint": safe(alert.fingerprint, 64),
        "runbook": safe(alert.runbook, 300),
        "details": details,
        "text": {
            "headline": part.headline,
            "summary": part.summary,
            "hints": part.hints,
            "runbook": runbook(alert, options.language),
            "dashboard_url": part.link,
        },
    }


_NEVER: Final = "0001-01-01T00:00:00Z"
"""Alertmanager's endsAt of an alert still firing (Go's zero time)."""


def _rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _alertmanager_alert(alert: Transition, options: Options) -> dict[str, Any]:
    part = alert_text(alert, options)
    labels = {
        "alertname": safe(alert.alert, 64),
        "room": safe(alert.room_id, 128),
        "severity": alert.severity,
    }
    if alert.region:
        labels["region"] = safe(alert.region, 64)
    # The usual annotations: summary, description (here what the summary does not
    # say: hints, samples, accounts, the runbook's text), runbook_url, dashboard_url.
    annotations = {"summary": part.summary}
    if part.notes:
        annotations["description"] = "\n".join(part.notes)
    if options.runbook_url:
        annotations["runbook_url"] = runbook_link(options.runbook_url, alert)
    annotations["dashboard_url"] = part.link
    return {
        "status": alert.state,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(alert.started_at),
        "endsAt": _rfc3339(alert.ts) if alert.state == "resolved" else _NEVER,
        "generatorURL": part.link,
        "fingerprint": safe(alert.fingerprint, 64),
    }


def _common(maps: Iterable[dict[str, str]]) -> dict[str, str]:
    """The pairs every map has, as Alertmanager's commonLabels and commonAnnotations."""
    maps = list(maps)
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def alertmanager(n: Notification, url: str, options: Options) -> Request:
    """Alertmanager's webhook payload (version 4), so existing tooling can take it:
    https://prometheus.io/docs/alerting/latest/configuration/#webhook_config"""
    alerts = [_alertmanager_alert(alert, options) for alert in n.alerts]
    room = safe(n.room_id, 128)
    return Request(
        url,
        {
            "version": "4",
            "groupKey": n.group_key or f'{{}}:{{room="{room}"}}',
            "truncatedAlerts": 0,
            "status": n.status,
            "receiver": n.receiver,
            "groupLabels": {"room": room},
            "commonLabels": _common(a["labels"] for a in alerts),
            "commonAnnotations": _common(a["annotations"] for a in alerts),
            "externalURL": options.external_url,
            "alerts": alerts,
        },
    )


def console_lines(n: Notification, language: Language = "en") -> list[str]:
    """The console receiver's lines: one per alert, hints indented below it."""
    w = words(language)
    lines = []
    for t in n.alerts:
        when = time.strftime("%H:%M:%S", time.gmtime(t.ts / 1000))
        what = summary(t, language)
        line = (
            f"{when} {t.state.upper():8} {t.severity:8} {safe(t.alert, 64):13} {where(t)}: {what}"
        )
        if t.state == "resolved":
            line += w("console.lasted", minutes=w.number((t.ts - t.started_at) / 60_000, "#,##0.0"))
        lines.append(line)
        lines += [f"    {w('hint', text=h)}" for h in hints(t, language, limit=100)]
    return lines


def render(
    kind: Kind, n: Notification, url: str, options: Options, secret: str | None, now_ms: int
) -> Request:
    if kind == "slack":
        return slack(n, url, options)
    if kind == "feishu":
        return feishu(n, url, options, secret, now_ms // 1000)
    if kind == "dingtalk":
        return dingtalk(n, url, options, secret, now_ms)
    if kind == "wecom":
        return wecom(n, url, options)
    if kind == "alertmanager":
        return alertmanager(n, url, options)
    return webhook(n, url, options)
