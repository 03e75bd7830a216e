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
