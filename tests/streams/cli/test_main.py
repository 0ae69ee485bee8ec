from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli.main import main

COMMANDS = [
    [],
    ["worker"],
    ["kafka"],
    ["kafka", "fetch"],
    ["kafka", "start"],
    ["topics"],
    ["topics", "create"],
    ["replay"],
    ["record"],
    ["simulate"],
    ["backtest"],
    ["notify"],
    ["silence"],
    ["silence", "add"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "livewatch")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: livewatch")


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "livewatch"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "replay" in result.stdout and "worker" in result.stdout


def test_bad_settings_exit_with_a_message_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["topics", "create", "--topic-prefix", "no spaces"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("livewatch: error: invalid setting topic_prefix")


def test_an_unreadable_log_is_reported_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "missing.jsonl.gz"), "--bootstrap", "127.0.0.1:1"]) == 2
    assert "cannot read event log" in capsys.readouterr().err


def test_an_unreachable_broker_is_reported_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "create", "--bootstrap", "127.0.0.1:1"]) == 2
    assert "livewatch: error: cannot reach Kafka" in capsys.readouterr().err
