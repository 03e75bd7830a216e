"""Resource teardown when things go wrong: a task-scoped resource outlives the sync attempt that
uses it (a sibling failed, the attempt timed out), partly set-up resources are torn down, and a
run resource failing in setup is named."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from core_helpers import notes_of

import cascade as cs
from cascade.events import RunFinished, TaskExecutionFinished, TaskRetrying


def test_task_scoped_resource_is_torn_down_after_its_sync_task_when_a_sibling_fails() -> None:
    log: list[str] = []
    started = threading.Event()
    release = threading.Event()

    @cs.resource(name="fault7_conn", scope="task")
    def fault7_conn() -> Iterator[str]:
        log.append("setup")
        yield "conn"
        log.append("teardown")

    @cs.task
    def uses(conn: str = cs.inject("fault7_conn")) -> str:
        started.set()
        release.wait(60)
        log.append("used")
        return conn

    @cs.task
    async def fails() -> None:
        await asyncio.to_thread(started.wait, 60)
        raise ValueError("sibling failed")

    bus = cs.MessageBus()
    bus.subscribe(
        TaskExecutionFinished,
        lambda e: release.set() if e.task_name == "fails" else None,
        statuses={"Failed"},
    )
    with pytest.raises(ValueError, match="sibling failed"):
        cs.run([uses(), fails()], bus=bus, log_level=None)
    assert log == ["setup", "used", "teardown"]


def test_task_scoped_resource_of_a_timed_out_sync_attempt_closes_when_its_thread_ends() -> None:
    log: list[str] = []
    first_attempt_released = threading.Event()
    first_teardown = threading.Event()

    @cs.resource(name="fault7_timed", scope="task")
    def fault7_timed() -> Iterator[int]:
        number = sum(1 for entry in log if entry.startswith("setup")) + 1
        log.append(f"setup {number}")
        try:
            yield number
        finally:
            log.append(f"teardown {number}")
            if number == 1:
                first_teardown.set()

    @cs.task(retries=1, timeout=2.0)
    def slow(number: int = cs.inject("fault7_timed")) -> int:
        if number == 1:
            first_attempt_released.wait(60)  # still running when its attempt times out
        else:
            first_teardown.wait(60)  # the run stays up until attempt 1's teardown
        log.append(f"used {number}")
        return number

    bus = cs.MessageBus()
    bus.subscribe(TaskRetrying, lambda e: first_attempt_released.set())
    assert cs.run(slow(), bus=bus, log_level=None) == 2
    assert log.index("used 1") < log.index("teardown 1")
    assert log.index("used 2") < log.index("teardown 2")


def test_partly_set_up_task_resources_are_torn_down_when_a_later_one_fails() -> None:
    log: list[str] = []

    @cs.resource(name="fault8_first", scope="task")
    def fault8_first() -> Iterator[int]:
        log.append("first up")
        try:
            yield 1
        except Exception as exc:  # rolled back by the attempt, not closed by the GC later
            log.append(f"first rolled back after {type(exc).__name__}")
            raise
        finally:
            log.append("first down")

    @cs.resource(name="fault8_second", scope="task")
    def fault8_second() -> Iterator[int]:
        raise ConnectionRefusedError("no database")
        yield 2  # pragma: no cover

    @cs.task
    def uses(a: int = cs.inject("fault8_first"), b: int = cs.inject("fault8_second")) -> int:
        return a + b

    with pytest.raises(ConnectionRefusedError):
        cs.run(uses(), log_level=None)
    assert log == ["first up", "first rolled back after ConnectionRefusedError", "first down"]


def test_a_run_resource_failing_in_setup_is_named() -> None:
    @cs.resource(name="fault17_db")
    def fault17_db() -> Iterator[int]:
        raise ConnectionRefusedError("db is down")
        yield 1  # pragma: no cover

    @cs.task
    def uses(db: int = cs.inject("fault17_db")) -> int:
        return db

    bus = cs.MessageBus()
    runs: list[RunFinished] = []
    bus.subscribe(RunFinished, runs.append)
    with pytest.raises(ConnectionRefusedError) as raised:
        cs.run(uses(), bus=bus, log_level=None)
    assert "while setting up resource 'fault17_db'" in notes_of(raised.value)
    assert runs[0].exception is raised.value and runs[0].failed_resource == "fault17_db"
