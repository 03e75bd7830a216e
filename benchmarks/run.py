"""Core speed and memory benchmarks: each workload against its baseline in the same process.

Run with ``python dev.py bench`` (or ``python benchmarks/run.py``). Prints two markdown tables
of per-task microseconds, the ratio to the baseline and the target; these figures go into the
tables of docs/performance.md. Timings take the best of several repetitions, as machines here are
noisy; nothing in the test suite asserts on time.

The first table is the performance issue's workloads, in exactly the form users write them and
the issue states them: end to end (the calls and the graph building are timed, as users pay
them), in one process, best of five, each repetition of the workload followed by one of its
baseline (so a noisy neighbour slows both alike), after one untimed run of each:

- ``total([noop(i) for i in range(n)])`` (a list argument; ``noop`` async returning 1, ``total``
  summing the list) against ``sum(await asyncio.gather(*(noop(i) for i in range(n))))``, for
  10,000, 100,000 and 1,000,000 calls (the last best of ``--big-repeat``, 2 by default, to keep
  ``python dev.py bench`` short), and the peak traced memory per node of the 1,000,000 run
  (taken in its untimed first run);
- a chain of 10,000 ``x = inc(x)`` against 10,000 ``asyncio.ensure_future`` steps created up
  front, each awaiting the one before;
- ``double.map(range(10_000))`` against ``gather`` of the same coroutines;
- graph building alone on a 100,000-node chain (``build_graph``; the calls made beforehand),
  and the calls and the building together, for information.

The mixed DAG, recording and tracing rows of that issue are ``bench_mixed.py``,
``bench_records.py`` and ``bench_otel.py``. The second table is the earlier workloads, kept so
figures stay comparable across releases.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import cascade as cs
from cascade.graph.build import build_graph

N = 10_000
BIG = 100_000
HUGE = 1_000_000
REPEAT = 5


@cs.task
async def async_noop() -> int:
    return 1


@cs.task
def sync_noop() -> int:
    return 1


@cs.task
def total(*values: int) -> int:
    return sum(values)


@cs.task
async def async_inc(x: int) -> int:
    return x + 1


@cs.task
async def nap() -> int:
    await asyncio.sleep(0.05)
    return 1


@cs.task
async def double(x: int) -> int:
    return 2 * x


@cs.task
async def noop(i: int) -> int:
    return 1


@cs.task
def total_list(values: list[int]) -> int:
    return sum(values)


def best(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def interleaved(
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    repeat: int = REPEAT,
    warm_up: Callable[[], Any] | None = None,
) -> tuple[float, float]:
    """Best wall times of ``ours`` and ``theirs``: one untimed run of each (``warm_up`` in
    place of ``ours``'s, if given), then ``repeat`` rounds of one timed run of each, so both
    meet the same machine."""
    (warm_up or ours)()
    theirs()
    mine: list[float] = []
    base: list[float] = []
    for _ in range(repeat):
        for fn, times in ((ours, mine), (theirs, base)):
            gc.collect()
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return min(mine), min(base)


def engine_run(target: Any) -> Any:
    return asyncio.run(cs.Engine().run(target))


# -- the performance issue's workloads, in its exact forms ---------------------------------


def list_fan_out(count: int) -> Callable[[], None]:
    """``total([noop(i) for i in range(count)])``, built and run."""

    def job() -> None:
        assert engine_run(total_list([noop(i) for i in range(count)])) == count

    return job


def list_gather(count: int) -> Callable[[], None]:
    """``sum(await asyncio.gather(*(noop(i) for i in range(count))))``."""

    async def plain_noop(i: int) -> int:
        return 1

    async def main() -> int:
        return sum(await asyncio.gather(*(plain_noop(i) for i in range(count))))

    def job() -> None:
        assert asyncio.run(main()) == count

    return job


def list_fan_out_memory(count: int) -> float:
    """Peak traced bytes per node of building and running ``list_fan_out(count)``."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    list_fan_out(count)()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / (count + 1)


def chain_up_front() -> None:
    """10,000 ``asyncio.ensure_future`` steps created before any runs, each awaiting the one
    before and adding one: what a hand-written chain of tasks does."""

    async def inc(x: int) -> int:
        return x + 1

    async def after(previous: asyncio.Future[int]) -> int:
        return await inc(await previous)

    async def main() -> int:
        step: asyncio.Future[int] = asyncio.ensure_future(inc(0))
        for _ in range(N - 1):
            step = asyncio.ensure_future(after(step))
        return await step

    assert asyncio.run(main()) == N


def calls_and_build_per_node(nodes: int = BIG) -> float:
    """Seconds per node of making a chain's calls and building its graph."""

    def job() -> None:
        node = async_inc(0)
        for _ in range(nodes - 1):
            node = async_inc(node)
        build_graph([node])

    return best(job) / nodes


def issue_rows(big_repeat: int) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []

    def per_task(seconds: float, count: int) -> str:
        return f"{seconds / count * 1e6:.1f} µs"

    memory: list[float] = []
    for count, target, repeat in (
        (N, "≤ 1.6×", REPEAT),
        (BIG, "≤ 1.5×", REPEAT),
        (HUGE, "≤ 1.6×", big_repeat),
    ):
        # The 1,000,000-call run's warm-up is the one that measures its memory.
        warm_up = (lambda: memory.append(list_fan_out_memory(HUGE))) if count == HUGE else None
        ours, base = interleaved(list_fan_out(count), list_gather(count), repeat, warm_up)
        rows.append(
            (
                f"`total([noop(i) for i in range({count:_})])`",
                per_task(ours, count),
                f"`sum(await gather(...))` {per_task(base, count)}",
                f"{ours / base:.2f}×",
                target,
            )
        )
    rows.append(
        (
            f"`total([noop(i) for i in range({HUGE:_})])`: peak traced memory",
            f"{memory[0]:.0f} B/node",
            "-",
            "-",
            "≤ 1024 B/node",
        )
    )
    ours, base = interleaved(chain_async, chain_up_front)
    rows.append(
        (
            f"chain of {N:,} `x = inc(x)`",
            per_task(ours, N),
            f"`ensure_future` steps made up front {per_task(base, N)}",
            f"{ours / base:.2f}×",
            "≤ 1.6×",
        )
    )
    ours, base = interleaved(map_10k, map_baseline)
    rows.append(
        (
            f"`double.map(range({N:_}))`",
            per_task(ours, N),
            f"gather {per_task(base, N)}",
            f"{ours / base:.2f}×",
            "≤ 1.5×",
        )
    )
    rows.append(
        (
            f"graph build only, {BIG:,}-node chain",
            f"{graph_build_per_node() * 1e6:.2f} µs/node",
            "-",
            "-",
            "≤ 1.5 µs/node",
        )
    )
    rows.append(
        (
            f"the calls and the graph build, {BIG:,}-node chain",
            f"{calls_and_build_per_node() * 1e6:.2f} µs/node",
            "-",
            "-",
            "recorded",
        )
    )
    return rows


def fan_out_async() -> None:
    assert engine_run(total(*[async_noop() for _ in range(N)])) == N


def fan_out_sync() -> None:
    assert engine_run(total(*[sync_noop() for _ in range(N)])) == N


def fan_out_logged(level: str | None) -> Callable[[], None]:
    """``cs.run`` as users call it, with the log subscriber at ``level`` (``None``: none)."""

    def job() -> None:
        assert cs.run(total(*[async_noop() for _ in range(N)]), log_level=level) == N

    return job


def gather_baseline(count: int = N) -> None:
    async def noop() -> int:
        return 1

    async def main() -> int:
        return sum(await asyncio.gather(*[noop() for _ in range(count)]))

    assert asyncio.run(main()) == count


def fan_out_100k() -> None:
    assert engine_run(total(*[async_noop() for _ in range(BIG)])) == BIG


def fan_out_100k_frozen() -> None:
    target = total(*[async_noop() for _ in range(BIG)])
    assert asyncio.run(cs.Engine(freeze_gc=True).run(target)) == BIG


def gather_100k() -> None:
    gather_baseline(BIG)


def graph_build_per_node(nodes: int = BIG) -> float:
    """Seconds per node for ``build_graph`` alone on a chain (the calls are made first)."""
    node = async_inc(0)
    for _ in range(nodes - 1):
        node = async_inc(node)
    times = []
    for _ in range(REPEAT):
        gc.collect()
        started = time.perf_counter()
        build_graph([node])
        times.append(time.perf_counter() - started)
    return min(times) / nodes


def chain_async() -> None:
    node = async_inc(0)
    for _ in range(N - 1):
        node = async_inc(node)
    assert engine_run(node) == N


def chain_baseline() -> None:
    async def inc(x: int) -> int:
        return x + 1

    async def main() -> int:
        value = 0
        for _ in range(N):
            value = await asyncio.ensure_future(inc(value))
        return value

    assert asyncio.run(main()) == N


def sleepers() -> None:
    assert engine_run(total(*[nap() for _ in range(2000)])) == 2000


def sleepers_baseline() -> None:
    async def main() -> None:
        await asyncio.gather(*[asyncio.sleep(0.05) for _ in range(2000)])

    asyncio.run(main())


def map_10k() -> None:
    assert len(engine_run(double.map(range(N)))) == N


def map_baseline() -> None:
    async def double_plain(x: int) -> int:
        return 2 * x

    async def main() -> list[int]:
        return await asyncio.gather(*[double_plain(i) for i in range(N)])

    assert len(asyncio.run(main())) == N


def dask_threaded_fan_out() -> float | None:
    try:
        import dask
    except ImportError:
        return None

    def noop() -> int:
        return 1

    def add_all(*values: int) -> int:
        return sum(values)

    def job() -> None:
        parts = [dask.delayed(noop)() for _ in range(N)]
        assert dask.delayed(add_all)(*parts).compute(scheduler="threads") == N

    return best(job, 3)


def memory_per_node(shape: str, nodes: int = BIG) -> float:
    """Peak traced bytes per node of building and running a ``shape`` graph ("chain" or
    "fan-out") of ``nodes`` nodes, calls included."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    if shape == "chain":
        node = async_inc(0)
        for _ in range(nodes - 1):
            node = async_inc(node)
        assert engine_run(node) == nodes
    else:
        assert engine_run(total(*[async_noop() for _ in range(nodes - 1)])) == nodes - 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / nodes


def import_time_ms() -> tuple[float, float]:
    def wall(code: str) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1000

    empty = wall("pass")
    return wall("import cascade") - empty, empty


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    print("| workload | cascade | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--big-repeat",
        type=int,
        default=2,
        help="timed rounds of the 1,000,000-call fan-out and its baseline (default 2)",
    )
    parser.add_argument(
        "--only-issue",
        action="store_true",
        help="run the performance issue's workloads only (the first table)",
    )
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} cores\n")
    print("The performance issue's workloads, end to end, best of interleaved runs\n")
    print_table(issue_rows(args.big_repeat))
    if args.only_issue:
        return
    print("\nEarlier workloads\n")
    rows: list[tuple[str, str, str, str, str]] = []

    def per_task(seconds: float, count: int = N) -> str:
        return f"{seconds / count * 1e6:.1f} µs"

    fan = best(fan_out_async)
    base = best(gather_baseline)
    rows.append(
        (
            "10,000 async no-op tasks → one sum",
            per_task(fan),
            f"gather {per_task(base)}",
            f"{fan / base:.2f}×",
            "≤ 1.8×",
        )
    )
    big = best(fan_out_100k, 3)
    big_base = best(gather_100k, 3)
    rows.append(
        (
            "100,000 async no-op tasks → one sum",
            per_task(big, BIG),
            f"gather {per_task(big_base, BIG)}",
            f"{big / big_base:.2f}×",
            "≤ 1.8×",
        )
    )
    frozen = best(fan_out_100k_frozen, 3)
    big = min(big, best(fan_out_100k, 3))
    rows.append(
        (
            "100,000 async no-op tasks, `freeze_gc=True`",
            per_task(frozen, BIG),
            f"without it {per_task(big, BIG)}; gather {per_task(big_base, BIG)}",
            f"{frozen / big_base:.2f}× gather",
            "opt-in",
        )
    )
    # Warmed up and measured alternately, so neither side pays for first-run costs or for
    # what the machine happened to be doing during one block of repetitions.
    fan_out_logged(None)()
    fan_out_logged("WARNING")()
    quiet = min(best(fan_out_logged(None)), best(fan_out_logged(None)))
    warning = min(best(fan_out_logged("WARNING")), best(fan_out_logged("WARNING")))
    quiet = min(quiet, best(fan_out_logged(None)))
    rows.append(
        (
            "cs.run 10,000 async tasks, log_level='WARNING'",
            per_task(warning),
            f"log_level=None {per_task(quiet)}",
            f"{warning / quiet:.2f}×",
            "≤ 1.10×",
        )
    )
    chain = best(chain_async)
    chain_base = best(chain_baseline)
    rows.append(
        (
            "chain of 10,000 dependent async tasks",
            per_task(chain),
            f"awaited chain {per_task(chain_base)}",
            f"{chain / chain_base:.2f}×",
            "≤ 1.8×",
        )
    )
    sync = best(fan_out_sync)
    dask_time = dask_threaded_fan_out()
    rows.append(
        (
            "10,000 sync no-op tasks → one sum",
            per_task(sync),
            f"dask threads {per_task(dask_time)}" if dask_time else "dask not installed",
            f"{sync / dask_time:.2f}×" if dask_time else "-",
            "≤ 40 µs/task",
        )
    )
    sleep_run = best(sleepers, 3)
    sleep_base = best(sleepers_baseline, 3)
    rows.append(
        (
            "2,000 async tasks sleeping 50 ms",
            f"{sleep_run:.3f} s run",
            f"gather {sleep_base:.3f} s",
            f"{sleep_run / sleep_base:.2f}×",
            "≤ 0.25 s",
        )
    )
    for shape in ("chain", "fan-out"):
        rows.append(
            (
                f"100,000-node {shape}: peak traced memory",
                f"{memory_per_node(shape):.0f} B/node",
                "-",
                "-",
                "≤ 1024 B/node",
            )
        )
    import_ms, empty_ms = import_time_ms()
    rows.append(
        (
            "python -c 'import cascade'",
            f"{import_ms:.0f} ms",
            f"python -c pass {empty_ms:.0f} ms",
            "-",
            "≤ 100 ms",
        )
    )
    print_table(rows)


if __name__ == "__main__":
    main()
