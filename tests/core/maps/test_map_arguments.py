"""Maps and params as a new user writes them (field report): a string from a Param or a task
is passed whole to every map item, params used only in returned graphs can be set, and a
param's default goes through its ``type`` like a given value."""

from __future__ import annotations

import datetime

import pytest

import cascade as cs

pytestmark = pytest.mark.timeout(60)


@cs.task
def fetch(page: int, region: str) -> str:
    return f"{region}:{page}"


@cs.task
def pick_region() -> str:
    return "south"


@cs.task
def settings() -> dict[str, int]:
    return {"size": 2}


@cs.task
def sized(page: int, config: dict[str, int]) -> int:
    return page * config["size"]


@cs.task
def stamp(page: int, day: datetime.date) -> str:
    return f"{day.isoformat()}#{page}"


def test_map_passes_a_string_param_whole_to_every_item():
    region = cs.Param("region", default="north")
    mapped = fetch.map([1, 2, 3, 4, 5], region=region)
    assert cs.run(mapped, log_level=None) == [f"north:{i}" for i in range(1, 6)]
    assert cs.run(mapped, params={"region": "east"}, log_level=None) == [
        f"east:{i}" for i in range(1, 6)
    ]


def test_map_passes_a_string_from_a_task_whole_to_every_item():
    assert cs.run(fetch.map([1, 2, 3], region=pick_region()), log_level=None) == [
        "south:1",
        "south:2",
        "south:3",
    ]
    # Positionally too, and bytes and mappings alike.
    assert cs.run(fetch.map([1, 2], pick_region()), log_level=None) == ["south:1", "south:2"]
    assert cs.run(sized.map([1, 2, 3], settings()), log_level=None) == [2, 4, 6]


def test_a_param_holding_a_list_is_still_iterated():
    pages = cs.Param("pages", default=[1, 2])
    assert cs.run(fetch.map(pages, region="west"), log_level=None) == ["west:1", "west:2"]


def test_map_over_only_text_made_at_run_time_says_there_is_nothing_to_fan_out_over():
    with pytest.raises(TypeError, match=r"fetch\.map\(\): nothing to fan out over: argument 0"):
        cs.run(fetch.map(pick_region(), region="x"), log_level=None)


def test_a_non_iterable_param_in_a_map_points_at_cs_unmapped():
    day = cs.Param("day", type=datetime.date, default="2026-01-31")
    with pytest.raises(TypeError) as caught:
        cs.run(stamp.map([1, 2], day=day), log_level=None)
    message = str(caught.value)
    assert "argument 'day' must be iterable, got date" in message
    assert "cs.unmapped" in message
    # ... and with cs.unmapped it is passed whole.
    assert cs.run(stamp.map([1, 2], day=cs.unmapped(day)), log_level=None) == [
        "2026-01-31#1",
        "2026-01-31#2",
    ]


# -- params that join at run time ---------------------------------------------------------


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


# -- defaults go through the type -------------------------------------------------------


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
