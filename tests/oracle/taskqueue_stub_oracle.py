"""Runs under the oracle venv: :mod:`taskqueue_scenario` against App Engine's own stub.

stdin: {"queue_yaml": text}
stdout: {"observations": [[label, value], ...]}

``google.appengine.api.taskqueue`` talks to ``taskqueue_stub.TaskQueueServiceStub`` (the SDK's
in-memory task queue service) registered in a fresh ``apiproxy_stub_map``, with the queue.yaml
in its root path. The stub never runs tasks by itself, so push tasks stay where they are.

One fix-up: with the current protobuf runtime the stub often leaves ``chosen_task_name`` out
of its BulkAdd answer for unnamed tasks (it tracks results by ``id()`` of protobuf wrappers,
which are not stable), although it writes the chosen name into the request. The wrapper below
copies those names into the answer before the client reads it, as the stub means to.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile

import taskqueue_scenario  # tests/oracle is the script's directory, so first on sys.path
from google.appengine.api import apiproxy_stub_map, taskqueue
from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
from google.appengine.api.taskqueue import taskqueue_stub

# The client warns on every task that HTTP_HOST is unset, the stub on every lease-limit delete.
logging.disable(logging.WARNING)


class FixedStub(taskqueue_stub.TaskQueueServiceStub):
    def _Dynamic_BulkAdd(self, request, response, request_id):
        unnamed = [not add.task_name for add in request.add_request]
        super()._Dynamic_BulkAdd(request, response, request_id)
        for add, result, chosen in zip(
            request.add_request, response.taskresult, unnamed, strict=True
        ):
            ok = result.result == pb.TaskQueueServiceError.OK
            if chosen and ok and not result.HasField("chosen_task_name"):
                result.chosen_task_name = add.task_name


def main():
    request = json.load(sys.stdin)
    os.environ.setdefault("APPLICATION_ID", "pushd-oracle")
    os.environ.setdefault("SERVER_SOFTWARE", "Development/1.0 (testbed)")
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "queue.yaml"), "w") as fh:
            fh.write(request["queue_yaml"])
        apiproxy_stub_map.apiproxy = apiproxy_stub_map.APIProxyStubMap()
        apiproxy_stub_map.apiproxy.RegisterStub("taskqueue", FixedStub(root_path=root))
        observations = taskqueue_scenario.run(taskqueue)
    json.dump({"observations": observations}, sys.stdout)


main()
