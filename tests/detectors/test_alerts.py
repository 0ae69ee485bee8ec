"""The alert lifecycle: dedup, hysteresis, escalation, recurrence, stable fingerprints."""

from __future__ import annotations

from detectors.alerts import AlertKey, AlertTracker, Finding, fingerprint
from detectors.config import LifecycleConfig

KEY = AlertKey("latency_slo", "room-1", "cn-east")
WARN = Finding("warning", "p95 high", {"burn": 7})
CRIT = Finding("critical", "p95 very high", {"burn": 15})


def run(tracker: AlertTracker, timeline: dict[int, Finding | None]) -> list[tuple[int, str, str]]:
    out = []
    for second, finding in sorted(timeline.items()):
        findings = {KEY: finding} if finding else {}
        for t in tracker.update(second * 1000, findings):
            out.append((t.ts // 1000, t.state, t.severity))
    return out


def test_fires_once_escalates_once_and_resolves_after_quiet() -> None:
    timeline: dict[int, Finding | None] = {s: WARN for s in range(0, 50, 5)}
    timeline |= {s: CRIT for s in range(50, 100, 5)}
    timeline |= {s: WARN for s in range(100, 120, 5)}  # lower again: stays critical
    timeline |= {s: None for s in range(120, 300, 5)}
    assert run(AlertTracker(), timeline) == [
        (0, "firing", "warning"),
        (50, "firing", "critical"),
        (175, "resolved", "critical"),
    ]


def test_for_s_ignores_short_conditions_and_gaps_do_not_flap() -> None:
    tracker = AlertTracker(LifecycleConfig(for_s=20, resolve_after_s=60))
    blip = {0: WARN, 5: WARN, 10: None, 15: None}
    assert run(tracker, blip) == []
    # On and off faster than resolve_after_s: one alert, not a stream of pages.
    flapping = {s: (WARN if (s // 5) % 3 else None) for s in range(100, 300, 5)}
    eager = AlertTracker(LifecycleConfig(for_s=0, resolve_after_s=60))
    assert [t[1] for t in run(eager, flapping)] == ["firing"]


def test_a_recurrence_after_the_resolve_fires_again() -> None:
    # Incidents one after another (real RTT traces have them minutes apart) each page:
    # the one after the resolve is news, as in Prometheus, whatever it says.
    tracker = AlertTracker(LifecycleConfig(resolve_after_s=10))
    timeline: dict[int, Finding | None] = {0: WARN, 5: None, 20: None, 100: WARN, 105: None}
    timeline |= {120: None, 130: CRIT, 135: WARN}
    assert run(tracker, timeline) == [
        (0, "firing", "warning"),
        (20, "resolved", "warning"),
        (100, "firing", "warning"),
        (120, "resolved", "warning"),
        (130, "firing", "critical"),
    ]


def test_transitions_carry_start_time_duration_runbook_and_a_stable_fingerprint() -> None:
    tracker = AlertTracker(LifecycleConfig(resolve_after_s=10))
    fired = tracker.update(1_000, {KEY: WARN})[0]
    resolved = tracker.update(30_000, {})[0]
    assert fired.started_at == resolved.started_at == 1_000
    assert resolved.details["duration_s"] == 29.0
    assert fired.fingerprint == resolved.fingerprint == fingerprint(KEY)
    assert fingerprint(KEY) != fingerprint(AlertKey("latency_slo", "room-1", "cn-north"))
    assert len(fingerprint(KEY)) == 16 and fingerprint(KEY) == fingerprint(AlertKey(*KEY))
    assert "edge" in fired.runbook


def test_a_room_that_goes_away_resolves_its_alerts() -> None:
    tracker = AlertTracker()
    tracker.update(0, {KEY: WARN})
    gone = tracker.resolve_room("room-1", 50_000, "room_closed")
    assert [(t.state, t.details["resolve_reason"]) for t in gone] == [("resolved", "room_closed")]
    assert tracker.firing() == {}


def test_a_new_kind_of_finding_is_announced_once_without_lowering_severity() -> None:
    fall = Finding("critical", "traffic fell 80%", kind="fall")
    silent = Finding("warning", "room went silent", kind="silent")
    timeline: dict[int, Finding | None] = {0: fall, 5: fall, 10: silent, 15: silent, 20: fall}
    assert run(AlertTracker(), timeline) == [(0, "firing", "critical"), (10, "firing", "critical")]
