"""Delivering notifications to webhooks: rate limits, retries, platform error codes.

Each receiver sends one notification at a time, within its platform's rate
limits (Slack about 1/s; Feishu 5/s and 100/min; DingTalk and WeCom 20/min).
429, 5xx, timeouts, connection errors and the platforms' own "too fast" codes
are retried with exponential backoff and full jitter, honouring Retry-After;
a platform's error code inside an HTTP 200 (Feishu `code`, DingTalk and WeCom
`errcode`) is a failure. Other 4xx answers and bad signatures will not fix
themselves: the notification becomes a dead letter at once, as does one still
undeliverable after `give_up_after_s`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Final

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.notify.catalogue import Language
from streams.notify.config import ReceiverConfig
from streams.notify.formats import Notification, Options, console_lines, render
from streams.notify.wording import words

# Platform codes meaning "too many requests": retry later, it is not our fault.
_THROTTLED: Final = {"feishu": {9499, 11232, 11233}, "dingtalk": {130101}, "wecom": {45009}}


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "livewatch_notifications_sent",
            "Notifications delivered.",
            ["receiver"],
            registry=registry,
        )
        self.failures = Counter(
            "livewatch_notification_failures",
            "Failed delivery attempts, by reason.",
            ["receiver", "reason"],
            registry=registry,
        )
        self.retries = Counter(
            "livewatch_notification_retries",
            "Delivery attempts retried.",
            ["receiver"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "livewatch_notifications_dead_lettered",
            "Notifications given up on and written to the dead-letter topic.",
            ["receiver", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "livewatch_notification_delivery_seconds",
            "Time from a notification's first attempt to its delivery, retries included.",
            ["receiver"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )


class RateLimiter:
    """At most `per_second` and `per_minute` sends in any sliding second / minute."""

    def __init__(self, per_second: float | None, per_minute: float | None) -> None:
        self.windows = [(1.0, per_second), (60.0, per_minute)]
        self.sent: deque[float] = deque()
        self.paused_until = 0.0

    def wait_s(self, now: float) -> float:
        wait = max(0.0, self.paused_until - now)
        for span, limit in self.windows:
            if limit is None:
                continue
            recent = [t for t in self.sent if t > now - span]
            if len(recent) >= limit:
                wait = max(wait, recent[-int(limit)] + span - now)
        return wait

    async def acquire(self) -> None:
        while (wait := self.wait_s(time.monotonic())) > 0:  # noqa: ASYNC110 - waiting on time
            await asyncio.sleep(wait)
        now = time.monotonic()
        self.sent.append(now)
        while self.sent and self.sent[0] <= now - 60.0:
            self.sent.popleft()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class Retry(Exception):
    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.after_s = reason, after_s


class Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class WebhookSender:
    receiver: ReceiverConfig
    url: str
    secret: str | None
    client: httpx.AsyncClient
    metrics: DeliveryMetrics
    options: Options
    """The receiver's language and links."""
    give_up_after_s: float
    limiter: RateLimiter | None = None
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    throttled_pause_s: float = 60.0
    """How long a platform's "too fast" code pauses the receiver (DingTalk throttles for 10 min)."""

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = RateLimiter(*self.receiver.limits())
        words(self.options.language)  # the language's locale data, loaded before any send

    async def deliver(self, n: Notification) -> str | None:
        """Deliver `n`; None when delivered, else why it was given up on."""
        name = self.receiver.name
        started = time.monotonic()
        attempt = 0
        while True:
            assert self.limiter is not None
            await self.limiter.acquire()
            try:
                await self._attempt(n)
            except Retry as retry:
                self.metrics.failures.labels(name, retry.reason).inc()
                delay = random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
                if retry.after_s is not None:
                    delay = max(delay, retry.after_s)
                    self.limiter.pause(retry.after_s)
                if time.monotonic() + delay - started > self.give_up_after_s:
                    self.metrics.dead_letters.labels(name, retry.reason).inc()
                    return f"gave up after {attempt + 1} attempts: {retry.reason}"
                self.metrics.retries.labels(name).inc()
                attempt += 1
                await asyncio.sleep(delay)
                continue
            except Permanent as failure:
                self.metrics.failures.labels(name, failure.reason).inc()
                self.metrics.dead_letters.labels(name, failure.reason).inc()
                return failure.reason
            self.metrics.sent.labels(name).inc()
            self.metrics.latency.labels(name).observe(time.monotonic() - started)
            return None

    async def _attempt(self, n: Notification) -> None:
        # Signed requests carry a fresh timestamp on every attempt.
        request = render(
            self.receiver.kind, n, self.url, self.options, self.secret, int(time.time() * 1000)
        )
        try:
            response = await self.client.post(
                request.url,
                json=request.body,
                headers=request.headers,
                timeout=self.receiver.timeout_s,
            )
        except httpx.TimeoutException:
            raise Retry("timeout") from None
        except httpx.TransportError:
            raise Retry("connection") from None
        status = response.status_code
        if status == 429:
            raise Retry("http_429", _retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise Retry("http_5xx", _retry_after(response.headers.get("Retry-After")))
        if status >= 400:
            raise Permanent(f"http_{status}")
        self._check_body(response)

    def _check_body(self, response: httpx.Response) -> None:
        kind = self.receiver.kind
        if kind not in _THROTTLED:
            return
        try:
            body = response.json()
        except ValueError:
            raise Permanent("platform_error") from None
        code = body.get("code", body.get("StatusCode")) if kind == "feishu" else body.get("errcode")
        if not code:  # 0, or no code at all
            return
        if code in _THROTTLED[kind]:
            raise Retry("platform_throttled", self.throttled_pause_s)
        raise Permanent("platform_error")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class ConsoleSender:
    """The console receiver: one line per alert, no limits, never fails."""

    out: IO[str] = sys.stdout
    language: Language = "en"

    async def deliver(self, n: Notification) -> str | None:
        for line in console_lines(n, self.language):
            self.out.write(line + "\n")
        self.out.flush()
        return None
