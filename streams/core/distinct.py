"""Distinct users since a room went live, in bounded memory. Pure: no I/O.

A room's `live` totals (unique viewers, chatters, buyers, stalled viewers) count
every user it has seen since it went live. Kept as exact sets, a room that a
million distinct ids pass through holds a million strings (about 250 bytes each
across its sets), whatever its concurrent audience: memory that grows with ids,
not with traffic (issue 16). So a count is exact up to `EXACT_LIMIT` users, and
beyond that a HyperLogLog sketch (Apache DataSketches' `hll_sketch`, lg_k 14 in
8-bit registers: 16 KiB, a relative standard error of about 0.8%; Flajolet et al.,
"HyperLogLog", 2007). The sketch hashes with a fixed seed and is read through its
registers alone, so the worker, a backtest and a restored checkpoint give the same
estimate for the same users, in whatever order they arrived.
"""

from __future__ import annotations

from typing import Final

import datasketches

EXACT_LIMIT: Final = 10_000
"""Up to this many users a count is exact (the rooms most platforms have)."""
LG_K: Final = 14
"""log2 of the sketch's registers: 16,384, a relative standard error of 1.04/128."""


class DistinctCount:
    """How many distinct users were added: exact to `EXACT_LIMIT`, then estimated."""

    __slots__ = ("ids", "sketch")

    def __init__(self) -> None:
        self.ids: set[str] | None = None
        """The users while exact; None before the first (most rooms never see a
        buyer or a stall: an empty set is 216 bytes) and once estimated."""
        self.sketch: datasketches.hll_sketch | None = None

    def add(self, user: str) -> None:
        if self.sketch is not None:
            self.sketch.update(user)
            return
        if self.ids is None:
            self.ids = {user}
            return
        self.ids.add(user)
        if len(self.ids) > EXACT_LIMIT:
            self.sketch = datasketches.hll_sketch(LG_K, datasketches.tgt_hll_type.HLL_8)
            for each in self.ids:
                self.sketch.update(each)
            self.ids = None

    def __len__(self) -> int:
        if self.sketch is None:
            return 0 if self.ids is None else len(self.ids)
        # A sketch's own estimate (HIP) depends on the order users arrived in, which
        # differs between a worker, a backtest and a restored checkpoint (and a set's
        # order between processes). The sketch's registers do not: a union that has
        # seen the sketch twice is "out of order" and estimates from them alone.
        union = datasketches.hll_union(LG_K)
        union.update(self.sketch)
        union.update(self.sketch)
        return round(float(union.get_estimate()))

    @property
    def exact(self) -> bool:
        return self.sketch is None

    # The checkpoint format (streams.core.persist) stores plain data: the sketch as
    # its compact serialization.
    def __getstate__(self) -> dict[str, object]:
        sketch = None if self.sketch is None else self.sketch.serialize_compact()
        return {"ids": self.ids, "sketch": sketch}

    def __setstate__(self, state: dict[str, object]) -> None:
        ids, sketch = state.get("ids"), state.get("sketch")
        if not (
            (isinstance(ids, set | None) and sketch is None)
            or (ids is None and isinstance(sketch, bytes))
        ):
            raise ValueError("a distinct count holds either its ids or a sketch")
        self.ids = ids
        self.sketch = None if sketch is None else datasketches.hll_sketch.deserialize(sketch)
