from __future__ import annotations

from pathlib import Path

from streams.cli.settings import reference
from streams.settings import FIELDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_the_settings_reference_in_docs_is_current() -> None:
    assert DOC.read_text() == reference(), "stale: run `make docs`"


def test_every_setting_is_in_the_reference_with_a_meaning() -> None:
    page = reference()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert {row.split("`")[1] for row in rows} >= set(FIELDS)
    assert (
        "`detectors.spam.min_fresh_accounts` | `LIVEWATCH_DETECTORS__SPAM__MIN_FRESH_ACCOUNTS`"
        in page
    )
    assert not [row for row in rows if row.endswith("|  |")]  # every row says what it means
