from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import SettingsError, load_settings


def test_defaults_name_the_contract_topics() -> None:
    settings = load_settings(environ={})
    assert settings.source_topics == {
        "joins": "live.joins",
        "danmaku": "live.danmaku",
        "orders": "live.orders",
        "stalls": "live.stalls",
        "latency": "live.latency",
        "rooms": "live.rooms",
    }
    assert settings.topic(settings.topic_deadletter) == "live.deadletter"
    assert settings.topic_for_type("leave") == "live.joins"
    assert settings.topic_for_type("room") == "live.rooms"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "livewatch.toml"
    config.write_text('topic_prefix = "prod."\npartitions = 12\nmetrics_port = 9000\n')
    env = {"LIVEWATCH_PARTITIONS": "16", "LIVEWATCH_CONFIG": str(config)}
    settings = load_settings(environ=env, overrides={"metrics_port": 9100, "log_level": None})
    assert settings.topic_prefix == "prod."
    assert settings.partitions == 16
    assert settings.metrics_port == 9100
    assert settings.log_level == "info"
    assert settings.source_topics["joins"] == "prod.live.joins"
    assert settings.source_topics["rooms"] == "prod.live.rooms"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVEWATCH_PARTITIONS": "0"}, "invalid setting partitions (env LIVEWATCH_PARTITIONS)"),
        ({"LIVEWATCH_METRICS_PORT": "70000"}, "metrics_port"),
        ({"LIVEWATCH_LOG_LEVEL": "loud"}, "log_level"),
        ({"LIVEWATCH_TOPIC_JOINS": "bad topic"}, "topic_joins"),
        ({"LIVEWATCH_SECURITY_PROTOCOL": "SASL_SSL"}, "needs sasl_username"),
        ({"LIVEWATCH_SSL_CAFILE": "/nonexistent/ca.pem"}, "no such file"),
        ({"LIVEWATCH_CONFIG": "/nonexistent/livewatch.toml"}, "cannot read config file"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ=env)


def test_unknown_or_malformed_config_files_are_refused(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('bootstrap = "x"\n')
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(unknown, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("partitions = = 3\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_sasl_password_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = load_settings(
        environ={
            "LIVEWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "LIVEWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
            "LIVEWATCH_SASL_USERNAME": "livewatch",
            "LIVEWATCH_SASL_PASSWORD_FILE": str(secret),
        }
    )
    assert settings.read_sasl_password() == "s3cret"


def test_the_password_never_shows_in_the_settings_repr() -> None:
    settings = load_settings(
        environ={
            "LIVEWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "LIVEWATCH_SASL_USERNAME": "livewatch",
            "LIVEWATCH_SASL_PASSWORD": "hunter2",
        }
    )
    assert settings.read_sasl_password() == "hunter2"
    assert "hunter2" not in repr(settings) and "sasl_username='livewatch'" in repr(settings)


def test_metric_settings_reach_the_engine() -> None:
    settings = load_settings(environ={"LIVEWATCH_SESSION_TIMEOUT_S": "120"})
    assert settings.engine_config().metrics.session_timeout_s == 120


def test_detector_settings_come_from_the_config_file_per_category_and_room(tmp_path: Path) -> None:
    config = tmp_path / "livewatch.toml"
    config.write_text(
        """
[detectors.cliff]
drop_warning = 0.4
[detectors.categories.beauty]
rooms = ["room-1"]
spam = { per_user_messages = 15 }
[detectors.rooms."room-1".cliff]
min_online = 300
"""
    )
    detectors = load_settings(config, environ={}).engine_config().detectors
    room = detectors.for_room("room-1")
    assert (room.cliff.drop_warning, room.cliff.min_online, room.spam.per_user_messages) == (
        0.4,
        300,
        15,
    )
    assert detectors.for_room("room-2").spam.per_user_messages == 20
    config.write_text("[detectors.cliff]\nstep_s = 10\n")
    with pytest.raises(SettingsError, match="step_s"):
        load_settings(config, environ={})


def test_set_assignments_override_settings_and_nested_detector_settings() -> None:
    from streams.settings import parse_assignments, with_assignments

    assert parse_assignments(["a.b.c=0.3", "a.b.d=x y", "e=[1, 2]"]) == {
        "a": {"b": {"c": 0.3, "d": "x y"}},
        "e": [1, 2],
    }
    base = load_settings(environ={})
    changed = with_assignments(
        base, ["allowed_lateness_ms=2000", "detectors.cliff.drop_warning=0.3"]
    )
    assert changed.allowed_lateness_ms == 2000
    assert changed.engine_config().detectors.for_room("r").cliff.drop_warning == 0.3
    for bad, message in (
        (["nonsense=1"], "unknown setting"),
        (["novalue"], "expected key=value"),
        (["detectors.cliff.drop_warning=lots"], "detectors"),
    ):
        with pytest.raises(SettingsError, match=message):
            with_assignments(base, bad)


def test_tables_come_from_the_environment_key_by_key_or_as_json() -> None:
    settings = load_settings(
        environ={
            "LIVEWATCH_DETECTORS__SPAM__MIN_FRESH_ACCOUNTS": "12",
            "LIVEWATCH_DETECTORS__CLIFF__DROP_WARNING": "0.3",
            "LIVEWATCH_NOTIFY__GROUP_WAIT_S": "0",
        }
    )
    detectors = settings.engine_config().detectors.for_room("r")
    assert (detectors.spam.min_fresh_accounts, detectors.cliff.drop_warning) == (12, 0.3)
    assert settings.notify == {"group_wait_s": 0}
    whole = load_settings(environ={"LIVEWATCH_DETECTORS": '{"spam": {"window_s": 20}}'})
    assert whole.engine_config().detectors.for_room("r").spam.window_s == 20
    with pytest.raises(SettingsError, match="LIVEWATCH_DETECTORS: expected a JSON object"):
        load_settings(environ={"LIVEWATCH_DETECTORS": "spam"})


def test_environment_keys_go_on_top_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "livewatch.toml"
    config.write_text("[detectors.spam]\nwindow_s = 20\nmin_fresh_accounts = 9\n")
    env = {"LIVEWATCH_DETECTORS__SPAM__MIN_FRESH_ACCOUNTS": "12"}
    spam = load_settings(config, environ=env).engine_config().detectors.for_room("r").spam
    assert (spam.window_s, spam.min_fresh_accounts) == (20, 12)


def test_a_bad_value_is_reported_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "livewatch.toml"
    config.write_text("partitions = 0\n")
    with pytest.raises(SettingsError, match=f"partitions \\(config file {config}\\)"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="partitions \\(command line\\)"):
        load_settings(config, environ={}, overrides={"partitions": -1})
    config.write_text("[detectors.spam]\nwindow_z = 20\n")
    with pytest.raises(SettingsError, match=f"config file {config}.*unknown setting.*window_z"):
        load_settings(config, environ={})
    env = {"LIVEWATCH_DETECTORS__SPAM__WINDOW_S": "soon"}
    with pytest.raises(SettingsError, match="env LIVEWATCH_DETECTORS__SPAM__WINDOW_S"):
        load_settings(environ=env)
