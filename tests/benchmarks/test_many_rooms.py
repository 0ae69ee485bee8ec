"""The many-rooms benchmark's night: the quiet rooms hush for its last minutes, and the
baseline night holds exactly the watched rooms' events."""

import pytest

from benchmarks.many_rooms import SILENT, Night, rooms, schedule, without


def test_quiet_rooms_send_nothing_in_the_hush_and_stay_online() -> None:
    made = rooms(40)
    due = schedule(made, seconds=400, silent_at_s=260, hush_at_s=220)
    quiet = {room.name for room in made if room.quiet}
    sent_by = {second: {e["room_id"] for _, e in events} for second, events in enumerate(due)}
    assert all(not sent_by[s] & quiet for s in range(220, 400))
    assert all(sent_by[s] & quiet for s in range(100, 220, 30))
    # A quiet room's last sample is at most a minute before the hush: its viewers stay
    # online through three minutes of it (the session timeout is five).
    last = {e["room_id"]: s for s, events in enumerate(due) for _, e in events}
    assert min(last[name] for name in quiet) >= 220 - 60
    assert last[SILENT] < 260
    watched = [room.name for room in made if not room.quiet and room.name != SILENT]
    assert all(last[name] >= 390 for name in watched)


def test_the_baseline_night_is_the_watched_rooms_events_alone() -> None:
    made = rooms(40)
    due = schedule(made, seconds=300, silent_at_s=200, hush_at_s=120)
    quiet = {room.name for room in made if room.quiet}
    kept = without(due, quiet)
    assert len(kept) == len(due)
    for events, left in zip(due, kept, strict=True):
        assert left == [(kind, e) for kind, e in events if e["room_id"] not in quiet]
    assert sum(map(len, kept)) > 0


def test_a_room_costs_what_the_worker_grew_by_over_the_rooms_held(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = Night(
        events=10,
        rate=5.0,
        held=1024,
        lag=0,
        caught_up_s=1.0,
        steady_cpu=0.5,
        hush_cpu=0.2,
        steady_children=0.05,
        hush_children=0.04,
        idle_mib=100.0,
        end_mib=101.0,
        peak_mib=102.0,
        silent_alert_s=None,
        others=[],
    )
    assert run.room_bytes() == 1024.0
    run.show()
    assert "NO ALERT" in capsys.readouterr().out
