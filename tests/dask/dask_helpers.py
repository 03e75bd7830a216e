"""Small helpers shared by the dask tests (a module with a unique name, so workers and the
scheduler can import what is pickled from it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def worker_pids(client: Any) -> dict[str, int]:
    """Worker address → process id."""
    return dict(client.run(os.getpid))


def scheduler_task_count(client: Any) -> int:
    """Tasks the scheduler still knows of: results held by some client, or work in flight."""
    return int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))


def nothing_processing(client: Any) -> bool:
    return all(not tasks for tasks in client.processing().values())


def bump(counter: str) -> int:
    """Append to a file and return how many times it was bumped (visible across processes)."""
    with open(counter, "a") as handle:
        handle.write("x")
    return Path(counter).stat().st_size


def size(path: str | Path) -> int:
    return Path(path).stat().st_size if Path(path).exists() else 0


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def set_env(name: str, value: str) -> None:
    """Set an environment variable in the process this runs in (with ``Client.run``: workers)."""
    os.environ[name] = value
