"""Pipelines written as a new user writes them (the field report): params that join at run time,
typed defaults, maps over params."""

import datetime

import cascade as cs


@cs.task
def keep_above(values, threshold):
    return [v for v in values if v > threshold]


@cs.task(dynamic=True)
def plan_job(values):
    return keep_above(values, cs.Param("threshold", type=int, default=5))


#: The param appears only in the graph `plan_job` returns.
job = plan_job([1, 8, 12, 20])


@cs.task
def day_of(day):
    return f"{type(day).__name__} {day}"


#: The default goes through `type` like a given value.
dated = day_of(cs.Param("day", type=datetime.date.fromisoformat, default="2026-01-31"))


@cs.task
def fetch(page, region):
    return f"{region}:{page}"


regions = fetch.map([1, 2, 3], region=cs.Param("region", default="north"))


_gate: list = []


@cs.task(pools={"api": 1}, retries=1)
async def fetch_page(n):
    import asyncio

    if not _gate:
        _gate.append(asyncio.Event())
    if n == 7:
        _gate[0].set()
        raise ConnectionError(f"page {n}: HTTP 503")
    if n == 3:
        await _gate[0].wait()
        raise ConnectionError(f"page {n}: HTTP 503")
    return n


#: Items 3 and 7 fail after a retry; run with --pool api=4.
pages = fetch_page.map(range(10))


@cs.task(pools={"api": 1})
def pooled(x):
    return x


@cs.task
def needs_db(x, db=cs.inject("databse")):
    return x


#: Needs `--pool api=N`.
needs_pool = pooled(1)
#: Asks for a resource nobody registered (a misspelling).
misspelt_resource = needs_db(1)


@cs.task(executor="processes")
def shipped(x):
    return x


def _local_builder():
    @cs.task(executor="processes")
    def inner(x):
        return x

    return inner(1)


#: A task the processes executor would have to pickle, defined inside a function.
unpicklable = _local_builder


@cs.resource
def flaky_connection():
    yield "connection"
    raise RuntimeError("error while closing")


@cs.task
def query(conn=cs.inject("flaky_connection")):
    return f"rows from {conn}"


#: Its resource's teardown raises.
teardown_fails = query()


@cs.task
def early_fail():
    raise ValueError("bad row 3")


@cs.task
def flaky():
    raise ConnectionError("page 3: HTTP 503")


@cs.task
def fine():
    return 1


#: Two independent failures and a success, for --keep-going.
two_failures = [early_fail(), flaky(), fine()]


@cs.resource
def warehouse():
    yield "warehouse"


@cs.task
def load_rows(conn=cs.inject("warehouse")):
    return parse_rows(conn)


def parse_rows(conn):
    raise ValueError("bad row 3")


#: Fails in the task's own code, with a run-scoped resource open.
fails_with_resource = load_rows()


@cs.task(pools={"api": 1})
def call_api(n):
    import os
    import pathlib
    import time

    if n == 0:
        release = pathlib.Path(os.environ["FIELD_RELEASE"])
        while not release.exists():  # the test releases it once the queue is on screen
            time.sleep(0.01)
        raise ConnectionError("HTTP 503")
    return n


#: Fifteen calls through a pool of one: the first fails (once released), the rest queue.
queued = call_api.map(range(15))
