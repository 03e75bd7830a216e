"""Tasks that wait, for the Ctrl-C tests: each notes in a marker file when it starts, so a test
can interrupt at the right moment without sleeping, and a resource notes its teardown.

The marker path comes from the environment variable CASCADE_TEST_MARKER; ``hold`` (a sync task,
which cannot be stopped) returns once the file ``<marker>.release`` exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cascade as cs


def note(text: str) -> None:
    with Path(os.environ["CASCADE_TEST_MARKER"]).open("a") as handle:
        handle.write(text + "\n")


@cs.resource
def connection() -> Iterator[str]:
    note("set up")
    try:
        yield "connected"
    finally:
        note("torn down")


@cs.task
async def nap(i: int, conn: str = cs.inject("connection")) -> int:
    note(f"napping {i}")
    await asyncio.sleep(120)
    return i


@cs.task
def hold(i: int, conn: str = cs.inject("connection")) -> int:
    note(f"holding {i}")
    release = Path(os.environ["CASCADE_TEST_MARKER"] + ".release")
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return i


@cs.task
def warn(i: int) -> int:
    logging.getLogger("pipeline").warning("warning number %d from a task", i)
    sys.stdout.write(f"print number {i} from a task\n")  # one write: threads print at once
    sys.stdout.flush()
    return i


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


naps = nap.map([0, 1, 2])
holds = hold.map([0, 1])
warnings = total(warn.map(list(range(5))))
