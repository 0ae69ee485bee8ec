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
    assert detector.evaluate(T0 + 30_000) == (None, [], [])


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
    finding, mute, _ = detector.evaluate(T0 + 20_000)
    assert finding is not None and finding.severity == "critical"
    assert (
        "repeated_by_fresh_accounts" in finding.details["kinds"]
        or "repeated_contact_ads" in (finding.details["kinds"])
    )
    assert set(mute) <= {f"bot{i}" for i in range(40)} and len(mute) >= 30
    assert not any(user.startswith("v") for user in mute)
    assert 1 <= len(finding.details["samples"]) <= 3
    assert len(finding.details["top_accounts"]) == 5


def test_a_few_fresh_accounts_repeating_an_ad_fire_established_ones_are_muted() -> None:
    def shills(fresh: bool) -> list[tuple[int, str, str, bool]]:
        return [
            (T0 + i * 700, f"shill{i % 3}", f"关注我的直播间看更多好货 {i}", fresh and i < 3)
            for i in range(15)
        ]

    detector = SpamDetector()
    feed(detector, shills(fresh=True))
    finding, mute, _ = detector.evaluate(T0 + 11_000)
    assert finding is not None and "repeated_by_few_accounts" in finding.details["kinds"]
    assert sorted(mute) == ["shill0", "shill1", "shill2"]
    # Regulars chanting one line every two seconds: a moderation matter.
    regulars = SpamDetector()
    feed(regulars, shills(fresh=False))
    assert regulars.evaluate(T0 + 11_000) == (None, [], ["shill0", "shill1", "shill2"])


def test_one_or_two_accounts_repeating_themselves_get_a_mute_action_not_an_alert() -> None:
    # A fan announcing their gifts ten times in 30 s, below any rate limit.
    messages = [(T0 + i * 2_800, "fan", f"小鱼送出了{i + 1}个小心心", False) for i in range(10)]
    messages += [(T0 + i * 900, f"viewer{i}", "今天的价格真的很划算", False) for i in range(20)]
    detector = SpamDetector()
    feed(detector, messages)
    assert detector.evaluate(T0 + 28_000) == (None, [], ["fan"])
    # Asked once: the same account repeating on is not asked for again within the window.
    detector.add(T0 + 29_000, "fan", "小鱼送出了11个小心心", False)
    assert detector.evaluate(T0 + 29_500) == (None, [], [])
    pair = SpamDetector()
    feed(pair, [(T0 + i * 1_000, f"seller{i % 2}", f"店铺上新第{i}款", False) for i in range(12)])
    assert pair.evaluate(T0 + 12_000) == (None, [], ["seller0", "seller1"])


def test_one_account_over_the_twitch_rate_fires_even_with_hype_text() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 1000, "flooder", "1", False) for i in range(20)])
    finding, mute, _ = detector.evaluate(T0 + 20_000)
    assert finding is not None
    assert finding.details["kinds"] == ["per_user_flood"] and mute == ["flooder"]
    nineteen = SpamDetector()
    feed(nineteen, [(T0 + i * 1000, "eager", "1", False) for i in range(19)])
    assert nineteen.evaluate(T0 + 20_000).flood is None


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
    finding = detector.evaluate(T0 + 5_000).flood
    assert finding is not None and "contact_ads" in finding.details["kinds"]


def test_the_window_forgets_old_messages() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 100, "flooder", "1", False) for i in range(25)])
    assert detector.evaluate(T0 + 3_000).flood is not None
    assert detector.evaluate(T0 + 40_000) == (None, [], [])
    assert not detector.messages and not detector.per_user and not detector.cluster_size
    assert not detector.flooders


def test_a_flooder_stops_counting_once_under_the_rate_again() -> None:
    detector = SpamDetector()
    feed(detector, [(T0 + i * 1000, "flooder", "1", False) for i in range(20)])
    assert detector.flooders == {"flooder"}
    assert detector.evaluate(T0 + 20_500).flood is not None
    assert detector.evaluate(T0 + 31_500).flood is None  # the first two messages left: 18 in 30 s
    assert detector.flooders == set()


def test_normalization_sees_through_disguises() -> None:
    assert (
        normalize("加 微 信：ａｂｃ_888")
        == normalize("加微信abc888")
        == normalize("加微信 аbс_888")
    )
    assert has_contact("ＱＱ：１２３４５６７") and has_contact("加 V 信 abcdef")
    assert not has_contact("扣1") and not has_contact("想要 3 号链接") and not has_contact("1.5元")
    # A host with a path, whatever its domain, with separators and look-alikes in it.
    assert has_contact("戳 ｓu|o.ＩＭ/·Ｋ8~ｑz 领券") and has_contact("看 ab.c·d.xｙ/a1")
    assert not has_contact("评分 4.5/5") and not has_contact("and/or e.g. this")


def test_samples_cannot_carry_mentions_links_or_markup() -> None:
    hostile = (
        '@all <at user_id="all"></at> <@U123> [点我](https://evil.com/x) www.bad.cn \u202e\x07'
    )
    safe = sanitize_sample(hostile)
    for forbidden in ("@", "<", ">", "https://", "www.", "evil.com", "\u202e", "\x07", "]("):
        assert forbidden not in safe
    assert len(sanitize_sample("长" * 500)) == 80


def _disguise(rng: random.Random, text: str) -> str:
    """What flooders do to slip past filters: full-width letters, a separator somewhere,
    a trailing emoji or exclamation marks."""
    if rng.random() < 0.4:
        text = "".join(
            chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in text
        )
    cut = rng.randrange(1, len(text))
    text = text[:cut] + rng.choice(["·", "~", ".", " ", "|"]) + text[cut:]
    return text + rng.choice(["", "", "!!", "🎁", "🔥🔥"])


def _bot_flood(rng: random.Random, start: int, bots: int, templates: list[str]) -> list:
    """`bots` accounts that joined just before writing, each posting every 2-5 s for
    three minutes, their ids and amounts changing per message."""
    messages = []
    for bot in range(bots):
        ts = start + rng.randrange(5_000)
        first = True
        while ts < start + 180_000:
            text = rng.choice(templates).format(n=rng.randrange(10, 10**5))
            messages.append((ts, f"bot{bot}", _disguise(rng, text), first))
            ts += rng.randrange(2_000, 5_000)
            first = False
    return messages


def _first_flood(detector: SpamDetector, messages: list, until: int) -> int | None:
    """Event time of the first flood finding, evaluating every 5 s as the engine does."""
    pending = sorted(messages)
    for now in range(T0 + 5_000, until, 5_000):
        while pending and pending[0][0] < now:
            ts, user, text, fresh = pending.pop(0)
            detector.add(ts, user, text, fresh)
        if detector.evaluate(now).flood is not None:
            return now
    return None


def test_template_floods_with_changing_ids_fire_in_a_quiet_and_a_busy_room() -> None:
    rng = random.Random(11)
    templates = ["私信拿内部价 vx:ab{n}", "福利群{n}进来有惊喜", "扫主页二维码领{n}元无门槛"]
    flood = _bot_flood(rng, T0 + 60_000, 22, templates)
    assert _first_flood(SpamDetector(), flood, T0 + 300_000) <= T0 + 60_000 + 30_000
    chatter = ["主播好", "这个颜色好看", "哈哈哈哈", "？？？", "上链接", "身高160穿什么码"]
    busy = [
        (T0 + rng.randrange(300_000), f"viewer{rng.randrange(3000)}", rng.choice(chatter), False)
        for _ in range(3500)  # ~700 messages a minute
    ]
    assert _first_flood(SpamDetector(), busy + flood, T0 + 300_000) <= T0 + 90_000
    assert _first_flood(SpamDetector(), busy, T0 + 300_000) is None


def test_newcomers_asking_the_same_shopping_question_is_not_a_flood() -> None:
    rng = random.Random(5)
    wordings = ["请问这款有几种颜色", "这款有几种颜色呀", "有几种颜色可以选", "这款几种颜色"]
    messages = [
        (T0 + rng.randrange(30_000), f"new{i}", rng.choice(wordings), True) for i in range(15)
    ]
    messages += [
        (T0 + rng.randrange(30_000), f"new{i}", "请问这款有几种颜色", False) for i in (1, 2)
    ]
    detector = SpamDetector()
    feed(detector, messages)
    assert detector.evaluate(T0 + 30_000) == (None, [], [])


def test_fresh_accounts_each_writing_fast_are_a_flood_whatever_their_texts() -> None:
    rng = random.Random(8)
    words = "春夏秋冬东南西北上下左右前后天地山水花鸟风月金木土火日星云雨"
    messages = [
        (T0 + i * 3_000 + bot * 97, f"bot{bot}", "".join(rng.sample(words, 8)), i == 0)
        for bot in range(10)
        for i in range(6)
    ]
    detector = SpamDetector()
    feed(detector, messages)
    finding = detector.evaluate(T0 + 20_000).flood
    assert finding is not None and finding.details["kinds"] == ["fresh_accounts_burst"]
    regulars = [(ts, user.replace("bot", "fan"), text, False) for ts, user, text, _ in messages]
    calm = SpamDetector()
    feed(calm, regulars)
    assert calm.evaluate(T0 + 20_000).flood is None


def test_one_account_posting_its_contact_is_muted_not_a_room_flood() -> None:
    detector = SpamDetector()
    feed(
        detector, [(T0 + i * 3_000, "seller", f"加微信 shop{i}8888 有货", False) for i in range(6)]
    )
    assert detector.evaluate(T0 + 20_000) == (None, [], ["seller"])
