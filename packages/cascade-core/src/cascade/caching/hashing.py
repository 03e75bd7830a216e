"""Stable content hashes of task inputs, the same in every process and on every run.

``stable_hash(value)`` feeds a canonical, type-tagged encoding of ``value`` to sha256. It never
uses Python's ``hash()`` (salted per process for ``str`` and ``bytes``) or pickle bytes (which
depend on protocol, memo order and set iteration order). Every encoding is self-delimiting, so
two different values never produce the same byte stream. Dicts, sets and frozensets are hashed
independently of their order (each item is hashed on its own and the digests are sorted).

Supported: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
``bytearray``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset`` (and their subclasses such
as named tuples, tagged with the class), dataclass instances, enum members, ``pathlib`` paths (by
their text, not the file's content), ``datetime``/``date``/``time``/``timedelta``, ``Decimal``,
``Fraction``, ``UUID``, ``range``, NumPy arrays and scalars and pandas ``DataFrame``/``Series``/
``Index`` (only when those libraries are already imported; there is no dependency on them), and
any object whose class defines ``__cascade_hash__(self)`` returning ``str``, ``bytes`` or another
supported value. Anything else, a reference cycle, or nesting deeper than ``MAX_DEPTH`` raises
``UnhashableInputError`` rather than guessing. An ``OrderedDict`` is hashed in its order (it is
part of its equality), and an aware ``datetime`` or ``time`` with its zone as well as its
offset (Europe/London and UTC agree in winter, but are not the same input).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import enum
import hashlib
import pathlib
import sys
from typing import Any

MAX_DEPTH = 200
"""How deeply containers may nest before a value counts as unhashable."""

_SCHEME = b"cascade-stable-hash/1\0"


class UnhashableInputError(TypeError):
    """A value has no stable hash. ``where`` locates the offending part (``[2].name``)."""

    def __init__(self, reason: str, where: str = "", advice: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where
        #: What to do about it, for messages that give no advice of their own.
        self.advice = advice
        self.argument: str | None = None

    def inside(self, segment: str) -> UnhashableInputError:
        """The same error seen from the container that holds the value at ``segment``."""
        self.where = segment + self.where
        return self

    def __str__(self) -> str:
        text = f"{self.reason} (at {self.short_where})" if self.where else self.reason
        return f"{text}; {self.advice}" if self.advice else text

    @property
    def short_where(self) -> str:
        """``where``, cut down for a message."""
        return self.where if len(self.where) <= 120 else self.where[:117] + "..."


def stable_hash(value: Any) -> str:
    """The sha256 hex digest of ``value``'s canonical encoding; raises
    ``UnhashableInputError`` for a value without one."""
    h = hashlib.sha256(_SCHEME)
    _feed(h, value, 0, set())
    return h.hexdigest()


def hash_arguments(arguments: dict[str, Any]) -> str:
    """The stable hash of a task's named inputs, independent of their order. An unhashable
    input raises ``UnhashableInputError`` with ``argument`` set to its name."""
    scalars = _scalar_encoding(arguments)
    if scalars is not None:
        return hashlib.sha256(scalars).hexdigest()
    h = hashlib.sha256(_SCHEME + b"arguments\0")
    h.update(b"%d{" % len(arguments))
    for name in sorted(arguments):
        _feed_str(h, b"n", name)
        try:
            _feed(h, arguments[name], 0, set())
        except UnhashableInputError as exc:
            exc.argument = name
            raise
    return h.hexdigest()


def _scalar_encoding(arguments: dict[str, Any]) -> bytes | None:
    """The bytes ``hash_arguments`` feeds to sha256, made in one piece, when every input is an
    ``int`` or a ``str`` (``None`` otherwise: the general route encodes the rest).

    One fast path with one owner: a recorded run keys the checkpoint of every call it makes,
    and calls such as ``noop(i)`` have only such inputs (``benchmarks/bench_records.py``). The
    bytes are those ``_feed`` writes, so the hash is the same either way
    (``tests/core/policies/test_cache_key_encoding.py`` compares the two routes)."""
    parts = [_SCHEME, b"arguments\0%d{" % len(arguments)]
    for name in sorted(arguments):
        value = arguments[name]
        kind = type(value)
        if kind is int:
            encoded = b"i%x;" % value
        elif kind is str:
            data = value.encode("utf-8", "surrogatepass")
            encoded = b"s%d:%s" % (len(data), data)
        else:
            return None
        data = name.encode("utf-8", "surrogatepass")
        parts.append(b"n%d:%s%s" % (len(data), data, encoded))
    return b"".join(parts)


class PositionalScalars:
    """``hash_arguments`` for calls that pass their inputs positionally to parameters named
    ``names`` (in that order), worked out once per parameter list: ``digest(values)`` is
    ``hash_arguments(dict(zip(names, values)))`` when every value is an exact ``int`` or
    ``str``, else ``None`` (the caller takes the general route).

    The same fast path as ``_scalar_encoding``, one step further, with the same owner: a
    recorded run keys the checkpoint of every call it makes, and for ``noop(i)`` the names,
    their order and their encodings are the same for every call, so only the values are
    encoded per call (``benchmarks/bench_records.py``; the bytes are the general route's,
    compared in ``tests/core/policies/test_cache_key_encoding.py``)."""

    __slots__ = ("_header", "_order")

    def __init__(self, names: tuple[str, ...]) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be distinct, got {names!r}")
        self._header = _SCHEME + b"arguments\0%d{" % len(names)
        encoded = [_str_bytes(name) for name in names]
        self._order = tuple(
            (position, b"n%d:%s" % (len(encoded[position]), encoded[position]))
            for position in sorted(range(len(names)), key=names.__getitem__)
        )

    def digest(self, values: tuple[Any, ...]) -> str | None:
        """The stable hash of the named ``values``, or ``None`` unless all are ints or strs."""
        encoded = self._header
        for position, name in self._order:
            value = values[position]
            kind = type(value)
            if kind is int:
                encoded += b"%si%x;" % (name, value)
            elif kind is str:
                data = value.encode("utf-8", "surrogatepass")
                encoded += b"%ss%d:%s" % (name, len(data), data)
            else:
                return None
        return hashlib.sha256(encoded).hexdigest()


def _class_name(klass: type) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


def _str_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _feed_str(h: Any, tag: bytes, text: str) -> None:
    data = _str_bytes(text)
    h.update(b"%s%d:" % (tag, len(data)))
    h.update(data)


def _digest(value: Any, depth: int, active: set[int]) -> bytes:
    h = hashlib.sha256()
    _feed(h, value, depth, active)
    return h.digest()


def _feed(h: Any, value: Any, depth: int, active: set[int]) -> None:
    """Append the encoding of ``value`` to the hash ``h``. Exact built-in types come first:
    they are what task inputs almost always are."""
    kind = type(value)
    if kind is int:
        h.update(b"i%x;" % value)
    elif kind is str:
        _feed_str(h, b"s", value)
    elif value is None:
        h.update(b"N")
    elif kind is bool:
        h.update(b"T" if value else b"F")
    elif kind is float:
        h.update(b"f%s;" % value.hex().encode())
    elif kind is list or kind is tuple:
        _feed_sequence(h, b"l" if kind is list else b"t", value, depth, active)
    elif kind is dict:
        _feed_dict(h, value, depth, active)
    elif kind is bytes:
        h.update(b"b%d:" % len(value))
        h.update(value)
    elif kind is set or kind is frozenset:
        _feed_set(h, b"S" if kind is set else b"Z", value, depth, active)
    else:
        _feed_other(h, value, kind, depth, active)


def _enter(value: Any, depth: int, active: set[int]) -> int:
    if depth >= MAX_DEPTH:
        raise UnhashableInputError(f"nested more than {MAX_DEPTH} levels deep")
    ident = id(value)
    if ident in active:
        raise UnhashableInputError(f"contains a reference cycle through a {type(value).__name__}")
    active.add(ident)
    return ident


#: Sequences at least this long whose items are all exact ints (or all exact floats) are
#: encoded in one pass in C: the same bytes ``_feed`` gives item by item, ten times faster
#: (the key of a task summing a wide fan-out's results hashes thousands of numbers).
_BULK_SEQUENCE = 16
_INTS, _FLOATS = {int}, {float}
_INT_CODE = b"i%x;".__mod__
_FLOAT_CODE = "f{};".format


def _feed_sequence(h: Any, tag: bytes, items: Any, depth: int, active: set[int]) -> None:
    ident = _enter(items, depth, active)
    try:
        h.update(b"%s%d[" % (tag, len(items)))
        if len(items) >= _BULK_SEQUENCE:
            kinds = set(map(type, items))
            if kinds == _INTS:
                h.update(b"".join(map(_INT_CODE, items)))
                return
            if kinds == _FLOATS:
                h.update("".join(map(_FLOAT_CODE, map(float.hex, items))).encode())
                return
        for index, item in enumerate(items):
            try:
                _feed(h, item, depth + 1, active)
            except UnhashableInputError as exc:
                raise exc.inside(f"[{index}]") from None
    finally:
        active.discard(ident)


def _feed_dict(h: Any, mapping: Any, depth: int, active: set[int]) -> None:
    ident = _enter(mapping, depth, active)
    try:
        pairs = []
        for key, item in dict.items(mapping):
            try:
                key_digest = _digest(key, depth + 1, active)
            except UnhashableInputError as exc:
                raise exc.inside(f"<key {key!r}>") from None
            try:
                pairs.append(key_digest + _digest(item, depth + 1, active))
            except UnhashableInputError as exc:
                raise exc.inside(f"[{key!r}]") from None
        pairs.sort()
        h.update(b"d%d{" % len(pairs))
        for pair in pairs:
            h.update(pair)
    finally:
        active.discard(ident)


def _feed_ordered_dict(h: Any, mapping: Any, depth: int, active: set[int]) -> None:
    ident = _enter(mapping, depth, active)
    try:
        h.update(b"o%d[" % len(mapping))
        for key, item in dict.items(mapping):
            try:
                h.update(_digest(key, depth + 1, active))
            except UnhashableInputError as exc:
                raise exc.inside(f"<key {key!r}>") from None
            try:
                h.update(_digest(item, depth + 1, active))
            except UnhashableInputError as exc:
                raise exc.inside(f"[{key!r}]") from None
    finally:
        active.discard(ident)


def _zone_identity(tzinfo: Any, value: Any) -> str:
    """A stable name for a time zone: the IANA key (zoneinfo, pytz), a fixed offset's name, or
    the zone's ``repr`` when that holds no memory address; else its class and the name it
    gives this value."""
    kind = type(tzinfo)
    key = getattr(tzinfo, "key", None) or getattr(tzinfo, "zone", None)
    if isinstance(key, str):
        return f"{_class_name(kind)}:{key}"
    if isinstance(tzinfo, _dt.timezone):
        return f"timezone:{tzinfo.tzname(None)}"
    text = repr(tzinfo)
    if " at 0x" not in text:
        return f"{_class_name(kind)}:{text}"
    try:
        name = tzinfo.tzname(value if isinstance(value, _dt.datetime) else None)
    except Exception:
        name = None
    return f"{_class_name(kind)}:{name}"


def _feed_set(h: Any, tag: bytes, items: Any, depth: int, active: set[int]) -> None:
    ident = _enter(items, depth, active)
    try:
        digests = []
        for item in items:
            try:
                digests.append(_digest(item, depth + 1, active))
            except UnhashableInputError as exc:
                raise exc.inside(f"<item {item!r}>") from None
        digests.sort()
        h.update(b"%s%d{" % (tag, len(digests)))
        for digest in digests:
            h.update(digest)
    finally:
        active.discard(ident)


def _feed_tagged(h: Any, tag: bytes, klass: type) -> None:
    _feed_str(h, tag, _class_name(klass))


_BUILTIN_BASES: tuple[type, ...] = (
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    list,
    tuple,
    dict,
    set,
    frozenset,
)


def _feed_other(h: Any, value: Any, kind: type, depth: int, active: set[int]) -> None:
    custom = getattr(kind, "__cascade_hash__", None)
    if custom is not None:
        _feed_custom(h, value, kind, depth, active)
    elif isinstance(value, enum.Enum):
        _feed_tagged(h, b"E", kind)
        _feed_str(h, b"m", value.name)
    elif isinstance(value, _dt.date | _dt.time):
        # datetime before date (it is one); isoformat keeps microseconds and the UTC offset,
        # and pandas' Timestamp adds nanoseconds.
        _feed_tagged(h, b"D", kind)
        _feed_str(h, b"v", value.isoformat())
        h.update(b"%d;" % getattr(value, "fold", 0))
        tzinfo = getattr(value, "tzinfo", None)
        if tzinfo is not None:
            # The offset is in the text; the zone is not (London and UTC agree in winter).
            _feed_str(h, b"z", _zone_identity(tzinfo, value))
    elif isinstance(value, _dt.timedelta):
        _feed_tagged(h, b"W", kind)
        nanos = getattr(value, "nanoseconds", 0)
        h.update(b"%x,%x,%x,%x;" % (value.days, value.seconds, value.microseconds, nanos))
    elif isinstance(value, pathlib.PurePath):
        flavour = b"w" if isinstance(value, pathlib.PureWindowsPath) else b"p"
        _feed_str(h, b"P" + flavour, str(value))
    elif kind is complex:
        h.update(b"c%s,%s;" % (value.real.hex().encode(), value.imag.hex().encode()))
    elif kind is bytearray:
        h.update(b"B%d:" % len(value))
        h.update(bytes(value))
    elif kind is range:
        h.update(b"r%x,%x,%x;" % (value.start, value.stop, value.step))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _feed_dataclass(h, value, kind, depth, active)
    elif isinstance(value, _BUILTIN_BASES):
        _feed_subclass(h, value, kind, depth, active)
    elif not _feed_library(h, value, kind, depth, active):
        raise UnhashableInputError(
            f"a {_class_name(kind)} has no stable hash",
            advice="define __cascade_hash__ on the class, or pass key_fn= to the cache policy",
        )


def _feed_custom(h: Any, value: Any, kind: type, depth: int, active: set[int]) -> None:
    ident = _enter(value, depth, active)
    try:
        try:
            result = value.__cascade_hash__()
        except Exception as exc:
            raise UnhashableInputError(
                f"{_class_name(kind)}.__cascade_hash__() raised {type(exc).__name__}: {exc}"
            ) from None
        _feed_tagged(h, b"H", kind)
        try:
            _feed(h, result, depth + 1, active)
        except UnhashableInputError as exc:
            raise exc.inside(".__cascade_hash__()") from None
    finally:
        active.discard(ident)


def _feed_dataclass(h: Any, value: Any, kind: type, depth: int, active: set[int]) -> None:
    ident = _enter(value, depth, active)
    try:
        fields = dataclasses.fields(value)
        _feed_tagged(h, b"C", kind)
        h.update(b"%d(" % len(fields))
        for item in fields:
            _feed_str(h, b"n", item.name)
            try:
                _feed(h, getattr(value, item.name), depth + 1, active)
            except UnhashableInputError as exc:
                raise exc.inside(f".{item.name}") from None
    finally:
        active.discard(ident)


def _feed_subclass(h: Any, value: Any, kind: type, depth: int, active: set[int]) -> None:
    """A subclass of a built-in (a named tuple, an OrderedDict, a str enum-like): the class
    name, the built-in value, and any instance attributes."""
    _feed_tagged(h, b"X", kind)
    if isinstance(value, int):
        h.update(b"i%x;" % int(value))
    elif isinstance(value, float):
        h.update(b"f%s;" % float.hex(value).encode())
    elif isinstance(value, complex):
        h.update(b"c%s,%s;" % (value.real.hex().encode(), value.imag.hex().encode()))
    elif isinstance(value, str):
        _feed_str(h, b"s", str.__str__(value))
    elif isinstance(value, bytes | bytearray):
        h.update(b"b%d:" % len(value))
        h.update(bytes(value))
    elif isinstance(value, list | tuple):
        _feed_sequence(h, b"l" if isinstance(value, list) else b"t", value, depth, active)
    elif isinstance(value, collections.OrderedDict):
        _feed_ordered_dict(h, value, depth, active)  # its order is part of its equality
    elif isinstance(value, dict):
        _feed_dict(h, value, depth, active)
    else:
        _feed_set(h, b"S" if isinstance(value, set) else b"Z", value, depth, active)
    extra = getattr(value, "__dict__", None)
    if extra:
        try:
            _feed_dict(h, extra, depth, active)
        except UnhashableInputError as exc:
            raise exc.inside(".__dict__") from None


def _feed_library(h: Any, value: Any, kind: type, depth: int, active: set[int]) -> bool:
    """Standard-library and third-party value types, recognised only through modules that are
    already imported (an instance of a class implies its module is loaded)."""
    module = sys.modules
    decimal = module.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        _feed_str(h, b"q", str(value))
        return True
    fractions = module.get("fractions")
    if fractions is not None and isinstance(value, fractions.Fraction):
        h.update(b"Q%x/%x;" % (value.numerator, value.denominator))
        return True
    uuid = module.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        h.update(b"U")
        h.update(value.bytes)
        return True
    numpy = module.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray | numpy.generic):
        _feed_numpy(h, numpy, value, depth, active)
        return True
    pandas = module.get("pandas")
    if pandas is not None:
        return _feed_pandas(h, pandas, value, depth, active)
    return False


def _feed_numpy(h: Any, numpy: Any, value: Any, depth: int, active: set[int]) -> None:
    if isinstance(value, numpy.ma.MaskedArray):
        h.update(b"Am")
        _feed_numpy(h, numpy, numpy.ma.getdata(value), depth, active)
        _feed_numpy(h, numpy, numpy.ma.getmaskarray(value), depth, active)
        return
    dtype = value.dtype
    _feed_str(h, b"A", dtype.str)
    if dtype.fields is not None:
        _feed_str(h, b"a", str(dtype.descr))
    shape = getattr(value, "shape", ())
    h.update(b"%d(" % len(shape))
    for size in shape:
        h.update(b"%x," % size)
    if dtype.hasobject:
        items = value.tolist() if isinstance(value, numpy.ndarray) else value.item()
        _feed(h, items, depth + 1, active)
    else:
        data = value.tobytes(order="C") if isinstance(value, numpy.ndarray) else value.tobytes()
        h.update(b"%d:" % len(data))
        h.update(data)


def _feed_pandas(h: Any, pandas: Any, value: Any, depth: int, active: set[int]) -> bool:
    if value is pandas.NA:
        h.update(b"pNA")
    elif isinstance(value, pandas.DataFrame):
        h.update(b"pF")
        _feed_pandas_index(h, value.columns, depth, active)
        _feed_pandas_index(h, value.index, depth, active)
        for position in range(value.shape[1]):
            column = value.iloc[:, position]
            try:
                _feed_pandas_values(h, column.dtype, column.to_numpy(), depth, active)
            except UnhashableInputError as exc:
                raise exc.inside(f"[{value.columns[position]!r}]") from None
    elif isinstance(value, pandas.Series):
        h.update(b"pS")
        _feed(h, value.name, depth + 1, active)
        _feed_pandas_index(h, value.index, depth, active)
        _feed_pandas_values(h, value.dtype, value.to_numpy(), depth, active)
    elif isinstance(value, pandas.Index):
        _feed_pandas_index(h, value, depth, active)
    elif isinstance(value, pandas.api.extensions.ExtensionArray):
        h.update(b"pE")
        _feed_pandas_values(h, value.dtype, value.to_numpy(), depth, active)
    else:
        return False
    return True


def _feed_pandas_index(h: Any, index: Any, depth: int, active: set[int]) -> None:
    _feed_tagged(h, b"pI", type(index))
    _feed(h, list(index.names), depth + 1, active)
    _feed_pandas_values(h, index.dtype, index.to_numpy(), depth, active)


def _feed_pandas_values(h: Any, dtype: Any, array: Any, depth: int, active: set[int]) -> None:
    # The pandas dtype tells 'category' or 'Int64' from the NumPy array they convert to.
    _feed_str(h, b"pd", str(dtype))
    numpy = sys.modules["numpy"]
    _feed_numpy(h, numpy, array, depth, active)


__all__ = [
    "MAX_DEPTH",
    "PositionalScalars",
    "UnhashableInputError",
    "hash_arguments",
    "stable_hash",
]
