"""Params whose types refuse lossy values, and a model class validated through
``model_validate`` (the protocol pydantic models offer; this one needs no pydantic)."""

from __future__ import annotations

from typing import Any

import cascade as cs


class Station:
    """A small model: ``Station.model_validate({"name": "oslo", "lat": 59.9})``."""

    def __init__(self, name: str, lat: float) -> None:
        self.name = name
        self.lat = lat

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Station:
        if "name" not in data:
            raise ValueError("name: field required")
        return cls(str(data["name"]), float(data.get("lat", 0.0)))

    def __repr__(self) -> str:
        return f"Station({self.name!r}, {self.lat})"


stations = cs.Param("stations", default=["bergen"], type=list, description="stations to fetch")
days = cs.Param("days", default=7, type=int, description="how many days back")
ratio = cs.Param("ratio", default=0.5, type=float)
home = cs.Param("home", default=None, type=Station, description="where we are")
limit = cs.Param("limit", default=None, type=int | None)


@cs.task
def describe(**values: Any) -> dict[str, str]:
    return {key: repr(value) for key, value in values.items()}


described = describe(stations=stations, days=days, ratio=ratio, home=home, limit=limit)
