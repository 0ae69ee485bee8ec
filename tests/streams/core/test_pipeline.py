from __future__ import annotations

import json

from streams.core.config import EngineConfig
from streams.core.decode import TS_OUT_OF_BOUNDS, RawMessage
from streams.core.pipeline import Pipeline

T0 = 1_764_000_000_000


def test_out_of_bounds_events_are_rejected_with_their_origin_and_not_counted_as_valid() -> None:
    pipeline = Pipeline(EngineConfig(max_clock_skew_ms=60_000))
    batch = [
        {"type": "join", "room_id": "r", "ts": T0, "user_id": "a"},
        {"type": "join", "room_id": "r", "ts": T0 - 120_000, "user_id": "b"},
    ]
    message = RawMessage("live.joins", 2, 40, b"r", json.dumps(batch).encode())
    rejected = pipeline.process(2, [message])
    assert [(r.reason, r.index, r.message.offset) for r in rejected] == [(TS_OUT_OF_BOUNDS, 1, 40)]
    assert json.loads(rejected[0].payload or b"")["user_id"] == "b"
    assert pipeline.events_total["join"] == 1
    assert pipeline.invalid_total[TS_OUT_OF_BOUNDS] == 1


def test_late_counts_survive_a_revoked_partition() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=1_000))
    events = [
        {"type": "join", "room_id": "r", "ts": T0 + 10_000, "user_id": "a"},
        {"type": "leave", "room_id": "r", "ts": T0, "user_id": "a"},
    ]
    pipeline.process(
        0, [RawMessage("t", 0, i, b"r", json.dumps(e).encode()) for i, e in enumerate(events)]
    )
    assert pipeline.late_total == 1
    pipeline.revoke(0)
    assert pipeline.late_total == 1 and pipeline.engines == {}
