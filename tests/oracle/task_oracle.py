"""Runs under the oracle venv: App Engine's client builds (or rejects) each task of a list.

stdin: {"now": float POSIX seconds, "cases": [case, ...]} where a case is
    {"queue": str, "tz": str, "env": {name: value}, "namespace": str, "task": kwargs} or
    {"queue": str, ..., "batch": [kwargs, ...]}
and kwargs are ``taskqueue.Task`` keyword arguments in the tagged JSON of
``tests/oracle/test_task_oracle.py`` (``{"$bytes": b64}``, ``{"$datetime": iso}``, ``{"$pairs": [...]}``,
``{"$retry": {...}}``).
stdout: {"results": [result, ...]}, a result being
    {"ok": false, "error": class name, "message": str} or
    {"ok": true, "tasks": [{"url", "on_queue_url", "size", "headers", "payload", "eta_usec",
                            "method", "name", "tag", "params"}, ...]}
with ``url`` including the ``/_ah/queue/<queue>`` prefix the client adds at add time and
``payload``/``tag`` in base64. ``time.time`` is frozen at ``now`` so countdowns are exact.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import sys
import time

from google.appengine.api import namespace_manager
from google.appengine.api.taskqueue import taskqueue

# The client warns on every task that HTTP_HOST is unset; that is the point here.
logging.disable(logging.WARNING)


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$datetime" in value:
            return datetime.datetime.fromisoformat(value["$datetime"])
        if "$pairs" in value:
            return [tuple(_decode(p)) for p in value["$pairs"]]
        if "$retry" in value:
            return taskqueue.TaskRetryOptions(**value["$retry"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def _b64(data):
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _params(task):
    try:
        params = task.extract_params()
    except Exception as exc:
        return {"error": type(exc).__name__}
    # Keys come back as bytes for POST/PULL and str otherwise; values always as bytes.
    return {
        _text(key): [_b64(v) for v in value] if isinstance(value, list) else _b64(value)
        for key, value in params.items()
    }


def _describe(queue, task):
    url = task.url
    if task.on_queue_url:
        url = f"/_ah/queue/{queue}{url}"
    tag = task.tag
    return {
        "url": url,
        "on_queue_url": task.on_queue_url,
        "size": task.size,
        "headers": [[_text(k), _text(v)] for k, v in taskqueue._flatten_params(task.headers)],
        "payload": _b64(task.payload),
        "eta_usec": task._eta_usec,
        "method": task.method,
        "name": task.name,
        "tag": _b64(tag) if tag else None,
        "params": _params(task),
    }


def _run(case, now):
    queue_name = case["queue"]
    queue = taskqueue.Queue(queue_name)
    if "task" in case:
        task = taskqueue.Task(**_decode(case["task"]))
        return [_describe(queue_name, task)]
    tasks = [taskqueue.Task(**_decode(kwargs)) for kwargs in case["batch"]]
    # Every client-side batch check runs before the RPC; stop there.
    taskqueue._MakeAsyncCall = lambda *args, **kwargs: None
    queue.add_async(tasks)
    return [_describe(queue_name, task) for task in tasks]


def main():
    request = json.load(sys.stdin)
    now = request["now"]
    time.time = lambda: now
    results = []
    for case in request["cases"]:
        os.environ["TZ"] = case.get("tz", "UTC")
        time.tzset()
        env = case.get("env", {})
        os.environ.update(env)
        namespace_manager.set_namespace(case.get("namespace", ""))
        try:
            results.append({"ok": True, "tasks": _run(case, now)})
        except Exception as exc:
            results.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
        finally:
            for key in env:
                del os.environ[key]
    json.dump({"results": results}, sys.stdout)


main()
