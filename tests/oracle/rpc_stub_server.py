"""Runs under the oracle venv: App Engine's task queue stub behind ``POST /rpc_http``.

stdin: one line {"queue_yaml": text}, then nothing until it closes
stdout: one line, the port, once listening on 127.0.0.1

The endpoint speaks what the SDK's ``default_api_stub`` sends and expects: a
``remote_api_bytes_pb2.Request`` in, HTTP 200 with a ``remote_api_bytes_pb2.Response`` out. The
call goes to :class:`stub_fix.FixedStub` (the SDK's ``TaskQueueServiceStub``) with the request
and response classes ``TaskQueue<method>Request/Response`` of ``taskqueue_service_bytes_pb2``.
An ``ApplicationError`` of the stub becomes ``application_error``, an unknown service or method
``rpc_error`` CALL_NOT_FOUND, an unparsable request PARSE_ERROR, any other failure UNKNOWN.

The server stops when stdin closes (its parent went away) or when it is killed.
"""

from __future__ import annotations

import http.server
import json
import logging
import sys
import tempfile
import threading
import traceback

# tests/oracle is the script's directory, so first on sys.path
import stub_fix
from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api
from google.appengine.runtime import apiproxy_errors
from google.protobuf import message

# The stub warns on every lease-limit delete.
logging.disable(logging.WARNING)

SERVICE = "taskqueue"
RpcError = remote_api.RpcError

#: apiproxy_errors raised by the stub itself (not ApplicationError) -> rpc_error code
RPC_ERRORS = [
    (apiproxy_errors.CallNotFoundError, RpcError.CALL_NOT_FOUND),
    (apiproxy_errors.ArgumentError, RpcError.PARSE_ERROR),
    (apiproxy_errors.RequestTooLargeError, RpcError.REQUEST_TOO_LARGE),
    (apiproxy_errors.ResponseTooLargeError, RpcError.RESPONSE_TOO_LARGE),
    (apiproxy_errors.OverQuotaError, RpcError.OVER_QUOTA),
    (apiproxy_errors.CapabilityDisabledError, RpcError.CAPABILITY_DISABLED),
    (apiproxy_errors.FeatureNotEnabledError, RpcError.FEATURE_DISABLED),
    (apiproxy_errors.CancelledError, RpcError.CANCELLED),
    (apiproxy_errors.DeadlineExceededError, RpcError.DEADLINE_EXCEEDED),
]


class Service:
    """One stub; calls are serialized, as an in-process stub sees them one at a time."""

    def __init__(self, stub: stub_fix.FixedStub) -> None:
        self.stub = stub
        self.lock = threading.Lock()

    def call(self, body: bytes) -> remote_api.Response:
        answer = remote_api.Response()
        envelope = remote_api.Request()
        try:
            envelope.ParseFromString(body)
        except message.DecodeError as exc:
            answer.rpc_error.code = RpcError.PARSE_ERROR
            answer.rpc_error.detail = f"bad Request envelope: {exc}"
            return answer
        method = envelope.method
        request_cls = getattr(pb, f"TaskQueue{method}Request", None)
        response_cls = getattr(pb, f"TaskQueue{method}Response", None)
        known = hasattr(self.stub, f"_Dynamic_{method}")
        if envelope.service_name != SERVICE or not (request_cls and response_cls and known):
            answer.rpc_error.code = RpcError.CALL_NOT_FOUND
            answer.rpc_error.detail = f"{envelope.service_name}.{method}"
            return answer
        request = request_cls()
        response = response_cls()
        try:
            request.ParseFromString(envelope.request)
        except message.DecodeError as exc:
            answer.rpc_error.code = RpcError.PARSE_ERROR
            answer.rpc_error.detail = str(exc)
            return answer
        try:
            with self.lock:
                self.stub.MakeSyncCall(
                    SERVICE, method, request, response, envelope.request_id or None
                )
            answer.response = response.SerializeToString()
        except apiproxy_errors.ApplicationError as exc:
            answer.application_error.code = exc.application_error
            answer.application_error.detail = exc.error_detail or ""
        except Exception as exc:
            traceback.print_exc()
            code = next((c for cls, c in RPC_ERRORS if isinstance(exc, cls)), RpcError.UNKNOWN)
            answer.rpc_error.code = code
            answer.rpc_error.detail = f"{type(exc).__name__}: {exc}"
        return answer


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/rpc_http":
            self._answer(404, b"not found", "text/plain")
            return
        answer = self.server.service.call(body)
        self._answer(200, answer.SerializeToString(), "application/octet-stream")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # one line per call: too many
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: Service) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.service = service


def main() -> None:
    config = json.loads(sys.stdin.readline())
    with tempfile.TemporaryDirectory() as root:
        server = Server(Service(stub_fix.make_stub(root, config["queue_yaml"])))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        print(server.server_address[1], flush=True)
        sys.stdin.read()  # until the parent closes stdin or goes away
        server.shutdown()
        server.server_close()


main()
