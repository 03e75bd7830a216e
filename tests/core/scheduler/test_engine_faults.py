"""Issue 11, the engine's part: each reproduction from fault injection and new users, as a
test that failed (or hung) before the runtime was rebuilt. Synchronised on events and
counters, never on sleeps."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.events import RunFinished, TaskExecutionFinished, TaskExecutionStarted, TaskRetrying
from cascade.executors.local import LocalExecutor, ThreadExecutor

pytestmark = pytest.mark.timeout(120)


@cs.task
def ident(x: Any) -> Any:
    return x


@cs.task
def size(value: Any) -> int:
    return len(value)


def _notes(exc: BaseException) -> str:
    return " ".join(getattr(exc, "__notes__", []))


# -- 4: building a task's arguments fails the run, naming the task -----------------------------


def test_a_container_that_cannot_be_rebuilt_fails_the_run_naming_the_task() -> None:
    class Pair(tuple):  # type: ignore[type-arg]
        def __new__(cls, first: Any, second: Any) -> Pair:
            return super().__new__(cls, (first, second))

    with pytest.raises(Exception) as raised:
        cs.run(size(Pair(ident(1), 2)), log_level=None)
    assert "size" in str(raised.value) + _notes(raised.value)


def test_a_lazy_result_nested_500_lists_deep_reaches_the_task() -> None:
    nested: Any = ident(7)
    for _ in range(500):
        nested = [nested]

    @cs.task
    def depth(value: Any) -> tuple[int, Any]:
        levels = 0
        while isinstance(value, list):
            value, levels = value[0], levels + 1
        return levels, value

    assert cs.run(depth(nested), log_level=None) == (500, 7)


# -- 7: a task-scoped resource outlives the sync attempt that uses it --------------------------


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


# -- 8: partly set-up task-scoped resources are torn down --------------------------------------


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


# -- 9: handlers raising BaseException never break a run ----------------------------------------


class Custom(BaseException):
    pass


@pytest.mark.parametrize("raised", [asyncio.CancelledError, GeneratorExit, Custom])
def test_a_handler_raising_a_base_exception_breaks_nothing(
    raised: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    def bad_handler(event: Any) -> None:
        raise raised()

    bus = cs.MessageBus()
    bus.subscribe(TaskExecutionFinished, bad_handler)
    bus.subscribe(RunFinished, bad_handler)
    bus.subscribe(TaskExecutionStarted, bad_handler)
    with caplog.at_level(logging.ERROR, logger="cascade.bus"):
        assert cs.run([ident(1), size(ident([1, 2]))], bus=bus, log_level=None) == [1, 2]
        with pytest.raises(KeyError, match="expected"):
            cs.run(_raises_key_error(), bus=bus, log_level=None)
    assert any("bad_handler" in r.getMessage() for r in caplog.records)


@cs.task
def _raises_key_error() -> None:
    raise KeyError("expected")


# -- 10: max_concurrency with a wide fan-out and a failure --------------------------------------


def test_a_failure_under_max_concurrency_neither_recurses_nor_loses_events(
    capfd: pytest.CaptureFixture[str],
) -> None:
    @cs.task
    def leaf(i: int) -> int:
        if i == 2500:
            raise ValueError("leaf 2500")
        return i

    @cs.task
    def total(values: list[int]) -> int:
        return sum(values)

    bus = cs.MessageBus()
    started: list[str] = []
    finished: list[str] = []
    bus.subscribe(TaskExecutionStarted, lambda e: started.append(e.task_id))
    bus.subscribe(TaskExecutionFinished, lambda e: finished.append(e.task_id))
    with pytest.raises(ValueError, match="leaf 2500"):
        cs.run(total([leaf(i) for i in range(5000)]), max_concurrency=2, bus=bus, log_level=None)
    err = capfd.readouterr().err
    assert "RecursionError" not in err and "Traceback" not in err
    assert sorted(started) == sorted(finished), "every started attempt reported its end"
    assert len(started) < 5000, "nothing new started after the failure"


# -- 18: every failing map item's exception is retrieved ----------------------------------------


def test_map_with_several_failing_items_prints_no_never_retrieved(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text(
        textwrap.dedent(
            """
            import gc
            import cascade as cs

            @cs.task
            async def check(i):
                raise ValueError(f"item {i}")

            @cs.task(retries=0)
            def sync_check(i):
                raise ValueError(f"sync item {i}")

            for target in (check.map(range(6)), sync_check.map(range(6))):
                try:
                    cs.run(target, log_level=None)
                except ValueError as exc:
                    print(exc)
            gc.collect()
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == ["item 0", "sync item 0"]
    assert "never retrieved" not in result.stderr and result.stderr == ""


# -- 19: a task may name an executor instance ---------------------------------------------------


def test_a_task_can_take_an_executor_instance() -> None:
    mine = ThreadExecutor(max_workers=1)
    other = LocalExecutor(max_workers=1)

    @cs.task(executor=mine)
    def where() -> str:
        return threading.current_thread().name

    @cs.task(executor=other)
    def where_else() -> str:
        return threading.current_thread().name

    names = cs.run([where(), where(), where_else()], log_level=None)
    assert names[0].startswith("cascade-threads") and names[1].startswith("cascade-threads")
    assert names[2].startswith("cascade-local")
    assert mine._runs == 0 and mine._pool is None, "started and shut down once"
    with pytest.raises(TypeError, match="task 'x': executor= takes an executor name or instance"):
        cs.task(name="x", executor=42)(lambda: None)


# -- 6: timeouts count running time, not time queued --------------------------------------------


def test_timeouts_count_only_running_time_in_a_busy_thread_pool() -> None:
    @cs.task
    def nap(i: int) -> int:
        time.sleep(0.2)
        return i

    # 24 items on 2 threads take about 2.4 s in all, each one 0.2 s: none may time out.
    target = nap.map(list(range(24))).with_timeout(2.0)
    assert cs.run(target, executor=LocalExecutor(max_workers=2), log_level=None) == list(range(24))


# -- 17: a resource failing in setup is named ---------------------------------------------------


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
    assert "while setting up resource 'fault17_db'" in _notes(raised.value)
    assert runs[0].exception is raised.value and runs[0].failed_resource == "fault17_db"
