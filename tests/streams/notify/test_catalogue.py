"""The message catalogue: both languages say the same things, with the same values,
in words no chat platform can take for markup."""

from __future__ import annotations

import string

from detectors.alerts import RUNBOOKS
from streams.core.room import CHANNELS
from streams.notify.catalogue import LANGUAGES, MESSAGES, NAMES, SPAM_KINDS
from streams.notify.catalogue import RUNBOOKS as TRANSLATED

MARKUP = set("@<>[]*#`|~!") | {"http", "\\u"}
"""What could ping, link or format in some platform; sentences carry none of it."""


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_message_with_the_same_fields() -> None:
    english = MESSAGES["en"]
    for language in LANGUAGES:
        messages = MESSAGES[language]
        assert set(messages) == set(english), language
        for key, template in messages.items():
            # The same values, and `name`: how a language calls a code (English keeps codes).
            assert fields(template) - {"name"} == fields(english[key]), (language, key)


def test_chinese_names_every_code_an_alert_carries() -> None:
    assert set(RUNBOOKS) | set(SPAM_KINDS) | set(CHANNELS) <= set(NAMES["zh-CN"])
    assert set(TRANSLATED["zh-CN"]) == set(RUNBOOKS.values())


def test_no_sentence_carries_markup() -> None:
    texts = [t for language in LANGUAGES for t in MESSAGES[language].values()]
    texts += [t for language in LANGUAGES for t in NAMES[language].values()]
    texts += [t for language in LANGUAGES for t in TRANSLATED[language].values()]
    for text in texts:
        assert not [m for m in MARKUP if m in text], text
