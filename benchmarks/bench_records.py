"""What recording costs: the 10,000-task fan-out in the performance issue's form
(``total([noop(i) for i in range(10_000)])``: a list argument, every call with its own input)
with ``record=True`` against the same run unrecorded, in one process, CPU of every thread of
the process included (and shown apart: the event loop's thread, and the others, where the
recorder's thread writes). Target: at most 1.10x. The earlier form (``total(*[async_noop() ...])``,
calls without inputs, whose checkpoints the recorder settles once per task) is shown too.

Run with ``python benchmarks/bench_records.py``. The store and the checkpoints go to a
temporary ``CASCADE_HOME``. A recorded run's time includes everything it adds: the recorder's
events, checkpointing every result, the background thread's writes, and waiting for its last
write when the run ends. Also shown, for information: a ``map`` over 10,000 distinct inputs
(every item has its own checkpoint key and entry), and how much of the fan-out's cost is the
engine's own: the same run with a checkpoint policy that does nothing and the recorder's event
subscriptions feeding a queue nobody reads (every task then passes the direct route's
checkpoint step, or skips it as a recorded run does once its key is saved, and is reported in
a bulk ``TasksSucceeded``, and nothing is stored). Best of several
interleaved repetitions (CPU time of the process, so other work on the machine counts less);
nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cascade as cs
from cascade.events import (
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskRetrying,
    TaskSkipped,
    TasksSucceeded,
)

N = 10_000
REPEAT = 7


@cs.task
async def async_noop() -> int:
    return 1


@cs.task
async def noop(i: int) -> int:
    return 1


@cs.task
def total_list(values: list[int]) -> int:
    return sum(values)


@cs.task
def total(*values: int) -> int:
    return sum(values)


@cs.task
async def inc(x: int) -> int:
    return x + 1


@cs.task
def add_up(values: list[int]) -> int:
    return sum(values)


def list_fan_out(record: bool) -> None:
    """The issue's form: ``total([noop(i) for i in range(N)])``, built and run."""
    run = cs.Engine().run(total_list([noop(i) for i in range(N)]), record=record)
    assert asyncio.run(run) == N


def fan_out(record: bool) -> None:
    run = cs.Engine().run(total(*[async_noop() for _ in range(N)]), record=record)
    assert asyncio.run(run) == N


class NothingKept:
    """A checkpoint policy that misses and keeps nothing, and settles a task once a call
    without inputs was saved, as the recorder's policy does when nothing is resumed."""

    def __init__(self) -> None:
        self.settled: dict[int, Any] = {}

    def lookup(self, context: cs.CacheContext) -> tuple[bool, Any]:
        return False, None

    def save(self, context: cs.CacheContext, value: Any) -> None:
        if not context.args and not context.kwargs:
            self.settled[id(context.task)] = context.task


def fan_out_engine_share(record: bool) -> None:
    """``record=True`` here: the engine's part of recording, nothing stored."""
    engine = cs.Engine()
    policy = None
    if record:
        # The recorder's subscriptions: successes in bulk, failures one by one.
        queue: deque[Any] = deque()
        for kind in (RunStarted, RunFinished, TasksSucceeded, TaskSkipped, TaskRetrying):
            engine.bus.subscribe(kind, queue.append)
        engine.bus.subscribe(TaskExecutionFinished, queue.append, statuses=("Failed", "Cancelled"))
        policy = NothingKept()
    run = engine.run(total(*[async_noop() for _ in range(N)]), checkpoint=policy)
    assert asyncio.run(run) == N


def mapped(record: bool) -> None:
    run = cs.Engine().run(add_up(inc.map(list(range(N)))), record=record)
    assert asyncio.run(run) == N * (N + 1) // 2


def measure(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(CPU seconds of this process, wall seconds, CPU seconds of this thread: the event
    loop's) of one call."""
    gc.collect()
    cpu, wall, loop = time.process_time(), time.perf_counter(), time.thread_time()
    fn()
    return (
        time.process_time() - cpu,
        time.perf_counter() - wall,
        time.thread_time() - loop,
    )


def compare(label: str, workload: Callable[[bool], None]) -> float:
    workload(False)  # warm up imports and pools
    workload(True)
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(REPEAT):  # interleaved, so a noisy neighbour slows both alike
        for record in (False, True):
            runs[record].append(measure(functools.partial(workload, record)))
    off_cpu, on_cpu = (min(t[0] for t in runs[r]) for r in (False, True))
    off_wall, on_wall = (min(t[1] for t in runs[r]) for r in (False, True))
    on_loop = min(runs[True])[2]  # the event loop's share of the best recorded run
    per = 1e6 / N
    print(
        f"| {label} | {off_cpu * per:.1f} | {on_cpu * per:.1f} | {on_loop * per:.1f} "
        f"| {(on_cpu - on_loop) * per:.1f} | {on_cpu / off_cpu:.2f}x "
        f"| {on_wall / off_wall:.2f}x |"
    )
    return on_cpu / off_cpu


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cascade-bench-records-") as home:
        os.environ["CASCADE_HOME"] = home
        os.environ.pop("CASCADE_CACHE_DIR", None)
        print(f"recording overhead, {N} tasks, Python {sys.version.split()[0]}")
        print(
            "| workload | unrecorded (µs/task, CPU) | recorded | of which the event loop's "
            "thread | the other threads (the recorder's) | ratio (CPU) | ratio (wall) |"
        )
        print("|---|---|---|---|---|---|---|")
        ratio = compare(f"`total([noop(i) for i in range({N:_})])`", list_fan_out)
        compare(f"fan-out: {N} async no-op tasks without inputs → one sum", fan_out)
        share = compare(
            "the same fan-out, the engine's share only (nothing stored)", fan_out_engine_share
        )
        compare(f"map over {N} distinct inputs → one sum", mapped)
        store = cs.records.SQLiteRunStore()
        recorded = store.runs(limit=1)[0]
        print(f"last run recorded: {recorded.run_id[:8]}, tasks {dict(recorded.tasks)}")
        print(
            f"ratio recorded / unrecorded on the issue's fan-out: {ratio:.2f}x "
            "(CPU of every thread; target <= 1.10x)"
        )
        print(f"of which the engine's part (checkpoint step, attempt reports): {share:.2f}x")


if __name__ == "__main__":
    main()
