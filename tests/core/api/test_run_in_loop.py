"""``cs.run`` where an event loop is already running (a Jupyter kernel, an async framework):
the run gets a private loop in a worker thread, with the same result, exceptions, logging and
context, and an interrupt cancels it and tears its resources down.

The outer loop here is driven with ``run_until_complete`` rather than ``asyncio.run``, as a
kernel drives its own: ``asyncio.run`` (3.11+) installs a SIGINT handler of its own that only
cancels its main task, which a blocking call inside it cannot see.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from core_helpers import add

import cascade as cs

REQUEST = contextvars.ContextVar("REQUEST", default="unset")

#: Interrupts are SIGINT sent to the main thread, as a kernel's interrupt is on POSIX.
posix_signals = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill"), reason="sends SIGINT to a thread (POSIX)"
)


def inside_a_running_loop(call: Callable[[], Any]) -> Any:
    """``call()`` from a coroutine of a loop running in this thread, as a cell runs in a kernel."""

    async def cell() -> Any:
        asyncio.get_running_loop()  # there is one: cs.run must cope
        return call()

    return _drive(cell())


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@cs.task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@cs.task
def boom(x: int) -> int:
    raise ValueError(f"bad input {x}")


@cs.task
def read_request() -> str:
    return REQUEST.get()


def test_the_result_is_what_it_is_outside_a_loop() -> None:
    target = {"sum": add(async_double(2), 1), "double": async_double(1)}
    assert inside_a_running_loop(lambda: cs.run(target, log_level=None)) == {"sum": 5, "double": 2}
    pair = [async_double(1), add(1, 1)]
    assert inside_a_running_loop(lambda: cs.run(pair, log_level=None)) == [2, 2]


def test_the_run_is_on_another_loop_and_thread_and_the_caller_loop_is_untouched() -> None:
    seen: dict[str, Any] = {}

    @cs.task
    async def where() -> str:
        seen["loop"] = asyncio.get_running_loop()
        return threading.current_thread().name

    async def cell() -> str:
        seen["outer"] = asyncio.get_running_loop()
        name: str = cs.run(where(), log_level=None)
        await asyncio.sleep(0)  # the caller's loop still works afterwards
        return name

    assert _drive(cell()) == "cascade-run"
    assert seen["loop"] is not seen["outer"]
    assert not any(t.name == "cascade-run" for t in threading.enumerate())


def test_a_failing_task_raises_its_own_exception_unchanged() -> None:
    with pytest.raises(ValueError, match="bad input 3") as info:
        inside_a_running_loop(lambda: cs.run(boom(3), log_level=None))
    # The traceback reaches into the task, as it does outside a loop.
    assert any(frame.name == "boom" for frame in info.traceback)


def test_run_failed_carries_every_failure_and_the_results() -> None:
    target = [boom(1), add(1, 2), boom(2)]
    with pytest.raises(cs.RunFailed) as info:
        inside_a_running_loop(lambda: cs.run(target, on_failure="continue", log_level=None))
    assert sorted(str(e) for e in info.value.exceptions) == ["bad input 1", "bad input 2"]
    assert info.value.results == [None, 3, None]


def test_the_caller_context_variables_reach_the_tasks() -> None:
    def call() -> Any:
        REQUEST.set("request-42")
        return cs.run(read_request(), log_level=None)

    assert inside_a_running_loop(lambda: contextvars.copy_context().run(call)) == "request-42"


def test_log_lines_are_the_same(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cascade")
    inside_a_running_loop(lambda: cs.run(add(1, 2)))
    inside = [r.getMessage() for r in caplog.records if r.name.startswith("cascade")]
    caplog.clear()
    cs.run(add(1, 2))
    outside = [r.getMessage() for r in caplog.records if r.name.startswith("cascade")]
    assert inside and len(inside) == len(outside)
    assert any("add" in line for line in inside)


@posix_signals
def test_an_interrupt_cancels_the_run_tears_resources_down_and_raises() -> None:
    started = threading.Event()
    events: list[str] = []

    @cs.resource(name="interrupt_test_connection")
    def connection() -> Iterator[str]:
        events.append("setup")
        yield "conn"
        events.append("teardown")

    @cs.task
    async def wait_forever(conn: str = cs.inject("interrupt_test_connection")) -> str:
        started.set()
        await asyncio.Event().wait()
        return conn

    def interrupt_once_started() -> None:
        assert started.wait(timeout=60)
        # What interrupting a kernel does: SIGINT to the main thread, which is blocked in cs.run.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupter = threading.Thread(target=interrupt_once_started)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            inside_a_running_loop(lambda: cs.run(wait_forever(), log_level=None))
    finally:
        interrupter.join()
    assert events == ["setup", "teardown"]
    assert not any(t.name == "cascade-run" for t in threading.enumerate())
    # Nothing process-wide changed, and the next run works.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert inside_a_running_loop(lambda: cs.run(add(2, 2), log_level=None)) == 4


@posix_signals
def test_a_second_interrupt_stops_waiting_for_the_teardown() -> None:
    started, tearing, release, finished = (threading.Event() for _ in range(4))
    main = threading.main_thread().ident or 0

    @cs.resource(name="slow_teardown_test_resource")
    def slow() -> Iterator[str]:
        yield "value"
        tearing.set()
        assert release.wait(timeout=60)
        finished.set()

    @cs.task
    async def hold(value: str = cs.inject("slow_teardown_test_resource")) -> str:
        started.set()
        await asyncio.Event().wait()
        return value

    def interrupt_twice() -> None:
        assert started.wait(timeout=60)
        signal.pthread_kill(main, signal.SIGINT)
        assert tearing.wait(timeout=60)  # the first interrupt reached the run: it tears down
        signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_twice)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            inside_a_running_loop(lambda: cs.run(hold(), log_level=None))
        # Back in the caller while the teardown still waits: it goes on in the worker.
        assert tearing.is_set() and not finished.is_set()
    finally:
        release.set()
        interrupter.join()
    assert finished.wait(timeout=60)
    for worker in [t for t in threading.enumerate() if t.name == "cascade-run"]:
        worker.join(timeout=60)  # the run's thread ends once its teardown is done
        assert not worker.is_alive()
