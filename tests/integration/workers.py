"""What the worker tests on the broker share: the demo night in halves, waiting for a
condition, a worker's events counter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from streams.dev.demo import SAMPLE, scrape
from streams.logs.files import read_lines


def split_sample(directory: Path) -> tuple[Path, Path, Path]:
    """The demo night's first half, second half and whole, as logs in `directory`."""
    lines = [line for _, line in read_lines(SAMPLE)]
    half = len(lines) // 2
    paths = (directory / "first.jsonl", directory / "second.jsonl", directory / "all.jsonl")
    for path, part in zip(paths, (lines[:half], lines[half:], lines), strict=True):
        path.write_bytes(b"\n".join(part) + b"\n")
    return paths


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.5)


def events_counted(url: str) -> int:
    return int(sum(scrape(url).get("livewatch_events_total", {}).values()))
