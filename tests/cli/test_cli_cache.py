"""`cascade cache info|clear` against the cache a `cascade run` wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(60)


def test_info_and_clear_see_what_runs_cached(tmp_path: Path) -> None:
    env = base_env(CASCADE_CACHE_DIR=str(tmp_path / "cache"))

    empty = run_cascade("cache", "info", "--output", "json", env=env)
    assert empty.code == 0, empty.stderr
    assert empty.json()["entries"] == 0
    assert empty.json()["directory"] == str(tmp_path / "cache")

    first = run_cascade(
        "run", "pipelines/cached.py:squares", "--no-record", "--output", "json", env=env
    )
    assert first.code == 0, first.stderr
    assert first.stderr.count("computing") == 3  # task prints go to stderr in JSON mode

    info = run_cascade("cache", "info", "--output", "json", env=env).json()
    assert info["entries"] == 3
    assert info["tasks"]["expensive"]["entries"] == 3
    assert info["bytes"] == info["tasks"]["expensive"]["bytes"] > 0

    text = run_cascade("cache", "info", env=env)
    assert f"cache: {tmp_path / 'cache'}" in text.stdout
    assert "3 entries" in text.stdout and "expensive" in text.stdout

    again = run_cascade(
        "run", "pipelines/cached.py:squares", "--no-record", "--output", "json", env=env
    )
    document = again.json()
    assert document["result"] == 14
    expensive = document["tasks"][0]
    assert (expensive["status"], expensive["skip_reason"], expensive["attempts"]) == (
        "Skipped",
        "CacheHit",
        0,
    )
    assert "computing" not in again.stderr

    other = run_cascade("cache", "clear", "--task", "add", env=env)
    assert other.stdout.startswith("no task 'add' in the cache at ")
    cleared = run_cascade("cache", "clear", "--task", "expensive", "--output", "json", env=env)
    assert cleared.code == 0, cleared.stderr
    assert cleared.json() == {
        "removed": 3,
        "task": "expensive",
        "directory": str(tmp_path / "cache"),
        "task_found": True,
    }
    assert run_cascade("cache", "info", "--output", "json", env=env).json()["entries"] == 0


def test_dir_option_points_at_another_cache(tmp_path: Path) -> None:
    env = base_env(CASCADE_CACHE_DIR=str(tmp_path / "one"))
    assert run_cascade("run", "pipelines/cached.py:squares", "--no-record", env=env).code == 0
    (tmp_path / "two").mkdir()
    other = run_cascade("cache", "info", "--dir", str(tmp_path / "two"), "--output", "json")
    assert other.json()["entries"] == 0
    same = run_cascade("cache", "clear", "--dir", str(tmp_path / "one"))
    assert same.stdout == f"removed 3 cached entries from {tmp_path / 'one'}\n"


def test_cache_usage_errors() -> None:
    unknown = run_cascade("cache", "info", "--store", "nowhere")
    assert unknown.code == 2
    assert "unknown cache store 'nowhere'; available stores: directory, memory" in unknown.stderr
    both = run_cascade("cache", "clear", "--store", "memory", "--dir", "x")
    assert both.code == 2
    assert "give --dir or --store, not both" in both.stderr
