"""Params: conversion by their type (defaults too), required and unknown params named before
anything runs, and params read only by graphs a task returns at run time."""

from __future__ import annotations

import datetime

import pytest
from core_helpers import add

import cascade as cs


@cs.task
def keep_above(values: list[int], threshold: int) -> list[int]:
    return [v for v in values if v > threshold]


@cs.task(dynamic=True)
def plan_job(values: list[int]) -> cs.LazyResult[list[int]]:
    return keep_above(values, cs.Param("threshold", type=int, default=5))


@cs.task
def plan_undeclared(values: list[int]) -> cs.LazyResult[list[int]]:
    return keep_above(values, cs.Param("threshold", type=int, default=5))


def test_a_param_used_only_in_a_returned_graph_takes_the_runs_value():
    job = plan_job([1, 8, 12, 20])
    assert cs.run(job, log_level=None) == [8, 12, 20]
    # Converted by the param's type, as a param of the graph as built would be.
    assert cs.run(job, params={"threshold": "12"}, log_level=None) == [20]


def test_params_started_events_and_growth_share_one_value():
    job = plan_job([1, 8, 12, 20])
    both = [keep_above([30, 40], cs.Param("threshold", type=int)), job]
    assert cs.run(both, params={"threshold": 35}, log_level=None) == [[40], []]


def test_an_unknown_param_is_an_error_at_the_end_when_nothing_in_the_run_declared_it():
    with pytest.raises(cs.ParamError) as caught:
        cs.run(plan_job([1, 8]), params={"treshold": 1}, log_level=None)
    assert "unknown param(s) treshold: nothing in this run declared them" in str(caught.value)
    assert "this run takes: threshold" in str(caught.value)


def test_an_unknown_param_of_a_graph_that_cannot_grow_is_refused_before_anything_runs():
    ran: list[str] = []

    @cs.task
    def note() -> int:
        ran.append("x")
        return 1

    with pytest.raises(cs.ParamError) as caught:
        cs.run(note(), params={"threshold": 1}, log_level=None)
    message = str(caught.value)
    assert "unknown param(s) threshold; this graph takes: no params" in message
    assert "checked before any task ran" in message and "dynamic=True" in message
    assert ran == []
    with pytest.raises(cs.ParamError, match="checked before any task ran"):
        cs.run(plan_undeclared([1]), params={"threshold": 1}, log_level=None)


@cs.task
def kind_of(value: object) -> str:
    return type(value).__name__


def test_a_default_is_converted_by_the_params_type():
    day = cs.Param("day", type=datetime.date.fromisoformat, default="2026-01-31")
    assert cs.run(kind_of(day), log_level=None) == "date"
    assert cs.run(kind_of(day), params={"day": "2026-02-01"}, log_level=None) == "date"
    count = cs.Param("count", type=int, default="3")
    assert cs.run(kind_of(count), log_level=None) == "int"


def test_a_none_default_stays_none():
    optional = cs.Param("limit", type=int, default=None)
    assert cs.run(kind_of(optional), log_level=None) == "NoneType"


def test_a_default_that_does_not_convert_is_an_error_before_anything_runs():
    ran: list[int] = []

    @cs.task
    def note(value: object) -> int:
        ran.append(1)
        return 1

    bad = cs.Param("count", type=int, default="many")
    with pytest.raises(cs.ParamError) as caught:
        cs.run(note(bad), log_level=None)
    assert "param 'count': its default 'many' does not convert to int" in str(caught.value)
    assert ran == []


def test_a_default_of_a_param_that_joins_at_run_time_is_converted_too():
    @cs.task(dynamic=True)
    def later() -> cs.LazyResult[str]:
        return kind_of(cs.Param("when", type=datetime.date.fromisoformat, default="2026-01-31"))

    assert cs.run(later(), log_level=None) == "date"


def test_param_with_type_conversion_and_default():
    n = cs.Param("n", type=int, description="how many")
    scale = cs.Param("scale", default=10)
    assert cs.run(add(n, scale), params={"n": "3"}, log_level=None) == 13
    assert cs.run(add(n, scale), params={"n": 1, "scale": 1}, log_level=None) == 2


def test_missing_required_param_fails_before_any_task_starts():
    started = []

    @cs.task
    def first():
        started.append(1)
        return 1

    with pytest.raises(cs.ParamError, match="missing required param.*'?count"):
        cs.run(add(first(), cs.Param("count")), log_level=None)
    assert started == []


def test_unknown_param_and_bad_conversion_are_named():
    with pytest.raises(cs.ParamError, match="unknown param.*nope.*takes: n"):
        cs.run(add(cs.Param("n"), 1), params={"n": 1, "nope": 2}, log_level=None)
    with pytest.raises(ValueError, match="param 'n': cannot convert 'x' to int"):
        cs.run(add(cs.Param("n", type=int), 1), params={"n": "x"}, log_level=None)
