"""Fixtures shared by every test of ``tests/core``. Plain helpers (event collectors, counters,
small tasks) live in ``core_helpers.py`` beside this file: a test imports them from there, as
pytest puts this folder on ``sys.path`` when it loads this conftest."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["local", "threads", "processes"])
def executor(request: pytest.FixtureRequest) -> str:
    """Each built-in executor by name, for tests whose promise holds on every executor."""
    return str(request.param)
