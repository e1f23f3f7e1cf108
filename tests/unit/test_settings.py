"""Daemon settings: defaults, the example file, precedence and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pushd import errors, settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_work_without_any_file() -> None:
    s = settings.load(environ={})
    assert (s.host, s.port, s.database) == ("127.0.0.1", 8460, "pushd.sqlite3")
    assert s.tombstone_retention_s == 9 * 86400
    assert s.dead_letter_retention_s == 7 * 86400
    assert s.default_dispatch_deadline_s == 600
    assert s.signing_secret is None


def test_the_example_file_loads_and_matches_the_defaults_it_documents() -> None:
    s = settings.load_file(ROOT / "config" / "pushd.yaml.example")
    defaults = settings.Settings()
    assert s.targets == {
        "worker": "http://127.0.0.1:8081",
        "v2.worker": "http://127.0.0.1:8082",
        "v2.mailer": "http://127.0.0.1:8083",
    }
    assert s.target_url("worker") == "http://127.0.0.1:8081"
    assert s.target_url("unknown") == s.default_target
    assert s.target_url(None) == s.default_target
    for name in ("host", "port", "database", "default_dispatch_deadline_s", "durability"):
        assert getattr(s, name) == getattr(defaults, name), name
    assert s.shutdown_grace_s == 30
    assert s.shutdown_report_s == defaults.shutdown_report_s == 5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("90s", 90.0), ("15m", 900.0), ("12h", 43200.0), ("9d", 777600.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert settings.parse_duration_s(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "-1s", True, "1.2.3s"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative|boolean"):
        settings.parse_duration_s(value)


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    f = tmp_path / "pushd.yaml"
    f.write_text("port: 9001\nhost: 127.0.0.2\ndatabase: a.sqlite3\n")
    s = settings.load(f, environ={"PUSHD_PORT": "9002", "PUSHD_DATABASE": "b.sqlite3"})
    assert (s.host, s.port, s.database) == ("127.0.0.2", 9002, "b.sqlite3")
    s = settings.load(f, environ={"PUSHD_PORT": "9002"}, overrides={"port": 9003, "host": None})
    assert (s.host, s.port) == ("127.0.0.2", 9003)


def test_every_error_is_reported_with_its_line_and_key(tmp_path: Path) -> None:
    f = tmp_path / "pushd.yaml"
    f.write_text(
        "port: lots\n"
        "targets:\n"
        "  Worker_1: http://x\n"
        "  ok: ftp://x\n"
        "colour: blue\n"
        "auth_tokens:\n"
        "  - token: short\n"
    )
    with pytest.raises(errors.ConfigError) as info:
        settings.load_file(f)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{f}:1:1: port: 'lots' is not an integer",
        f"{f}:3:3: targets.Worker_1: 'Worker_1' is not a target name like 'worker' or 'v2.worker'",
        f"{f}:4:3: targets.ok: 'ftp://x' is not an http:// or https:// base URL",
        f"{f}:5:1: colour: unknown setting 'colour'; known: "
        + ", ".join(sorted(f.name for f in settings.fields(settings.Settings))),
        f"{f}:7:5: auth_tokens[0].token: is shorter than 16 characters; use a long random token",
    ]


def test_values_are_checked_after_merging(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="port: 70000 is not a TCP port"):
        settings.load(environ={"PUSHD_PORT": "70000"})
    with pytest.raises(errors.ConfigError, match="durability: 'sometimes' is not one of"):
        settings.from_mapping({"durability": "sometimes"})
    with pytest.raises(errors.ConfigError, match="event_loop: 'trio' is not one of"):
        settings.from_mapping({"event_loop": "trio"})
    assert settings.from_mapping({"event_loop": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(errors.ConfigError, match="transport: 'curl' is not one of h1, aiohttp, py"):
        settings.from_mapping({"transport": "curl"})
    assert settings.from_mapping({}).transport == "h1"
    assert settings.from_mapping({"transport": "aiohttp"}).transport == "aiohttp"
    assert settings.from_mapping({"transport": "pyreqwest"}).transport == "pyreqwest"
    with pytest.raises(errors.ConfigError, match="between 1s and 24h"):
        settings.from_mapping({"default_dispatch_deadline_s": "0.5s"})
    with pytest.raises(
        errors.ConfigError, match=r"shutdown_report_s: must be between 0\.1s and 1h"
    ):
        settings.from_mapping({"shutdown_report_s": 0})  # a pace of 0 would spin
    assert settings.from_mapping({"shutdown_report_s": "2s"}).shutdown_report_s == 2


def test_broken_yaml_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    f = tmp_path / "pushd.yaml"
    f.write_text("port: [1,\n")
    with pytest.raises(errors.ConfigError, match=r"pushd.yaml:2:1: not valid YAML"):
        settings.load_file(f)
    with pytest.raises(errors.ConfigError, match="cannot read the settings file"):
        settings.load_file(tmp_path / "missing.yaml")
    f.write_text("- a list\n")
    with pytest.raises(errors.ConfigError, match="must be a mapping"):
        settings.load_file(f)


def test_tokens_and_roles(tmp_path: Path) -> None:
    s = settings.from_mapping(
        {"auth_tokens": [{"name": "bot", "token": "x" * 32, "role": "producer"}]}
    )
    assert s.auth_tokens == (settings.ApiToken(name="bot", token="x" * 32, role="producer"),)
    with pytest.raises(errors.ConfigError, match=r"auth_tokens\[0\].role: 'root' is not one of"):
        settings.from_mapping({"auth_tokens": [{"token": "x" * 32, "role": "root"}]})


def test_tokens_carry_an_identity_for_queue_acls() -> None:
    token = {"name": "w", "token": "x" * 32, "role": "consumer", "identity": " w@example.com "}
    s = settings.from_mapping({"auth_tokens": [token]})
    assert s.auth_tokens[0].identity == "w@example.com"
    with pytest.raises(errors.ConfigError, match=r"auth_tokens\[0\].identity: must be"):
        settings.from_mapping({"auth_tokens": [{**token, "identity": ""}]})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_tokens(host: str) -> None:
    assert settings.from_mapping({"host": host}).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_other_hosts_are_refused_without_tokens(host: str) -> None:
    with pytest.raises(errors.ConfigError, match="not a loopback address and no auth_tokens"):
        settings.from_mapping({"host": host})
    with_token = {"host": host, "auth_tokens": [{"token": "x" * 32}]}
    assert settings.from_mapping(with_token).host == host


def test_event_loop_uvloop_is_refused_where_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(errors.ConfigError, match="uvloop is not installed"):
        settings.from_mapping({"event_loop": "uvloop"})
    assert settings.from_mapping({"event_loop": "auto"}).event_loop == "auto"


def test_http_targets_and_the_oauth_token(tmp_path: Path) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text(
        "http_targets:\n- https://hooks.example.com/\n- http://127.0.0.1:8080/jobs/\n"
        "cloud_tasks:\n  grpc_port: 8461\n  oauth_token: static-token\n"
    )
    s = settings.load(path, environ={})
    assert s.http_targets == ("https://hooks.example.com/", "http://127.0.0.1:8080/jobs/")
    assert (s.cloud_tasks.grpc_port, s.cloud_tasks.oauth_token) == (8461, "static-token")
    assert settings.Settings().http_targets == ()  # none: HTTP tasks refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http_targets: https://a.example/\n", "http_targets: must be a list of URL prefixes"),
        ("http_targets:\n- ftp://a.example/\n", "http_targets[0]: 'ftp://a.example/' is not an"),
        ("http_targets:\n- https://u@a.example/\n", "must not carry a user name"),
        ("http_targets:\n- https://a.example/?x=1\n", "must not have a query or fragment"),
        ("http_targets:\n- 3\n", "http_targets[0]: 3 is not a string"),
        ("cloud_tasks:\n  oauth_token: [1]\n", "cloud_tasks.oauth_token: [1] is not a string"),
    ],
)
def test_bad_http_targets_are_reported_with_their_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text(text)
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
        settings.load(path, environ={})
