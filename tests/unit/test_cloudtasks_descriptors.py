"""The committed ``pushd/cloudtasks/cloudtasks.fds`` is what ``make proto`` makes of
``third_party/googleapis``, and its private pool coexists with Google's own client.

The set is compiled again with the protoc of the dev dependencies and compared byte for byte.
The coexistence checks run in fresh interpreters, in both import orders: protoc's generated
``_pb2`` modules for the same protos fail there with "duplicate symbol" (CLOUDTASKS.md 3.3).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pushd.cloudtasks import descriptors

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "third_party" / "googleapis"


def _makefile_protos() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^CLOUDTASKS_PROTOS := ((?:.*\\\n)*.*)$", text, re.M)
    assert match, "the Makefile has no CLOUDTASKS_PROTOS"
    return match.group(1).replace("\\\n", " ").split()


def test_the_descriptor_set_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "cloudtasks.fds"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(PROTO_ROOT),
            "--include_imports",
            f"--descriptor_set_out={out}",
            *_makefile_protos(),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == descriptors.FDS_PATH.read_bytes(), "run `make proto`"


def test_the_vendored_protos_keep_their_licence() -> None:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    assert len(protos) >= 20
    for proto in protos:
        assert "Licensed under the Apache License, Version 2.0" in proto.read_text(), proto
    assert (PROTO_ROOT / "LICENSE").is_file()
    assert "f8291d2b89f0017ab078a4c7378069bae5686f6f" in (PROTO_ROOT / "README.md").read_text()


@pytest.mark.parametrize("version", descriptors.VERSIONS)
def test_every_rpc_has_a_rest_binding(version: str) -> None:
    methods = descriptors.methods(version)
    assert {"CreateTask", "ListQueues", "RunTask", "ListLocations", "GetLocation"} <= set(methods)
    for method in methods.values():
        # v2beta2's UploadQueueYaml is gRPC only (old gcloud releases), as Google serves it
        assert method.http or method.name == "UploadQueueYaml", method.name
        assert all(rule.template.startswith(f"/{version}/") for rule in method.http)
    create = methods["CreateTask"]
    assert create.path == f"/google.cloud.tasks.{version}.CloudTasks/CreateTask"
    assert create.http == (
        descriptors.HttpRule(
            "POST", f"/{version}/{{parent=projects/*/locations/*/queues/*}}/tasks", "*"
        ),
    )
    assert methods["UpdateQueue"].http[0].body == "queue"
    assert methods["ListLocations"].path == "/google.cloud.location.Locations/ListLocations"


_BESIDE_THE_CLIENT = """
import sys
order = sys.argv[1]
if order == "client-first":
    from google.cloud import tasks_v2, tasks_v2beta2
from pushd.cloudtasks import descriptors
Task = descriptors.message_class("google.cloud.tasks.v2.Task")
PullTask = descriptors.message_class("google.cloud.tasks.v2beta2.Task")
if order == "pushd-first":
    from google.cloud import tasks_v2, tasks_v2beta2
pulled = PullTask(name="projects/p/locations/l/queues/q/tasks/t2")
pulled.pull_message.tag = "t"
assert tasks_v2beta2.Task.deserialize(pulled.SerializeToString()).pull_message.tag == "t"
ours = Task(name="projects/p/locations/l/queues/q/tasks/t1")
ours.app_engine_http_request.relative_uri = "/work"
theirs = tasks_v2.Task.deserialize(ours.SerializeToString())
assert theirs.name.endswith("/t1") and theirs.app_engine_http_request.relative_uri == "/work"
back = Task.FromString(tasks_v2.Task.serialize(theirs))
assert back == ours
print("ok")
"""


@pytest.mark.parametrize("order", ["pushd-first", "client-first"])
def test_the_private_pool_lives_beside_google_cloud_tasks(order: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _BESIDE_THE_CLIENT, order],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
