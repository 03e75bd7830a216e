"""Faults on a real two-worker LocalCluster: a worker process killed in the middle of a run does
not lose it, and a run that is cancelled or fails leaves nothing running on the cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from dask_helpers import nothing_processing, scheduler_task_count, size, wait_until, worker_pids

import cascade as cs
from cascade.events import Event, TaskExecutionFinished
from cascade_dask import DaskExecutor

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def nap(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


@cs.task
def slow_square(x: int, seconds: float, marks: str) -> int:
    Path(marks, f"started-{x}-{os.getpid()}").touch()
    nap(seconds)
    return x * x


@cs.task
def add_all(*values: int) -> int:
    return sum(values)


@cs.task
def heartbeat(seconds: float, path: str) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, "a") as handle:
            handle.write("x")
        time.sleep(0.02)
    return seconds


@cs.task
async def async_heartbeat(seconds: float, path: str) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, "a") as handle:
            handle.write("x")
        await asyncio.sleep(0.02)
    return seconds


@cs.task
def fail_soon(seconds: float) -> None:
    time.sleep(seconds)
    raise ValueError("failed on purpose")


def _quiet(paths: list[Path]) -> bool:
    before = [size(p) for p in paths]
    time.sleep(0.25)
    return [size(p) for p in paths] == before


def _cluster_is_idle(client: Any) -> bool:
    return nothing_processing(client) and scheduler_task_count(client) == 0


def test_a_worker_killed_mid_run_does_not_lose_the_run(client: Any, tmp_path: Path) -> None:
    pids_before = worker_pids(client)
    bus = cs.MessageBus()
    events: list[Event] = []
    bus.subscribe(TaskExecutionFinished, events.append)
    squares = [slow_square(x, 0.6, str(tmp_path)) for x in range(6)]
    engine = cs.Engine(bus=bus, executor=DaskExecutor(client=client), log_level=None)

    async def scenario() -> tuple[int, int]:
        run = asyncio.ensure_future(engine.run(add_all(*squares)))
        # Once both workers are busy with the first wave, kill one of them.
        started = await asyncio.to_thread(
            wait_until, lambda: len(list(tmp_path.glob("started-*"))) >= 2
        )
        assert started
        victim = sorted(pids_before.values())[0]
        os.kill(victim, signal.SIGKILL)
        return await run, victim

    result, victim = asyncio.run(scenario())
    assert result == sum(x * x for x in range(6))
    # The killed worker had started a task that then ran again on a live worker.
    ran_on_victim = {p.name.split("-")[1] for p in tmp_path.glob(f"started-*-{victim}")}
    assert ran_on_victim
    reruns = {
        p.name.split("-")[1]
        for p in tmp_path.glob("started-*")
        if p.name.split("-")[2] != str(victim)
    }
    assert ran_on_victim <= reruns
    assert all(e.status == "Succeeded" for e in events)
    # The nanny replaced the worker process.
    client.wait_for_workers(2, timeout=30)
    assert victim not in worker_pids(client).values()


@pytest.mark.parametrize("task", [heartbeat, async_heartbeat], ids=["sync", "async"])
def test_cancelling_the_run_cancels_its_dask_futures(
    client: Any, tmp_path: Path, task: Any
) -> None:
    beats = [tmp_path / f"beat-{i}" for i in range(3)]
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)

    async def scenario() -> None:
        # Heartbeats that would beat for an hour: a cancel that waited for them would hit the
        # test's timeout, and the quiet files below show they were stopped.
        run = asyncio.ensure_future(engine.run([task(3600.0, str(p)) for p in beats]))
        assert await asyncio.to_thread(wait_until, lambda: sum(size(p) > 0 for p in beats) >= 2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    # Nothing keeps running: the scheduler has no work and no keys, and the calls stopped.
    assert wait_until(lambda: _cluster_is_idle(client), timeout=30)
    assert _quiet(beats)


def test_a_failed_run_stops_the_calls_still_running(client: Any, tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    # The heartbeat would beat for an hour: a run that waited for it would hit the test's
    # timeout, and the quiet file below shows it was stopped, not left to finish.
    with pytest.raises(ValueError, match="failed on purpose"):
        cs.run(
            [heartbeat(3600.0, str(beat)), fail_soon(0.3)],
            executor=DaskExecutor(client=client),
            log_level=None,
        )
    assert wait_until(lambda: _cluster_is_idle(client), timeout=30)
    assert _quiet([beat])
