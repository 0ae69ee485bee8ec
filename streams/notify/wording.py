"""Alert text in the receiver's language, from the alert's structured fields.

An alert's summary is rendered from its `details` (the numbers the detectors put
there) with the receiver's message catalogue (streams.notify.catalogue), numbers
formatted for its locale by Babel. Hints are sentences in the alert (the worker
writes them in English), recognised by the detectors' own wording and rendered
again with their numbers; runbooks are translated by their English text. Whatever
the catalogue does not know (an alert type, a spam kind, a detail it has no words
for, a hint worded otherwise) is shown as the alert itself says it: text is never
lost for the sake of a language.

Every value taken from an alert is made inert here (`safe`, or parsed as a number)
before it goes into a sentence; the formats escape the sentences for their markup.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from babel.lists import format_list
from babel.numbers import format_decimal, format_percent

from detectors.alerts import Transition
from detectors.text import sanitize_sample
from streams.notify.catalogue import (
    LIST_STYLES,
    LOCALES,
    MESSAGES,
    NAMES,
    RUNBOOKS,
    SPAM_KINDS,
    Language,
)

SUMMARY_LIMIT: Final = 300
_COUNT: Final = "#,##0"


def safe(text: str, limit: int = 120) -> str:
    """User- or producer-written text made inert (see detectors.text.sanitize_sample)."""
    return sanitize_sample(str(text), limit)


class Unknown(Exception):
    """The alert holds something the catalogue has no words for."""


class Words:
    """One language's messages, and its numbers and lists formatted by Babel."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self.locale = LOCALES[language]
        self.messages = MESSAGES[language]
        self.names = NAMES[language]
        self.list_style = LIST_STYLES[language]
        # Babel loads a locale's data on first use: load it now, not in a message's
        # time (a rate-limited send would pay for it).
        self.listing([self.number(0), self.percent(0)])

    def __call__(self, key: str, **values: object) -> str:
        return self.messages[key].format(**values)

    def number(self, value: float | Decimal, pattern: str = _COUNT) -> str:
        return format_decimal(_finite(value), pattern, locale=self.locale)

    def percent(self, value: float | Decimal, decimals: int = 0) -> str:
        pattern = "#,##0%" if not decimals else "#,##0." + "0" * decimals + "%"
        return format_percent(_finite(value), pattern, locale=self.locale)

    def listing(self, items: list[str]) -> str:
        return format_list(items, style=self.list_style, locale=self.locale)  # type: ignore[arg-type]

    def name(self, code: str, key: str = "alert") -> str:
        """A code (alert type, channel) as this language calls it, the code kept."""
        inert = safe(code, 64)
        name = self.names.get(code)
        return self(key, code=inert, name=name) if name else inert

    def severity(self, severity: str) -> str:
        return self.messages.get(f"severity.{severity}", safe(severity, 16))

    def clock(self, ms: int) -> str:
        return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))


@lru_cache(maxsize=len(LOCALES))
def words(language: Language) -> Words:
    return Words(language)


def _finite(value: float | Decimal) -> float | Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Unknown(f"not a number: {value!r}")
    if not math.isfinite(value):
        raise Unknown(f"not a finite number: {value!r}")
    return value


def bounded(text: str, limit: int) -> str:
    """Our own sentence (inert values in catalogue text) cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- Summaries ------------------------------------------------------------------

_COMMON: Final = frozenset({"hints", "duration_s", "resolve_reason"})
"""Details every alert may carry, said elsewhere in the message (hints, how long)."""
_BURN: Final = frozenset(
    {
        "burn_rate_long",
        "burn_rate_short",
        "window_long_s",
        "window_short_s",
        "threshold",
        "bad_share_long",
        "objective",
    }
)
_LEVEL: Final = frozenset({"bad_share", "bad_share_parts", "window_s", "samples"})
SIGNALS: Final = ("online", "entries", "activity")
"""detectors.cliff.SIGNALS, in the order the detector lists them (a test compares
them; not imported, so the import chains stay short: tests/test_layout.py)."""
_SPAM: Final = frozenset(
    {"kinds", "messages", "accounts", "window_messages", "top_accounts", "samples", "window_s"}
)


def _known(details: Mapping[str, Any], keys: frozenset[str]) -> None:
    """Refuse details beyond `keys`: those a summary says, and those the detector's own
    summary leaves out too. A new detail may be news the catalogue cannot tell."""
    unknown = set(details) - keys - _COMMON
    if unknown:
        raise Unknown(f"details {sorted(unknown)}")


def _cliff(d: Mapping[str, Any], w: Words) -> str:
    _known(d, frozenset({"signals", "window_s", "silent", "fell_within_s"}))
    signals: Mapping[str, Mapping[str, Any]] = d["signals"]
    if not signals or set(signals) - set(SIGNALS):
        raise Unknown(f"signals {sorted(signals)}")
    parts = []
    for signal in sorted(signals, key=SIGNALS.index):
        values = signals[signal]
        if set(values) != {"observed", "expected", "drop"}:
            raise Unknown(f"signal {signal}: {sorted(values)}")
        parts.append(
            w(
                f"cliff.{signal}",
                observed=w.number(values["observed"]),
                expected=w.number(values["expected"]),
                window=w.number(d["window_s"]),
            )
        )
    drop = max(_finite(values["drop"]) for values in signals.values())
    if not isinstance(d["silent"], bool):
        raise Unknown(f"silent {d['silent']!r}")
    return w(
        "cliff.silent" if d["silent"] else "cliff.fell",
        drop=w.percent(drop),
        within=w.number(d["fell_within_s"]),
        signals=w("cliff.separator").join(parts),
    )


def _spam(d: Mapping[str, Any], w: Words) -> str:
    _known(d, _SPAM)
    kinds = d["kinds"]
    if not kinds or any(kind not in SPAM_KINDS for kind in kinds):
        raise Unknown(f"kinds {kinds!r}")
    return w(
        "spam",
        messages=w.number(d["messages"]),
        window=w.number(d["window_s"]),
        accounts=w.number(d["accounts"]),
        kinds=w.listing([w.names.get(kind, kind) for kind in sorted(set(kinds))]),
    )


def _latency(d: Mapping[str, Any], w: Words) -> str:
    region, slo = safe(d["region"], 64), w.number(d["slo_ms"])
    if "bad_share_parts" in d:
        _known(d, _LEVEL | {"region", "slo_ms"})
        parts = d["bad_share_parts"]
        return w(
            "latency.level",
            share=w.percent(d["bad_share"]),
            region=region,
            slo=slo,
            window=w.number(d["window_s"] // 60),
            least=w.percent(min(_finite(p) for p in parts)),
            part=w.number(d["window_s"] // len(parts)),
        )
    _known(d, _BURN | {"region", "slo_ms"})
    return w(
        "latency.burn",
        share=w.percent(d["bad_share_long"]),
        region=region,
        slo=slo,
        burn=w.number(d["burn_rate_long"], "#,##0.0#"),
        window=w.number(d["window_long_s"] // 60),
    )


def _stall(d: Mapping[str, Any], w: Words) -> str:
    _known(d, _BURN)
    return w(
        "stall.burn",
        share=w.percent(d["bad_share_long"], 1),
        burn=w.number(d["burn_rate_long"], "#,##0.0#"),
        window=w.number(d["window_long_s"] // 60),
    )


_SUMMARIES: Final[dict[str, Callable[[Mapping[str, Any], Words], str]]] = {
    "traffic_cliff": _cliff,
    "spam_flood": _spam,
    "latency_slo": _latency,
    "stall_slo": _stall,
}


def summary_from_details(alert: Transition, language: Language) -> str | None:
    """The alert's summary in `language` from its details; None when the catalogue
    cannot say all of it (an alert type, a detail or a value it does not know)."""
    reader = _SUMMARIES.get(alert.alert)
    if reader is None or not isinstance(alert.details, dict):
        return None
    try:
        return bounded(reader(alert.details, words(language)), SUMMARY_LIMIT)
    except (Unknown, KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
        return None


def summary(alert: Transition, language: Language) -> str:
    """The alert's summary in `language`, or as the alert says it."""
    rendered = summary_from_details(alert, language)
    return rendered if rendered is not None else safe(alert.summary, SUMMARY_LIMIT)


# -- Hints ----------------------------------------------------------------------

_NUMBER: Final = r"\d[\d,]*(?:\.\d+)?"
_HINTS: Final = {
    # The wording of detectors.cliff.qoe_hint, channel_hints and detectors.ebb.ebb_hint.
    "hint.qoe": re.compile(
        rf"QoE degrading too: latency p95 (?P<p95>{_NUMBER}) s, "
        rf"stall ratio (?P<stall>{_NUMBER})% over the last minute"
    ),
    "hint.channel": re.compile(
        rf"traffic source '(?P<channel>[a-z_]{{1,32}})' collapsed: (?P<before>{_NUMBER})% "
        rf"of entries before, (?P<now>{_NUMBER})% in the last (?P<recent>{_NUMBER})s"
    ),
    "hint.ebb": re.compile(
        rf"a promotion peak of (?P<peak>{_NUMBER}) viewers at (?P<at>\d\d:\d\d) UTC is ebbing "
        rf"\(half-life (?P<half>{_NUMBER}) min, (?:floor (?P<ratio>{_NUMBER})x the level "
        rf"before it|floor (?P<floor>{_NUMBER}) viewers, where there was no audience before)\): "
        r"an ebb explains a slow fall, not one this fast"
    ),
}


def _parsed(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _hint_values(key: str, found: dict[str, str], w: Words) -> dict[str, str]:
    if key == "hint.qoe":
        return {
            "p95": w.number(_parsed(found["p95"]), "#,##0.00"),
            "stall": w.percent(_parsed(found["stall"]) / 100, 1),
        }
    if key == "hint.channel":
        return {
            "channel": w.name(found["channel"], "channel"),
            "before": w.percent(_parsed(found["before"]) / 100),
            "now": w.percent(_parsed(found["now"]) / 100),
            "recent": w.number(_parsed(found["recent"])),
        }
    floor = (
        w("ebb.ratio", ratio=w.number(_parsed(found["ratio"]), "#,##0.0"))
        if found["ratio"] is not None
        else w("ebb.nobody", floor=w.number(_parsed(found["floor"])))
    )
    return {
        "peak": w.number(_parsed(found["peak"])),
        "at": found["at"],
        "half": w.number(_parsed(found["half"]), "#,##0.0"),
        "floor": floor,
    }


def hint(text: str, language: Language) -> str:
    """One hint in `language` when it is worded as the detectors word it, else as it is."""
    w = words(language)
    for key, pattern in _HINTS.items():
        found = pattern.fullmatch(text)
        if found is not None:
            return bounded(w(key, **_hint_values(key, found.groupdict(), w)), 200)
    return safe(text, 200)


def hints(alert: Transition, language: Language, limit: int = 3) -> list[str]:
    found = alert.details.get("hints", []) if isinstance(alert.details, dict) else []
    if not isinstance(found, list):
        return []
    return [hint(str(h), language) for h in found[:limit]]


# -- Runbooks and the rest ------------------------------------------------------


def runbook(alert: Transition, language: Language) -> str:
    """The alert's runbook in `language` when the catalogue translates this text."""
    translated = RUNBOOKS[language].get(alert.runbook)
    return bounded(translated, 300) if translated is not None else safe(alert.runbook, 300)


def where(alert: Transition) -> str:
    return safe(alert.room_id, 128) + (f" [{safe(alert.region, 64)}]" if alert.region else "")


_REASONS: Final = {"room_closed": "closed", "stream_ended": "ended"}
"""Resolve reasons the catalogue words (detectors.alerts, streams.core.watch)."""


def resolve_reason(alert: Transition, language: Language) -> str | None:
    """Why a resolved alert resolved, when it is news (not the condition clearing)."""
    reason = alert.details.get("resolve_reason") if isinstance(alert.details, dict) else None
    if alert.state != "resolved" or reason in (None, "condition_cleared"):
        return None
    w = words(language)
    if reason in _REASONS:
        return w(_REASONS[reason])
    return w("reason", reason=safe(reason, 64))
