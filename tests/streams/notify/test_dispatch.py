"""Grouping, dedup, silences and inhibition, on an injected clock."""

from __future__ import annotations

from pathlib import Path

from detectors.alerts import Transition
from streams.notify.config import NotifyConfig
from streams.notify.dispatch import Dispatcher
from streams.notify.silences import SilenceStore

T0 = 1_764_000_000_000
CONFIG = NotifyConfig.from_table(
    {"group_wait_s": 10, "group_interval_s": 60, "repeat_interval_s": 3600}
)


def alert(
    name: str,
    state: str = "firing",
    room: str = "r1",
    ts: int = T0,
    region: str | None = None,
    severity: str = "critical",
) -> Transition:
    return Transition(
        name, state, room, ts, severity, f"{name} {state}", "f" * 16, {}, region, T0, ""
    )


def sent(dispatcher: Dispatcher, now: float) -> list[list[tuple[str, str]]]:
    return [
        sorted((a.alert, a.state) for a in due.notification.alerts)
        for due in dispatcher.due(now)
        if due.notification is not None
    ]


def test_alerts_of_a_room_wait_together_then_changes_follow_each_interval() -> None:
    d = Dispatcher(CONFIG)
    d.add(alert("traffic_cliff"), 1, now=0)
    d.add(alert("spam_flood"), 2, now=4)
    assert sent(d, 9) == []
    assert sent(d, 10) == [[("spam_flood", "firing"), ("traffic_cliff", "firing")]]
    d.add(alert("spam_flood", "resolved", ts=T0 + 1), 3, now=20)
    assert sent(d, 69) == []
    # The group's next message: what still fires, and what resolved since.
    assert sent(d, 70) == [[("spam_flood", "resolved"), ("traffic_cliff", "firing")]]


def test_tokens_come_back_with_the_message_that_carried_them() -> None:
    d = Dispatcher(CONFIG)
    assert d.add(alert("traffic_cliff"), "a", now=0) == 1
    assert d.add(alert("traffic_cliff", room="r2"), "b", now=0) == 1
    tokens = sorted(t for due in d.due(10) for t in due.tokens)
    assert tokens == ["a", "b"]


def test_a_redelivered_transition_is_not_sent_twice() -> None:
    d = Dispatcher(CONFIG)
    d.add(alert("traffic_cliff"), 1, now=0)
    assert sent(d, 10) == [[("traffic_cliff", "firing")]]
    assert d.add(alert("traffic_cliff"), 2, now=11) == 0
    assert sent(d, 200) == []


def test_copies_of_a_resolved_alert_sent_again_by_a_new_owner_are_dropped() -> None:
    """After a failover the new owner of a partition sends again what the dead worker
    sent after its last checkpoint: a firing and its resolution, both already out."""
    d = Dispatcher(CONFIG)
    firing, resolved = alert("latency_slo"), alert("latency_slo", "resolved", ts=T0 + 600_000)
    d.add(firing, 1, now=0)
    assert sent(d, 10) == [[("latency_slo", "firing")]]
    d.add(resolved, 2, now=20)
    assert sent(d, 70) == [[("latency_slo", "resolved")]]
    assert d.add(firing, 3, now=80) == 0
    assert d.add(resolved, 4, now=80) == 0
    assert sent(d, 10_000) == []
    # The same alert firing again later is news.
    assert d.add(alert("latency_slo", ts=T0 + 900_000), 5, now=90) == 1


def test_an_alert_resolved_within_group_wait_sends_nothing() -> None:
    d = Dispatcher(CONFIG)
    d.add(alert("spam_flood"), 1, now=0)
    d.add(alert("spam_flood", "resolved", ts=T0 + 1), 2, now=5)
    dues = d.due(10)
    assert [due.notification for due in dues] == [None]
    assert sorted(t for due in dues for t in due.tokens) == [1, 2]


def test_a_backlog_read_at_once_still_reports_what_lasted() -> None:
    """After a notifier outage, an alert that fired and resolved minutes apart in
    event time arrives in one batch: its resolution (with the duration) goes out."""
    d = Dispatcher(CONFIG)
    d.add(alert("spam_flood"), 1, now=0)
    d.add(alert("spam_flood", "resolved", ts=T0 + 600_000), 2, now=0)
    assert sent(d, 10) == [[("spam_flood", "resolved")]]


def test_still_firing_alerts_are_repeated() -> None:
    d = Dispatcher(CONFIG)
    d.add(alert("latency_slo", region="cn-south"), 1, now=0)
    assert sent(d, 10) == [[("latency_slo", "firing")]]
    assert sent(d, 3000) == []
    assert sent(d, 3610) == [[("latency_slo", "firing")]]


def test_a_cliff_inhibits_the_rooms_stall_alert_but_not_other_rooms() -> None:
    d = Dispatcher(CONFIG)
    d.add(alert("traffic_cliff"), 1, now=0)
    d.add(alert("stall_slo"), 2, now=1)
    d.add(alert("stall_slo", room="r2"), 3, now=1)
    assert sorted(sent(d, 11)) == [[("stall_slo", "firing")], [("traffic_cliff", "firing")]]


def test_silences_match_alert_and_room_and_expire(tmp_path: Path) -> None:
    store = SilenceStore(tmp_path / "silences.json")
    now_ms = 1_000_000
    silence = store.add(alert="spam_*", room="r1", duration_s=60, now_ms=now_ms)
    d = Dispatcher(CONFIG, store)
    assert d.add(alert("spam_flood"), 1, now=now_ms / 1000) == 0
    assert d.add(alert("spam_flood", room="r2"), 2, now=now_ms / 1000) == 1
    assert d.add(alert("traffic_cliff"), 3, now=now_ms / 1000) == 1
    # Expired: the same kind of alert goes out again.
    assert store.expire(silence.id, now_ms=now_ms + 1)
    assert d.add(alert("spam_flood", ts=T0 + 5), 4, now=now_ms / 1000 + 1) == 1
    # Persisted: another store (another process) reads the same silences.
    assert [s.id for s in SilenceStore(tmp_path / "silences.json").load()] == [silence.id]


def test_routes_pick_receivers_by_severity_and_room_glob() -> None:
    config = NotifyConfig.from_table(
        {
            "receivers": [{"name": "all", "kind": "console"}, {"name": "vip", "kind": "console"}],
            "routes": [
                {"receivers": ["all"]},
                {"receivers": ["vip"], "severities": ["critical"], "rooms": ["vip-*"]},
            ],
        }
    )
    assert config.receivers_for(alert("spam_flood", room="vip-1")) == ["all", "vip"]
    assert config.receivers_for(alert("spam_flood", room="vip-1", severity="warning")) == ["all"]
    assert config.receivers_for(alert("spam_flood", room="other")) == ["all"]
