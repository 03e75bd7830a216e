"""Choosing where a task runs: an executor instance or a built-in name on the task, threads and
processes from the decorator, and an argument that cannot reach a worker process named."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from core_helpers import total

import cascade as cs
from cascade.events import TaskExecutionFinished
from cascade.executors import UnpicklableTaskError
from cascade.executors.local import LocalExecutor, ThreadExecutor
from cascade.plugins import (
    PluginManager,
    reset_plugin_manager,
)


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


def test_threads_executor_from_the_task_decorator() -> None:
    reset_plugin_manager(PluginManager(load_entrypoints=False))
    try:
        bus = cs.MessageBus()
        finished: list[TaskExecutionFinished] = []
        bus.subscribe(TaskExecutionFinished, finished.append)

        @cs.task(executor="threads")
        async def thread_name() -> str:
            return threading.current_thread().name

        name = cs.run(thread_name(), log_level=None, bus=bus)
    finally:
        reset_plugin_manager(None)
    assert name.startswith("cascade-threads-")
    assert [event.executor for event in finished] == ["threads"]


def test_processes_executor_runs_cpu_bound_tasks() -> None:
    reset_plugin_manager(PluginManager(load_entrypoints=False))
    try:
        result = cs.run(
            total(count_primes_task.map([1000, 2000])), executor="processes", log_level=None
        )
    finally:
        reset_plugin_manager(None)
    assert result == count_primes(1000) + count_primes(2000) == 168 + 303


@cs.task
def provide_lock() -> Any:
    return threading.Lock()


@cs.task(executor="processes")
def needs_lock(lock: Any) -> bool:
    return lock is not None


@cs.task
def apply(fn: Any, value: int) -> Any:
    return fn(value)


def test_processes_executor_names_an_unpicklable_argument() -> None:
    reset_plugin_manager(PluginManager(load_entrypoints=False))
    try:
        with pytest.raises(UnpicklableTaskError) as from_task:
            cs.run(needs_lock(provide_lock()), log_level=None)
        with pytest.raises(UnpicklableTaskError) as from_run:
            cs.run(apply(lambda v: v + 1, 1), executor="processes", log_level=None)
    finally:
        reset_plugin_manager(None)
    lock_message = str(from_task.value)
    assert "task 'needs_lock': argument 0 (<unlocked _thread.lock object" in lock_message
    assert "cannot be sent to another process" in lock_message
    assert "local executor" in lock_message
    lambda_message = str(from_run.value)
    assert "task 'apply': argument 0 (<function" in lambda_message
    assert "<lambda>" in lambda_message


def count_primes(limit: int) -> int:
    """CPU-bound work for the process pool (module level, so a worker can import it)."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


count_primes_task = cs.task(count_primes)
