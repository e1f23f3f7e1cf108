"""`make bench` cannot rot: every scenario runs at smoke scale (tiny counts, no peers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_every_scenario_runs_at_smoke_scale_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--smoke",
            "--out",
            str(out),
            "--tmp-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name in SCENARIOS:
        [found] = out.glob(f"*-{name}.json")
        result = json.loads(found.read_text())
        assert result["scenario"] == name
        assert result["scale"] == "smoke"
        assert result["receiver"] in ("nginx", "aiohttp")
        assert len(result["table"]) >= 2, result["table"]  # a header and at least one row
        # A scenario whose baseline cannot run here (PostgreSQL not installed) says so instead.
        assert result["ratios"] or result["data"].get("skipped"), f"{name} reports no ratio"
        for chart in result["charts"]:
            assert (out / chart).read_bytes().startswith(b"\x89PNG"), chart
    assert "receiver: " in proc.stdout
