"""The repository stands on its own: a licence that matches pyproject.toml, and `make serve`
installing the runtime alone while `make test` adds the development tools, in either order.

The Makefile is checked with ``make -n`` (what it would run) on a throwaway VENV path: nothing is
installed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_licence_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_command_is_pushdctl_not_a_shell_builtin() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert scripts == {"pushdctl": "pushd.cli:main"}


def make_n(target: str, venv: Path) -> list[str]:
    """The commands ``make TARGET`` would run with ``VENV=venv``."""
    assert shutil.which("make"), "make is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    ran = subprocess.run(
        ["make", "-n", "--no-print-directory", target, f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return ran.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line.split("pip install -q ", 1)[1] for line in lines if "pip install -q -e" in line]


def test_make_serve_installs_the_runtime_alone(tmp_path: Path) -> None:
    lines = make_n("serve", tmp_path / "venv")
    assert installs(lines) == ["-e ."]  # not '.[dev]': pytest, mypy, selenium... stay out
    assert lines[-1] == f"{tmp_path / 'venv'}/bin/pushdctl serve --config queue.yaml.example"


@pytest.mark.parametrize("target", ["lint", "typecheck"])
def test_make_test_adds_the_development_tools(tmp_path: Path, target: str) -> None:
    assert installs(make_n(target, tmp_path / "venv")) == ["-e '.[dev]'"]


def _stamp(venv: Path, *names: str) -> None:
    venv.mkdir(parents=True, exist_ok=True)
    later = (ROOT / "pyproject.toml").stat().st_mtime + 10
    for name in names:
        (venv / name).touch()
        os.utime(venv / name, (later, later))


def test_make_serve_after_make_test_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _stamp(venv, ".pushd-runtime", ".pushd-installed")  # what `make test` leaves
    assert installs(make_n("serve", venv)) == []


def test_make_test_after_make_serve_adds_the_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _stamp(venv, ".pushd-runtime")  # what `make serve` leaves
    assert installs(make_n("lint", venv)) == ["-e '.[dev]'"]
