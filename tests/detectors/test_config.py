from __future__ import annotations

import pytest

from detectors.config import DetectorConfig, DetectorConfigError, DetectorSettings


def test_overrides_apply_in_order_defaults_global_category_room() -> None:
    settings = DetectorSettings.from_table(
        {
            "cliff": {"drop_warning": 0.4},
            "lifecycle": {"resolve_after_s": 90},
            "categories": {
                "beauty": {
                    "rooms": ["r1", "r2"],
                    "cliff": {"min_online": 200},
                    "spam": {"per_user_messages": 15},
                }
            },
            "rooms": {"r2": {"cliff": {"min_online": 500}}, "r9": {"fresh_account_s": 10}},
        }
    )
    default = DetectorConfig()
    assert settings.base.cliff.drop_warning == 0.4 and settings.base.lifecycle.resolve_after_s == 90
    other = settings.for_room("r5")
    assert other.cliff.min_online == default.cliff.min_online
    r1 = settings.for_room("r1")
    assert (r1.cliff.min_online, r1.cliff.drop_warning, r1.spam.per_user_messages) == (200, 0.4, 15)
    r2 = settings.for_room("r2")
    assert (r2.cliff.min_online, r2.spam.per_user_messages) == (500, 15)
    assert settings.for_room("r9").fresh_account_s == 10
    assert settings.for_room("r9").latency_slo == default.latency_slo


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"clif": {}}, "unknown detector setting 'clif'"),
        ({"cliff": {"drop_warning": "lots"}}, "detectors"),
        ({"cliff": 3}, "must be a table"),
        ({"rooms": {"r1": {"lifecycle": {"for_s": 5}}}}, "detectors.rooms.r1"),
        ({"categories": {"c": {"rooms": "r1"}}}, "a list of room ids"),
        ({"latency_level": {"step_window_s": 10}}, "step_window_s must hold at least one part"),
        (
            {
                "latency_slo": {
                    "windows": [{"long_s": 60, "short_s": 5, "burn_rate": 2, "severity": "page"}]
                }
            },
            "latency_slo",
        ),
    ],
)
def test_bad_settings_are_refused_with_their_place(table: dict[str, object], message: str) -> None:
    with pytest.raises(DetectorConfigError, match=message):
        DetectorSettings.from_table(table)
