"""The import-linter contracts in pyproject.toml cover every module (docs/ARCHITECTURE.md).

import-linter checks the imports between the layers it is told about; a module in no layer is
checked by nothing. These tests fail when a module is added or renamed without being placed.
"""

from __future__ import annotations

import ast
import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import pushd

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _layer_names(contract: dict[str, Any]) -> list[str]:
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def _modules() -> list[str]:
    """Every module of pushd, generated protobuf code included."""
    found = ["pushd"]
    for info in pkgutil.walk_packages(pushd.__path__, "pushd."):
        found.append(info.name)
    return found


def test_every_module_is_in_a_named_layer() -> None:
    [top] = [c for c in _contracts() if c["type"] == "layers" and "containers" not in c]
    named = _layer_names(top)
    unplaced = [
        m
        for m in _modules()
        if m != "pushd" and not any(m == n or m.startswith(n + ".") for n in named)
    ]
    assert unplaced == [], "place these in a layer of pyproject.toml's first contract"


def test_no_layer_is_optional() -> None:
    """A parenthesised layer is skipped when no module has its name: a rename dropped it."""
    for contract in _contracts():
        if contract["type"] == "layers":
            assert not [n for n in _layer_names(contract) if n.startswith("(")], contract["name"]


def test_every_module_of_a_layered_package_is_in_one_of_its_layers() -> None:
    """The packages with layers of their own (the scheduler, the store, queue.yaml): each of
    their modules is named there, and the contract says so (exhaustive)."""
    for contract in _contracts():
        if contract["type"] != "layers" or "containers" not in contract:
            continue
        assert contract.get("exhaustive") is True, contract["name"]
        named = set(_layer_names(contract))
        for container in contract["containers"]:
            children = {
                m.removeprefix(container + ".")
                for m in _modules()
                if m.startswith(container + ".") and "." not in m.removeprefix(container + ".")
            }
            assert children - named == set(), (container, children - named)


def test_at_least_three_forbidden_contracts() -> None:
    assert len([c for c in _contracts() if c["type"] == "forbidden"]) >= 3


def _imports_aiohttp_web(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(n == "aiohttp.web" or n.startswith("aiohttp.web.") for n in names):
            return True
    return False


def test_aiohttp_web_stays_in_the_servers() -> None:
    """import-linter sees third-party packages whole (``aiohttp``): the server half of aiohttp
    is checked here. Only the APIs (pushd/api/, the Cloud Tasks REST adapter in
    pushd/cloudtasks/) and the test sink serve HTTP; deliveries and the client use aiohttp's
    client alone."""
    package = Path(pushd.__file__).parent
    serving = sorted(
        str(p.relative_to(package.parent)) for p in package.rglob("*.py") if _imports_aiohttp_web(p)
    )
    assert serving
    servers = ("pushd/api/", "pushd/cloudtasks/")
    assert [p for p in serving if not p.startswith(servers) and p != "pushd/sink.py"] == []
