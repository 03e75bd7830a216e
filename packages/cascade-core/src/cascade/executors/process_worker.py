"""What runs inside the ``processes`` executor's worker processes (see
``cascade.executors.processes`` for the driver side).

Every call runs as ``run_in_process(spec, fn, args, kwargs)``. It tells the driver when it
begins (``on_start``), then runs the call with the shared worker-side steps
(``cascade.executors.worker_kit.run_spec``: resources set up in this worker, once per run,
torn down by ``teardown_in_worker`` when the run ends; timing; logs collected in a run that
captures them), and returns a ``Shipped``: the value, or the exception as a ``Failure`` (so
one that cannot be pickled, or not unpickled, never breaks the pool), with the call's report.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from cascade.executors.worker_kit import (
    CallReport,
    CallSpec,
    Failure,
    WorkerResources,
    run_spec,
    worker_pid,
)

#: How long workers wait for each other in a warm-up or teardown round (all must take part).
BARRIER_TIMEOUT = 120.0


class Shipped:
    """What a call sends back: its value (or ``Failure``) and the worker's report on it."""

    __slots__ = ("outcome", "report")

    def __init__(self, outcome: Any, report: CallReport) -> None:
        self.outcome = outcome
        self.report = report

    def __reduce__(self) -> Any:
        return (Shipped, (self.outcome, self.report))


class _Worker:
    """What one worker process keeps between calls."""

    def __init__(self, started: Any, barrier: Any) -> None:
        self.started = started
        self.barrier = barrier
        self.resources = WorkerResources("processes", worker_pid, "cascade-worker-loop")


_worker: _Worker | None = None


def init_worker(started: Any, barrier: Any) -> None:
    global _worker
    _worker = _Worker(started, barrier)


def meet(_: int = 0) -> int:
    """A warm-up job: wait until every worker holds one, so each has started (and none takes
    two); the worker's process id."""
    if _worker is not None:
        _worker.barrier.wait(BARRIER_TIMEOUT)
    return os.getpid()


def run_in_process(
    spec: CallSpec, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Shipped:
    """Run one call in this worker. An exception comes back as a ``Failure`` value, so
    anything the pool itself raises is about the result (it could not be pickled)."""
    worker = _worker
    if worker is not None:
        try:
            worker.started.send((spec.key, os.getpid()))
        except OSError:  # the driver stopped listening: it no longer waits for this
            pass
    report = CallReport()
    resources = worker.resources if worker is not None else None
    try:
        return Shipped(run_spec(spec, fn, args, kwargs, resources, report), report)
    except BaseException as exc:
        return Shipped(Failure.of(exc), report)


def teardown_in_worker(run_ids: list[str]) -> list[str]:
    """A teardown job (one per worker, held by the barrier): close what these runs set up
    here; one message per failure."""
    worker = _worker
    if worker is None:
        return []
    errors = worker.resources.teardown(run_ids)
    try:
        worker.barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        errors.append(f"worker process {os.getpid()} waited in vain for the others' teardown")
    return errors


__all__ = [
    "BARRIER_TIMEOUT",
    "Shipped",
    "init_worker",
    "meet",
    "run_in_process",
    "teardown_in_worker",
]
