"""Child-process helpers shared by the tests and the benchmarks (which import them from here).

Children are started with ``PR_SET_PDEATHSIG`` so they die with the process that started them,
even when it is killed without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if the parent dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, chars: int = 2000) -> str:
    """The end of a log file, for error messages ("" if it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
