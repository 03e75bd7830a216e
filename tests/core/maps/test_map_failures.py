"""Maps that fail: the failure a map raises is the one its events report first, nothing starts
after a map item failed, and several failing items leave no "exception never retrieved"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from core_helpers import collect_events

import cascade as cs
from cascade.events import (
    TaskExecutionFinished,
)

pytestmark = pytest.mark.timeout(60)


# -- item 3: id, name and error belong to the same attempt ---------------------------------

_released: dict[str, asyncio.Event] = {}


@cs.task
async def page(n: int) -> int:
    gate = _released.setdefault("gate", asyncio.Event())
    if n == 7:
        gate.set()  # item 3 fails right after this one, in the same pass of the loop
        raise ConnectionError(f"page {n}: HTTP 503")
    if n == 3:
        await gate.wait()
        raise ConnectionError(f"page {n}: HTTP 503")
    return n


def test_the_failure_a_map_raises_is_the_one_its_events_report_first():
    _released.clear()
    bus, seen = collect_events()
    with pytest.raises(ConnectionError) as caught:
        cs.run(page.map(range(10)), bus=bus, log_level=None)
    failed = [e for e in seen if isinstance(e, TaskExecutionFinished) and e.status == "Failed"]
    assert failed, "no failure was reported"
    first = failed[0]
    assert first.task_id.endswith("[7]")
    assert str(caught.value) == "page 7: HTTP 503"
    assert first.error.endswith(str(caught.value))


# -- item 6: nothing starts after the run decided to stop -----------------------------------

_ran: list[int] = []


@cs.task(concurrency=1)
def one_at_a_time(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@cs.task(concurrency=1)
async def one_at_a_time_async(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@pytest.mark.parametrize("task", [one_at_a_time, one_at_a_time_async], ids=["sync", "async"])
def test_no_item_starts_after_a_map_failed(task):
    _ran.clear()
    bus, seen = collect_events()
    with pytest.raises(ValueError, match="item 0 failed"):
        cs.run(task.map(range(5)), bus=bus, log_level=None)
    assert _ran == [0]
    started = [e.task_id for e in seen if type(e).__name__ == "TaskExecutionStarted"]
    assert len(started) == 1 and started[0].endswith("[0]")


# -- item 7: a duration is the time the task ran ------------------------------------------


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
