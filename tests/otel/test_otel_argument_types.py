"""Argument attributes on task spans when values are not recorded: built once per function and
argument types and reused (``benchmarks/bench_otel.py``), so every span must still carry the
types of its own call's arguments, and recorded values are never reused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cascade as cs

pytestmark = pytest.mark.timeout(30)


@cs.task
async def describe(value: Any, *rest: Any, label: Any = None) -> str:
    return type(value).__name__


@cs.task
def collect(values: list[str]) -> list[str]:
    return values


def test_each_span_carries_the_types_of_its_own_arguments(traced: Any) -> None:
    calls = [
        describe(1),
        describe("x"),
        describe(2),
        describe(1.5, b"extra"),
        describe(3, label="a"),
        describe(4, label=5),
    ]
    assert traced.run(collect(calls)) == ["int", "str", "int", "float", "int", "int"]
    by_id = {
        s.attributes["cascade.task.id"]: dict(s.attributes)
        for s in traced.spans
        if "cascade.task.id" in s.attributes
    }
    arguments = [
        {k: v for k, v in by_id[c.id].items() if k.startswith("cascade.task.arg.")} for c in calls
    ]
    assert arguments == [
        {"cascade.task.arg.value.type": "int"},
        {"cascade.task.arg.value.type": "str"},
        {"cascade.task.arg.value.type": "int"},
        {"cascade.task.arg.value.type": "float", "cascade.task.arg.rest[0].type": "bytes"},
        {"cascade.task.arg.value.type": "int", "cascade.task.arg.label.type": "str"},
        {"cascade.task.arg.value.type": "int", "cascade.task.arg.label.type": "int"},
    ]


def test_recorded_values_belong_to_their_own_call(traced: Any) -> None:
    import cascade_otel

    engine = cs.Engine(log_level=None)
    cascade_otel.instrument(engine, tracer_provider=traced.provider, record_values=True)
    calls = [describe(i) for i in range(3)]
    asyncio.run(engine.run(collect(calls)))
    by_id = {
        s.attributes["cascade.task.id"]: dict(s.attributes)
        for s in traced.spans
        if "cascade.task.id" in s.attributes
    }
    assert [by_id[c.id]["cascade.task.arg.value.value"] for c in calls] == [0, 1, 2]
