"""Dynamic workflows: tail recursion against a plain chain, in the same process.

A task that returns a call of itself hands its node over to that call, so 100,000 levels keep
one node alive: peak traced memory for 100,000 levels is compared with 1,000 levels (target:
at most 1.5x), and the time per level with a static 100,000-task chain (recorded).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

import cascade as cs

LEVELS = 100_000


@cs.task
async def countdown(n: int) -> Any:
    return n if n == 0 else countdown(n - 1)


@cs.task
async def step(x: int) -> int:
    return x + 1


def run(target: Any) -> Any:
    return asyncio.run(cs.Engine().run(target))


def peak_bytes(levels: int) -> int:
    gc.collect()
    tracemalloc.start()
    assert run(countdown(levels)) == 0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def best(fn: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def chain() -> None:
    node = step(0)
    for _ in range(LEVELS - 1):
        node = step(node)
    assert run(node) == LEVELS


def main() -> None:
    run(countdown(10))  # warm up: imports and the plugin manager are not per-level costs
    small, large = peak_bytes(1_000), peak_bytes(LEVELS)
    recursion = best(lambda: run(countdown(LEVELS)))
    static = best(chain)
    print("| workload | cascade | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| tail recursion, peak traced memory | 100,000 levels {large / 1024:.0f} KiB | "
        f"1,000 levels {small / 1024:.0f} KiB | {large / small:.2f}× | ≤ 1.5× |"
    )
    print(
        f"| tail recursion, time per level | {recursion / LEVELS * 1e6:.1f} µs | "
        f"static 100,000-task chain {static / LEVELS * 1e6:.1f} µs | "
        f"{recursion / static:.2f}× | recorded |"
    )


if __name__ == "__main__":
    main()
