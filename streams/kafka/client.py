"""Connection options for every Kafka client livewatch makes (aiokafka's and Faust's)."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from streams.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client livewatch creates."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.read_sasl_password()
    return options


DELIVERY_TIMEOUT_MS = 120_000
"""How long livewatch's own producers keep trying to deliver a message before failing,
a broker restart included: the Java producer's `delivery.timeout.ms` default. aiokafka
has only `request_timeout_ms` for it (a request's timeout, a batch's lifetime and how
long a send waits for room), 40 s by default: shorter than a broker's restart."""


def producer_options(settings: Settings) -> dict[str, Any]:
    """`client_options` for a producer that rides out a broker restart: acks from all
    in-sync replicas, idempotent (a batch the broker wrote before its answer was lost is
    not written twice when retried) and retrying for `DELIVERY_TIMEOUT_MS`."""
    return {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": DELIVERY_TIMEOUT_MS,
    }


async def connection_problem(settings: Settings, timeout_s: float = 10.0) -> str | None:
    """Why the first bootstrap server refuses this client, in words, if it is the
    client's security: a failed authentication or TLS handshake. None when the server
    accepts the connection or cannot be reached at all (that is said otherwise).

    aiokafka logs such a failure and then raises only "Unable to bootstrap"; the
    command line asks here what it was."""
    first = settings.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    options = client_options(settings)
    del options["bootstrap_servers"]
    try:
        conn = await create_conn(
            host.strip("[]"), int(port), **options, request_timeout_ms=int(timeout_s * 1000)
        )
    except ssl.SSLError as exc:
        reason = getattr(exc, "verify_message", None) or exc.reason or exc
        return f"TLS handshake with {first} failed: {reason}"
    except (
        SaslAuthenticationFailed,
        AuthenticationFailedError,
        UnsupportedSaslMechanismError,
    ) as exc:
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        said = said or getattr(exc, "description", None) or type(exc).__name__
        return (
            f"authentication failed for user {settings.sasl_username!r} "
            f"({settings.security_protocol} {settings.sasl_mechanism}) at {first}: {said}"
        )
    except (OSError, KafkaError, TimeoutError, ValueError) as exc:
        # Under TLS 1.3 the broker checks the client's certificate after the handshake:
        # its refusal (e.g. "certificate required") arrives as a closed connection.
        refusal = exc.__cause__
        if isinstance(refusal, ssl.SSLError):
            return f"TLS handshake with {first} failed: {refusal.reason or refusal}"
        return None
    conn.close()
    return None


async def start_clients(*clients: Any) -> None:
    """Start aiokafka clients in order; when one is refused (a wrong password, say), stop
    them all rather than leave them to the garbage collector's "Unclosed" errors."""
    try:
        for client in clients:
            await client.start()
    except BaseException:
        for client in clients:
            await client.stop()
        raise
