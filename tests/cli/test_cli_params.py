"""How command-line text becomes param values (in process: pure functions)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade_cli.params import (
    ParamsError,
    build_params,
    check_unknown,
    choose_value,
    parse_value,
)
from cascade_cli.target import find_params


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ('"quoted"', "quoted"),
        ("plain text", "plain text"),
        ("2024-05-01", "2024-05-01"),
        ("", ""),
    ],
)
def test_values_are_json_or_else_strings(raw: str, expected: Any) -> None:
    assert parse_value(raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "handed_over", "converted"),
    [
        (int, "3", 3, 3),
        (float, "3", 3, 3.0),
        (str, "3", "3", "3"),
        (str, "[1]", "[1]", "[1]"),
        (bool, "false", False, False),
        (bool, "Off", False, False),
        (bool, "1", True, True),
        (Decimal, "1.10", "1.10", Decimal("1.10")),
        (Path, "2024", "2024", Path("2024")),
        (list, "[1, 2]", [1, 2], [1, 2]),
        (datetime.date.fromisoformat, "2024-05-01", "2024-05-01", datetime.date(2024, 5, 1)),
    ],
)
def test_the_param_type_picks_the_form_it_accepts(
    kind: Any, raw: str, handed_over: Any, converted: Any
) -> None:
    param = cs.Param("p", type=kind)
    value = choose_value(param, raw)
    assert value == handed_over and type(value) is type(handed_over)
    assert param.convert(value) == converted


def test_a_value_the_type_rejects_names_the_param() -> None:
    with pytest.raises(ParamsError, match="param 'n': cannot convert 'x' to int"):
        choose_value(cs.Param("n", type=int), "x")


def test_build_params_merges_file_then_flags_and_checks_names() -> None:
    declared = {"a": cs.Param("a", type=int), "b": cs.Param("b", default="x")}
    assert build_params(declared, {"a": 1, "b": "file"}, ["b=flag", "a=2"]) == {"a": 2, "b": "flag"}
    with pytest.raises(ParamsError, match=r"unknown param\(s\) c; this graph takes: a: int, b"):
        check_unknown(declared, build_params(declared, {}, ["a=1", "c=2"]), grows=False)
    # A graph that can grow (a task declared dynamic=True) may declare it later: a warning.
    warning = check_unknown(declared, build_params(declared, {}, ["a=1", "c=2"]), grows=True)
    assert warning is not None and "param(s) c are not declared by the graph as built" in warning
    with pytest.raises(ParamsError, match=r"missing required param\(s\) a; pass --param a=VALUE"):
        build_params(declared, {}, [])
    with pytest.raises(ParamsError, match="cannot convert 'nope' to int"):
        build_params(declared, {"a": "nope"}, [])
    with pytest.raises(ParamsError, match="takes no params"):
        check_unknown({}, build_params({}, {}, ["a=1"]), grows=False)


def test_find_params_walks_arguments_conditions_and_ordering() -> None:
    @cs.task
    def echo(*values: Any, **named: Any) -> Any:
        return values, named

    first = cs.Param("first")
    nested = echo([{"deep": cs.Param("nested")}], key=(cs.Param("in_tuple"),))
    guarded = echo(nested).run_if(cs.Param("flag", default=True)).after(echo(first))
    assert sorted(find_params(guarded)) == ["first", "flag", "in_tuple", "nested"]
    shared = cs.Param("shared")
    assert find_params(echo.map([1, 2], extra=cs.unmapped(shared))) == {"shared": shared}


# -- types refuse lossy or nonsensical values (Param.convert, shared by cs.run and the CLI) ------


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (list, "oslo", "text is not a list (it would become its letters)"),
        (int, 2.5, "2.5 has a fractional part"),
        (int, "2.5", "2.5 has a fractional part"),
        (int, True, "the boolean True is not a whole number"),
        (float, True, "the boolean True is not a number"),
        (float, "true", "'true' is not a number"),
        (int, None, "null (None) is not an int"),
        (str, None, "null (None) is not a str"),
        (bool, "maybe", "'maybe' is not a boolean; use true/false"),
        (dict, [1, 2], "a list is not a mapping"),
        (list[int], ["1", "x"], "'x' is not a whole number"),
    ],
)
def test_lossy_conversions_are_refused_naming_param_value_and_type(
    kind: Any, value: Any, reason: str
) -> None:
    param = cs.Param("p", type=kind)
    with pytest.raises(cs.ParamError) as caught:
        param.convert(value)
    assert str(caught.value).startswith(f"param 'p': cannot convert {value!r} to ")
    assert reason in str(caught.value)
    assert caught.value.param == "p" and caught.value.value == value


@pytest.mark.parametrize(
    ("kind", "value", "converted"),
    [
        (int, "3", 3),
        (int, 3.0, 3),
        (int, "2.0", 2),
        (float, 2, 2.0),
        (float, "2.5", 2.5),
        (bool, "off", False),
        (bool, 1, True),
        (str, 7, "7"),
        (list, ("a", "b"), ["a", "b"]),
        (Decimal, 1.1, Decimal("1.1")),  # the float as written, not its binary expansion
        (datetime.date, "2024-05-01", datetime.date(2024, 5, 1)),
        (int | None, None, None),
        (list[int], ["1", 2], [1, 2]),
    ],
)
def test_lossless_conversions_pass(kind: Any, value: Any, converted: Any) -> None:
    result = cs.Param("p", type=kind).convert(value)
    assert result == converted and type(result) is type(converted)


def test_cs_run_raises_param_error_for_a_refused_value() -> None:
    @cs.task
    def count(items: list[str]) -> int:
        return len(items)

    with pytest.raises(cs.ParamError, match=r"param 'stations': cannot convert 'oslo' to list"):
        cs.run(count(cs.Param("stations", type=list)), params={"stations": "oslo"}, log_level=None)
    assert cs.run(count(cs.Param("stations", type=list)), params={"stations": ["oslo"]}) == 1


def test_a_model_class_validates_a_mapping() -> None:
    from pipelines.strict_params import Station

    param = cs.Param("home", type=Station)
    station = param.convert({"name": "oslo", "lat": "59.9"})
    assert isinstance(station, Station) and (station.name, station.lat) == ("oslo", 59.9)
    assert param.convert(station) is station
    with pytest.raises(cs.ParamError, match="name: field required"):
        param.convert({"lat": 1})
    with pytest.raises(cs.ParamError, match="text is not a mapping; Station validates an object"):
        param.convert("oslo")


def test_a_pydantic_model_validates_a_mapping() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Config(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        name: str
        retries: int = 1

    param = cs.Param("config", type=Config)
    assert param.convert({"name": "x", "retries": "2"}) == Config(name="x", retries=2)
    with pytest.raises(cs.ParamError, match="param 'config'.*retries: Input should be"):
        param.convert({"name": "x", "retries": "many"})


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        (list, "oslo", "param 'p': cannot convert 'oslo' to list: text is not a list"),
        (int, "2.5", "param 'p': cannot convert '2.5' to int: 2.5 has a fractional part"),
        (float, "true", "param 'p': cannot convert 'true' to float: the boolean True is not"),
        (int, "null", "param 'p': cannot convert 'null' to int: null (None) is not an int"),
    ],
)
def test_the_command_line_names_the_text_as_typed(kind: Any, raw: str, message: str) -> None:
    with pytest.raises(ParamsError) as caught:
        choose_value(cs.Param("p", type=kind), raw)
    assert str(caught.value).startswith(message)


# -- the live display's total (RunRecord, in process) -------------------------------------------


def test_the_total_counts_a_map_once_its_item_count_is_known() -> None:
    from pipelines import limited

    from cascade import MessageBus
    from cascade.events import RunStarted, TaskExecutionFinished
    from cascade.graph import plan
    from cascade_cli.run import RunRecord
    from cascade_cli.target import lazy_results

    def record() -> tuple[RunRecord, MessageBus, str]:
        bus = MessageBus()
        graph = limited.from_upstream
        steps = plan(graph)
        return RunRecord(bus, steps, lazy_results(graph), limited=True), bus, steps[0]["task_id"]

    known, bus, numbers_id = record()
    bus.publish(RunStarted(run_id="r"))
    assert known.counts() == (0, 3) and known.provisional()  # numbers, the map (1), total
    bus.publish(
        TaskExecutionFinished(
            run_id="r", task_id=numbers_id, task_name="numbers", result=list(range(12))
        )
    )
    assert known.counts() == (1, 14) and not known.provisional()

    remote, bus, numbers_id = record()
    bus.publish(RunStarted(run_id="r"))
    bus.publish(  # a reference to a value kept elsewhere (Dask's) has no length
        TaskExecutionFinished(run_id="r", task_id=numbers_id, task_name="numbers", result=object())
    )
    assert remote.counts() == (1, 3) and remote.provisional()

    literal_bus = MessageBus()
    literal = RunRecord(
        literal_bus, plan(limited.from_literal), lazy_results(limited.from_literal), limited=True
    )
    assert literal.counts() == (0, 13) and not literal.provisional()
