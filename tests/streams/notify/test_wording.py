# ruff: noqa: RUF001  (Chinese text and the look-alikes that replace markup are the point)
"""Alert text in both languages: read from the alerts' details as the detectors write
them, and never losing what the catalogue has no words for."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
import pytest

from detectors.alerts import RUNBOOKS, Transition
from detectors.cliff import SIGNALS, channel_hints, qoe_hint
from detectors.config import DetectorConfig
from detectors.ebb import EbbEstimate, ebb_hint
from streams.logs.backtest import run_backtest
from streams.notify import wording
from streams.notify.catalogue import LANGUAGES, Language
from streams.notify.wording import (
    hint,
    hints,
    resolve_reason,
    runbook,
    summary,
    summary_from_details,
    words,
)
from streams.settings import load_settings

T0 = 1_764_000_000_000
DEMO = "streams/dev/samples/demo-night.jsonl.gz"
NOT_WRITTEN_YET = {"spam_flood": "window_s", "latency_slo": "slo_ms"}
"""Details the catalogue needs that the detectors do not write yet (detectors/spam.py
`SpamDetector._finding`, detectors/slo.py `latency_finding`): without them the
summary is the alert's own."""


@functools.cache
def demo_night() -> tuple[Transition, ...]:
    """Every transition of the bundled demo night, as the worker publishes them."""
    settings = load_settings(environ={})
    transitions = tuple(run_backtest(DEMO, settings).transitions)
    assert {t.alert for t in transitions} >= {"traffic_cliff", "spam_flood", "latency_slo"}
    return transitions


def with_details(t: Transition, **details: Any) -> Transition:
    return msgspec.structs.replace(t, details={**t.details, **details})


def completed(t: Transition) -> Transition:
    """`t` with the details the detectors do not write yet, as they would write them."""
    extra = {
        "spam_flood": {"window_s": DetectorConfig().spam.window_s},
        "latency_slo": {"slo_ms": load_settings(environ={}).latency_slo_ms},
    }.get(t.alert, {})
    return with_details(t, **{k: v for k, v in extra.items() if k not in t.details})


def test_a_real_nights_summaries_read_in_english_word_for_word_as_the_detectors_wrote() -> None:
    for t in map(completed, demo_night()):
        assert summary_from_details(t, "en") == t.summary
        chinese = summary_from_details(t, "zh-CN")
        assert chinese is not None and chinese != t.summary
        assert not any(word in chinese for word in ("expected", "spam", "latency", "burn")), t


def test_the_details_the_detectors_do_not_write_yet_leave_their_summary_as_it_is() -> None:
    for t in demo_night():
        for language in LANGUAGES:
            if summary_from_details(t, language) is None:
                assert NOT_WRITTEN_YET.get(t.alert) not in (None, *t.details), t
            assert summary(t, language) in (t.summary, summary_from_details(t, language))


def cliff(**details: Any) -> Transition:
    return Transition(
        "traffic_cliff",
        "firing",
        "room-1",
        T0,
        "critical",
        "traffic fell 80% within 45s: online viewers 1,200 vs 6,000 expected",
        "0" * 16,
        {
            "signals": {"online": {"observed": 1200.0, "expected": 6000.0, "drop": 0.8}},
            "window_s": 30,
            "silent": False,
            "fell_within_s": 45,
            "hints": [],
            **details,
        },
        None,
        T0,
        RUNBOOKS["traffic_cliff"],
    )


def test_a_cliff_in_both_languages() -> None:
    assert summary(cliff(), "en") == cliff().summary
    assert summary(cliff(), "zh-CN") == "流量在 45 秒内下跌 80%：在线人数 1,200，预期 6,000"


@pytest.mark.parametrize(
    "alert",
    [
        msgspec.structs.replace(cliff(), alert="ebb_alarm"),  # an alert type it does not know
        cliff(novelty=3),  # a detail it has no words for
        cliff(signals={"online": {"observed": 1.0, "expected": 2.0, "drop": 0.5, "z": 3}}),
        cliff(signals={"gifts": {"observed": 1.0, "expected": 2.0, "drop": 0.5}}),
        cliff(signals={}),
        cliff(window_s="30"),  # not a number
        cliff(fell_within_s=float("nan")),
        cliff(silent="yes"),
        msgspec.structs.replace(cliff(), details={"signals": {}}),  # missing values
    ],
    ids=repr,
)
def test_what_the_catalogue_does_not_know_is_said_as_the_alert_says_it(alert: Transition) -> None:
    for language in LANGUAGES:
        assert summary_from_details(alert, language) is None
        assert summary(alert, language) == alert.summary


def test_an_unknown_flood_kind_keeps_the_alerts_summary() -> None:
    (flood,) = [t for t in demo_night() if t.alert == "spam_flood" and t.state == "firing"]
    flood = completed(flood)
    assert summary_from_details(flood, "zh-CN") is not None
    odd = with_details(flood, kinds=["gift_storm"])
    assert summary(odd, "zh-CN") == odd.summary


HINTS = [
    qoe_hint(0.8123, 0.0345),
    qoe_hint(None, None),
    *channel_hints(["feed", "follow", "ad"], [60.0, 30.0, 10.0], [5.0, 30.0, 10.0]),
    ebb_hint(EbbEstimate(T0 // 1000 - 600, 12_345.0, 2_000.0, 300.0, 3_000.0, 4_000.0)),
    ebb_hint(EbbEstimate(T0 // 1000 - 600, 12_345.0, 0.0, 300.0, 3_000.0, 4_000.0)),
]
CHINESE_HINTS = [
    "播放质量也在变差：最近一分钟延迟 p95 为 0.81 秒，卡顿率 3.5%",
    "播放质量也在变差：最近一分钟延迟 p95 为 0.00 秒，卡顿率 0.0%",
    "流量来源「推荐流（feed）」断流：此前占进房的 60%，最近 15 秒只占 11%",
    "UTC 15:50 的促销高峰（12,345 人）正在回落（半衰期 5.0 分钟，低点为促销前水平的 1.5 倍）："
    "回落只能解释缓慢的下跌，解释不了这么快的下跌",
    "UTC 15:50 的促销高峰（12,345 人）正在回落（半衰期 5.0 分钟，低点 3,000 人，"
    "促销前几乎没有观众）：回落只能解释缓慢的下跌，解释不了这么快的下跌",
]


def test_the_detectors_hints_read_in_both_languages() -> None:
    assert [hint(h, "en") for h in HINTS] == HINTS
    assert [hint(h, "zh-CN") for h in HINTS] == CHINESE_HINTS


def test_a_hint_worded_otherwise_is_kept_made_inert() -> None:
    for language in LANGUAGES:
        assert (
            hint("the CDN in cn-south is @all down", language)
            == "the CDN in cn-south is ＠all down"
        )
        assert hint("traffic source '<@U1>' collapsed: 1% of", language).count("‹＠U1›") == 1
    alert = cliff(hints=[*HINTS, "more"])
    assert hints(alert, "zh-CN") == CHINESE_HINTS[:3]  # at most three, as before


def test_every_runbook_is_translated_and_a_changed_one_is_shown_as_it_is() -> None:
    for alert, text in RUNBOOKS.items():
        t = msgspec.structs.replace(cliff(), alert=alert, runbook=text)
        assert runbook(t, "en") == text
        chinese = runbook(t, "zh-CN")
        assert chinese != text and "，" in chinese
    changed = msgspec.structs.replace(cliff(), runbook=RUNBOOKS["traffic_cliff"] + " Call @all.")
    assert runbook(changed, "zh-CN") == RUNBOOKS["traffic_cliff"] + " Call ＠all."


def test_numbers_and_lists_are_formatted_for_the_locale_by_babel() -> None:
    en, zh = words("en"), words("zh-CN")
    assert en.number(1_234_567.4) == zh.number(1_234_567.4) == "1,234,567"
    assert en.percent(0.0345, 1) == "3.4%" and zh.percent(0.731) == "73%"
    assert en.listing(["a", "b", "c"]) == "a, b, c"
    assert zh.listing(["a", "b", "c"]) == "a、b和c"
    assert (
        zh.name("spam_flood") == "弹幕刷屏（spam_flood）" and en.name("spam_flood") == "spam_flood"
    )
    assert zh.name("@all") == "＠all"


def test_a_resolution_says_why_when_it_is_news() -> None:
    closed = msgspec.structs.replace(cliff(resolve_reason="room_closed"), state="resolved")
    cleared = msgspec.structs.replace(cliff(resolve_reason="condition_cleared"), state="resolved")
    odd = msgspec.structs.replace(cliff(resolve_reason="<!channel>"), state="resolved")
    assert resolve_reason(closed, "zh-CN") == "直播间已下播"
    assert resolve_reason(closed, "en") == "the room closed"
    assert resolve_reason(cleared, "en") is None and resolve_reason(cliff(), "en") is None
    assert resolve_reason(odd, "en") == "resolved: ‹!channel›"
    ended = msgspec.structs.replace(cliff(resolve_reason="stream_ended"), state="resolved")
    assert resolve_reason(ended, "en") == "the stream ended"
    assert resolve_reason(ended, "zh-CN") == "直播已结束"


def test_the_cliff_signals_are_the_detectors() -> None:
    assert wording.SIGNALS == SIGNALS


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_summary_from_details_is_bounded(language: Language) -> None:
    many = {s: {"observed": 1e300, "expected": 1e301, "drop": 0.9} for s in SIGNALS}
    assert len(summary(cliff(signals=many), language)) <= wording.SUMMARY_LIMIT
