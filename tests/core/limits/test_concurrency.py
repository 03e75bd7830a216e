"""Concurrency limits: the engine's max_concurrency and a task's own limit, alone and together,
across mapped items, and bad settings named."""

import asyncio
import time
from pathlib import Path

import pytest
from core_helpers import run_collecting

import cascade as cs
from cascade.events import (
    TaskExecutionFinished,
    TaskExecutionStarted,
)


def test_max_concurrency_bounds_tasks_in_flight():
    in_flight = 0
    peak = 0

    @cs.task
    async def work(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return i

    @cs.task
    def total(*xs):
        return sum(xs)

    assert cs.run(total(*[work(i) for i in range(30)]), max_concurrency=3, log_level=None) == 435
    assert peak == 3


@cs.task(concurrency=2)
def limited(marker_dir: str, i: int):
    marker = Path(marker_dir) / f"{i}.running"
    marker.touch()
    running = len(list(Path(marker_dir).glob("*.running")))
    time.sleep(0.05)
    marker.unlink()
    return running


def test_per_task_concurrency_limit_is_honoured_across_mapped_items(executor, tmp_path):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    result, _ = run_collecting(limited.map(cs.unmapped(str(marker_dir)), range(8)), executor)
    assert len(result) == 8
    assert max(result) <= 2


def test_engine_max_concurrency_and_per_task_limit_together(tmp_path):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    calls = [limited(str(marker_dir), i) for i in range(6)]
    result, _ = run_collecting(calls, "local", max_concurrency=1)
    assert result == [1] * 6


def test_bad_concurrency_settings_are_rejected():
    with pytest.raises(ValueError, match="concurrency must be"):
        cs.task(concurrency=0)(lambda: 1)
    with pytest.raises(ValueError, match="max_concurrency must be"):
        cs.Engine(max_concurrency=-1)


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
