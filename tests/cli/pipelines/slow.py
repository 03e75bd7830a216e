"""A slow task holding a resource whose teardown writes a marker file (SIGINT test).

The marker path comes from the environment variable CASCADE_TEST_MARKER.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import cascade as cs


@cs.resource
def connection() -> Iterator[str]:
    marker = Path(os.environ["CASCADE_TEST_MARKER"])
    marker.write_text("set up\n")
    try:
        yield "connected"
    finally:
        with marker.open("a") as handle:
            handle.write("torn down\n")


@cs.task
async def wait_forever(conn: str = cs.inject("connection")) -> str:
    with Path(os.environ["CASCADE_TEST_MARKER"]).open("a") as handle:
        handle.write("waiting\n")  # the tests interrupt once this is written
    await asyncio.sleep(60)
    return conn


@cs.task
def quick() -> int:
    return 1


waiting = wait_forever().after(quick())
