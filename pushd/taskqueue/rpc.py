"""App Engine's ``UserRPC``: what the ``*_async`` methods answer."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pushd import errors
from pushd.taskqueue import connection

R = TypeVar("R")


class RPC(Generic[R]):
    """What the ``*_async`` methods answer; :meth:`get_result` waits for the outcome.

    Like App Engine's ``UserRPC``: the answer is read when :meth:`get_result` (or
    :meth:`check_success`) is called, errors are raised there, and ``callback`` runs once the
    call has finished, when it is first waited for. ``deadline`` bounds that wait.
    """

    def __init__(
        self, deadline: float | None = None, callback: Callable[[], object] | None = None
    ) -> None:
        if deadline is not None:
            connection.validate_deadline(deadline)
        self.deadline = deadline
        self.callback = callback
        self._future: concurrent.futures.Future[list[Any]] | None = None
        self._finish: Callable[[list[Any]], R] | None = None
        self._finished = False
        self._result: R | None = None
        self._error: Exception | None = None
        self._called_back = False

    def _start(self, run: Callable[[], list[Any]], finish: Callable[[list[Any]], R]) -> RPC[R]:
        if self._future is not None:
            raise AssertionError("this RPC object was used already; create a new one")
        self._finish = finish
        self._future = connection.pool().submit(run)
        return self

    def wait(self) -> None:
        """Block until the call has finished (or the deadline passed)."""
        if self._future is None:
            raise AssertionError("this RPC object was never used for a call")
        try:
            concurrent.futures.wait([self._future], timeout=self.deadline)
        finally:
            if self._future.done() and not self._called_back and self.callback is not None:
                self._called_back = True
                self.callback()

    def check_success(self) -> None:
        """Raise the call's error, if it failed."""
        self.get_result()

    def get_result(self) -> R:
        """The call's result, or the exception App Engine's client raises for it."""
        if not self._finished:
            self.wait()
            future, finish = self._future, self._finish
            assert future is not None
            assert finish is not None
            if not future.done():
                raise errors.TransientError(
                    f"the call did not finish within its {self.deadline} s deadline"
                )
            try:
                self._result = finish(future.result())
            except Exception as exc:
                self._error = exc
            self._finished = True
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # R itself may include None


def create_rpc(
    deadline: float | None = None, callback: Callable[[], object] | None = None
) -> RPC[Any]:
    """An :class:`RPC` to hand to a ``*_async`` method (App Engine's ``create_rpc``)."""
    return RPC(deadline, callback)
