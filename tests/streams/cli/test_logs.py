from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_piped_backtest_output_is_results_only(tmp_path: Path) -> None:
    """Progress goes to stderr: a pipe reads the summary first, as a script expects."""
    log = tmp_path / "night.jsonl"
    joins = [
        {"type": "join", "room_id": "r", "ts": 1_764_000_000_000 + i, "user_id": f"u{i}"}
        for i in range(1000)
    ]
    log.write_text("".join(json.dumps(j) + "\n" for j in joins))
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "backtest", str(log)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[0] == "1000 lines: 1000 events, 0 invalid, 0 late"
