# ruff: noqa: RUF001  (Chinese text and the look-alikes that replace markup are the point)
"""Every chat format: content an operator acts on, in the receiver's language, and
nothing a spammer can use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from detectors.alerts import RUNBOOKS, Transition
from streams.notify.catalogue import LANGUAGES, Language
from streams.notify.formats import (
    WECOM_MAX_BYTES,
    Notification,
    Options,
    console_lines,
    dingtalk_sign,
    feishu_sign,
    render,
)

T0 = 1_764_000_000_000
HOSTILE = (
    '@all <at user_id="all"></at> <@U123> <!channel> @here [win](https://evil.example/x) '
    "**bold** <script>x</script> 加v:wx_spam123 \u202e\u2066\u200f\x07"
)
DANGEROUS = (
    "@all",
    "<at",
    "<@",
    "<!channel>",
    "@here",
    "https://evil",
    "](https://evil",
    "[win]",
    "<script",
    "\u202e",
    "\u2066",
    "\u200f",
    "\x07",
    "\\u202e",
    "\\u2066",
    "\\u200f",
    "\\u0007",
)
KINDS = ("slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager")
OPTIONS = Options(
    "https://grafana.example",
    external_url="https://notifier.example",
    runbook_url="https://wiki.example/livewatch/{alert}",
)


def spam_alert(state: str = "firing", room: str = "room-spam", ts: int = T0 + 60_000) -> Transition:
    """A flood whose details the catalogue does not know (shown as the alert says it)."""
    return Transition(
        "spam_flood",
        state,
        room,
        ts,
        "critical",
        f"chat flood: 23 spam messages in 30s from 13 accounts ({HOSTILE})",
        "0123456789abcdef",
        {
            "samples": [HOSTILE, "加微信 abc123456"],
            "top_accounts": [{"user_id": HOSTILE, "messages": 9}],
            "hints": [HOSTILE],
            "signals": {"online": {"observed": 1.0, "note": HOSTILE}},
            HOSTILE: [HOSTILE, 3],
        },
        None,
        T0,
        f"Mute the listed accounts. {HOSTILE}",
    )


def flood(room: str = "room-spam", state: str = "firing", **details: Any) -> Transition:
    """A flood as detectors/spam.py words it (with `window_s`), told in every language."""
    return Transition(
        "spam_flood",
        state,
        room,
        T0 + 60_000,
        "critical",
        "chat flood: 23 spam messages in 30s from 13 accounts (contact_ads)",
        "0123456789abcdef",
        {
            "kinds": ["contact_ads"],
            "messages": 23,
            "accounts": 13,
            "window_messages": 41,
            "top_accounts": [{"user_id": HOSTILE, "messages": 9}],
            "samples": [HOSTILE],
            "window_s": 30,
            "hints": [HOSTILE],
            **details,
        },
        None,
        T0,
        RUNBOOKS["spam_flood"],
    )


def latency(region: str = "cn-south", state: str = "firing", ts: int = T0 + 60_000) -> Transition:
    return Transition(
        "latency_slo",
        state,
        "room-spam",
        ts,
        "critical",
        f"73% of latency samples in {region} over 600 ms (burn 14.4x over 2 min)",
        "f" * 16,
        {
            "burn_rate_long": 14.4,
            "burn_rate_short": 15.2,
            "window_long_s": 120,
            "window_short_s": 30,
            "threshold": 14.4,
            "bad_share_long": 0.7312,
            "objective": 0.95,
            "region": region,
            "slo_ms": 600.0,
        },
        region,
        T0,
        RUNBOOKS["latency_slo"],
    )


def hostile_name() -> Transition:
    """An alert message on the topic whose every string is hostile."""
    return Transition(
        HOSTILE, "firing", HOSTILE, T0, "warning", HOSTILE, HOSTILE, {}, HOSTILE, T0, HOSTILE
    )


def body(kind: str, n: Notification, language: Language = "en") -> dict[str, Any]:
    options = Options(
        OPTIONS.grafana_url, OPTIONS.external_url, OPTIONS.runbook_url, language=language
    )
    return render(kind, n, "https://hooks.example/x?access_token=t", options, "secret", T0).body  # type: ignore[arg-type]


def body_text(kind: str, n: Notification, language: Language = "en") -> str:
    return json.dumps(body(kind, n, language), ensure_ascii=False)


def hostile_notifications() -> list[Notification]:
    return [
        Notification("r", HOSTILE, (spam_alert(room=HOSTILE),)),
        Notification("r", HOSTILE, (flood(room=HOSTILE), latency(region=HOSTILE))),
        Notification("r", HOSTILE, (flood(room=HOSTILE, state="resolved"),)),
        Notification("r", HOSTILE, (hostile_name(),)),
    ]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_text_is_neutralized_in_every_format_and_language(
    kind: str, language: Language
) -> None:
    for n in hostile_notifications():
        text = body_text(kind, n, language)
        for dangerous in DANGEROUS:
            assert dangerous not in text, (kind, language, n.alerts[0].alert[:12], dangerous)
    text = body_text(kind, hostile_notifications()[0], language)
    # Our own link is there, real.
    assert "https://grafana.example/d/livewatch-room/livewatch-room?var-room=" in text
    # The message still says what happened.
    assert "spam_flood" in text and "23 spam messages" in text


@pytest.mark.parametrize("kind", KINDS)
def test_each_format_speaks_the_receivers_language(kind: str) -> None:
    n = Notification("r", "room-spam", (flood(), latency()))
    english, chinese = body_text(kind, n, "en"), body_text(kind, n, "zh-CN")
    if kind == "webhook":  # the contract's fields as published, then each one's text
        english, chinese = (
            json.dumps([t["text"] for t in body(kind, n, lang)["transitions"]], ensure_ascii=False)
            for lang in ("en", "zh-CN")
        )
    if kind == "alertmanager":  # no headline: summaries and descriptions
        assert "23 spam messages in 30s from 13 accounts" in english
        assert "30 秒内 23 条垃圾弹幕，来自 13 个账号（联系方式广告）" in chinese
    else:
        assert "CRITICAL spam_flood in room-spam" in english
        assert "【严重】弹幕刷屏（spam_flood） · 直播间 room-spam" in chinese
        assert "cn-south 有 73% 的延迟样本超过 600 毫秒" in chinese
    assert "chat flood" not in chinese and "Mute the listed accounts" not in chinese
    assert "禁言列出的账号" in chinese and "Mute the listed accounts" in english
    if kind not in ("alertmanager", "webhook"):
        assert "Room dashboard" in english and "直播间仪表板" in chinese


def test_feishu_posts_in_the_receivers_language() -> None:
    n = Notification("r", "room-spam", (flood(),))
    assert set(body("feishu", n, "zh-CN")["content"]["post"]) == {"zh_cn"}
    assert set(body("feishu", n, "en")["content"]["post"]) == {"en_us"}
    title = body("feishu", n, "zh-CN")["content"]["post"]["zh_cn"]["title"]
    assert title == "livewatch：room-spam（告警中 1 条）"


def test_console_lines_are_inert_and_in_their_language() -> None:
    lines = console_lines(Notification("c", "room-spam", (spam_alert(),)))
    assert lines[0].split()[1:4] == ["FIRING", "critical", "spam_flood"]
    assert not any("@all" in line or "https://evil" in line for line in lines)
    chinese = console_lines(Notification("c", "room-spam", (flood(state="resolved"),)), "zh-CN")
    assert "弹幕刷屏：30 秒内 23 条垃圾弹幕" in chinese[0] and "（持续 1.0 分钟）" in chinese[0]
    assert chinese[1].startswith("    提示：")
    hostile = console_lines(Notification("c", HOSTILE, (hostile_name(),)), "zh-CN")
    assert not any(d in line for line in hostile for d in DANGEROUS)


def test_feishu_signature_is_hmac_keyed_by_timestamp_and_secret_over_nothing() -> None:
    key = b"1599360473\nsecret"
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu_sign("secret", 1599360473) == expected
    body = render(
        "feishu", Notification("r", "room", (spam_alert(),)), "u", OPTIONS, "secret", 1599360473_000
    ).body
    assert body["timestamp"] == "1599360473" and body["sign"] == expected


def test_dingtalk_signature_is_keyed_by_the_secret_in_the_url_with_milliseconds() -> None:
    now_ms = 1_575_000_000_123
    request = render(
        "dingtalk",
        Notification("r", "room", (spam_alert(),)),
        "https://oapi.dingtalk.com/robot/send?access_token=t",
        OPTIONS,
        "secret",
        now_ms,
    )
    query = parse_qs(urlsplit(request.url).query)
    assert query["timestamp"] == [str(now_ms)] and query["access_token"] == ["t"]
    message = f"{now_ms}\nsecret".encode()
    digest = base64.b64encode(hmac.new(b"secret", message, hashlib.sha256).digest()).decode()
    assert query["sign"] == [digest]  # parse_qs decoded the URL-encoding once
    assert unquote(dingtalk_sign("secret", now_ms)) == digest


@pytest.mark.parametrize("language", LANGUAGES)
def test_wecom_markdown_stays_within_4096_bytes(language: Language) -> None:
    alerts = tuple(spam_alert(ts=T0 + i * 1000) for i in range(60))
    content = body("wecom", Notification("r", "room-spam", alerts), language)["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MAX_BYTES
    assert ("more alerts" if language == "en" else "条告警") in content


def test_the_generic_webhook_keeps_the_contract_and_adds_the_receivers_text() -> None:
    n = Notification("hook", "room-spam", (flood(),))
    english, chinese = body("webhook", n, "en"), body("webhook", n, "zh-CN")
    for sent in (english, chinese):
        (t,) = sent["transitions"]
        assert t["summary"] == flood().summary and t["runbook"] == RUNBOOKS["spam_flood"]
        assert t["details"]["kinds"] == ["contact_ads"] and t["fingerprint"] == "0123456789abcdef"
    assert english["language"] == "en" and chinese["language"] == "zh-CN"
    assert english["transitions"][0]["text"]["summary"] == flood().summary
    text = chinese["transitions"][0]["text"]
    assert text["summary"] == "弹幕刷屏：30 秒内 23 条垃圾弹幕，来自 13 个账号（联系方式广告）"
    assert text["headline"].startswith("【严重】弹幕刷屏（spam_flood）")
    assert text["runbook"].startswith("禁言列出的账号") and len(text["hints"]) == 1


def test_alertmanager_payload_follows_version_4() -> None:
    firing = spam_alert()
    resolved = Transition(
        "latency_slo",
        "resolved",
        "room-spam",
        T0 + 600_000,
        "critical",
        "73% over 600 ms",
        "f" * 16,
        {},
        "cn-south",
        T0 + 60_000,
        "",
    )
    sent = body("alertmanager", Notification("am", "room-spam", (firing, resolved)))
    # The fields Alertmanager's webhook_config documents, and only those.
    assert set(sent) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert sent["version"] == "4" and sent["status"] == "firing" and sent["receiver"] == "am"
    assert sent["truncatedAlerts"] == 0 and sent["groupKey"] == '{}:{room="room-spam"}'
    assert sent["groupLabels"] == {"room": "room-spam"}
    assert sent["commonLabels"] == {"room": "room-spam", "severity": "critical"}
    # The sender's own URL, as Alertmanager's is; Grafana is where each alert points.
    assert sent["externalURL"] == "https://notifier.example"
    first, second = sent["alerts"]
    for alert in sent["alerts"]:
        assert set(alert) == {
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        }
        assert alert["generatorURL"].startswith("https://grafana.example/d/livewatch-room/")
        assert alert["annotations"]["dashboard_url"] == alert["generatorURL"]
        assert all(isinstance(v, str) for v in alert["annotations"].values())
    assert first["labels"] == {
        "alertname": "spam_flood",
        "room": "room-spam",
        "severity": "critical",
    }
    assert (
        first["endsAt"] == "0001-01-01T00:00:00Z"
        and first["startsAt"] == "2025-11-24T16:00:00.000Z"
    )
    assert second["status"] == "resolved" and second["labels"]["region"] == "cn-south"
    assert second["endsAt"] == "2025-11-24T16:10:00.000Z"
    assert first["fingerprint"] == "0123456789abcdef"
    # Nothing in common but the runbook link's place: commonAnnotations says so.
    assert sent["commonAnnotations"] == {}


def test_alertmanager_annotations_are_the_usual_ones() -> None:
    sent = body("alertmanager", Notification("am", "room-spam", (flood(),)))
    (alert,) = sent["alerts"]
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert annotations["summary"] == flood().summary
    assert annotations["runbook_url"] == "https://wiki.example/livewatch/spam_flood"
    # The runbook's text, with the hints, samples and accounts, is the description.
    assert "runbook: " + RUNBOOKS["spam_flood"] in annotations["description"].splitlines()
    assert "runbook" not in annotations  # the contract's field, not an annotation
    # One alert: every annotation is common, as Alertmanager computes it.
    assert sent["commonAnnotations"] == annotations
    assert sent["commonLabels"] == alert["labels"]


def test_alertmanager_common_annotations_are_those_equal_across_the_group() -> None:
    alerts = (latency("cn-south"), latency("cn-east"))
    sent = body("alertmanager", Notification("am", "room-spam", alerts))
    common = sent["commonAnnotations"]
    # The summaries differ; the runbook and the room's dashboard are the same.
    assert set(common) == {"description", "runbook_url", "dashboard_url"}
    assert common["runbook_url"] == "https://wiki.example/livewatch/latency_slo"
    assert "region" not in sent["commonLabels"]


def test_alertmanager_without_a_runbook_url_has_none_and_links_encode_the_alert() -> None:
    n = Notification("am", "room-spam", (flood(),))
    request = render("alertmanager", n, "u", Options("https://g.example"), None, T0)
    (alert,) = request.body["alerts"]
    assert "runbook_url" not in alert["annotations"]
    assert request.body["externalURL"] == ""  # the service always sets one (config tests)
    hostile = body("alertmanager", Notification("am", "r", (hostile_name(),)))
    url = hostile["alerts"][0]["annotations"]["runbook_url"]
    assert url.startswith("https://wiki.example/livewatch/%40all%20%3Cat%20")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["RESOLVED spam_flood in room-spam", "after 9.0 min", "the room closed"]),
        ("zh-CN", ["【已恢复】弹幕刷屏（spam_flood）", "持续 9.0 分钟", "直播间已下播"]),
    ],
)
def test_resolved_messages_say_how_long_it_lasted_and_why(
    language: Language, expected: list[str]
) -> None:
    resolved = flood(state="resolved", duration_s=540.0, resolve_reason="room_closed")
    resolved = Transition(**{**_fields(resolved), "ts": T0 + 9 * 60_000})
    text = body_text("slack", Notification("r", "room-spam", (resolved,)), language)
    assert all(part in text for part in expected), text


def _fields(t: Transition) -> dict[str, Any]:
    return {name: getattr(t, name) for name in t.__struct_fields__}
