"""Tasks for the Dask command-line tests. The workers import this module by name, so the test's
own cluster gets this folder on PYTHONPATH; the marker path comes from CASCADE_TEST_MARKER."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cascade as cs


def note(text: str) -> None:
    with Path(os.environ["CASCADE_TEST_MARKER"]).open("a") as handle:
        handle.write(text + "\n")


@cs.task
def where() -> str:
    """The address of the Dask worker that ran the task."""
    import distributed

    return str(distributed.get_worker().address)


@cs.task(retries=1)
def flaky() -> str:
    marker = Path(os.environ["CASCADE_TEST_MARKER"])
    if not marker.exists():
        marker.write_text("failed once\n")
        raise ConnectionError("the first attempt loses its connection")
    return "ok on the second attempt"


@cs.resource
def session() -> Iterator[str]:
    note("set up")
    try:
        yield "session"
    finally:
        note("torn down")


@cs.task
def wait_for_release(i: int, conn: str = cs.inject("session")) -> int:
    note(f"waiting {i}")
    release = Path(os.environ["CASCADE_TEST_MARKER"] + ".release")
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return i


ran_where = where()
retried = flaky()
waiting = wait_for_release.map([0, 1])
