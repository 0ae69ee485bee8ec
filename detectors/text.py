# ruff: noqa: RUF001  (look-alike characters are the point of this module)
"""Chat text handling shared by detectors: normalization and safe samples.

Danmaku is untrusted. Normalization maps the tricks spammers use to evade
filters (full-width forms, inserted spaces and symbols, zero-width characters,
look-alike letters) onto one form. Samples quoted in alerts are neutralized: no
control characters, no live links or mentions, no markup brackets, bounded length.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

import regex

# Cyrillic and Greek letters that render like Latin ones (a common evasion).
_LOOKALIKES: Final = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x",
    }
)  # fmt: skip
_CONTACT: Final = re.compile(
    r"(?:微信|威信|薇信|v信|vx|wx|weixin|wechat|加v|加微)[:]?"
    r"(?:[a-z][a-z0-9_-]{5,19}|[a-z0-9_-]{0,16}\d{3,})"
    r"|(?:qq|扣扣|企鹅|q号)[:]?\d{5,11}"
    r"|(?<!\d)1[3-9]\d{9}(?!\d)"
    r"|https?://|www\.|[a-z0-9-]{2,}\.(?:com|cn|net|top|xyz|vip|cc|me|io|shop)(?![a-z])"
)
_ADDRESS: Final = re.compile(r"[a-z0-9-]{2,}(?:\.+[a-z][a-z0-9-]*)+/[a-z0-9]")
"""A host and a path, whatever its top-level domain (short-link services use many): read
with the separators spammers insert removed, dots and slashes kept (`_SEPARATORS`)."""
_DIGITS: Final = re.compile(r"[0-9]+")
_LINKISH: Final = re.compile(r"(?i)(https?)://|www\.|(?<=[a-z0-9])\.(?=[a-z]{2,})")
_MARKUP: Final = str.maketrans({"<": "‹", ">": "›", "@": "＠", "`": "'", "[": "(", "]": ")"})


_INVISIBLE: Final = regex.compile(r"[\p{C}\p{Z}]+")
_NOT_CORE: Final = regex.compile(r"[\p{C}\p{P}\p{S}\p{Z}\p{M}]+")
_SEPARATORS: Final = regex.compile(r"[^\w./:]+")


def _light(text: str) -> str:
    """NFKC, case-folded, look-alikes mapped, spaces and invisible characters removed."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).casefold().translate(_LOOKALIKES))


def normalize(text: str) -> str:
    """The comparable core of a message: letters, digits and CJK only."""
    return analyze(text)[0]


def template(text: str) -> str:
    """The core with every run of digits (in ids, amounts, codes) replaced by `#`: spam
    templates vary their numbers per message, as log lines vary their parameters
    (log parsers' `<*>`). Letters stay: the core has no word boundaries left, and an
    id's letters are a small part of a message."""
    return analyze(text)[1]


def has_contact(text: str) -> bool:
    """A WeChat id, QQ number, phone number or link (a known domain, or any host with a
    path), even when disguised."""
    return analyze(text)[2]


@lru_cache(maxsize=8192)
def analyze(text: str) -> tuple[str, str, bool]:
    """(normalize(text), template(text), has_contact(text)); chat repeats itself, so
    it is cached."""
    light = _light(text)
    core = _NOT_CORE.sub("", light)
    contact = bool(
        _CONTACT.search(light.replace("：", ":"))
        or _CONTACT.search(core)
        or _ADDRESS.search(_SEPARATORS.sub("", light))
    )
    return core, _DIGITS.sub("#", core), contact


def sanitize_sample(text: str, limit: int = 80) -> str:
    """A quotable, inert version of user text for alerts."""
    cleaned = "".join(
        ch if not unicodedata.category(ch).startswith("C") else " "
        for ch in unicodedata.normalize("NFKC", text)
    )
    cleaned = " ".join(cleaned.split())
    cleaned = _LINKISH.sub(_defang, cleaned).translate(_MARKUP)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _defang(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.endswith("://"):
        return match.group(1).lower().replace("t", "x", 2) + "(:)//"  # hxxp(:)//
    if found.lower() == "www.":
        return "www(.)"
    return "(.)"
