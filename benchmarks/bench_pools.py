"""Pools against max_concurrency: the same 10,000-task fan-out where every task holds one slot
of a 64-slot pool, and where the run allows 64 at once. Same process, best of several runs;
target: at most 1.15x."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import cascade as cs

N = 10_000


@cs.task
async def noop() -> int:
    return 1


@cs.task(pools={"api": 1})
async def pooled() -> int:
    return 1


@cs.task
def total(*values: int) -> int:
    return sum(values)


def best(fn: Callable[[], Any], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def with_pool() -> None:
    target = total(*[pooled() for _ in range(N)])
    assert asyncio.run(cs.Engine(pools={"api": 64}).run(target)) == N


def with_max_concurrency() -> None:
    target = total(*[noop() for _ in range(N)])
    assert asyncio.run(cs.Engine(max_concurrency=64).run(target)) == N


def main() -> None:
    with_pool()  # warm up
    pool = best(with_pool)
    limit = best(with_max_concurrency)
    print("| workload | cascade | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| 10,000-task fan-out, one slot of a 64-slot pool each | {pool / N * 1e6:.1f} µs | "
        f"max_concurrency=64 {limit / N * 1e6:.1f} µs | {pool / limit:.2f}× | ≤ 1.15× |"
    )


if __name__ == "__main__":
    main()
