"""Which daemon the client talks to (:func:`configure`), its kept HTTP clients and thread pool."""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass

from pushd import client as http
from pushd import clock, errors


@dataclass(slots=True)
class _Defaults:
    url: str | None = None
    token: str | None = None
    clock: clock.Clock | None = None


defaults = _Defaults()
_lock = threading.Lock()
_clients: dict[tuple[str, str | None], http.Client] = {}
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_EXECUTOR_THREADS = 8


def configure(
    *, url: str | None = None, token: str | None = None, clock: clock.Clock | None = None
) -> None:
    """Set the daemon every :class:`Queue` without its own ``url``/``token`` talks to.

    ``None`` means ``$PUSHD_URL`` / ``$PUSHD_TOKEN`` or the built-in default; ``configure()``
    restores those. ``clock`` is where tasks read "now" (countdowns; tests pass a fake one).
    """
    if url is not None:
        http.server_url(url)  # a malformed URL fails here, not at the first call
    with _lock:
        defaults.url, defaults.token, defaults.clock = url, token, clock
        # Forget the clients, closing every thread's kept-alive connection.
        for found in _clients.values():
            found.close_all()
        _clients.clear()


def now_us() -> int:
    return (defaults.clock or clock.SystemClock()).now_us()


def sync_client(url: str | None, token: str | None) -> http.Client:
    base = http.server_url(url or defaults.url)
    secret = http.server_token(token or defaults.token)
    with _lock:
        found = _clients.get((base, secret))
        if found is None:
            found = _clients[(base, secret)] = http.Client(base, token=secret)
        return found


def pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                _EXECUTOR_THREADS, thread_name_prefix="pushd-taskqueue"
            )
        return _executor


def validate_deadline(deadline: object) -> None:
    """App Engine's RPC deadline rule: a number (``TypeError``), greater than 0."""
    if not isinstance(deadline, int | float):
        raise TypeError("deadline must be numeric")
    if deadline <= 0:
        raise errors.InvalidDeadlineError("Negative or zero deadline requested")
