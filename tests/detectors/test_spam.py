# ruff: noqa: RUF001  (disguised look-alike text is what these tests feed)
"""Spam floods fire; organic hype, however repetitive, does not."""

from __future__ import annotations

import random

from detectors.spam import SpamDetector
from detectors.text import has_contact, normalize, sanitize_sample

T0 = 1_764_000_000_000


def feed(detector: SpamDetector, messages: list[tuple[int, str, str, bool]]) -> None:
    for ts, user, text, fresh in sorted(messages):
        detector.add(ts, user, text, fresh)


def test_organic_hype_floods_do_not_fire() -> None:
    rng = random.Random(3)
    hype = ["1", "扣1", "想要", "？？？", "哈哈哈哈哈哈", "666666", "好耶", "11111", "冲冲冲"]
    messages = [
        (T0 + rng.randrange(30_000), f"viewer{rng.randrange(400)}", rng.choice(hype), False)
        for _ in range(700)
    ]
    # Newcomers join the hype too, and many regulars post the host's phrase verbatim.
    messages += [(T0 + rng.randrange(30_000), f"new{i}", "扣1", True) for i in range(150)]
    messages += [
        (T0 + rng.randrange(30_000), f"fan{i}", "主播今天好漂亮呀", False) for i in range(120)
    ]
    detector = SpamDetector()
    feed(detector, messages)
    assert detector.evaluate(T0 + 30_000) is None


def test_a_bot_flood_with_disguised_variants_fires_with_accounts_and_safe_samples() -> None:
    rng = random.Random(4)
    variants = [
        "加微信 abc_888 领福利{}",
        "加 微 信：ａｂｃ_888 领 福 利 {}",
        "加微信 аbс_888 领福利!!{}",  # Cyrillic look-alikes
    ]
    bots = [
        (
            T0 + rng.randrange(20_000),
            f"bot{i % 40}",
            rng.choice(variants).format(rng.randrange(10**4)),
            True,
        )
        for i in range(80)
    ]
    organic = [(T0 + rng.randrange(20_000), f"v{i}", "这个多少钱", False) for i in range(30)]
    detector = SpamDetector()
    feed(detector, bots + organic)
    result = detector.evaluate(T0 + 20_000)
    assert result is not None
    finding, mute = result
    assert finding.severity == "critical"
    assert (
        "repeated_by_fresh_accounts" in finding.details["kinds"]
        or "repeated_contact_ads" in (finding.details["kinds"])
    )
    assert set(mute) <= {f"bot{i}" for i in range(40)} and len(mute) >= 30
    assert not any(user.startswith("v") for user in mute)
    assert 1 <= len(finding.details["samples"]) <= 3
    assert len(finding.details["top_accounts"]) == 5


def test_a_few_accounts_repeating_an_ad_fire() -> None:
    messages = [
        (T0 + i * 700, f"shill{i % 2}", f"关注我的直播间看更多好货 {i}", False) for i in range(12)
    ]
    detector = SpamDetector()
    feed(detector, messages)
    result = detector.evaluate(T0 + 10_000)
    assert result is not None and "repeated_by_few_accounts" in result[0].details["kinds"]


def test_one_account_over_the_twitch_rate_fires_even_with_hype_text() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 1000, "flooder", "1", False) for i in range(20)])
    result = detector.evaluate(T0 + 20_000)
    assert result is not None
    assert result[0].details["kinds"] == ["per_user_flood"] and result[1] == ["flooder"]
    nineteen = SpamDetector()
    feed(nineteen, [(T0 + i * 1000, "eager", "1", False) for i in range(19)])
    assert nineteen.evaluate(T0 + 20_000) is None


def test_contact_ids_fire_even_when_every_message_differs() -> None:
    texts = [
        "qq 12345678 私聊",
        "扣扣：87654321",
        "v信 shop_666a",
        "看这里 www.example.cn",
        "微信abcdef1",
    ]
    detector = SpamDetector()
    feed(detector, [(T0 + i, f"u{i}", t, False) for i, t in enumerate(texts)])
    result = detector.evaluate(T0 + 5_000)
    assert result is not None and "contact_ads" in result[0].details["kinds"]


def test_the_window_forgets_old_messages() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 100, "flooder", "1", False) for i in range(25)])
    assert detector.evaluate(T0 + 3_000) is not None
    assert detector.evaluate(T0 + 40_000) is None
    assert not detector.messages and not detector.per_user and not detector.cluster_size
    assert not detector.flooders


def test_a_flooder_stops_counting_once_under_the_rate_again() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 1000, "flooder", "1", False) for i in range(20)])
    assert detector.flooders == {"flooder"}
    assert detector.evaluate(T0 + 20_500) is not None
    assert detector.evaluate(T0 + 31_500) is None  # the first two messages left: 18 in 30 s
    assert detector.flooders == set()


def test_normalization_sees_through_disguises() -> None:
    assert (
        normalize("加 微 信：ａｂｃ_888")
        == normalize("加微信abc888")
        == normalize("加微信 аbс_888")
    )
    assert has_contact("ＱＱ：１２３４５６７") and has_contact("加 V 信 abcdef")
    assert not has_contact("扣1") and not has_contact("想要 3 号链接") and not has_contact("1.5元")


def test_samples_cannot_carry_mentions_links_or_markup() -> None:
    hostile = (
        '@all <at user_id="all"></at> <@U123> [点我](https://evil.com/x) www.bad.cn \u202e\x07'
    )
    safe = sanitize_sample(hostile)
    for forbidden in ("@", "<", ">", "https://", "www.", "evil.com", "\u202e", "\x07", "]("):
        assert forbidden not in safe
    assert len(sanitize_sample("长" * 500)) == 80
