"""Fixtures of the policy tests: every test caches into its own directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``CASCADE_CACHE_DIR`` for each test, so no cache entry outlives it."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(directory))
    return directory
