"""Streams (docs/streams.md): what it costs to pass items on one by one.

1. A 100,000-item stream through two mapped stages and a fold, against the same work written
   as a static 100,000-call fan-out (``total([store(parse(i)) for i in range(n)])``), same
   process, best of several runs; target: at most 1.5x.
2. Peak traced memory (``tracemalloc``) of that stream with 1,000,000 items against 100,000
   items; target: within 1.2x (memory does not grow with the number of items).
3. The latency from an item's ``yield`` to the start of its first downstream task (median and
   99th percentile over 10,000 items, a sync generator in its thread and an async one).

``python benchmarks/bench_streams.py [--quick]`` prints a Markdown table.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import cascade as cs

N = 100_000


@cs.task
async def pages(n: int) -> Any:
    for i in range(n):
        yield i


@cs.task
async def parse(x: int) -> int:
    return x + 1


@cs.task
async def store(x: int) -> int:
    return x * 2


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


def add(acc: int, x: int) -> int:
    return acc + x


def expected(n: int) -> int:
    return sum((i + 1) * 2 for i in range(n))


def streamed(n: int) -> None:
    target = cs.fold(add, store.map(parse.map(pages(n))), 0)
    assert asyncio.run(cs.Engine().run(target)) == expected(n)


def static(n: int) -> None:
    target = total([store(parse(i)) for i in range(n)])
    assert asyncio.run(cs.Engine().run(target)) == expected(n)


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_memory(n: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        streamed(n)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


yielded_at: dict[int, float] = {}
latencies: list[float] = []


@cs.task
def timed_pages(n: int) -> Any:
    for i in range(n):
        yielded_at[i] = time.perf_counter()
        yield i


@cs.task
async def timed_pages_async(n: int) -> Any:
    for i in range(n):
        yielded_at[i] = time.perf_counter()
        yield i


@cs.task
async def first_stage(i: int) -> int:
    latencies.append(time.perf_counter() - yielded_at.pop(i))
    return i


def latency(producer: Any, n: int) -> tuple[float, float]:
    latencies.clear()
    target = cs.fold(add, first_stage.map(producer(n)), 0)
    asyncio.run(cs.Engine().run(target))
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


def main() -> None:
    quick = "--quick" in sys.argv
    n = N // 10 if quick else N
    repeat = 2 if quick else 5
    streamed(n // 10)  # warm up
    static(n // 10)
    stream_time = best(lambda: streamed(n), repeat)
    static_time = best(lambda: static(n), repeat)
    small = peak_memory(n)
    large = peak_memory(n * 10)
    sync_median, sync_p99 = latency(timed_pages, 10_000)
    async_median, async_p99 = latency(timed_pages_async, 10_000)
    print("| workload | streams | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| {n:,}-item stream → map → map → fold vs static fan-out of the same calls | "
        f"{stream_time / n * 1e6:.1f} µs/item | {static_time / n * 1e6:.1f} µs/item | "
        f"{stream_time / static_time:.2f}x | ≤ 1.5x |"
    )
    print(
        f"| peak traced memory, {n * 10:,} items vs {n:,} | {large / 1e6:.1f} MB | "
        f"{small / 1e6:.1f} MB | {large / small:.2f}x | ≤ 1.2x |"
    )
    print(
        f"| yield → first downstream start, sync generator (median / p99) | "
        f"{sync_median * 1e6:.0f} µs / {sync_p99 * 1e6:.0f} µs | | | recorded |"
    )
    print(
        f"| yield → first downstream start, async generator (median / p99) | "
        f"{async_median * 1e6:.0f} µs / {async_p99 * 1e6:.0f} µs | | | recorded |"
    )


if __name__ == "__main__":
    main()
