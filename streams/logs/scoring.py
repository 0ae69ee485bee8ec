"""Scoring a backtest's alerts against a night's labelled incidents (`--labels`)."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def score(
    transitions: list[Transition], incidents: list[dict[str, Any]], grace_ms: int = 300_000
) -> dict[str, Score]:
    """Recall, precision and detection delay per alert type.

    An incident is detected by the first alert of its type and room firing in
    [start, end + grace]; an alert matching no incident is a false alert (an
    alert firing again for the same incident, e.g. escalating, is not).
    """
    scores: dict[str, Score] = {}
    firing = [t for t in transitions if t.state == "firing"]
    for incident in incidents:
        entry = scores.setdefault(incident["alert"], Score())
        entry.incidents += 1
        hits = [
            t.ts
            for t in firing
            if t.alert == incident["alert"]
            and t.room_id == incident["room_id"]
            and incident["start"] <= t.ts <= incident["end"] + grace_ms
        ]
        if hits:
            entry.detected += 1
            entry.delays_s.append((min(hits) - incident["start"]) / 1000)
    for t in firing:
        entry = scores.setdefault(t.alert, Score())
        entry.alerts += 1
        if not any(
            i["alert"] == t.alert
            and i["room_id"] == t.room_id
            and i["start"] <= t.ts <= i["end"] + grace_ms
            for i in incidents
        ):
            entry.false_alerts += 1
    return scores
