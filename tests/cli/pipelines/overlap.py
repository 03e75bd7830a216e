"""A map whose items run at the same time (async sleeps), so its wall time is shorter than the
sum of its items' durations."""

from __future__ import annotations

import asyncio

import cascade as cs


@cs.task
async def pause(i: int) -> int:
    await asyncio.sleep(0.2)
    return i


paused = pause.map([0, 1, 2, 3])
