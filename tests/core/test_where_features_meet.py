"""Issue 22: defects found where two features meet (dynamic graphs and resources, worker
processes and fallbacks, timeouts and pools, cancellation and teardown). Each test is a
reproduction that failed before its fix. Synchronised on events, markers and counters."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cascade as cs

pytestmark = pytest.mark.timeout(120)

OBSERVERS = [None, "INFO"]


# -- 1. a run-scoped async resource is set up once per run, however many calls need it first


resource_log: list[str] = []


@cs.resource
async def slow_conn() -> Any:
    await asyncio.sleep(0.05)  # the setup suspends while the fan-out's calls all ask for it
    handle = object()
    resource_log.append("up")
    yield handle
    resource_log.append("down")


@cs.task
def use_conn(i: int, conn: Any = cs.inject("slow_conn")) -> int:
    return id(conn)


@cs.task
async def use_conn_async(i: int, conn: Any = cs.inject("slow_conn")) -> int:
    return id(conn)


@cs.task
def fan_out_conn(n: int, use_async: bool) -> Any:
    task = use_conn_async if use_async else use_conn
    return [task(i) for i in range(n)]


@pytest.mark.parametrize("log_level", OBSERVERS)
@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("n", [2, 5, 20])
def test_a_run_scoped_resource_of_dynamic_calls_is_set_up_once(
    n: int, use_async: bool, log_level: str | None
) -> None:
    resource_log.clear()
    seen = cs.run(fan_out_conn(n, use_async), log_level=log_level)
    assert resource_log == ["up", "down"]
    assert len(set(seen)) == 1 and len(seen) == n


# -- 2. a failure in a graph returned from a worker process is not swallowed


@cs.task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@cs.task
def plus_one(x: int) -> int:
    return x + 1


@cs.task(executor="processes")
def returns_a_failure() -> Any:
    return boom(1)


@cs.task(executor="processes")
def returns_a_failure_and_a_success() -> Any:
    return [plus_one(boom(2)), plus_one(41)]


@cs.task(executor="processes")
def returns_a_required_param() -> Any:
    return plus_one(cs.Param("needed"))


def test_a_failure_returned_from_a_worker_process_fails_the_run() -> None:
    with pytest.raises(ValueError, match="boom 1"):
        cs.run(returns_a_failure(), log_level=None)


def test_a_failure_returned_from_a_worker_process_is_reported_in_continue_mode() -> None:
    with pytest.raises(cs.RunFailed) as caught:
        cs.run(returns_a_failure_and_a_success(), log_level=None, on_failure="continue")
    failures = caught.value.failures
    assert [type(e) for e in failures.values()] == [ValueError]
    assert "boom 2" in str(next(iter(failures.values())))


def test_a_required_param_returned_from_a_worker_process_is_a_param_error() -> None:
    with pytest.raises(cs.ParamError, match="needed"):
        cs.run(returns_a_required_param(), log_level=None)


def test_the_missing_marker_survives_pickling() -> None:
    import pickle

    from cascade.spec.task import MISSING

    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    lazy = plus_one(1)
    assert pickle.loads(pickle.dumps(lazy)).fallback is MISSING


# -- 11. dynamic fan-out onto processes with an injected resource


@cs.resource
def counter_res() -> Any:
    yield 10


@cs.task(executor="processes")
def in_proc(i: int, res: int = cs.inject("counter_res")) -> int:
    return i + res


@cs.task
def fan_out_to_processes(n: int) -> Any:
    return [in_proc(i) for i in range(n)]


@pytest.mark.parametrize("log_level", OBSERVERS)
def test_dynamic_calls_on_processes_get_their_resources_in_the_worker(
    log_level: str | None,
) -> None:
    assert cs.run(fan_out_to_processes(3), log_level=log_level) == [10, 11, 12]
