"""What a map iterates over: a string from a Param or a task is passed whole to every item, a
param holding a list is still iterated, and what cannot be fanned out over is named."""

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
