"""Columns of numbers as one binary body (``format=binary`` of ``/api/runs/{id}/timeline``).

A 100,000-attempt timeline is 400,000 numbers: as JSON they cost tens of milliseconds to write
on the server and as much to parse in the page, for text that is thrown away. As typed arrays
they are written with a few C calls and read in place (``Int32Array(body, offset, count)``),
the way viewers of large traces ship columns (Arrow, Bokeh, Perfetto).

The body: a 4-byte little-endian length ``N``; ``N`` bytes of UTF-8 JSON, the document's other
keys plus ``columns``, one ``[name, type, offset, count]`` per column; then each column,
little-endian, at its offset from the body's start (a multiple of 8, as a ``Float64Array``
needs). Types: ``int32``, ``float64``, ``uint8``.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

#: The type each numeric column of a timeline travels as.
COLUMN_TYPES = {
    "group": "int32",
    "start_us": "float64",
    "duration_us": "float64",
    "state": "uint8",
    "attempt": "int32",
}
#: The ``array`` type code of each type (``i`` is 4 bytes wherever CPython runs; checked below).
_CODES = {"int32": "i", "float64": "d", "uint8": "B"}
assert array("i").itemsize == 4 and array("d").itemsize == 8


def pack_columns(document: Mapping[str, Any], columns: Sequence[str]) -> bytes:
    """``document`` with its ``columns`` (names in ``COLUMN_TYPES``, lists of numbers of one
    length) as the binary body described above; its other keys go into the JSON head. A
    column of text (or an unknown name) is a ``ValueError`` naming it."""
    unknown = [name for name in columns if name not in COLUMN_TYPES]
    if unknown:
        raise ValueError(
            f"the binary format carries numeric columns only ({', '.join(COLUMN_TYPES)}), "
            f"not {', '.join(unknown)}: ask for those as JSON"
        )
    arrays = []
    for name in columns:
        kind = COLUMN_TYPES[name]
        values = array(_CODES[kind], document[name])
        if sys.byteorder == "big":
            values.byteswap()
        arrays.append((name, kind, values))
    head = {key: value for key, value in document.items() if key not in columns}
    # The offsets depend on the head's length, which depends on the offsets' digits: lay the
    # columns out after a head written with room to spare, then pad the head to that room.
    room = len(_head(head, arrays, 0)) + 64
    start = _aligned(4 + room)
    text = _head(head, arrays, start)
    assert len(text) <= room, "the head outgrew its room"
    parts = [len(text).to_bytes(4, "little"), text, b" " * (start - 4 - len(text))]
    at = start
    for _, _, values in arrays:
        data = values.tobytes()
        parts.append(data)
        at += len(data)
        padded = _aligned(at)
        parts.append(b"\0" * (padded - at))
        at = padded
    return b"".join(parts)


def unpack_columns(body: bytes) -> dict[str, Any]:
    """A body ``pack_columns`` made, read back: the head's keys, and each column as a list of
    numbers (for scripts that ask the API for ``format=binary``)."""
    size = int.from_bytes(body[:4], "little")
    document: dict[str, Any] = json.loads(body[4 : 4 + size])
    for name, kind, offset, count in document.pop("columns"):
        values = array(_CODES[kind])
        values.frombytes(body[offset : offset + count * values.itemsize])
        if sys.byteorder == "big":
            values.byteswap()
        document[name] = values.tolist()
    return document


def _aligned(offset: int) -> int:
    return (offset + 7) // 8 * 8


def _head(head: dict[str, Any], arrays: list[tuple[str, str, array[Any]]], start: int) -> bytes:
    layout = []
    at = start
    for name, kind, values in arrays:
        layout.append([name, kind, at, len(values)])
        at = _aligned(at + len(values) * values.itemsize)
    text = json.dumps({**head, "columns": layout}, ensure_ascii=False, separators=(",", ":"))
    return text.encode()


__all__ = ["COLUMN_TYPES", "pack_columns", "unpack_columns"]
