"""``--param key=value`` and ``--params FILE``: from command-line text to the values a run gets.

A value is parsed as JSON and falls back to the plain string (``n=3`` is the number 3,
``day=2024-05-01`` the string); when the graph's ``cs.Param`` declares a ``type``, the form
that type accepts is chosen (``type=str`` always gets the text as typed, ``type=Decimal`` gets
``"1.10"`` rather than the float ``1.1``), and a value it rejects in both readings (``oslo`` for
``type=list``, ``2.5`` for ``type=int``, ``true`` for ``type=float``, ``null`` for any type) is
a usage error naming the param, the text and the type. The engine then converts with the same
``type``, exactly as ``cs.run`` would.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping
from typing import IO, Any

from cascade import Param

_JSON_NUMBER_TYPES: tuple[Any, ...] = (int, float, complex)


class ParamsError(ValueError):
    """A param value given on the command line is unknown, missing or does not convert."""


def parse_value(raw: str) -> Any:
    """JSON if it parses (``3``, ``true``, ``[1, 2]``, ``{"a": 1}``, ``null``), else the
    string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def split_assignment(text: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``; the value may contain ``=``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParamsError(f"--param takes key=value, got {text!r}")
    return key, value


def read_params_file(source: str, stdin: IO[str]) -> dict[str, Any]:
    """The JSON object in file ``source`` (``-`` reads standard input)."""
    where = "standard input" if source == "-" else f"'{source}'"
    try:
        if source == "-":
            text = stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise ParamsError(f"cannot read --params {where}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParamsError(f"--params {where} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(
            f"--params {where} must hold a JSON object of name: value, "
            f"got a JSON {type(data).__name__}"
        )
    return data


def _check(param: Param[Any], value: Any) -> None:
    try:
        param.convert(value)
    except ValueError as exc:
        raise ParamsError(str(exc)) from None


def _refusal(param: Param[Any], raw: str, exc: ValueError) -> ParamsError:
    """The type's refusal, naming the text as it was typed (``'null'``, not ``None``)."""
    expected = getattr(exc, "expected", None)
    reason = getattr(exc, "reason", None)
    if expected is None or reason is None:
        return ParamsError(str(exc))
    return ParamsError(
        f"param '{param.param_name}': cannot convert {raw!r} to {expected}: {reason}"
    )


def choose_value(param: Param[Any] | None, raw: str) -> Any:
    """The value to hand the engine for ``--param name=raw``: the JSON-or-string reading, or
    the raw text where the param's ``type`` takes text better. A value the type refuses in
    both readings is a ``ParamsError`` naming the param, the text and the type."""
    parsed = parse_value(raw)
    kind = param.type if param is not None else None
    if param is None or kind is None:
        return parsed
    if kind is str:
        return raw
    if isinstance(parsed, (int, float)) and kind not in _JSON_NUMBER_TYPES:
        order = [raw, parsed]  # Decimal("1.10"), Path("2024"), date.fromisoformat(...)
    else:
        order = [parsed, raw] if parsed is not raw else [raw]
    first_error: ValueError | None = None
    for value in order:
        try:
            converted = param.convert(value)
        except ValueError as exc:
            first_error = first_error or exc
            continue
        # A bool goes over as the bool ("off" is False); other values go over as read, for
        # the engine to convert (a user's type function may not take its own output).
        return converted if kind is bool else value
    assert first_error is not None
    raise _refusal(param, raw, first_error)


def describe_type(kind: Any) -> str:
    """A param type as ``--help`` and messages show it: ``int``, ``list[str]``, ``int | None``,
    ``Station``, ``date.fromisoformat``."""
    if kind is None:
        return ""
    if typing.get_origin(kind) is not None:
        return repr(kind).replace("typing.", "")
    if isinstance(kind, type):
        return kind.__qualname__
    return str(getattr(kind, "__qualname__", None) or repr(kind))


def _takes(declared: Mapping[str, Param[Any]]) -> str:
    if not declared:
        return "this graph takes no params"
    parts = []
    for name in sorted(declared):
        param = declared[name]
        kind = describe_type(param.type)
        detail = f"{name}: {kind}" if kind else name
        if not param.required:
            detail += f" = {param.default!r}"
        parts.append(detail)
    return "this graph takes: " + ", ".join(parts)


def build_params(
    declared: Mapping[str, Param[Any]],
    from_file: Mapping[str, Any],
    assignments: Iterable[str],
) -> dict[str, Any]:
    """Merge ``--params`` (first) and ``--param`` (later ones win) and check them against the
    params the graph declares: missing required ones and values the declared type rejects are
    ``ParamsError``s that say what the graph takes. Names the graph does not declare are kept:
    a graph one of its tasks returns may declare them (``unknown_params_warning``)."""
    values: dict[str, Any] = {}
    for name, value in from_file.items():
        param = declared.get(name)
        if param is not None:
            _check(param, value)
        values[name] = value
    for text in assignments:
        name, raw = split_assignment(text)
        values[name] = choose_value(declared.get(name), raw)
    missing = sorted(n for n, p in declared.items() if p.required and n not in values)
    if missing:
        hint = " ".join(f"--param {n}=VALUE" for n in missing)
        raise ParamsError(
            f"missing required param(s) {', '.join(missing)}; pass {hint} ({_takes(declared)})"
        )
    return values


def check_unknown(
    declared: Mapping[str, Param[Any]], values: Mapping[str, Any], grows: bool
) -> str | None:
    """Given params the graph as built does not declare. When the graph cannot grow (no task
    is declared ``dynamic=True``) they are a ``ParamsError``; when it can, a graph a task
    returns may declare them, and the warning to show before the run is returned (the run
    fails at its end if nothing declared them). ``None`` when every name is declared."""
    unknown = sorted(set(values) - set(declared))
    if not unknown:
        return None
    if not grows:
        raise ParamsError(
            f"unknown param(s) {', '.join(unknown)}; {_takes(declared)} (a param used only in "
            "a graph a task returns can be given once that task is declared "
            "@cs.task(dynamic=True))"
        )
    return (
        f"param(s) {', '.join(unknown)} are not declared by the graph as built (before any "
        f"task ran; {_takes(declared)}); unless a graph returned by one of its dynamic tasks "
        "declares them, the run will fail"
    )
