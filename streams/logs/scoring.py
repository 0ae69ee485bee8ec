"""Scoring a backtest's alerts against a night's labelled incidents (`--labels`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.alerts import Transition


@dataclass
class Score:
    """How the firing alerts of one type compare with the labelled incidents."""

    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    false_alerts: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    @property
    def precision(self) -> float | None:
        return (self.alerts - self.false_alerts) / self.alerts if self.alerts else None


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """The incidents of a labels file: simulate's `{"incidents": [...]}` or a bare list.
    Raises OSError, ValueError, KeyError or TypeError on a file that is neither."""
    with open(path, encoding="utf-8") as handle:
        labels = json.load(handle)
    return list(labels if isinstance(labels, list) else labels["incidents"])


def score(
    transitions: list[Transition], incidents: list[dict[str, Any]], grace_ms: int = 300_000
) -> dict[str, Score]:
    """Recall, precision and detection delay per alert type.

    An incident is detected by the first alert of its type and room (and region,
    when the incident names one) firing in [start, end + grace], or by one that was
    already firing when it started (on-call already knows: delay 0, as when a
    degradation pages just before it crosses the labelled line). An alert matching
    no incident either way is a false alert (an alert firing again for the same
    incident, e.g. escalating, is not).

    An incident may carry an `onset` before its `start` (a degradation that grew into
    it: an alert from then on is early, not false) and `required: false` (a span where
    an alert is fair but not demanded: it counts for no recall and no false alert).
    """
    scores: dict[str, Score] = {}
    firing = [t for t in transitions if t.state == "firing"]
    spans = _spans(transitions)
    for incident in incidents:
        entry = scores.setdefault(incident["alert"], Score())
        if not incident.get("required", True):
            continue
        entry.incidents += 1
        hits = [max(t.ts, incident["start"]) for t in firing if _matches(t, incident, grace_ms)]
        if any(_covers(span, incident) for span in spans):
            hits.append(incident["start"])
        if hits:
            entry.detected += 1
            entry.delays_s.append((min(hits) - incident["start"]) / 1000)
    for t in firing:
        entry = scores.setdefault(t.alert, Score())
        entry.alerts += 1
        span = next(
            span for span in spans if span[0] == t.fingerprint and span[1] <= t.ts <= span[2]
        )
        if not any(_matches(t, i, grace_ms) or _covers(span, i) for i in incidents):
            entry.false_alerts += 1
    return scores


Span = tuple[str, int, float, Transition]
"""An alert's firing span: fingerprint, first firing ts, resolved ts (inf if never), and
its first firing transition."""


def _spans(transitions: list[Transition]) -> list[Span]:
    spans: list[Span] = []
    open_: dict[str, tuple[int, Transition]] = {}
    for t in sorted(transitions, key=lambda t: t.ts):
        if t.state == "firing":
            open_.setdefault(t.fingerprint, (t.ts, t))
        elif t.fingerprint in open_:
            fired, first = open_.pop(t.fingerprint)
            spans.append((t.fingerprint, fired, t.ts, first))
    spans += [(key, fired, math.inf, first) for key, (fired, first) in open_.items()]
    return spans


def _covers(span: Span, incident: dict[str, Any]) -> bool:
    """The alert of `span` was firing, for the incident's key, when the incident began."""
    _, fired, resolved, first = span
    begins = incident.get("onset", incident["start"])
    return _matches(first, incident, 0, since=fired) and fired < begins < resolved


def _matches(
    transition: Transition, incident: dict[str, Any], grace_ms: int, since: int | None = None
) -> bool:
    """The transition is of the incident's key and (unless `since` is given) within its
    window."""
    region = incident.get("region")
    return (
        transition.alert == incident["alert"]
        and transition.room_id == incident["room_id"]
        and (region is None or transition.region == region)
        and (
            since is not None
            or incident.get("onset", incident["start"])
            <= transition.ts
            <= incident["end"] + grace_ms
        )
    )
