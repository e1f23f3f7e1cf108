"""Runs under the oracle venv: App Engine's stub ``Retry`` for a list of cases.

stdin: {"cases": [{"params": {...}, "n": int, "age_usec": int}, ...]}
stdout: {"results": [{"backoff_usec": int, "can_retry": bool}, ...]}
"""

from __future__ import annotations

import json
import sys

from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
from google.appengine.api.taskqueue import taskqueue_stub


class _Queue:
    def __init__(self, params):
        self.retry_parameters = params


def main():
    cases = json.load(sys.stdin)["cases"]
    results = []
    for case in cases:
        params = pb.TaskQueueRetryParameters()
        for key, value in case["params"].items():
            setattr(params, key, value)
        r = taskqueue_stub.Retry(None, _Queue(params))
        results.append(
            {
                "backoff_usec": r.CalculateBackoffUsec(case["n"]),
                "can_retry": bool(r.CanRetry(case["n"], case["age_usec"])),
            }
        )
    json.dump({"results": results}, sys.stdout)


main()
