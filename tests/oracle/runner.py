"""Run a script of tests/oracle under the oracle venv and exchange JSON with it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_PYTHON = ROOT / ".venv-oracle" / "bin" / "python"


class OracleUnavailableError(RuntimeError):
    pass


def oracle_python() -> Path:
    """The oracle venv's interpreter; a missing oracle is an error, never a skip."""
    path = Path(os.environ.get("PUSHD_ORACLE_PYTHON") or DEFAULT_PYTHON)
    if not path.exists():
        raise OracleUnavailableError(
            f"{path} does not exist: run `make oracle` (or `make test`, which builds it) first"
        )
    return path


def run_oracle(script: str, payload: Any, *, timeout_s: float = 120.0) -> Any:
    """Run ``tests/oracle/<script>`` with ``payload`` as JSON on stdin; return its JSON answer."""
    proc = subprocess.run(
        [str(oracle_python()), str(HERE / script)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=timeout_s,
        check=False,
        cwd=HERE,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"oracle script {script} failed ({proc.returncode}):\n{proc.stderr.decode()[-4000:]}"
        )
    return json.loads(proc.stdout)
