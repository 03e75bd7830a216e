"""How command-line text becomes param values (in process: pure functions)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade_cli.params import ParamsError, build_params, choose_value, parse_value
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
        build_params(declared, {}, ["a=1", "c=2"])
    with pytest.raises(ParamsError, match=r"missing required param\(s\) a; pass --param a=VALUE"):
        build_params(declared, {}, [])
    with pytest.raises(ParamsError, match="cannot convert 'nope' to int"):
        build_params(declared, {"a": "nope"}, [])
    with pytest.raises(ParamsError, match="takes no params"):
        build_params({}, {}, ["a=1"])


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
