"""pushd's queue.yaml validation agrees with App Engine's ``queueinfo`` (SPEC 5).

Every file is judged by both. When both accept, they must read the same values. When only App
Engine accepts, every issue pushd reports must be marked ``stricter`` (a deliberate rule,
listed in pushd.queue_yaml.config). pushd accepting a file App Engine refuses is always a failure. The
oracle runs once for the whole module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from pushd import errors, models
from pushd.queue_yaml import config
from tests.oracle import queue_yaml_variants as variants
from tests.oracle.runner import run_oracle

pytestmark = pytest.mark.oracle

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "queue_yaml"  # 40 real files, MANIFEST.tsv names each source
EXAMPLE = ROOT / "queue.yaml.example"
CORPUS_FILES = sorted(CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []
CORPUS_CASES = [(f"corpus {p.name}", p.read_text(encoding="utf-8")) for p in CORPUS_FILES]
EXAMPLE_CASE = ("queue.yaml.example", EXAMPLE.read_text(encoding="utf-8"))
MUTANTS = variants.mutants([text for _, text in [*CORPUS_CASES, EXAMPLE_CASE]], count=400)
ALL_CASES = dict(
    [*CORPUS_CASES, EXAMPLE_CASE, *variants.REJECTED, *variants.STRICTER, *variants.VALID, *MUTANTS]
)
RETRY_FIELDS = {
    "retry_limit": "task_retry_limit",
    "age_limit_sec": "task_age_limit_s",
    "min_backoff_sec": "min_backoff_s",
    "max_backoff_sec": "max_backoff_s",
    "max_doublings": "max_doublings",
}


@pytest.fixture(scope="module")
def oracle() -> dict[str, Any]:
    files = [{"id": case_id, "text": text} for case_id, text in ALL_CASES.items()]
    results: dict[str, Any] = run_oracle("queueinfo_oracle.py", {"files": files})["results"]
    return results


def _load(case_id: str) -> config.QueuesConfig | errors.ConfigError:
    try:
        return config.load_text(ALL_CASES[case_id])
    except errors.ConfigError as exc:
        return exc


def _values(loaded: config.QueuesConfig) -> dict[str, Any]:
    """pushd's reading, in the oracle's shape (see queueinfo_oracle.py)."""
    queues = []
    for q in loaded.queues.values():
        if q.implicit:
            continue
        retry = {ae: getattr(q.retry, ours) for ae, ours in RETRY_FIELDS.items()}
        queues.append(
            {
                "name": q.name,
                "mode": q.mode.value,
                "rate": float(q.rate),
                "bucket_size": q.bucket_size,
                "max_concurrent_requests": q.max_concurrent_requests,
                "target": q.target,
                "retry": {k: v for k, v in retry.items() if v is not None},
                "acl": [[a.user_email, a.writer_email] for a in q.acl],
            }
        )
    return {
        "queues": queues,
        "total_storage_limit": loaded.total_storage_limit_bytes,
        "resume_paused_queues": loaded.resume_paused_queues,
    }


def _disagreement(case_id: str, verdict: dict[str, Any]) -> str | None:
    """Why pushd's reading of a case is wrong given App Engine's verdict, or None."""
    loaded = _load(case_id)
    if isinstance(loaded, errors.ConfigError):
        if not verdict["ok"]:
            return None
        lax = [str(i) for i in loaded.issues if not i.stricter]
        return (
            f"App Engine accepts, pushd refuses without saying it is stricter: {lax}"
            if lax
            else None
        )
    if not verdict["ok"]:
        return f"pushd accepts what App Engine refuses: {verdict['error']}"
    theirs, ours = verdict["config"], _values(loaded)
    if models.DEFAULT_QUEUE_NAME not in loaded.queues:
        return "no default queue"
    for queue in theirs["queues"]:
        if queue["rate"] is None or queue["mode"] == "pull":
            queue.pop("rate")  # pushd: 5/s with a warning, or 0 for pull queues
    for queue in ours["queues"]:
        if "rate" not in next((t for t in theirs["queues"] if t["name"] == queue["name"]), {}):
            queue.pop("rate")
    if [q["name"] for q in theirs["queues"]] != [q["name"] for q in ours["queues"]]:
        return f"queues differ: {theirs['queues']} != {ours['queues']}"
    for a, b in zip(theirs["queues"], ours["queues"], strict=True):
        if "rate" in a and not math.isclose(a.pop("rate"), b.pop("rate"), rel_tol=1e-12):
            return f"rate of {a['name']} differs"
        if a != b:
            return f"queue {a['name']} differs: App Engine {a} != pushd {b}"
    theirs.pop("queues")
    ours.pop("queues")
    return None if theirs == ours else f"top level differs: App Engine {theirs} != pushd {ours}"


def test_the_corpus_is_in_the_repository() -> None:
    assert CORPUS.is_dir(), f"{CORPUS} is missing (tests/data/README.md)"
    assert len(CORPUS_FILES) == 40


@pytest.mark.parametrize("case_id", [case_id for case_id, _ in [*CORPUS_CASES, EXAMPLE_CASE]])
def test_corpus_files_load_and_match_app_engine(oracle: dict[str, Any], case_id: str) -> None:
    assert oracle[case_id]["ok"], oracle[case_id]["error"]
    assert isinstance(_load(case_id), config.QueuesConfig)
    assert _disagreement(case_id, oracle[case_id]) is None


@pytest.mark.parametrize("case_id", [case_id for case_id, _ in variants.REJECTED])
def test_both_refuse(oracle: dict[str, Any], case_id: str) -> None:
    assert not oracle[case_id]["ok"], "App Engine accepts this variant"
    assert isinstance(_load(case_id), errors.ConfigError)


@pytest.mark.parametrize("case_id", [case_id for case_id, _ in variants.STRICTER])
def test_pushd_is_stricter_and_says_so(oracle: dict[str, Any], case_id: str) -> None:
    assert oracle[case_id]["ok"], f"App Engine refuses this variant: {oracle[case_id]['error']}"
    loaded = _load(case_id)
    assert isinstance(loaded, errors.ConfigError)
    assert all(i.stricter for i in loaded.issues), loaded.issues
    assert all(config.STRICTER_NOTE in i.message for i in loaded.issues)


@pytest.mark.parametrize("case_id", [case_id for case_id, _ in variants.VALID])
def test_both_accept_and_read_the_same_values(oracle: dict[str, Any], case_id: str) -> None:
    assert oracle[case_id]["ok"], oracle[case_id]["error"]
    assert _disagreement(case_id, oracle[case_id]) is None


def test_mutants_of_the_corpus_are_never_accepted_more_leniently(oracle: dict[str, Any]) -> None:
    wrong = {}
    for case_id, _ in MUTANTS:
        if (why := _disagreement(case_id, oracle[case_id])) is not None:
            wrong[case_id] = (why, ALL_CASES[case_id])
    assert not wrong, "\n\n".join(f"{k}: {why}\n{text!r}" for k, (why, text) in wrong.items())
