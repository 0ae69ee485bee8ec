"""A local HTTP server that answers like the chat platforms, for delivery tests.

It checks signatures the way each platform documents them (computed here
independently of streams.notify.formats), enforces WeCom's 4096-byte markdown
limit, and can be told to fail: HTTP 500, 429 with Retry-After, a hang longer
than the client's timeout, or a platform error code inside an HTTP 200.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET = "SEC-test-secret"


@dataclass
class Received:
    at: float
    platform: str
    body: dict[str, Any]
    query: dict[str, str]


@dataclass
class PlatformServer:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    """Requests answered with success."""
    attempts: list[Received] = field(default_factory=list)
    failures: dict[str, list[Any]] = field(default_factory=dict)
    """Platform -> scripted answers for the next requests: 500, (429, "2"), "hang",
    ("code", n) for a platform error code in a 200, popped one per request."""
    always_fail: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def delivered(self, platform: str) -> list[Received]:
        return [r for r in self.received if r.platform == platform]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        platform = request.match_info["platform"]
        body = await request.json()
        record = Received(time.monotonic(), platform, body, dict(request.query))
        self.attempts.append(record)
        if self.always_fail:
            return web.Response(status=500, text="outage")
        script = self.failures.get(platform)
        if script:
            failure = script.pop(0)
            if failure == 500:
                return web.Response(status=500, text="boom")
            if failure == "hang":  # longer than the client waits; then a gateway timeout
                await asyncio.sleep(3)
                return web.Response(status=504, text="timeout")
            if isinstance(failure, tuple) and failure[0] == 429:
                return web.Response(status=429, headers={"Retry-After": failure[1]}, text="slow")
            if isinstance(failure, tuple) and failure[0] == "code":
                return _platform_error(platform, failure[1])
        problem = check(platform, body, record.query)
        if problem is not None:
            return problem
        self.received.append(record)
        if platform == "slack":
            return web.Response(text="ok")
        if platform == "feishu":
            return web.json_response({"StatusCode": 0, "code": 0, "msg": "success"})
        if platform in ("dingtalk", "wecom"):
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        return web.json_response({"status": "success"})


def _platform_error(platform: str, code: int) -> web.Response:
    if platform == "feishu":
        return web.json_response({"code": code, "msg": "error", "data": {}})
    return web.json_response({"errcode": code, "errmsg": "error"})


def check(platform: str, body: dict[str, Any], query: dict[str, str]) -> web.Response | None:
    """The platform's own validation; None when the request would be accepted."""
    if platform == "feishu":
        timestamp = int(body.get("timestamp", 0))
        key = f"{timestamp}\n{SECRET}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if abs(time.time() - timestamp) > 3600 or body.get("sign") != expected:
            return _platform_error("feishu", 19021)
        if body.get("msg_type") not in ("text", "post", "interactive"):
            return _platform_error("feishu", 19002)
    if platform == "dingtalk":
        timestamp = query.get("timestamp", "0")
        message = f"{timestamp}\n{SECRET}".encode()
        expected = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest())
        # aiohttp has URL-decoded the query: this is the base64 text itself.
        if abs(time.time() * 1000 - int(timestamp)) > 3_600_000 or (
            query.get("sign") != expected.decode()
        ):
            return _platform_error("dingtalk", 310000)
        if body.get("msgtype") != "markdown" or not body["markdown"].get("title"):
            return _platform_error("dingtalk", 40035)
    if platform == "wecom":
        content = body.get("markdown", {}).get("content", "")
        if body.get("msgtype") != "markdown" or len(content.encode()) > 4096:
            return _platform_error("wecom", 40058)
    if platform == "slack" and not body.get("text"):
        return web.Response(status=400, text="invalid_payload")
    return None


@asynccontextmanager
async def platform_server() -> AsyncIterator[PlatformServer]:
    server = PlatformServer()
    app = web.Application()
    app.router.add_post("/{platform}", server.handle)
    app.router.add_post("/{platform}/{rest:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)  # the platform side: not our logs
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)
