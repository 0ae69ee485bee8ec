"""All detector settings in one typed, documented place (defaults: docs/detectors.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import msgspec

from detectors.alerts import LifecycleConfig
from detectors.cliff import CliffConfig
from detectors.ebb import EbbConfig
from detectors.slo import BurnWindow, SloConfig
from detectors.spam import SpamConfig


def _stall_slo() -> SloConfig:
    # Amounts are seconds: watch time, and stall time within it. 99% of watch time
    # unstalled; the volume gates are viewer-seconds (10 viewers for the short window).
    return SloConfig(
        objective=0.99,
        windows=(
            BurnWindow(120, 10, 14.4, "critical"),
            BurnWindow(720, 60, 6.0, "warning"),
        ),
        min_long_events=1200,
        min_short_events=100,
    )


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    cliff: CliffConfig = field(default_factory=CliffConfig)
    spam: SpamConfig = field(default_factory=SpamConfig)
    latency_slo: SloConfig = field(default_factory=SloConfig)
    """Share of e2e latency samples at or under the latency SLO (600 ms), per room and region."""
    stall_slo: SloConfig = field(default_factory=_stall_slo)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    ebb: EbbConfig = field(default_factory=EbbConfig)
    fresh_account_s: int = 10
    """A chatter first seen in the room this recently counts as a fresh account."""
    promotion_lookback_s: int = 1800
    """A peak this recent, well above the current level, is hinted as a promotion that ended."""

    def __post_init__(self) -> None:
        if self.ebb.step_s != self.cliff.step_s:
            raise ValueError("ebb.step_s must equal cliff.step_s (both see the same steps)")


class DetectorConfigError(ValueError):
    pass


_PER_PARTITION = frozenset({"lifecycle"})
"""Settings only `[detectors]` itself may change: one alert tracker serves a partition."""


def _merge(base: DetectorConfig, table: Mapping[str, Any], where: str) -> DetectorConfig:
    """`base` with the settings of a TOML-like table applied, validated."""
    names = {f.name for f in fields(DetectorConfig)}
    changes: dict[str, Any] = {}
    for name, value in table.items():
        if name not in names or (name in _PER_PARTITION and where != "detectors"):
            raise DetectorConfigError(f"{where}: unknown detector setting {name!r}")
        current = getattr(base, name)
        if not is_dataclass(current):
            changes[name] = value
        elif isinstance(value, Mapping):
            changes[name] = {**msgspec.to_builtins(current), **value}
        else:
            raise DetectorConfigError(f"{where}.{name} must be a table")
    try:
        return msgspec.convert(
            {**msgspec.to_builtins(base), **changes}, type=DetectorConfig, strict=False
        )
    except msgspec.ValidationError as exc:
        raise DetectorConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class DetectorSettings:
    """Defaults, then `[detectors]`, then a room's category, then the room itself."""

    base: DetectorConfig = field(default_factory=DetectorConfig)
    categories: tuple[tuple[frozenset[str], Mapping[str, Any], str], ...] = ()
    rooms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> DetectorSettings:
        """Parse and validate the `[detectors]` table of a config file."""
        table = dict(table)
        categories_table = table.pop("categories", {})
        rooms_table = table.pop("rooms", {})
        base = _merge(DetectorConfig(), table, "detectors")
        categories = []
        for name, category in dict(categories_table).items():
            category = dict(category)
            members = category.pop("rooms", [])
            if not isinstance(members, list) or not all(isinstance(r, str) for r in members):
                raise DetectorConfigError(f"detectors.categories.{name}.rooms: a list of room ids")
            _merge(base, category, f"detectors.categories.{name}")  # validate now
            categories.append((frozenset(members), category, name))
        for room_id, room in dict(rooms_table).items():
            _merge(base, room, f"detectors.rooms.{room_id}")
        return cls(base, tuple(categories), dict(rooms_table))

    def for_room(self, room_id: str) -> DetectorConfig:
        config = self.base
        for members, overrides, name in self.categories:
            if room_id in members:
                config = _merge(config, overrides, f"detectors.categories.{name}")
        if room_id in self.rooms:
            config = _merge(config, self.rooms[room_id], f"detectors.rooms.{room_id}")
        return config
