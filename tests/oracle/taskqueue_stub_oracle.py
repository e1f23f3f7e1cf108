"""Runs under the oracle venv: :mod:`taskqueue_scenario` against App Engine's own stub.

stdin: {"queue_yaml": text}
stdout: {"observations": [[label, value], ...]}

``google.appengine.api.taskqueue`` talks to ``taskqueue_stub.TaskQueueServiceStub`` (the SDK's
in-memory task queue service) registered in a fresh ``apiproxy_stub_map``, with the queue.yaml
in its root path. The stub never runs tasks by itself, so push tasks stay where they are. It is
:class:`stub_fix.FixedStub`, which fills in the chosen names of unnamed tasks that the stub
leaves out of its BulkAdd answers with the current protobuf runtime.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile

# tests/oracle is the script's directory, so first on sys.path
import stub_fix
import taskqueue_scenario
from google.appengine.api import apiproxy_stub_map, taskqueue

# The client warns on every task that HTTP_HOST is unset, the stub on every lease-limit delete.
logging.disable(logging.WARNING)


def main():
    request = json.load(sys.stdin)
    os.environ.setdefault("APPLICATION_ID", "pushd-oracle")
    os.environ.setdefault("SERVER_SOFTWARE", "Development/1.0 (testbed)")
    with tempfile.TemporaryDirectory() as root:
        stub = stub_fix.make_stub(root, request["queue_yaml"])
        apiproxy_stub_map.apiproxy = apiproxy_stub_map.APIProxyStubMap()
        apiproxy_stub_map.apiproxy.RegisterStub("taskqueue", stub)
        observations = taskqueue_scenario.run(taskqueue)
    json.dump({"observations": observations}, sys.stdout)


main()
