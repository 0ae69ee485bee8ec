"""Interpreter settings for the processes that run the engine (worker, backtest lanes).

The engine keeps millions of long-lived container objects (viewers' sessions,
rolling windows). CPython's cyclic garbage collector, with its default
thresholds (700 allocations per young collection), walks ever more of them as
the state grows, so the cost per event rises with the size of the state: on
the throughput benchmark's workload it took about 15% of the engine's time
after a minute of event time. The state holds almost no reference cycles
(everything it drops is freed by reference counting), so collecting rarely
loses nothing; freezing moves the objects of start-up (modules, settings)
out of the collector's sight for good, as Instagram does for its workers
(https://instagram-engineering.com/dismissing-python-garbage-collection-at-instagram-4dca40b29172).
"""

from __future__ import annotations

import gc
from typing import Final

GC_THRESHOLDS: Final = (50_000, 20, 100)
"""Young generation collected every 50,000 net allocations instead of 700."""


def tune_gc() -> None:
    """Collect rarely, and never again look at what exists at start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
