"""What a cache hit costs: 2,000 independent tasks fully cached by ``InputHashCache`` against the
same 2,000 tasks without a cache, in one process.

Run with ``python benchmarks/bench_cache.py``. It uses a temporary cache directory and prints
per-task microseconds for the plain run, the first (cold: hash, miss, run, write) cached run, the
warm fully cached run, and a policy that hits without hashing or reading anything (what the
engine's policy path costs by itself), and the ratio of warm to plain. Best of several
interleaved repetitions; nothing asserts on time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cascade as cs

N = 2_000
REPEAT = 7


@cs.task
def plain_inc(x: int) -> int:
    return x + 1


@cs.task(cache=cs.InputHashCache())
def cached_inc(x: int) -> int:
    return x + 1


class AlwaysHit:
    """A policy that hits without looking anything up: the engine's share of a hit."""

    def lookup(self, context: cs.CacheContext) -> tuple[bool, Any]:
        return True, context.args[0] + 1

    def save(self, context: cs.CacheContext, value: Any) -> None:
        pass


@cs.task(cache=AlwaysHit())
def free_hit_inc(x: int) -> int:
    return x + 1


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cascade-bench-cache-") as directory:
        os.environ["CASCADE_CACHE_DIR"] = directory
        expected = [i + 1 for i in range(N)]

        def run_plain() -> None:
            assert cs.run([plain_inc(i) for i in range(N)], log_level=None) == expected

        def run_cached() -> None:
            assert cs.run([cached_inc(i) for i in range(N)], log_level=None) == expected

        def run_free_hits() -> None:
            assert cs.run([free_hit_inc(i) for i in range(N)], log_level=None) == expected

        run_plain()  # warm up imports, thread pool
        cold = timed(run_cached)  # every task misses, runs and writes its entry
        # Interleaved, so a noisy neighbour slows every variant alike.
        times: dict[str, list[float]] = {"plain": [], "warm": [], "free": []}
        for _ in range(REPEAT):
            times["plain"].append(timed(run_plain))
            times["warm"].append(timed(run_cached))
            times["free"].append(timed(run_free_hits))
        plain, warm, free = (min(times[k]) for k in ("plain", "warm", "free"))
        stats = cs.cache_stats()
        assert stats.entries == N, stats

        per = 1e6 / N
        print(f"cache-hit overhead, {N} independent tasks, Python {sys.version.split()[0]}")
        print("| run | per task (µs) |")
        print("|---|---|")
        print(f"| plain tasks, no cache | {plain * per:.1f} |")
        print(f"| InputHashCache, cold (miss + run + write) | {cold * per:.1f} |")
        print(f"| InputHashCache, fully cached (hit) | {warm * per:.1f} |")
        print(f"| a policy that always hits (engine's share of a hit) | {free * per:.1f} |")
        print(f"ratio cached hit / plain: {warm / plain:.2f}x")
        print(f"entries: {stats.entries}, {stats.bytes / N:.0f} bytes each on disk")


if __name__ == "__main__":
    main()
