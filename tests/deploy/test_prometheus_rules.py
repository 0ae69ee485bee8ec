"""promtool and amtool (Debian's packages) accept the rules, their tests and the configs."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def run(*command: str | Path) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_rules_pass_promtool_check() -> None:
    out = run("promtool", "check", "rules", *sorted((DEPLOY / "prometheus/rules").glob("*.yml")))
    assert out.count("SUCCESS") == 2


def test_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in run("promtool", "test", "rules",
                            DEPLOY / "prometheus/tests/livewatch-alerts.test.yml")  # fmt: skip


def test_the_scrape_config_passes_promtool_check(tmp_path: Path) -> None:
    # The config names rule files by their in-container path: check with local ones.
    config = (
        (DEPLOY / "prometheus/prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules/*.yml", str(DEPLOY / "prometheus/rules/*.yml"))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    assert "SUCCESS" in run("promtool", "check", "config", tmp_path / "prometheus.yml")


def test_the_alertmanager_example_passes_amtool() -> None:
    assert "SUCCESS" in run("amtool", "check-config", DEPLOY / "alertmanager/alertmanager.yml")
