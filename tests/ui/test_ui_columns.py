"""The binary form of a run's timeline (``cascade_ui.columns``): what the page reads in place
as typed arrays must be, number for number, what the JSON form says."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from cascade.records import GraphNode, RecordedAttempt, RecordedRun
from cascade_ui.columns import COLUMN_TYPES, pack_columns, unpack_columns
from cascade_ui.views import TIMELINE_FIELDS, build_view

T0 = 1_700_000_000.0
_FORMATS = {"int32": "i", "float64": "d", "uint8": "B"}


def unpack(body: bytes) -> dict[str, Any]:
    """Read a binary body as the page does: the head, then each column at its offset."""
    size = int.from_bytes(body[:4], "little")
    head: dict[str, Any] = json.loads(body[4 : 4 + size])
    for name, kind, offset, count in head["columns"]:
        assert offset % 8 == 0, f"{name} is not 8-byte aligned"
        head[name] = list(struct.unpack_from(f"<{count}{_FORMATS[kind]}", body, offset))
    return head


def test_the_binary_timeline_holds_the_numbers_the_json_one_does() -> None:
    attempts = [
        RecordedAttempt(f"load-1[{i}]", "load", "Succeeded", 1, T0 + i, T0 + i + 0.25, 0.25)
        for i in range(5)
    ]
    attempts.append(
        RecordedAttempt("check-2", "check", "Failed", 1, T0 + 6, T0 + 7, 1.0, will_retry=True)
    )
    attempts.append(RecordedAttempt("check-2", "check", "Succeeded", 2, T0 + 8, T0 + 9, 1.0))
    # A run of several hours: microseconds past 2**31 still travel exactly (float64).
    attempts.append(RecordedAttempt("late-3", "late", "Succeeded", 1, T0 + 5e4, T0 + 5e4 + 1, 1))
    graph = [GraphNode("load-1", "load", "map"), GraphNode("check-2", "check", "task")]
    view = build_view(RecordedRun("r" * 32, "late", "Succeeded", started=T0), graph, attempts)
    numeric = [f for f in TIMELINE_FIELDS if f in COLUMN_TYPES]
    for after in (0, 5):
        data = view.timeline(after, numeric)
        body = pack_columns(data, numeric)
        read = unpack(body)
        assert {k: v for k, v in read.items() if k != "columns"} == data
        assert [c[0] for c in read["columns"]] == numeric
        assert unpack_columns(body) == data  # what scripts read it with
    assert unpack(pack_columns(view.timeline(), ["start_us"]))["start_us"][-1] == 5e10


def test_text_columns_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"not suffix: ask for those as JSON"):
        pack_columns({"suffix": ["[0]"]}, ["suffix"])
