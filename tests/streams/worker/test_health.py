from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streams.worker.health import HealthCollector, WorkerHealth
from tests.exposition import samples


def test_checkpoint_age_is_rendered_at_scrape_time_and_forgotten_with_the_partition() -> None:
    health = WorkerHealth()
    now = [1000.0]
    registry = CollectorRegistry()
    registry.register(HealthCollector(health, clock=lambda: now[0]))
    health.checkpoint_written(3, 4096, 990.0)
    health.restores["restored"] += 2
    health.redelivered_messages += 5
    health.idle_flushes += 3
    now[0] = 1002.5

    scraped = samples(generate_latest(registry).decode())
    assert scraped[("livewatch_checkpoint_age_seconds", (("partition", "3"),))] == 12.5
    assert scraped[("livewatch_checkpoint_size_bytes", (("partition", "3"),))] == 4096
    assert scraped[("livewatch_checkpoints_written_total", ())] == 1
    assert scraped[("livewatch_checkpoint_restores_total", (("result", "restored"),))] == 2
    assert scraped[("livewatch_checkpoint_restores_total", (("result", "failed"),))] == 0
    assert scraped[("livewatch_redelivered_messages_total", ())] == 5
    assert scraped[("livewatch_idle_flushes_total", ())] == 3

    health.forget(3)
    scraped = samples(generate_latest(registry).decode())
    assert not [key for key in scraped if key[0] == "livewatch_checkpoint_age_seconds"]


def test_consumer_lag_and_watermark_delay_per_partition() -> None:
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(
            WorkerHealth(),
            clock=lambda: 1_000.0,
            lag=lambda: {("live.joins", 1): 250, ("live.latency", 0): 0},
            watermarks=lambda: {0: 940.0},
        )
    )
    scraped = samples(generate_latest(registry).decode())
    lag = "livewatch_consumer_lag_messages"
    assert scraped[(lag, (("partition", "1"), ("topic", "live.joins")))] == 250
    assert scraped[(lag, (("partition", "0"), ("topic", "live.latency")))] == 0
    assert scraped[("livewatch_watermark_delay_seconds", (("partition", "0"),))] == 60.0


def test_held_events_and_paused_sources_per_partition() -> None:
    health = WorkerHealth()
    health.source_pauses += 2
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(health, held=lambda: {0: 1_200, 1: 0}, paused=lambda: {0: 2, 1: 0})
    )
    scraped = samples(generate_latest(registry).decode())
    assert scraped[("livewatch_held_events", (("partition", "0"),))] == 1_200
    assert scraped[("livewatch_held_events", (("partition", "1"),))] == 0
    assert scraped[("livewatch_sources_paused", (("partition", "0"),))] == 2
    assert scraped[("livewatch_source_pauses_total", ())] == 2
