"""Run inputs declared with ``cs.Param``: the error raised for a missing, unknown or badly
typed param, and how given values are checked against a param's ``type``.

A ``type`` converts a given value only when nothing is lost and the value means what the type
means: ``"3"`` and ``3.0`` become the ``int`` 3, but ``2.5`` is not an ``int``, ``true`` is
not a ``float``, the text ``"oslo"`` is not a ``list`` (``list("oslo")`` would be four
letters) and ``None`` is not anything but ``None``. What a type rejects is a ``ParamError``
naming the param, the value and the type, and saying what would be accepted.

Besides plain classes and functions, ``type`` may be:

- a model class with a ``model_validate`` class method (pydantic models, or any class that
  offers it): a mapping is validated through it (a JSON object on the command line);
- an ``enum.Enum`` (by value, or by member name given as text);
- ``datetime.date``, ``datetime.datetime`` or ``datetime.time`` (ISO text);
- ``decimal.Decimal`` (text as written; a float by its shortest repr, never its binary
  expansion);
- the generic aliases ``list[X]``, ``tuple[X, ...]``, ``set[X]``, ``frozenset[X]``,
  ``dict[K, V]``, unions such as ``int | None``, and ``typing.Literal[...]``.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import numbers
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any


class ParamError(ValueError):
    """A required param is missing, an unknown one was given, or a value does not convert.

    When a value does not convert, ``param`` is the param's name, ``value`` the value given,
    ``expected`` the type's name and ``reason`` why it was refused (so a command line can say
    it again with the text the user typed); otherwise they are ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        value: Any = None,
        expected: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.value = value
        self.expected = expected
        self.reason = reason


class _Refused(Exception):
    """Internal: a type refused a value; the message says why."""


_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "0", "n", "f"})
_COLLECTIONS: tuple[type, ...] = (list, tuple, set, frozenset)
_UNION_TYPES: tuple[Any, ...] = (typing.Union, getattr(types, "UnionType", typing.Union))


def type_name(kind: Any) -> str:
    """How ``kind`` reads in messages: ``int``, ``list[int]``, ``int | None``, ``Decimal``."""
    if kind is None or kind is type(None):
        return "None"
    origin = typing.get_origin(kind)
    if origin in _UNION_TYPES:
        return " | ".join(type_name(arg) for arg in typing.get_args(kind))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(kind))
    if origin is not None:
        inner = typing.get_args(kind)
        args = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in inner)
        return f"{type_name(origin)}[{args}]"
    if kind is typing.Any:
        return "Any"
    name = getattr(kind, "__qualname__", None) or getattr(kind, "__name__", None)
    return str(name) if name else repr(kind)


def convert_param(name: str, kind: Any, value: Any) -> Any:
    """``value`` converted by the param's ``kind`` (``None``: no type, the value as given), or a
    ``ParamError`` naming the param, the value and the type."""
    if kind is None:
        return value
    try:
        return _convert(kind, value)
    except _Refused as exc:
        expected = type_name(kind)
        reason = str(exc)
        raise ParamError(
            f"param '{name}': cannot convert {value!r} to {expected}: {reason}",
            param=name,
            value=value,
            expected=expected,
            reason=reason,
        ) from None


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _describe(value: Any) -> str:
    """``a list``, ``the text 'oslo'``, ``None``: the value as a refusal names it."""
    if value is None:
        return "null (None)"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return "text"
    return _a(type(value).__name__)


def _convert(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin is not None:
        return _convert_generic(kind, origin, value)
    if kind is typing.Any or kind is object:
        return value
    if kind is type(None):
        if value is None:
            return None
        raise _Refused("only null (None) is accepted")
    if not isinstance(kind, type):
        return _call(kind, value)  # a function such as date.fromisoformat decides itself
    if value is None:
        raise _Refused(f"null (None) is not {_a(type_name(kind))}; give a value")
    if kind is bool:
        return _to_bool(value)
    if kind is int:
        return _to_int(value)
    if kind is float or kind is complex:
        return _to_number(kind, value)
    if kind is str:
        return _to_str(value)
    if kind is bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise _Refused(f"{_describe(value)} is not bytes")
    if kind in _COLLECTIONS:
        return kind(_items(kind, value))
    if kind is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise _Refused(f'{_describe(value)} is not a mapping; give an object such as {{"k": 1}}')
    if isinstance(value, kind):
        return value
    if kind is decimal.Decimal:
        return _to_decimal(value)
    if issubclass(kind, enum.Enum):
        return _to_enum(kind, value)
    if issubclass(kind, (datetime.date, datetime.time)):
        if isinstance(value, str):
            try:
                return kind.fromisoformat(value.strip())  # type: ignore[attr-defined]
            except ValueError as exc:
                raise _Refused(f"{exc} (use ISO 8601, such as 2024-05-01)") from None
        raise _Refused(f"{_describe(value)} is not {_a(type_name(kind))}; give ISO 8601 text")
    validate = getattr(kind, "model_validate", None)
    if callable(validate):
        return _to_model(kind, validate, value)
    if isinstance(value, bool) and issubclass(kind, numbers.Number):
        raise _Refused(f"{_describe(value)} is not a number")
    return _call(kind, value)


def _call(kind: Any, value: Any) -> Any:
    try:
        return kind(value)
    except Exception as exc:
        raise _Refused(f"{type(exc).__name__}: {exc}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise _Refused(f"{_show(value)} is not a boolean; use true/false, yes/no, on/off or 1/0")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, (str, numbers.Number)) else _describe(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Refused(f"{_describe(value)} is not a whole number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number: Any = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise _Refused(f"{value!r} is not a whole number") from None
        if not number.is_finite():
            raise _Refused(f"{value!r} is not a whole number")
        value = number
    if isinstance(value, (float, decimal.Decimal, numbers.Rational)):
        if isinstance(value, float) and not value.is_integer():
            raise _Refused(f"{value!r} has a fractional part; an int would lose it")
        if isinstance(value, decimal.Decimal) and (
            not value.is_finite() or value != value.to_integral_value()
        ):
            raise _Refused(f"{value} has a fractional part; an int would lose it")
        if isinstance(value, numbers.Rational) and value.denominator != 1:
            raise _Refused(f"{value} has a fractional part; an int would lose it")
        return int(value)  # type: ignore[arg-type]
    raise _Refused(f"{_describe(value)} is not a whole number")


def _to_number(kind: type, value: Any) -> Any:
    if isinstance(value, bool):
        raise _Refused(f"{_describe(value)} is not a number")
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            raise _Refused(f"{value!r} is not a number") from None
    accepted = numbers.Real if kind is float else numbers.Number
    if isinstance(value, (accepted, decimal.Decimal)):
        try:
            return kind(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Refused(str(exc)) from None
    raise _Refused(f"{_describe(value)} is not a number")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise _Refused(f"{_describe(value)} is not text; quote it if you mean the word")
    if isinstance(value, (numbers.Number, decimal.Decimal)):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[no-any-return]
    raise _Refused(f"{_describe(value)} is not text")


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool):
        raise _Refused(f"{_describe(value)} is not a number")
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise _Refused(f"{value!r} is not a decimal number") from None
    if isinstance(value, float):
        return decimal.Decimal(repr(value))  # 1.1, not 1.100000000000000088817841970012...
    if isinstance(value, numbers.Integral):
        return decimal.Decimal(int(value))
    raise _Refused(f"{_describe(value)} is not a number")


def _to_enum(kind: type[enum.Enum], value: Any) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        pass
    if isinstance(value, str) and value.strip() in kind.__members__:
        return kind.__members__[value.strip()]
    choices = ", ".join(repr(member.value) for member in kind)
    raise _Refused(f"{_show(value)} is not one of {choices}")


def _to_model(kind: type, validate: Any, value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, Mapping):
        raise _Refused(
            f"{_describe(value)} is not a mapping; {type_name(kind)} validates an object of "
            'fields (a JSON object on the command line, such as {"name": "x"})'
        )
    try:
        return validate(dict(value))
    except Exception as exc:
        raise _Refused(_validation_message(exc)) from None


def _validation_message(exc: Exception) -> str:
    """A model's validation error in one line: ``field: message; other: message`` when the
    error lists its problems (pydantic's ``errors()``), else its text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            found = errors()
            parts = [
                f"{'.'.join(str(p) for p in item.get('loc', ())) or 'value'}: {item['msg']}"
                for item in found
            ]
            if parts:
                return "; ".join(parts)
        except Exception:
            pass
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines) or type(exc).__name__


def _items(kind: Any, value: Any) -> Iterable[Any]:
    """The items of a value given for a collection type; text and mappings are refused."""
    name = type_name(kind)
    if isinstance(value, (str, bytes, bytearray)):
        raise _Refused(
            f"text is not {_a(name)} (it would become its letters); give a JSON list such as "
            f"[{json.dumps(value if isinstance(value, str) else 'item')}]"
        )
    if isinstance(value, Mapping):
        raise _Refused(f"a mapping is not {_a(name)}; give a JSON list")
    if not isinstance(value, Iterable):
        raise _Refused(f"{_describe(value)} is not {_a(name)}; give a JSON list")
    return value


def _convert_generic(kind: Any, origin: Any, value: Any) -> Any:
    args = typing.get_args(kind)
    if origin in _UNION_TYPES:
        if value is None and type(None) in args:
            return None
        members = [arg for arg in args if arg is not type(None)]
        for member in members:  # a value that already is one of the types stays as it is
            if isinstance(member, type) and type(value) is member:
                return value
        reasons = []
        for member in members:
            try:
                return _convert(member, value)
            except _Refused as exc:
                reasons.append(f"not {type_name(member)} ({exc})")
        raise _Refused("; ".join(reasons))
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed and type(value) is type(allowed):
                return allowed
        raise _Refused(f"{_show(value)} is not one of {', '.join(repr(a) for a in args)}")
    if origin in _COLLECTIONS:
        items = list(_items(kind, value))
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise _Refused(f"it has {len(items)} items, {type_name(kind)} takes {len(args)}")
            return tuple(_convert(arg, item) for arg, item in zip(args, items, strict=True))
        item_type = args[0] if args else typing.Any
        return origin(_convert(item_type, item) for item in items)
    if origin is dict or origin is Mapping:
        if not isinstance(value, Mapping):
            raise _Refused(f"{_describe(value)} is not a mapping; give a JSON object")
        key_type, value_type = (*args, typing.Any, typing.Any)[:2]
        return {_convert(key_type, k): _convert(value_type, v) for k, v in value.items()}
    return _call(kind, value)


__all__ = ["ParamError", "convert_param", "type_name"]
