"""What the live benchmarks read off a running worker: its /status page, its CPU time
and resident memory (from /proc, as `top` does), and the transitions it sent to the
alerts topic."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.settings import Settings


def worker_status(port: int | str, timeout: float = 30) -> dict[str, Any]:
    """The worker's /status (events, lag, held, rooms...)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=timeout) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found


def wait_counted(port: int | str, total: int, within_s: float) -> tuple[float, int]:
    """Seconds until the worker has counted `total` events, or (inf, events still not
    counted) after `within_s`."""
    started = time.time()
    left = total
    while time.time() < started + within_s:
        with contextlib.suppress(OSError):  # urllib's timeouts included
            left = total - worker_status(port)["events"]
        if left <= 0:
            return time.time() - started, 0
        time.sleep(1)
    return float("inf"), left


def proportional_mib(pid: int) -> float:
    """Proportional set size, MiB (Pss in /proc/PID/smaps_rollup): resident memory, each page
    shared by n processes counted 1/n, so the sum over a worker and its forked children is
    the memory they hold together (their RSS would count every shared page in each)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The process's children (/proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


class FamilyPeak(threading.Thread):
    """The highest Pss of a process and its children together (a worker and the child it
    forks to take a checkpoint), sampled every `every_s` until `stop`."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_mib = 0.0
        self.peak_child_mib = 0.0
        """The children's share at that peak."""
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            with contextlib.suppress(OSError):
                kids = sum(proportional_mib(c) for c in children(self.pid))
                total = proportional_mib(self.pid) + kids
                if total > self.peak_mib:
                    self.peak_mib, self.peak_child_mib = total, kids

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, user and system, with that of its children it has
    waited for: a worker's checkpoints are computed in forked children."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU time (user and system) of a process itself, and of its children it has waited
    for (/proc/PID/stat utime, stime, cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory, MiB (/proc/PID/status VmRSS and VmHWM)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


async def sent_alerts(settings: Settings) -> list[tuple[float, dict[str, Any]]]:
    """Every transition on the alerts topic, with the time the worker sent it (the
    record's timestamp, set by the worker's producer), read until it stays quiet."""
    consumer = AIOKafkaConsumer(
        settings.topic(settings.topic_alerts),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found = []
    try:
        while batch := await consumer.getmany(timeout_ms=5_000):
            for records in batch.values():
                found += [(r.timestamp / 1000, json.loads(r.value)) for r in records if r.value]
    finally:
        await consumer.stop()
    return found
