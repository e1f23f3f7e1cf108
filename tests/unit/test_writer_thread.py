"""The SQLite writer's own thread (store/writer.py ``WriterThread``): in order, one at a time,
results and errors back on the event loop, a cancelled caller harmless."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pushd.store.writer import WriterThread


async def test_functions_run_in_order_on_one_other_thread() -> None:
    thread = WriterThread("test-writer")
    try:
        seen: list[tuple[int, str]] = []

        def job(i: int) -> int:
            seen.append((i, threading.current_thread().name))
            return i * 10

        results = await asyncio.gather(*(thread.run(lambda i=i: job(i)) for i in range(50)))
        assert results == [i * 10 for i in range(50)]
        assert [i for i, _ in seen] == list(range(50))
        assert {name for _, name in seen} == {"test-writer"}
    finally:
        thread.shutdown()


async def test_an_exception_reaches_the_caller_and_the_thread_lives_on() -> None:
    class Boom(BaseException):  # even a BaseException, as a job may raise one
        pass

    def explode() -> None:
        raise Boom

    thread = WriterThread("test-writer")
    try:
        with pytest.raises(Boom):
            await thread.run(explode)
        assert await thread.run(lambda: "alive") == "alive"
    finally:
        thread.shutdown()


async def test_a_cancelled_caller_leaves_the_others_answered() -> None:
    thread = WriterThread("test-writer")
    gate = threading.Event()
    try:
        blocked = thread.run(gate.wait)
        cancelled = thread.run(lambda: "nobody reads this")
        after = thread.run(lambda: "after")
        cancelled.cancel()
        gate.set()
        assert await blocked is True
        assert await after == "after"
        assert cancelled.cancelled()
    finally:
        thread.shutdown()


async def test_shutdown_runs_what_was_given_first() -> None:
    thread = WriterThread("test-writer")
    done: list[int] = []
    futures = [thread.run(lambda i=i: done.append(i)) for i in range(5)]
    thread.shutdown(wait=True)
    assert done == [0, 1, 2, 3, 4]
    await asyncio.gather(*futures)
