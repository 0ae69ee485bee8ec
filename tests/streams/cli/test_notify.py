from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli.notify import _duration_s
from streams.settings import SettingsError


def test_silences_are_added_listed_and_expired_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "livewatch.toml"
    config.write_text(f'[notify]\nsilences_file = "{tmp_path / "silences.json"}"\n')

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli.main", "silence", *args, "--config", str(config)],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    added = run(
        "add",
        "--alert",
        "spam_flood",
        "--room",
        "room-1*",
        "--for",
        "2h",
        "--by",
        "ann",
        "--comment",
        "known raid",
    )
    silence_id = added.split()[1]
    listed = run("list")
    assert f"{silence_id} active  alert=spam_flood room=room-1*" in listed and "ann" in listed
    assert "expired" in run("expire", silence_id)
    assert f"{silence_id} expired" in run("list")


def test_durations_read_as_seconds() -> None:
    assert [_duration_s(t) for t in ("90", "90s", "30m", "2h", "1d")] == [
        90,
        90,
        1800,
        7200,
        86400,
    ]
    with pytest.raises(SettingsError, match="not a duration"):
        _duration_s("soon")
