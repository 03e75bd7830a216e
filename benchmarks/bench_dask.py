"""Dask executor benchmarks: each workload against its baseline, measured in one run.

Run with ``python benchmarks/bench_dask.py`` (needs cascade-dask). It starts one LocalCluster of
two single-threaded worker processes on 127.0.0.1 and measures:

1. 5,000 no-op tasks fanned into one sum: Cascade on the dask executor against submitting the
   same graph with ``client.submit`` (per-task time; target: within 1.5×).
2. 8 CPU-bound pure-Python tasks of about 0.5 s each on the already running cluster against the
   same graph on the local executor (target: dask ≥ 1.7× faster).
3. A 20 MB intermediate passed between two tasks: bytes this process (the driver, which here
   also hosts the scheduler) read from Dask connections during the run, against a run that
   fetches the 20 MB result on purpose (it then passes through the scheduler and the client,
   both counted here); and what the workers' transfer logs say they sent, and to whom.

Timings are the best of several alternating repetitions, as machines here are noisy. Prints a
markdown table; nothing in the test suite asserts on time.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import cascade as cs

N_NOOP = 5_000
N_CPU = 8
BLOB = 20 * 1024 * 1024


def noop(i: int) -> int:
    return 1


def add_all(*values: int) -> int:
    return sum(values)


def spin(iterations: int) -> int:
    """Pure-Python CPU work (holds the GIL throughout)."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def make_blob(size: int) -> bytes:
    return b"\x01" * size


def blob_size(blob: bytes, other: bytes = b"") -> int:
    return len(blob) + len(other)


noop_task = cs.task(noop, name="noop")
add_all_task = cs.task(add_all, name="add_all")
spin_task = cs.task(spin, name="spin")
make_blob_task = cs.task(make_blob, name="make_blob")
blob_size_task = cs.task(blob_size, name="blob_size")


# -- measuring ----------------------------------------------------------------------------------


async def best_alternating(
    jobs: dict[str, Callable[[], Awaitable[Any]]], repeat: int
) -> dict[str, float]:
    """Best wall time of each job, running them in turn ``repeat`` times (so background load
    hits every job alike)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, job in jobs.items():
            gc.collect()
            started = time.perf_counter()
            await job()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


class ReceivedBytes:
    """Counts the payload bytes this process reads from Dask TCP comms."""

    def __init__(self) -> None:
        import distributed.comm.tcp as tcp

        self.total = 0
        original = tcp.read_bytes_rw

        async def counting(stream: Any, n: int) -> Any:
            self.total += n
            return await original(stream, n)

        tcp.read_bytes_rw = counting


def calibrate(seconds: float) -> int:
    """Iterations of ``spin`` that take about ``seconds`` here."""
    iterations = 200_000
    while True:
        started = time.perf_counter()
        spin(iterations)
        elapsed = time.perf_counter() - started
        if elapsed > 0.1:
            return int(iterations * seconds / elapsed)
        iterations *= 2


# -- workloads ---------------------------------------------------------------------------------


async def main() -> None:
    import distributed
    from distributed import Client, LocalCluster

    from cascade_dask import DaskExecutor

    received = ReceivedBytes()
    cluster = await LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        asynchronous=True,
    )
    client = await Client(cluster, asynchronous=True, set_as_default=False)
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    local = cs.Engine(executor="local", log_level=None)
    rows: list[tuple[str, str, str, str, str]] = []
    counter = iter(range(10**9))

    # 1. fan-out of no-ops into one sum
    async def direct_fan_out() -> None:
        run = next(counter)
        parts = [client.submit(noop, i, key=f"noop-{run}-{i}", pure=False) for i in range(N_NOOP)]
        total = client.submit(add_all, *parts, key=f"add_all-{run}", pure=False)
        assert await total == N_NOOP

    async def cascade_fan_out() -> None:
        target = add_all_task(*[noop_task(i) for i in range(N_NOOP)])
        assert await engine.run(target) == N_NOOP

    await direct_fan_out()  # warm up: workers import and cache what they need
    await cascade_fan_out()
    fan = await best_alternating({"direct": direct_fan_out, "cascade": cascade_fan_out}, 3)
    rows.append(
        (
            f"{N_NOOP:,} no-op tasks → one sum (2-worker LocalCluster)",
            f"{fan['cascade'] / N_NOOP * 1e6:.0f} µs/task",
            f"client.submit {fan['direct'] / N_NOOP * 1e6:.0f} µs/task",
            f"{fan['cascade'] / fan['direct']:.2f}×",
            "≤ 1.5×",
        )
    )

    # 2. CPU-bound tasks: the cluster against the local executor
    iterations = calibrate(0.5)

    def cpu_graph() -> Any:
        return add_all_task(*[spin_task(iterations + i) for i in range(N_CPU)])

    async def on_dask() -> None:
        await engine.run(cpu_graph())

    async def on_local() -> None:
        await local.run(cpu_graph())

    await on_dask()
    cpu = await best_alternating({"local": on_local, "dask": on_dask}, 2)
    rows.append(
        (
            f"{N_CPU} CPU-bound tasks of ~0.5 s (running cluster)",
            f"dask {cpu['dask']:.2f} s",
            f"local {cpu['local']:.2f} s",
            f"{cpu['local'] / cpu['dask']:.2f}× faster",
            "≥ 1.7× faster",
        )
    )

    # 3. a 20 MB intermediate stays on the workers
    async def moved(target: Any, expected: int) -> tuple[float, float, float]:
        """MB this process received, and MB workers sent to workers / to anyone else."""
        await client.run(_clear_transfer_log)
        before = received.total
        assert await engine.run(target) == expected
        got = received.total - before
        moves = await client.run(_outgoing_transfers)
        workers = set(moves)
        to_workers = sum(n for log in moves.values() for who, n in log if who in workers)
        to_others = sum(n for log in moves.values() for who, n in log if who not in workers)
        return got / 1e6, to_workers / 1e6, to_others / 1e6

    kept, peers, others = await moved(blob_size_task(make_blob_task(BLOB)), BLOB)
    before = received.total
    assert len(await engine.run(make_blob_task(BLOB))) == BLOB
    fetched = (received.total - before) / 1e6
    rows.append(
        (
            "20 MB intermediate between two tasks",
            f"driver received {kept:.3f} MB",
            f"fetching it instead: {fetched:.1f} MB",
            f"worker→worker {peers:.1f} MB, to others {others:.1f} MB",
            "never sent to the driver",
        )
    )
    # Two 20 MB intermediates made on both workers: one has to move, worker to worker.
    two = blob_size_task(make_blob_task(BLOB), make_blob_task(BLOB + 1))
    kept, peers, others = await moved(two, 2 * BLOB + 1)
    rows.append(
        (
            "two 20 MB intermediates into one task",
            f"driver received {kept:.3f} MB",
            "-",
            f"worker→worker {peers:.1f} MB, to others {others:.1f} MB",
            "never sent to the driver",
        )
    )

    await client.close()
    await cluster.close()
    print(
        f"Python {sys.version.split()[0]}, distributed {distributed.__version__}, "
        f"{os.cpu_count()} cores\n"
    )
    print("| workload | cascade | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _clear_transfer_log(dask_worker: Any) -> None:
    dask_worker.transfer_outgoing_log.clear()


def _outgoing_transfers(dask_worker: Any) -> list[tuple[str, int]]:
    return [(entry["who"], entry["total"]) for entry in dask_worker.transfer_outgoing_log]


if __name__ == "__main__":
    asyncio.run(main())
