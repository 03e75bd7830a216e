"""Context variables: one set by a run-scoped resource reaches every task, sync tasks in the thread
pool see the caller's, and one a sync task sets does not leak to others."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

import cascade as cs


@cs.task
def seen_sync(_: Any = None) -> str:
    return request_id.get()


@cs.task
async def seen_async(_: Any = None) -> str:
    return request_id.get()


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_context_variable_set_by_a_run_scoped_resource_reaches_every_task(
    executor: str,
) -> None:
    @cs.resource(name="request_scope")
    def request_scope() -> Iterator[str]:
        token = request_id.set("from-the-resource")
        yield "ok"
        request_id.reset(token)

    @cs.task
    def uses_scope(scope: str = cs.inject("request_scope")) -> str:
        return request_id.get()

    first = uses_scope()
    # Later tasks are launched from completion callbacks, not from the run's own task.
    chain_sync = seen_sync(seen_async(seen_sync(first)))
    chain_async = seen_async(seen_sync(seen_async(first)))
    fan = [seen_sync(first) for _ in range(5)] + [seen_async(first) for _ in range(5)]
    values = cs.run([first, chain_sync, chain_async, *fan], executor=executor, log_level=None)
    assert values == ["from-the-resource"] * 13


def test_sync_tasks_in_the_thread_pool_see_the_callers_context_variables() -> None:
    async def main() -> list[str]:
        request_id.set("caller")
        return await cs.run_async(  # type: ignore[no-any-return]
            [seen_sync(), seen_sync(seen_async()), seen_async()], log_level=None
        )

    assert asyncio.run(main()) == ["caller", "caller", "caller"]


def test_a_context_variable_a_sync_task_sets_does_not_leak_to_others() -> None:
    @cs.task
    def sets_it() -> str:
        request_id.set("leaked")
        return request_id.get()

    first = sets_it()
    assert cs.run([first, seen_sync(first), seen_async(first)], log_level=None) == [
        "leaked",
        "unset",
        "unset",
    ]


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
