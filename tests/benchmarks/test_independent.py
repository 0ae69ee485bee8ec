"""The independent nights label what they hold, whatever the detectors do."""

from __future__ import annotations

import numpy as np

from benchmarks.independent import chat, rtt


def test_rtt_labels_incidents_with_onsets_spikes_and_tolerated_degradations() -> None:
    level = np.full(rtt.NIGHT_S, 300.0)
    level[1000:1060] = 2000  # a one-minute spike in a healthy region
    level[2000:2100] = 550  # degraded, growing into...
    level[2100:2400] = 700  # ...five minutes over the objective
    level[4000:4400] = 540  # degraded for over 5 minutes, never over the objective
    found, spikes = rtt._incidents(level)
    assert spikes == 1
    required = [i for i in found if i.get("required", True)]
    assert required == [{"start": rtt._ms(2100), "end": rtt._ms(2399), "onset": rtt._ms(2000)}]
    tolerated = [(i["start"], i["end"]) for i in found if not i.get("required", True)]
    # Tolerated while degraded, and while the last 12 minutes still are (a burn rate's view).
    assert any(start == rtt._ms(4000) and end >= rtt._ms(4399) for start, end in tolerated)
    assert not any(start <= rtt._ms(1030) <= end for start, end in tolerated)


def test_chat_nights_keep_every_real_message_and_label_each_injected_flood() -> None:
    start = 1_700_000_000_000
    messages = [(start + i * 2_000, f"viewer{i % 50}", f"message {i % 7}") for i in range(3000)]
    events, incidents = chat.night(messages, seed=3, room="r", english=False, floods=2)
    real = [e for e in events if e["type"] == "danmaku" and e["user_id"].startswith("c:")]
    assert len(real) == len(messages)
    assert len(incidents) == 2 and all(i["alert"] == "spam_flood" for i in incidents)
    bots = [e for e in events if e["type"] == "danmaku" and e["user_id"].startswith("bot")]
    for incident in incidents:
        inside = [e for e in bots if incident["start"] <= e["ts"] <= incident["end"]]
        assert len({e["user_id"] for e in inside}) >= 15
    joined = {e["user_id"]: e["ts"] for e in events if e["type"] == "join"}
    assert all(joined[e["user_id"]] < e["ts"] for e in bots)
    ends = max(e["ts"] for e in events)
    assert ends <= messages[-1][0] + 60_000
