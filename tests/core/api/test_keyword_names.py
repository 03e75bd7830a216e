"""A task's keyword arguments reach it whatever they are called, on every route a call can
take: the engine wraps calls (to note their durations, to run them in a worker) in functions
of its own, and a parameter of such a wrapper must never catch a task's keyword argument of
the same name. Found on the default path: under the INFO log a task called with
``index=...`` failed with "timed_async() got multiple values for argument 'index'"."""

from __future__ import annotations

from typing import Any

import pytest

import cascade as cs

#: The names the engine's own wrappers use for their parameters, and a few more it might.
NAMES = ("fn", "index", "started", "ended", "args", "kwargs", "call", "node", "state", "self")


@cs.task
def sync_echo(**values: Any) -> dict[str, Any]:
    return values


@cs.task
async def async_echo(**values: Any) -> dict[str, Any]:
    return values


@cs.task
def sync_named(fn: int, index: int, started: int = 0, ended: int = 0) -> int:
    return fn + index + started + ended


@cs.task
async def async_named(fn: int, index: int, started: int = 0, ended: int = 0) -> int:
    return fn + index + started + ended


@cs.task(retries=1)
async def async_named_with_policy(fn: int, index: int, started: int = 0, ended: int = 0) -> int:
    return fn + index + started + ended


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
@pytest.mark.parametrize("log_level", ["INFO", None])
@pytest.mark.parametrize("task", [sync_echo, async_echo])
def test_keyword_arguments_named_like_the_engines_own_parameters_reach_the_task(
    executor: str, log_level: str | None, task: Any
) -> None:
    values = {name: position for position, name in enumerate(NAMES)}
    assert cs.run(task(**values), executor=executor, log_level=log_level) == values


@pytest.mark.parametrize("log_level", ["INFO", "WARNING", None])
@pytest.mark.parametrize("task", [sync_named, async_named, async_named_with_policy])
def test_named_parameters_passed_by_keyword_on_the_default_path(
    log_level: str | None, task: Any
) -> None:
    call = task(fn=1, index=10, started=100, ended=1000)
    assert cs.run(call, log_level=log_level) == 1111
    mapped = task.map(fn=[1, 2], index=[10, 20])
    assert cs.run(mapped, log_level=log_level) == [11, 22]
