"""A pool's queue: a retry keeps its place in it (and a map whose item keeps failing stops
without running the rest first), and no call waiting in it starts after the run failed."""

from __future__ import annotations

import asyncio

import pytest

import cascade as cs


def test_a_retry_keeps_its_place_in_the_pools_queue():
    _starts.clear()
    result = cs.run(call_api.map(range(10), fail_times=1), pools={"api": 2}, log_level=None)
    assert result == list(range(10))
    retry = _starts.index((1, 2))
    # Items 0 and 1 end together and hand their slots to items 2 and 3; the retry of item 1
    # is next in line, not behind the six items still queued after it.
    assert _starts[:5] == [(0, 1), (1, 1), (2, 1), (3, 1), (1, 2)], _starts
    assert retry == 4


_ran: list[int] = []


@cs.task(pools={"db": 1})
def uses_db(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@pytest.mark.parametrize("route", ["direct", "policies"])
def test_no_call_waiting_for_a_pool_starts_after_the_run_failed(route):
    _ran.clear()
    calls = [uses_db(n) for n in range(4)]
    if route == "policies":
        calls = [call.with_retry(retries=0) for call in calls]
    with pytest.raises(ValueError, match="item 0 failed"):
        cs.run(calls, pools={"db": 1}, log_level=None)
    assert _ran == [0]


_starts: list[tuple[int, int]] = []


@cs.task(pools={"api": 1}, retries=1)
async def call_api(n: int, fail_times: int) -> int:
    attempt = 1 + sum(1 for item, _ in _starts if item == n)
    _starts.append((n, attempt))
    await asyncio.sleep(0)
    if n == 1 and attempt <= fail_times:
        raise ConnectionError(f"item {n} attempt {attempt}")
    return n


def test_a_map_whose_item_keeps_failing_stops_without_running_the_rest_first():
    _starts.clear()
    with pytest.raises(ConnectionError, match="item 1 attempt 2"):
        cs.run(call_api.map(range(10), fail_times=2), pools={"api": 2}, log_level=None)
    # The retry runs beside item 4 (the pool has two slots); nothing starts once it failed.
    assert _starts == [(0, 1), (1, 1), (2, 1), (3, 1), (1, 2), (4, 1)]
