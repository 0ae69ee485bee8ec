"""Fixtures the integration tests share beyond tests/conftest.py's broker and workers."""

from tests.integration.prometheus import prometheus

__all__ = ["prometheus"]
