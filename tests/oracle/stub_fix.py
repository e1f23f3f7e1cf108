"""Runs under the oracle venv: App Engine's task queue stub, with one fix-up, over a queue.yaml.

With the current protobuf runtime the SDK's ``TaskQueueServiceStub`` often leaves
``chosen_task_name`` out of its BulkAdd answer for unnamed tasks (it tracks results by ``id()``
of protobuf wrappers, which are not stable), although it writes the chosen name into the
request. :class:`FixedStub` copies those names into the answer, as the stub means to.
"""

from __future__ import annotations

import os

from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
from google.appengine.api.taskqueue import taskqueue_stub


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


def make_stub(root: str, queue_yaml: str) -> FixedStub:
    """A fixed stub whose application root ``root`` holds ``queue_yaml`` as queue.yaml."""
    with open(os.path.join(root, "queue.yaml"), "w") as fh:
        fh.write(queue_yaml)
    return FixedStub(root_path=root)
