"""The test inputs copied from elsewhere are all in tests/data, each as its source recorded it.

A fresh clone runs the tests with nothing beside it: no test may read outside the repository,
and a file edited by accident (a formatter, a line-ending change) is caught here, not as a
puzzling difference with App Engine.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DISCOVERY_SHA256 = "5073f2c98beade39b75491366b0a05c11bc76f76ceadfe8778cc58de7244405c"


def test_every_corpus_file_matches_its_manifest_line() -> None:
    corpus = DATA / "queue_yaml"
    with (corpus / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 40
    assert {row["file"] for row in rows} == {p.name for p in corpus.glob("*.yaml")}
    for row in rows:
        data = (corpus / row["file"]).read_bytes()
        assert len(data) == int(row["bytes"]), row["file"]
        assert hashlib.sha256(data).hexdigest()[:16] == row["sha256"], row["file"]
        assert row["file"] == row["repo"].replace("/", "__") + "__" + row["path"].replace("/", "__")
        assert len(row["commit"]) == 40


def test_the_discovery_document_is_googles() -> None:
    data = (DATA / "taskqueue-v1beta2-discovery.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == DISCOVERY_SHA256
    assert DISCOVERY_SHA256 in (DATA / "README.md").read_text(encoding="utf-8")


def test_no_test_reads_outside_the_repository() -> None:
    """The old ``../shared`` folder beside the checkout is gone from every test and benchmark."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in _project_sources("tests", "benchmarks")
        if p != Path(__file__) and '"shared"' in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def _project_sources(*folders: str) -> list[Path]:
    """The project's own Python files below ``folders``: those git tracks when this is a
    checkout (a benchmark peer's venv under benchmarks/.peers is not ours), else every one."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--", *folders],
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    return [ROOT / name for name in listed.split("\0") if name.endswith(".py")]
