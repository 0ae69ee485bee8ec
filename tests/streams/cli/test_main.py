from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from streams.cli.main import build_parser, main

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
    assert main(["topics", "create", "--topic-prefix", "no spaces"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("livewatch: error: invalid setting topic_prefix")


def test_an_unreadable_log_is_reported_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "missing.jsonl.gz"), "--bootstrap", "127.0.0.1:1"]) == 1
    assert "cannot read event log" in capsys.readouterr().err


def test_an_unreachable_broker_is_reported_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "create", "--bootstrap", "127.0.0.1:1"]) == 1
    assert "livewatch: error: cannot reach Kafka" in capsys.readouterr().err


def test_usage_errors_exit_2_as_argparse_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay"])  # the file is missing
    assert exit_info.value.code == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"livewatch {version('livewatch')}"


def _actions(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {where}", a) for where, a in _actions(sub))
        else:
            yield ",".join(action.option_strings) or action.dest, action


def test_every_argument_has_help() -> None:
    missing = [where for where, action in _actions(build_parser()) if not action.help]
    assert not missing
    assert len(list(_actions(build_parser()))) > 50  # the walk reaches every command


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_settings_options_go_before_or_after_the_subcommand(tmp_path: Path, before: bool) -> None:
    silences = tmp_path / "silences.json"
    config = tmp_path / "livewatch.toml"
    config.write_text(f'[notify]\nsilences_file = "{silences}"\n')
    add = ["add", "--alert", "spam_flood", "--duration", "1h"]
    options = ["--config", str(config)]
    argv = ["silence", *options, *add] if before else ["silence", *add, *options]
    assert main(argv) == 0
    assert "spam_flood" in silences.read_text()
