"""Runs under the oracle venv: a small App Engine app, unmodified, with pushd as its API server.

A WSGI app wrapped with ``google.appengine.api.wrap_wsgi_app(app, use_deferred=True)`` and
served by a threaded ``wsgiref`` server on 127.0.0.1. Its API calls go where the SDK sends them
in production: ``POST http://$API_HOST:$API_PORT/rpc_http``.

Protocol (one JSON object per line):

1. it binds an ephemeral port and prints ``{"port": N}``;
2. unless ``API_PORT`` is already in the environment, it reads ``{"api_port": M}`` from stdin
   (so pushd, whose ``--default-target`` is this app, can start after the app's port is known);
3. it wraps the app (which snapshots ``os.environ`` as every request's default environment)
   and prints ``{"ready": true}``;
4. then one line per event:

   - ``GET /start`` (a user request, no ticket header: the SDK uses the
     ``HTTP_X_APPENGINE_API_TICKET`` of the process environment) adds tasks to ``default`` and
     ``fast`` with ``taskqueue.add`` and ``Queue.add``, defers :func:`record_deferred` twice and
     prints ``{"event": "start", "added": [[queue, name], ...]}``;
   - ``POST /work`` (a push task) prints ``{"event": "work", ...}`` with its X-AppEngine-*
     headers and payload; a first-level task adds a follow-up to its own queue from inside the
     handler, with the delivery's ticket;
   - :func:`record_deferred`, run by the SDK's deferred handler at ``/_ah/queue/deferred``,
     prints ``{"event": "deferred", ...}``;
   - a handler that raised prints ``{"event": "error", ...}`` and answers 500.

Nothing sets ``SERVER_SOFTWARE`` to ``Devel...``: the deferred handler accepts pushd's requests
as it accepts App Engine's, because ``X-AppEngine-User-IP: 0.1.0.2`` becomes ``REMOTE_ADDR``.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
import threading
import traceback
from wsgiref import simple_server
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from google.appengine.api import taskqueue, wrap_wsgi_app
from google.appengine.ext import deferred

_print_lock = threading.Lock()

FIRST_LEVEL = [
    # (queue, name or None, how it is added)
    ("default", "start-default-named", "taskqueue.add"),
    ("default", None, "taskqueue.add"),
    ("fast", "start-fast-named", "taskqueue.add"),
    ("fast", None, "Queue.add batch"),
    ("fast", None, "Queue.add batch"),
]
DEFERRED = [("default", "deferred to default"), ("fast", "deferred to fast")]


def emit(**event):
    line = json.dumps(event, sort_keys=True)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def record_deferred(arg):
    """The deferred target: module level in ``__main__``, which pickle finds in this process."""
    emit(
        event="deferred",
        arg=arg,
        queue=os.environ.get("HTTP_X_APPENGINE_QUEUENAME"),
        task=os.environ.get("HTTP_X_APPENGINE_TASKNAME"),
        remote_addr=os.environ.get("REMOTE_ADDR"),
        server_software=os.environ.get("SERVER_SOFTWARE"),
    )


def appengine_headers(environ):
    return {
        key[len("HTTP_X_APPENGINE_") :].lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_X_APPENGINE_") and isinstance(value, str)
    }


def start(environ):
    added = []
    batch = []
    for i, (queue, name, how) in enumerate(FIRST_LEVEL):
        payload = json.dumps({"level": 1, "i": i, "queue": queue, "how": how})
        if how == "taskqueue.add":
            task = taskqueue.add(url="/work", name=name, payload=payload, queue_name=queue)
            added.append([task.queue_name, task.name])
        else:
            batch.append(taskqueue.Task(url="/work", name=name, payload=payload))
    for task in taskqueue.Queue("fast").add(batch):
        added.append([task.queue_name, task.name])
    for queue, arg in DEFERRED:
        task = deferred.defer(record_deferred, arg, _queue=queue)
        added.append([task.queue_name, task.name])
    emit(
        event="start",
        added=added,
        ticket_header=environ.get("HTTP_X_APPENGINE_API_TICKET"),
        ticket_used=os.environ.get("HTTP_X_APPENGINE_API_TICKET"),
    )
    return "200 OK", b"started"


def work(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    payload = json.loads(environ["wsgi.input"].read(length))
    headers = appengine_headers(environ)
    followup = None
    if payload["level"] == 1:
        child = {"level": 2, "parent": headers.get("taskname")}
        task = taskqueue.add(
            url="/work", payload=json.dumps(child), queue_name=headers.get("queuename")
        )
        followup = [task.queue_name, task.name]
    emit(
        event="work",
        method=environ["REQUEST_METHOD"],
        path=environ["PATH_INFO"],
        payload=payload,
        headers=headers,
        remote_addr=environ.get("REMOTE_ADDR"),
        ticket_used=os.environ.get("HTTP_X_APPENGINE_API_TICKET"),
        followup=followup,
    )
    return "200 OK", b"done"


ROUTES = {("GET", "/start"): start, ("POST", "/work"): work}


def app(environ, start_response):
    handler = ROUTES.get((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
    if handler is None:
        status, body = "404 Not Found", b"no such page"
    else:
        try:
            status, body = handler(environ)
        except Exception as exc:
            emit(
                event="error",
                path=environ["PATH_INFO"],
                headers=appengine_headers(environ),
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            status, body = "500 Internal Server Error", b"failed"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """Threaded: pushd delivers the first tasks while ``/start`` is still adding the rest."""

    daemon_threads = True


def main():
    # wsgiref copies the process environment into every WSGI environ; production servers
    # (gunicorn, App Engine's own) do not, so neither does this app: a ticket in the process
    # environment reaches requests only through wrap_wsgi_app's legacy os.environ handling.
    simple_server.ServerHandler.os_environ = {}
    server = ThreadingWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    emit(port=server.server_address[1])
    if "API_PORT" not in os.environ:
        os.environ["API_PORT"] = str(json.loads(sys.stdin.readline())["api_port"])
    os.environ.setdefault("API_HOST", "127.0.0.1")
    # wrap_wsgi_app snapshots os.environ here: every request starts from this environment, and
    # the request's WSGI variables (its X-AppEngine-* headers among them) are copied over it.
    server.set_app(wrap_wsgi_app(app, use_deferred=True))
    emit(ready=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
