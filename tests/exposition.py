"""Reading Prometheus text exposition in tests."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def differences(got: Samples, want: Samples, rel_tol: float = 0.0, limit: int = 40) -> list[str]:
    """The samples that differ (missing on a side shows as None), at most `limit`;
    `rel_tol` for sums whose float order differs (merged workers)."""
    wrong = []
    for key in sorted(got.keys() | want.keys()):
        a, b = got.get(key), want.get(key)
        if a is None or b is None or not math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol):
            wrong.append(f"{key}: got {a}, want {b}")
    return wrong[:limit]
