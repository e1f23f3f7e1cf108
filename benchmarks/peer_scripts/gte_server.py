"""gcloud-tasks-emulator 0.6.2 ``start``, with its gRPC API bound to 127.0.0.1 only.

The stock command listens on ``[::]:PORT`` whatever host it is given. This wrapper replaces the
port the emulator asks gRPC for with ``127.0.0.1:0`` (a free port chosen by the kernel) and
prints ``listening url=grpc://127.0.0.1:PORT`` once the server started. Arguments after the
script name are passed to the stock CLI (``-q``, ``-r``...); ``--port`` is ignored.
"""

from __future__ import annotations

import os
import sys
import time

import grpc

_server = grpc.server


def _loopback_server(*args, **kwargs):  # type: ignore[no-untyped-def]
    server = _server(*args, **kwargs)
    add_port, start = server.add_insecure_port, server.start
    bound: list[int] = []

    def add_insecure_port(address: str) -> int:
        port = add_port("127.0.0.1:0")
        if not port:
            raise RuntimeError(f"could not bind 127.0.0.1 (the emulator asked for {address})")
        bound.append(port)
        return port

    def start_and_announce() -> None:
        start()
        print(
            f"listening url=grpc://127.0.0.1:{bound[0]} started={time.time():.6f}"
            f" cpu={time.process_time():.3f} pid={os.getpid()}",
            flush=True,
        )

    server.add_insecure_port = add_insecure_port
    server.start = start_and_announce
    return server


grpc.server = _loopback_server

from gcloud_tasks_emulator.__main__ import main  # noqa: E402  (after the patch, on purpose)

sys.argv = ["gcloud-tasks-emulator", "start", *sys.argv[1:]]
main()
