"""The daemon's event loop: uvloop when installed (settings ``event_loop: auto``), else asyncio."""

from __future__ import annotations

import asyncio

import pytest

from pushd import daemon, errors


def loop_module(event_loop: str) -> str:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    daemon.run_event_loop(main(), event_loop)
    return seen[0]


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_asyncio() -> None:
    pytest.importorskip("uvloop")  # a dependency wherever it builds; not on Windows
    assert loop_module("auto").startswith("uvloop")
    assert loop_module("uvloop").startswith("uvloop")
    assert loop_module("asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_module("auto").startswith("asyncio")
    with pytest.raises(errors.PushdError, match="uvloop is not installed"):
        loop_module("uvloop")
