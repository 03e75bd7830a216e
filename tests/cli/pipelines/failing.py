"""A pipeline whose middle task raises."""

from __future__ import annotations

import cascade as cs


@cs.task
def load() -> list[int]:
    return [1, 2, 3]


@cs.task
def validate(rows: list[int]) -> list[int]:
    bad = [row for row in rows if row == 3]
    if bad:
        raise ValueError(f"bad row {bad[0]}")
    return rows


@cs.task
def publish(rows: list[int]) -> int:
    return len(rows)


published = publish(validate(load()))
