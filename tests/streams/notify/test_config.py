"""The notifier's configuration: each receiver's language, and the links it sends."""

from __future__ import annotations

import io

import httpx
import pytest
from prometheus_client import CollectorRegistry

from streams.notify.config import NotifyConfig, NotifyConfigError, default_external_url
from streams.notify.delivery import ConsoleSender, DeliveryMetrics, WebhookSender
from streams.notify.service import build_senders


def config(**receiver: str) -> NotifyConfig:
    return NotifyConfig.from_table(
        {
            "grafana_url": "https://grafana.example",
            "runbook_url": "https://wiki.example/{alert}",
            "receivers": [
                {"name": "console", "kind": "console"},
                *(
                    {"name": kind, "kind": kind, "url": "https://hooks.example", **receiver}
                    for kind in ("slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager")
                ),
            ],
            "routes": [{"receivers": ["console"]}],
        }
    )


def test_chinese_platforms_default_to_chinese_and_the_others_to_english() -> None:
    languages = {r.name: r.text_language() for r in config().receivers}
    assert languages == {
        "console": "en",
        "slack": "en",
        "feishu": "zh-CN",
        "dingtalk": "zh-CN",
        "wecom": "zh-CN",
        "webhook": "en",
        "alertmanager": "en",
    }
    chosen = config(language="en").receivers
    assert {r.text_language() for r in chosen if r.kind != "console"} == {"en"}


def test_a_language_the_notifier_does_not_speak_stops_it_at_start() -> None:
    with pytest.raises(NotifyConfigError, match="language"):
        config(language="fr")


def test_the_external_url_is_the_notifiers_own() -> None:
    assert default_external_url(9465, "notifier-0") == "http://notifier-0:9465"
    assert default_external_url(0, "notifier-0") == "http://notifier-0"
    receiver = config().receivers[1]
    assert config().options(receiver, "http://derived:9465").external_url == "http://derived:9465"
    table = {"external_url": "https://notifier.example", "receivers": [], "routes": []}
    chosen = NotifyConfig.from_table(table)
    assert chosen.options(receiver, "http://derived:9465").external_url == (
        "https://notifier.example"
    )


async def test_each_sender_gets_its_receivers_language_and_links() -> None:
    async with httpx.AsyncClient() as client:
        senders = build_senders(
            config(),
            client,
            DeliveryMetrics(CollectorRegistry()),
            {},
            io.StringIO(),
            "http://notifier-0:9465",
        )
    console, feishu = senders["console"], senders["feishu"]
    assert isinstance(console, ConsoleSender) and console.language == "en"
    assert isinstance(feishu, WebhookSender)
    assert feishu.options.language == "zh-CN"
    assert feishu.options.external_url == "http://notifier-0:9465"
    assert feishu.options.grafana_url == "https://grafana.example"
    assert feishu.options.runbook_url == "https://wiki.example/{alert}"
