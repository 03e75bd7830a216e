"""Params of several types; the result shows each value and its type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import cascade as cs

count = cs.Param("count", type=int)
ratio = cs.Param("ratio", default=0.5, type=float)
name = cs.Param("name", default="anon", type=str)
verbose = cs.Param("verbose", default=False, type=bool)
price = cs.Param("price", default=Decimal("0"), type=Decimal)
tags = cs.Param("tags", default=[], type=list)
anything = cs.Param("anything", default=None)


@cs.task
def describe(**values: Any) -> dict[str, list[str]]:
    return {key: [type(value).__name__, str(value)] for key, value in values.items()}


described = describe(
    count=count,
    ratio=ratio,
    name=name,
    verbose=verbose,
    price=price,
    tags=tags,
    anything=anything,
)
