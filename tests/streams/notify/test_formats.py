"""Every chat format: content an operator acts on, and nothing a spammer can use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from detectors.alerts import Transition
from streams.notify.formats import (
    WECOM_MAX_BYTES,
    Notification,
    console_lines,
    dingtalk_sign,
    feishu_sign,
    render,
)

T0 = 1_764_000_000_000
HOSTILE = (
    '@all <at user_id="all"></at> <@U123> <!channel> @here [win](https://evil.example/x) '
    "**bold** <script>x</script> 加v:wx_spam123 \u202e\x07"
)
KINDS = ("slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager")


def spam_alert(state: str = "firing", room: str = "room-spam", ts: int = T0 + 60_000) -> Transition:
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


def body_text(kind: str, n: Notification) -> str:
    request = render(
        kind,
        n,
        "https://hooks.example/x?access_token=t",
        "https://grafana.example",  # type: ignore[arg-type]
        "secret",
        T0,
    )
    return json.dumps(request.body, ensure_ascii=False)


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_text_is_neutralized_in_every_format(kind: str) -> None:
    n = Notification("r", HOSTILE, (spam_alert(room=HOSTILE),))
    text = body_text(kind, n)
    for dangerous in (
        "@all",
        "<at",
        "<@",
        "<!channel>",
        "@here",
        "https://evil",
        "](https://evil",
        "<script",
        "\u202e",
        "\x07",
        "\\u202e",
        "\\u0007",
    ):
        assert dangerous not in text, (kind, dangerous)
    # Our own link is there, real.
    assert "https://grafana.example/d/livewatch-room/livewatch-room?var-room=" in text or kind in (
        "webhook",
    )
    # The message still says what happened.
    assert "spam_flood" in text and "23 spam messages" in text


def test_console_lines_are_inert_too() -> None:
    lines = console_lines(Notification("c", "room-spam", (spam_alert(),)))
    assert lines[0].split()[1:4] == ["FIRING", "critical", "spam_flood"]
    assert not any("@all" in line or "https://evil" in line for line in lines)


def test_feishu_signature_is_hmac_keyed_by_timestamp_and_secret_over_nothing() -> None:
    key = b"1599360473\nsecret"
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu_sign("secret", 1599360473) == expected
    body = render(
        "feishu", Notification("r", "room", (spam_alert(),)), "u", "g", "secret", 1599360473_000
    ).body
    assert body["timestamp"] == "1599360473" and body["sign"] == expected


def test_dingtalk_signature_is_keyed_by_the_secret_in_the_url_with_milliseconds() -> None:
    now_ms = 1_575_000_000_123
    request = render(
        "dingtalk",
        Notification("r", "room", (spam_alert(),)),
        "https://oapi.dingtalk.com/robot/send?access_token=t",
        "g",
        "secret",
        now_ms,
    )
    query = parse_qs(urlsplit(request.url).query)
    assert query["timestamp"] == [str(now_ms)] and query["access_token"] == ["t"]
    message = f"{now_ms}\nsecret".encode()
    digest = base64.b64encode(hmac.new(b"secret", message, hashlib.sha256).digest()).decode()
    assert query["sign"] == [digest]  # parse_qs decoded the URL-encoding once
    assert unquote(dingtalk_sign("secret", now_ms)) == digest


def test_wecom_markdown_stays_within_4096_bytes() -> None:
    alerts = tuple(spam_alert(ts=T0 + i * 1000) for i in range(60))
    request = render("wecom", Notification("r", "room-spam", alerts), "u", "g", None, T0)
    content = request.body["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MAX_BYTES
    assert "more alerts" in content


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
    body = render(
        "alertmanager",
        Notification("am", "room-spam", (firing, resolved)),
        "u",
        "https://grafana.example",
        None,
        T0,
    ).body
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "am"
    assert body["groupLabels"] == {"room": "room-spam"}
    assert body["commonLabels"] == {"room": "room-spam", "severity": "critical"}
    assert body["externalURL"] == "https://grafana.example"
    first, second = body["alerts"]
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
    assert first["fingerprint"] == "0123456789abcdef" and "generatorURL" in first


def test_resolved_messages_say_how_long_it_lasted() -> None:
    resolved = spam_alert(state="resolved", ts=T0 + 9 * 60_000)
    text = body_text("slack", Notification("r", "room-spam", (resolved,)))
    assert "RESOLVED spam_flood" in text and "after 9.0 min" in text
