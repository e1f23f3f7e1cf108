"""Running in production: the shipped examples, ``pushdctl init``, the systemd unit, and a
daemon started from exactly those files (README: Running in production)."""

from __future__ import annotations

import asyncio
import configparser
import os
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pushd import cli, errors, scaffold, settings
from pushd.queue_yaml import config
from tests.integration.harness import Daemon, Receiver, api

if TYPE_CHECKING:
    import aiohttp

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = Path(scaffold.__file__).with_name("examples")
UNIT_PATHS = {  # where the unit expects things -> what the test writes instead
    "/usr/local/bin/pushdctl": "pushdctl",
    "/etc/pushd/queue.yaml": "queue.yaml",
    "/etc/pushd/pushd.yaml": "pushd.yaml",
}


def unit(text: str | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text or scaffold.example("pushd.service"))
    return parser


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


# ---------------------------------------------------------------- the examples ship in the package


@pytest.mark.parametrize(
    ("packaged", "in_repo"),
    [
        ("queue.yaml.example", "queue.yaml.example"),
        ("pushd.yaml.example", "config/pushd.yaml.example"),
    ],
)
def test_the_packaged_examples_are_the_repository_files(packaged: str, in_repo: str) -> None:
    assert scaffold.example(packaged) == (ROOT / in_repo).read_text(), (
        f"pushd/examples/{packaged} and {in_repo} differ: edit both (one is the other's copy)"
    )


def test_the_examples_are_inside_the_built_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = tmp_path.glob("pushd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for example in scaffold.EXAMPLES:
        assert f"pushd/examples/{example}" in names, sorted(names)


def test_the_shipped_examples_are_valid() -> None:
    queues = config.load_text(scaffold.example("queue.yaml.example"), "queue.yaml")
    assert "default" in queues.queues
    assert settings.load_file(PACKAGED / "pushd.yaml.example").default_target


def test_the_hardened_template_is_refused_until_its_placeholders_are_replaced() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        settings.load_file(PACKAGED / "pushd.production.yaml")
    paths = {issue.path for issue in caught.value.issues}
    assert {"auth_tokens[0].token", "auth_tokens[1].token", "auth_tokens[2].token"} <= paths


# ---------------------------------------------------------------- pushdctl init


def test_init_writes_the_three_files_with_fresh_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["init", str(tmp_path / "a")]) == cli.EXIT_OK
    assert cli.main(["init", str(tmp_path / "b")]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'a' / 'pushd.service'}" in out
    a, b = (settings.load_file(tmp_path / d / "pushd.yaml") for d in "ab")
    assert a.log_format == "json"
    assert a.durability == "full"
    assert a.signing_secret is not None
    assert len(a.signing_secret) >= 32
    assert [t.role for t in a.auth_tokens] == ["admin", "producer", "consumer"]
    secrets_a = {t.token for t in a.auth_tokens} | {a.signing_secret}
    secrets_b = {t.token for t in b.auth_tokens} | {b.signing_secret}
    assert len(secrets_a) == 4
    assert not secrets_a & secrets_b  # generated for each init, never shipped
    assert stat.S_IMODE((tmp_path / "a" / "pushd.yaml").stat().st_mode) & 0o007 == 0
    assert (tmp_path / "a" / "queue.yaml").read_text() == scaffold.example("queue.yaml.example")
    assert (tmp_path / "a" / "pushd.service").read_text() == scaffold.example("pushd.service")


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pushd.yaml").write_text("mine\n")
    assert cli.main(["init", str(tmp_path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pushd.yaml'} exists already: nothing was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pushd.yaml"]
    assert (tmp_path / "pushd.yaml").read_text() == "mine\n"


# ---------------------------------------------------------------- the systemd unit


def test_the_unit_runs_serve_as_a_plain_user_and_reloads_with_sighup() -> None:
    service = unit()["Service"]
    assert service["User"] == "pushd"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "pushd"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    # the stop timeout leaves room for the shutdown grace of the settings it starts with
    grace = settings.Settings().shutdown_grace_s
    assert seconds(service["TimeoutStopSec"]) > grace
    assert "shutdown_grace_s: 30s" in scaffold.example("pushd.production.yaml")
    # its command line is one pushdctl accepts, on the state directory
    binary, *argv = shlex.split(service["ExecStart"])
    assert binary == "/usr/local/bin/pushdctl"
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.config, args.settings) == (
        "serve",
        "/etc/pushd/queue.yaml",
        "/etc/pushd/pushd.yaml",
    )
    assert args.db.startswith(f"/var/lib/{service['StateDirectory']}/")


def analyze(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: .ci/run installs the systemd package")
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    text = scaffold.example("pushd.service")
    # The paths it names must exist for verify: this test's own pushdctl and files.
    pushdctl = Path(sys.executable).with_name("pushdctl")
    text = text.replace("/usr/local/bin/pushdctl", str(pushdctl))
    good = tmp_path / "pushd.service"
    good.write_text(text)
    done = analyze(good)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # verify warns on stderr, exit code 0
    # It can fail: a misspelt setting and a bad duration are reported.
    bad = tmp_path / "bad" / "pushd.service"
    bad.parent.mkdir()
    bad.write_text(text.replace("TimeoutStopSec=", "TimeoutStopSecs=").replace("2s", "2 q"))
    said = analyze(bad).stderr
    assert "TimeoutStopSecs" in said, said
    assert "RestartSec" in said or "2 q" in said, said


# ---------------------------------------------------------------- a daemon from those files


async def test_a_daemon_runs_from_the_init_files_with_tokens_and_reloads_by_the_units_command(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    etc = tmp_path / "etc"
    assert cli.main(["init", str(etc)]) == cli.EXIT_OK
    hardened = settings.load_file(etc / "pushd.yaml")
    admin = next(t.token for t in hardened.auth_tokens if t.role == "admin")
    run = tmp_path / "run"
    run.mkdir()
    d = Daemon(
        run,
        (etc / "queue.yaml").read_text(),
        receiver.url,
        # the unit's flags; text logs for the harness, which reads the `listening` line
        extra_args=["--settings", str(etc / "pushd.yaml"), "--log-format", "text"],
    )
    await d.start()
    try:
        status, _ = await api(session, d, "GET", "/healthz")
        assert status == 200
        status, _ = await api(session, d, "GET", "/api/v1/queues")
        assert status == 401  # hardened: a token is needed
        bearer = {"Authorization": f"Bearer {admin}"}
        status, body = await api(session, d, "GET", "/api/v1/queues", headers=bearer)
        assert status == 200, body
        # systemctl reload runs the unit's ExecReload with the daemon's pid
        assert d.proc is not None
        reload = unit()["Service"]["ExecReload"].replace("$MAINPID", str(d.proc.pid))
        proc = await asyncio.create_subprocess_exec(*shlex.split(reload))
        assert await proc.wait() == 0
        await d.wait_event("config_reloaded")
        assert await d.stop() == 0
    finally:
        await d.kill()
