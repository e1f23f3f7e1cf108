"""The committed ``pushd/proto/*_pb2.py`` and ``*_pb2.pyi`` are what ``make proto`` makes of
``pushd/proto/*.proto`` with the protoc of the dev dependencies (grpcio-tools).

The files are generated again into a temporary directory with the same ``-I`` layout as the
Makefile (``-I .`` over ``pushd/proto/<name>.proto``, so the embedded file names are
``pushd/proto/<name>.proto``) and compared byte for byte.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "pushd" / "proto"
PROTOS = sorted(PROTO_DIR.glob("*.proto"))
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


def test_there_are_proto_files() -> None:
    assert {path.name for path in PROTOS} >= {"remote_api.proto", "taskqueue_service.proto"}


@pytest.mark.parametrize("proto", PROTOS, ids=lambda path: path.name)
def test_every_proto_has_its_generated_modules(proto: Path) -> None:
    for suffix in GENERATED_SUFFIXES:
        generated = PROTO_DIR / f"{proto.stem}{suffix}"
        assert generated.is_file(), f"{generated.name} is missing: run `make proto`"


def test_every_generated_module_has_its_proto() -> None:
    stale = [
        path.name
        for suffix in GENERATED_SUFFIXES
        for path in PROTO_DIR.glob(f"*{suffix}")
        if not (PROTO_DIR / (path.name.removesuffix(suffix) + ".proto")).is_file()
    ]
    assert not stale, f"generated from no pushd/proto/*.proto: {stale}; delete them"


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    package = tmp_path / "pushd" / "proto"
    package.mkdir(parents=True)
    for proto in PROTOS:
        shutil.copy2(proto, package / proto.name)
    names = [f"pushd/proto/{proto.name}" for proto in PROTOS]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            *names,
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, f"protoc failed:\n{proc.stderr.decode()}"
    stale = []
    for proto in PROTOS:
        for suffix in GENERATED_SUFFIXES:
            name = f"{proto.stem}{suffix}"
            fresh = (package / name).read_bytes()
            committed = PROTO_DIR / name
            if not committed.is_file() or committed.read_bytes() != fresh:
                stale.append(f"pushd/proto/{name}")
    assert not stale, (
        f"{', '.join(stale)} differ from what protoc makes of pushd/proto/*.proto: run `make proto`"
    )
