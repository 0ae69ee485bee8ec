"""Delivery against a real local HTTP server that answers like each platform."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from detectors.alerts import Transition
from streams.notify.catalogue import LANGUAGES, Language
from streams.notify.config import ReceiverConfig
from streams.notify.delivery import DeliveryMetrics, RateLimiter, WebhookSender
from streams.notify.formats import Notification, Options
from tests.webhook_server import SECRET, PlatformServer, platform_server

T0 = 1_764_000_000_000


def notification(room: str = "room-1", i: int = 0) -> Notification:
    t = Transition(
        "traffic_cliff",
        "firing",
        room,
        T0 + i,
        "critical",
        "traffic fell 80%",
        f"{i:016x}",
        {"hints": ["a feed cut"]},
        None,
        T0,
        "check the stream",
    )
    return Notification("r", room, (t,))


def sender(
    server: PlatformServer,
    client: httpx.AsyncClient,
    kind: str,
    registry: CollectorRegistry,
    secret: str | None = SECRET,
    language: Language | None = None,
    **extra: float,
) -> WebhookSender:
    path = {
        "dingtalk": "dingtalk/robot/send?access_token=tok",
        "wecom": "wecom/cgi-bin/webhook/send?key=k",
    }
    receiver = ReceiverConfig(
        name=kind,
        kind=kind,
        timeout_s=extra.pop("timeout_s", 2.0),  # type: ignore[arg-type]
        per_second=extra.pop("per_second", None),
        language=language,
    )
    return WebhookSender(
        receiver,
        f"{server.url}/{path.get(kind, kind)}",
        secret,
        client,
        DeliveryMetrics(registry),
        Options("https://grafana.example", language=receiver.text_language()),
        extra.pop("give_up_after_s", 30.0),
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        throttled_pause_s=0.3,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "kind", ["slack", "feishu", "dingtalk", "wecom", "webhook", "alertmanager"]
)
async def test_every_format_is_accepted_with_a_valid_signature(
    kind: str, language: Language
) -> None:
    registry = CollectorRegistry()
    async with platform_server() as server, httpx.AsyncClient() as client:
        send = sender(server, client, kind, registry, language=language)
        assert await send.deliver(notification()) is None
    assert len(server.delivered(kind)) == 1
    assert value(registry, "livewatch_notifications_sent_total", receiver=kind) == 1


@pytest.mark.parametrize("kind", ["feishu", "dingtalk"])
async def test_a_wrong_secret_is_a_platform_error_given_up_at_once(kind: str) -> None:
    registry = CollectorRegistry()
    async with platform_server() as server, httpx.AsyncClient() as client:
        reason = await sender(server, client, kind, registry, secret="wrong").deliver(
            notification()
        )
    assert reason == "platform_error" and server.received == [] and len(server.attempts) == 1
    assert (
        value(
            registry,
            "livewatch_notifications_dead_lettered_total",
            receiver=kind,
            reason="platform_error",
        )
        == 1
    )


async def test_500_429_timeouts_and_throttle_codes_are_retried_until_delivered() -> None:
    registry = CollectorRegistry()
    async with platform_server() as server, httpx.AsyncClient() as client:
        server.failures["dingtalk"] = [500, (429, "1"), "hang", ("code", 130101)]
        send = sender(server, client, "dingtalk", registry, timeout_s=0.5)
        assert await send.deliver(notification()) is None
    assert len(server.attempts) == 5 and len(server.delivered("dingtalk")) == 1
    # Retry-After: 1 was honoured before the next attempt.
    assert server.attempts[2].at - server.attempts[1].at >= 0.95
    for reason in ("http_5xx", "http_429", "timeout", "platform_throttled"):
        assert (
            value(
                registry,
                "livewatch_notification_failures_total",
                receiver="dingtalk",
                reason=reason,
            )
            == 1
        ), reason
    assert value(registry, "livewatch_notification_retries_total", receiver="dingtalk") == 4


async def test_an_outage_longer_than_give_up_becomes_a_dead_letter() -> None:
    registry = CollectorRegistry()
    async with platform_server() as server, httpx.AsyncClient() as client:
        server.always_fail = True
        reason = await sender(server, client, "slack", registry, give_up_after_s=0.5).deliver(
            notification()
        )
    assert reason is not None and reason.startswith("gave up after") and "http_5xx" in reason
    assert len(server.attempts) >= 2
    assert (
        value(
            registry,
            "livewatch_notifications_dead_lettered_total",
            receiver="slack",
            reason="http_5xx",
        )
        == 1
    )


async def test_the_rate_limit_holds_in_every_sliding_second() -> None:
    registry = CollectorRegistry()
    async with platform_server() as server, httpx.AsyncClient() as client:
        send = sender(server, client, "feishu", registry, per_second=5)
        for i in range(12):
            assert await send.deliver(notification(i=i)) is None
    stamps = [r.at for r in server.delivered("feishu")]
    assert len(stamps) == 12
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < start + 0.98) <= 5


def test_rate_limiter_counts_both_windows() -> None:
    limiter = RateLimiter(per_second=None, per_minute=2)
    limiter.sent.extend([100.0, 130.0])
    assert limiter.wait_s(140.0) == pytest.approx(20.0)
    assert limiter.wait_s(161.0) == 0.0


async def test_webhook_urls_and_secrets_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    import streams.notify.service  # noqa: F401 - configures the HTTP client's loggers

    registry = CollectorRegistry()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # as streams.notify.service leaves it
    async with platform_server() as server, httpx.AsyncClient() as client:
        send = sender(server, client, "wecom", registry)
        send.url += "&key=TOKEN-abc"
        server.failures["wecom"] = [500]
        assert await send.deliver(notification()) is None
    assert "TOKEN-abc" not in caplog.text and SECRET not in caplog.text
    assert "TOKEN-abc" not in repr(send.receiver)


def test_settings_repr_hides_inline_webhook_urls() -> None:
    from streams.settings import load_settings

    settings = load_settings(
        environ={},
        overrides={
            "notify": {
                "receivers": [{"name": "s", "kind": "slack", "url": "https://x/T0K"}],
                "routes": [{"receivers": ["s"]}],
            }
        },
    )
    assert "T0K" not in repr(settings)
