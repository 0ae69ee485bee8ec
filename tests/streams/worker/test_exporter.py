from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from streams.core.config import EngineConfig
from streams.core.decode import RawMessage
from streams.core.engine import Pipeline
from streams.settings import load_settings
from streams.worker.exporter import ExportConfig, PipelineCollector, sanitize_label_value
from tests.exposition import Samples
from tests.exposition import samples as parse

T0 = 1_764_000_000_000


def samples(registry: CollectorRegistry) -> Samples:
    return parse(generate_latest(registry).decode())


def message(room: str, body: str, offset: int) -> RawMessage:
    return RawMessage("live.joins", 0, offset, room.encode(), body.encode())


def test_scrape_renders_counters_and_viewers_from_the_pipeline_state() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0))
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    bodies = [
        ("a", f'{{"type":"join","room_id":"a","ts":{T0},"user_id":"u1"}}'),
        (
            "a",
            f'[{{"type":"join","room_id":"a","ts":{T0 + 1},"user_id":"u2"}},'
            f'{{"type":"leave","room_id":"a","ts":{T0 + 2},"user_id":"u1"}}]',
        ),
        ("b", f'{{"type":"join","room_id":"b","ts":{T0 + 3},"user_id":"u1"}}'),
        ("b", "garbage"),
    ]
    pipeline.process(0, [message(room, body, i) for i, (room, body) in enumerate(bodies)])
    pipeline.flush()
    got = samples(registry)
    assert got[("livewatch_events_total", (("type", "join"),))] == 3
    assert got[("livewatch_events_total", (("type", "leave"),))] == 1
    assert got[("livewatch_events_total", (("type", "order"),))] == 0
    assert got[("livewatch_events_invalid_total", (("reason", "not_json"),))] == 1
    assert got[("livewatch_room_online_viewers", (("room", "a"),))] == 1
    assert got[("livewatch_room_online_viewers", (("room", "b"),))] == 1
    assert got[("livewatch_online_viewers", ())] == 2
    assert got[("livewatch_rooms", ())] == 2
    assert got[("livewatch_events_late_total", ())] == 0
    watermark = ("livewatch_partition_watermark_timestamp_seconds", (("partition", "0"),))
    assert got[watermark] == (T0 + 3) / 1000
    assert got[("livewatch_room_entries_total", (("room", "a"),))] == 2
    assert got[("livewatch_room_peak_online_viewers", (("room", "a"),))] == 2
    assert got[("livewatch_room_unique_viewers", (("room", "a"), ("window", "live")))] == 2


def test_room_labels_cannot_break_lines_or_grow_without_bound() -> None:
    hostile = 'evil"}\nlivewatch_fake{x="1\u202e' + "z" * 300
    clean = sanitize_label_value(hostile)
    assert "\n" not in clean and "\u202e" not in clean
    assert len(clean) == 128

    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0))
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    room = 'evil"}\nlivewatch_fake 1'
    body = json.dumps({"type": "join", "room_id": room, "ts": T0, "user_id": "u"})
    pipeline.process(0, [RawMessage("t", 0, 0, room.encode(), body.encode())])
    pipeline.flush()
    text = generate_latest(registry).decode()
    assert "\nlivewatch_fake" not in text
    assert (
        samples(registry)[("livewatch_room_online_viewers", (("room", 'evil"}_livewatch_fake 1'),))]
        == 1
    )


def test_only_the_top_rooms_and_pinned_rooms_get_series_but_all_count_in_aggregates() -> None:
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0))
    registry = CollectorRegistry()
    registry.register(
        PipelineCollector(pipeline, ExportConfig(top_rooms=1, pinned_rooms=frozenset({"tiny"})))
    )
    viewers = {"big": 3, "mid": 2, "tiny": 1}
    messages = [
        RawMessage(
            "t",
            0,
            n,
            room.encode(),
            json.dumps(
                {"type": "join", "room_id": room, "ts": T0 + n, "user_id": f"u{i}"}
            ).encode(),
        )
        for n, (room, i) in enumerate(
            (room, i) for room, count in viewers.items() for i in range(count)
        )
    ]
    pipeline.process(0, messages)
    pipeline.flush()
    got = samples(registry)
    rooms = {
        dict(labels)["room"] for name, labels in got if name == "livewatch_room_online_viewers"
    }
    assert rooms == {"big", "tiny"}
    assert got[("livewatch_online_viewers", ())] == 6
    assert got[("livewatch_rooms", ())] == 3
    assert got[("livewatch_window_events", (("event", "entry"), ("window", "1m")))] == 6


def test_export_settings_come_from_the_settings() -> None:
    settings = load_settings(
        environ={"LIVEWATCH_TOP_ROOMS": "5", "LIVEWATCH_PINNED_ROOMS": "room-a, room-b,"}
    )
    config = ExportConfig.from_settings(settings)
    assert config.top_rooms == 5
    assert config.pinned_rooms == {"room-a", "room-b"}


def test_a_promotion_is_exported_by_room_with_its_review_and_no_promo_id() -> None:
    """`livewatch_room_promotion_active` while it runs, then the review of its end; the
    gauges hold what the room's review says (streams/core/review.py)."""
    pipeline = Pipeline(EngineConfig(allowed_lateness_ms=0))
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    events = [f'{{"type":"join","room_id":"a","ts":{T0 + i},"user_id":"u{i}"}}' for i in range(8)]
    events += [
        f'{{"type":"room","room_id":"a","ts":{T0 + 60_000},"phase":"promo_start","promo_id":"s1"}}',
        f'{{"type":"order","room_id":"a","ts":{T0 + 70_000},"user_id":"u1",'
        '"order_id":"o1","amount":12.5}',
    ]
    pipeline.process(0, [message("a", body, i) for i, body in enumerate(events)])
    pipeline.advance_idle(0, 20_000)
    got = samples(registry)
    room = (("room", "a"),)
    assert got[("livewatch_room_promotion_active", room)] == 1
    assert got[("livewatch_room_promotion_start_timestamp_seconds", room)] == T0 / 1000 + 60
    assert ("livewatch_room_promotion_end_timestamp_seconds", room) not in got
    assert got[("livewatch_room_promotion_viewers", (("at", "start"), *room))] == 8
    assert got[("livewatch_room_promotion_orders", (("phase", "during"), *room))] == 1
    assert got[("livewatch_room_promotion_gmv_yuan", (("phase", "during"), *room))] == 12.5
    end = f'{{"type":"room","room_id":"a","ts":{T0 + 100_000},"phase":"promo_end","promo_id":"s1"}}'
    pipeline.process(0, [message("a", end, 99)])
    pipeline.advance_idle(0, 700_000)
    got = samples(registry)
    assert got[("livewatch_room_promotion_active", room)] == 0
    assert got[("livewatch_room_promotion_end_timestamp_seconds", room)] == T0 / 1000 + 100
    # Nobody has an event after the end: all timed out well before ten minutes after it.
    assert got[("livewatch_room_promotion_retention_ratio", (("after", "10m"), *room))] == 0
    assert ("livewatch_room_promotion_retention_ratio", (("after", "30m"), *room)) not in got
    figures = pipeline.engines[0].rooms["a"].promotion_metrics()
    assert (
        got[("livewatch_room_promotion_watch_seconds", (("phase", "before"), *room))]
        == (figures["promotion_watch_seconds_before"])
    )
    assert not any("s1" in dict(labels).values() for _, labels in got)  # no promo_id label
