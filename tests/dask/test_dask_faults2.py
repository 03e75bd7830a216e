"""Dask under the faults of issue 11 (items 13, 15, 20) and issue 10's "one resource
lifecycle": keys released when a run ends, failed or not; an unpicklable global of a
``__main__`` script named before anything is sent; connection faults; a temporary cluster
cancelled while it starts; the core's resource lifecycle on the workers (cycles, rollback)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from dask_helpers import set_env

import cascade as cs
from cascade_dask import DaskExecutor
from cascade_dask.worker import open_resources

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(120)


@cs.task
def make_data(n: int) -> list[int]:
    return list(range(n))


@cs.task
def fail_after(values: list[int]) -> None:
    raise ValueError(f"failed after {len(values)} values")


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


async def _scheduler_tasks(client: Any) -> int:
    return int(await client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))


async def _until(check: Callable[[], Any], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return bool(await check())


# -- item 13: a run's keys are released when it ends ------------------------------------------


async def test_a_failed_run_leaves_no_keys_on_a_long_lived_cluster(dask_cluster: Any) -> None:
    gc.disable()  # what holds the keys must not depend on a collection
    try:
        async with distributed.Client(
            dask_cluster.scheduler_address, asynchronous=True, set_as_default=False
        ) as client:
            baseline = await _scheduler_tasks(client)
            executor = DaskExecutor(client=client)
            with pytest.raises(ValueError, match="failed after 1000 values") as raised:
                await cs.run_async(fail_after(make_data(1000)), executor=executor, log_level=None)
            kept = raised.value  # its traceback's frames hold what the run made
            assert await _until(lambda: _at(client, baseline))
            assert kept.__traceback__ is not None

            assert await cs.run_async(total(make_data(10)), executor=executor, log_level=None) == 45
            assert await _until(lambda: _at(client, baseline))
    finally:
        gc.enable()


async def _at(client: Any, count: int) -> bool:
    return await _scheduler_tasks(client) == count


# -- item 5 on dask: a literal that contains itself -------------------------------------------


@cs.task
def size(values: Any) -> int:
    return len(values)


def test_a_self_referencing_literal_reaches_a_dask_task(client: Any) -> None:
    cyc: list[Any] = [1, 2]
    cyc.append(cyc)
    assert cs.run(size(cyc), executor=DaskExecutor(client=client), log_level=None) == 3
    nested = [make_data(3), {"k": (make_data(2), 7)}]
    assert cs.run(size(nested), executor=DaskExecutor(client=client), log_level=None) == 2


# -- item 15: an unpicklable module-level global in a __main__ script -------------------------

MAIN_SCRIPT = """
import sys
import threading

import cascade as cs
from cascade_dask import DaskExecutor

LOCK = threading.Lock()


@cs.task
def guarded(x):
    with LOCK:
        return x + 1


if __name__ == "__main__":
    cs.run(guarded(1), executor=DaskExecutor(sys.argv[1]), log_level=None)
"""


def test_an_unpicklable_global_of_a_main_script_is_named(tmp_path: Path, client: Any) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    env = {**os.environ, "CASCADE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, str(script), client.scheduler.address],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "UnpicklableTaskError" in done.stderr
    assert "task 'guarded'" in done.stderr
    assert "module-level global 'LOCK'" in done.stderr
    # No serialization errors logged by Dask: the call never reached it.
    for noise in ("Could not serialize", "Failed to serialize", "distributed.protocol"):
        assert noise not in done.stderr, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("cascade.executors.protocol.UnpicklableTaskError: task 'guarded'")
    )
    assert sum("cloudpickle" in line for line in done.stderr.splitlines()) < 10, done.stderr


# -- item 20: connection faults ----------------------------------------------------------------


def test_a_malformed_address_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match=r"'htp://x' is not a Dask scheduler address"):
        DaskExecutor("htp://x")
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        DaskExecutor("tcp://")


def test_an_address_that_fails_while_connecting_leaves_no_client_behind() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="not a Dask scheduler address"):
            cs.run(make_data(1), executor=DaskExecutor("tcp://127.0.0.1:notaport"), log_level=None)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], caught


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_scheduler_fails_within_the_connect_timeout() -> None:
    assert DaskExecutor().connect_timeout == 10.0
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(
        ConnectionError, match=rf"cannot connect to the Dask scheduler at {address}"
    ):
        cs.run(make_data(1), executor=DaskExecutor(address, connect_timeout=1.0), log_level=None)
    # Time is the behaviour (connect_timeout=1.0), so an upper bound, 15 times that: the old
    # default waited 30 s.
    assert time.monotonic() - started < 15


def _new_workers(before: set[int]) -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid in before or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" in " ".join(process.cmdline()):
                continue  # multiprocessing's own helper, there for the life of this process
        except psutil.NoSuchProcess:
            continue
        found.append(process)
    return found


async def test_cancelling_a_temporary_cluster_while_it_starts_leaves_no_worker() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    executor = DaskExecutor(n_workers=2, threads_per_worker=1)
    starting = asyncio.ensure_future(executor.start())
    await asyncio.sleep(0.3)  # the reproduction: 0.3 s into the start
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert executor.client is None and executor._cluster is None and not executor._open_runs
    deadline = time.monotonic() + 30
    while _new_workers(before) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _new_workers(before) == []


# -- issue 10: the core's resource lifecycle on the workers --------------------------------


def _record(event: str) -> None:
    name = f"{event}-{os.getpid()}-{time.monotonic_ns()}"
    Path(os.environ["CASCADE_DASK_TEST_DIR"], name).touch()


@cs.resource(name="faults2_first", scope="task")
def faults2_first() -> Iterator[str]:
    _record("first")
    try:
        yield "first"
    except GeneratorExit:  # dropped without teardown, collected later
        _record("first_collected")
        raise
    except BaseException:  # the failure thrown in: a rollback
        _record("first_rolled_back")
        raise
    _record("first_closed")


@cs.resource(name="faults2_second", scope="task")
def faults2_second(first: str = cs.inject("faults2_first")) -> Iterator[str]:
    raise ConnectionRefusedError("second is down")
    yield first  # pragma: no cover


@cs.resource(name="faults2_a")
def faults2_a(b: Any = cs.inject("faults2_b")) -> Iterator[Any]:
    yield b


@cs.resource(name="faults2_b")
def faults2_b(a: Any = cs.inject("faults2_a")) -> Iterator[Any]:
    yield a


@cs.task
def needs_second(second: str = cs.inject("faults2_second")) -> str:
    return second


@cs.task
def needs_a(a: Any = cs.inject("faults2_a")) -> Any:
    return a


def test_a_cycle_of_resources_is_refused_by_the_engine_before_a_call_reaches_a_worker(
    client: Any,
) -> None:
    # The engine checks resource definitions once (plan_resources); workers set up what they
    # are sent in the order the driver gives, without checking again.
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    engine.register(faults2_a)
    engine.register(faults2_b)
    with pytest.raises(cs.ResourceError, match="cycle: faults2_a -> faults2_b -> faults2_a"):
        asyncio.run(engine.run(needs_a()))
    assert all(not runs for runs in client.run(open_resources).values())


def test_task_resources_set_up_before_one_that_fails_are_torn_down_on_the_worker(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.run(set_env, "CASCADE_DASK_TEST_DIR", str(tmp_path))
    monkeypatch.setenv("CASCADE_DASK_TEST_DIR", str(tmp_path))
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    engine.register(faults2_first)
    engine.register(faults2_second)
    with pytest.raises(cs.ResourceError, match=r"resource 'faults2_second' failed to set up"):
        asyncio.run(engine.run(needs_second()))
    assert len(list(tmp_path.glob("first-*"))) == 1
    assert len(list(tmp_path.glob("first_rolled_back-*"))) == 1  # not left open
