"""`pushdctl check-config PATH`: one line per queue and exit 0, or every problem located and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pushd import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "queue.yaml.example"
MANY_PROBLEMS = ROOT / "tests" / "fixtures" / "queue_yaml" / "many_problems.yaml"


SETTINGS = ROOT / "config" / "pushd.yaml.example"


def test_a_valid_file_prints_one_line_per_queue(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(EXAMPLE), "--settings", str(SETTINGS)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:4]] == [
        "emails",
        "reports",
        "pulled-work",
        "default",
    ]
    assert lines[0].split() == [
        "emails",
        "push",
        "rate=20/s",
        "bucket=40",
        "max_concurrent=10",
        "retries=7",
        "age_limit=172800s",
        "backoff=10s..300s",
        "doublings=3",
        "->",
        "http://127.0.0.1:8083",
        "(target",
        "v2.mailer)",
    ]
    assert lines[1].endswith(
        "  -> http://127.0.0.1:8080 (default_target, unless a task names a target)"
    )
    assert lines[2].split() == ["pulled-work", "pull", "leases=5"]  # pull: no route
    assert lines[3].endswith("(default_target, unless a task names a target)  (implicit)")
    assert lines[4] == "total_storage_limit: 524288000 bytes"
    assert err == ""


def test_every_problem_goes_to_stderr_as_path_line_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["check-config", str(MANY_PROBLEMS)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 8
    assert lines[1] == f"{MANY_PROBLEMS}:4:9: queue[0].rate: '5/x' is not N/s, N/m, N/h or N/d"
    assert all(line.startswith(f"{MANY_PROBLEMS}:") for line in lines)
    assert lines[2].endswith("pushd is stricter than App Engine here")


def test_warnings_do_not_fail_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "queue.yaml"
    path.write_text("queue:\n- name: p\n  mode: pull\n  rate: 1/s\n")
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == f"{path}:4:9: queue[0].rate: ignored: it applies to push queues only (warning)\n"
    assert out.splitlines()[0].split() == ["p", "pull", "leases=unlimited"]


def test_an_unmapped_target_is_a_warning_and_shows_where_its_tasks_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "queue.yaml"
    path.write_text(
        "queue:\n- name: mail\n  rate: 1/s\n  target: v2.mailr\n"
        "- name: work\n  rate: 1/s\n  target: worker\n"
    )
    pushd_yaml = tmp_path / "pushd.yaml"
    pushd_yaml.write_text("targets:\n  worker: http://127.0.0.1:8081\n")
    argv = ["check-config", str(path), "--settings", str(pushd_yaml)]
    assert cli.main([*argv, "--default-target", "http://127.0.0.1:9999"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        f"{path}: queue mail: target 'v2.mailr' has no mapping in the settings' targets: its "
        "tasks go to default_target http://127.0.0.1:9999 (warning)\n"
    )
    lines = out.splitlines()
    assert lines[0].endswith(
        "  -> http://127.0.0.1:9999 (target v2.mailr is not in targets: default_target)"
    )
    assert lines[1].endswith("  -> http://127.0.0.1:8081 (target worker)")


def test_bad_settings_are_reported_like_a_bad_queue_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushd_yaml = tmp_path / "pushd.yaml"
    pushd_yaml.write_text("targets:\n  worker: not-a-url\n")
    assert cli.main(["check-config", str(EXAMPLE), "--settings", str(pushd_yaml)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "targets.worker" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["missing.yaml", "."])
def test_an_unreadable_path_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Exit 2, as `--help` says for an unreadable input file (1 is for a file read and refused)."""
    path = tmp_path / name
    assert cli.main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"pushdctl: cannot read the queue.yaml {path}: ")
    assert "Traceback" not in err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["check-config", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  pushdctl check-config queue.yaml\n" in out


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "check-config" in capsys.readouterr().err


def test_the_module_entry_point_checks_the_example() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pushd",
            "check-config",
            "queue.yaml.example",
            "--settings",
            "config/pushd.yaml.example",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("emails ")
    assert proc.stderr == ""
