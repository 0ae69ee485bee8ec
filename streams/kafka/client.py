"""Connection options for every Kafka client livewatch makes (aiokafka's and Faust's)."""

from __future__ import annotations

from typing import Any

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
