"""Fixtures of the run-record tests: every test records into its own ``CASCADE_HOME``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``CASCADE_HOME`` (run store, checkpoints), with none of the settings a
    developer's shell may carry that change what is recorded or kept."""
    home = tmp_path / "home"
    monkeypatch.setenv("CASCADE_HOME", str(home))
    for name in (
        "CASCADE_CACHE_DIR",
        "CASCADE_CAPTURE_LOGS",
        "CASCADE_MAX_CHECKPOINT_BYTES",
        "CASCADE_KEEP_CHECKPOINTS",
        "CASCADE_KEEP_RUNS",
        "CASCADE_KEEP_RUNS_FOR",
    ):
        monkeypatch.delenv(name, raising=False)
    return home
