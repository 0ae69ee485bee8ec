"""Alert lifecycle: findings of detectors in, `firing` / `resolved` transitions out.

Detectors say, at each evaluation, what they see now (a `Finding` per alert key).
The tracker turns that into a stable lifecycle: an alert fires once its finding
has held for `for_s`, stays firing (deduplicated, re-announced only when its
severity rises or a new kind of finding appears, e.g. a fall becoming a silence)
while findings keep coming, and resolves once none has come for
`resolve_after_s` (Prometheus's `keep_firing_for`): a condition that comes and
goes within it stays one alert. A finding after the resolve fires again, as in
Prometheus: a recurrence is a new incident on-call must hear of (until
2026-12-07 a `cooldown_s` silenced it for five minutes, and so hid real incidents
following one another: docs/detectors.md, "Lifecycle"). Damping the
notifications of a room whose alerts come and go is the notifier's work
(`group_interval`, `repeat_interval`), as in Alertmanager.
All times are event time (ms), so a replay yields the same transitions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import msgspec

from detectors.config import LifecycleConfig, Severity

SEVERITY_RANK: Final = {"warning": 1, "critical": 2}

RUNBOOKS: Final = {
    "traffic_cliff": (
        "Check the stream is live and the encoder/CDN healthy; compare traffic sources "
        "(a feed cut shows as one source collapsing); no events at all means the stream or "
        "the room's event ingest died; if QoE fell too, treat as an outage."
    ),
    "spam_flood": (
        "Mute the listed accounts (an action was emitted), consider slow or unique-chat "
        "mode, and block the sample phrases or contact ids."
    ),
    "latency_slo": (
        "Look at the region's CDN / edge nodes and the ingest path; compare regions on the "
        "QoE dashboard; fail over the edge if one region burns alone."
    ),
    "stall_slo": (
        "Check bitrate ladder and CDN health for the room; a stall burst with a latency burn "
        "in one region points at the edge, across regions at the origin or encoder."
    ),
}


class AlertKey(NamedTuple):
    alert: str
    room_id: str
    region: str | None = None


class Finding(msgspec.Struct, frozen=True):
    """What a detector sees at one evaluation for one key."""

    severity: Severity
    summary: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    kind: str = ""
    """A new kind within one alert (a fall that becomes a silence) is announced once."""


class Transition(msgspec.Struct, frozen=True, omit_defaults=False):
    """One alert state change: the public JSON contract of alerts (docs/detectors.md)."""

    alert: str
    state: Literal["firing", "resolved"]
    room_id: str
    ts: int
    """Event time of the transition, ms."""
    severity: Severity
    summary: str
    fingerprint: str
    details: dict[str, Any]
    region: str | None
    started_at: int
    """Event time the condition was first seen, ms."""
    runbook: str


def fingerprint(key: AlertKey) -> str:
    text = "\x1f".join((key.alert, key.room_id, key.region or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Active:
    started_at: int
    last_seen: int
    finding: Finding
    firing: bool = False
    kinds: set[str] = field(default_factory=set)


@dataclass
class AlertTracker:
    config: LifecycleConfig = field(default_factory=LifecycleConfig)
    active: dict[AlertKey, _Active] = field(default_factory=dict)

    def firing(self) -> dict[AlertKey, Finding]:
        return {key: a.finding for key, a in self.active.items() if a.firing}

    def update(
        self, ts: int, findings: dict[AlertKey, Finding], scope: str | None = None
    ) -> list[Transition]:
        """Transitions at event time `ts` given every finding of this evaluation.

        `scope`: only keys of this room are judged (a room evaluates its own
        alerts); None judges every key the tracker holds.
        """
        config = self.config
        out: list[Transition] = []
        for key, finding in findings.items():
            current = self.active.get(key)
            if current is None:
                current = self.active[key] = _Active(ts, ts, finding)
            rising = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[current.finding.severity]
            new_kind = current.firing and finding.kind not in current.kinds
            current.last_seen = ts
            if current.firing and not rising and not new_kind:
                # Keep the highest severity seen; refresh the numbers.
                current.finding = msgspec.structs.replace(
                    finding, severity=current.finding.severity
                )
                continue
            if current.firing and not rising:
                finding = msgspec.structs.replace(finding, severity=current.finding.severity)
            current.finding = finding
            if current.firing or ts - current.started_at >= config.for_s * 1000:
                current.firing = True
                current.kinds.add(finding.kind)
                out.append(self._transition(key, current, "firing", ts))
        for key in [k for k in self.active if scope is None or k.room_id == scope]:
            if key in findings:
                continue
            current = self.active[key]
            if not current.firing:
                del self.active[key]  # did not hold for `for_s`
            elif ts - current.last_seen >= config.resolve_after_s * 1000:
                out.append(self._resolve(key, ts))
        return out

    def resolve_room(self, room_id: str, ts: int, reason: str) -> list[Transition]:
        """The room is gone: resolve whatever it still has firing."""
        out = []
        for key in [k for k in self.active if k.room_id == room_id]:
            if self.active[key].firing:
                out.append(self._resolve(key, ts, reason))
            else:
                del self.active[key]
        return out

    def _resolve(self, key: AlertKey, ts: int, reason: str = "condition_cleared") -> Transition:
        current = self.active.pop(key)
        return self._transition(key, current, "resolved", ts, reason)

    def _transition(
        self,
        key: AlertKey,
        current: _Active,
        state: Literal["firing", "resolved"],
        ts: int,
        reason: str | None = None,
    ) -> Transition:
        details = dict(current.finding.details)
        if state == "resolved":
            details["duration_s"] = (ts - current.started_at) / 1000
            details["resolve_reason"] = reason
        return Transition(
            alert=key.alert,
            state=state,
            room_id=key.room_id,
            ts=ts,
            severity=current.finding.severity,
            summary=current.finding.summary,
            fingerprint=fingerprint(key),
            details=details,
            region=key.region,
            started_at=current.started_at,
            runbook=RUNBOOKS.get(key.alert, ""),
        )
