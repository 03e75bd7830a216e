"""`cascade dry-run` with params, policies, resources and cache forecasts; resources in
`cascade graph`; params in `cascade run TARGET --help`; a cyclic graph; the cache commands'
messages. All through the installed console script."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("command", ["run", "graph", "dry-run"])
def test_a_cyclic_graph_is_a_usage_error_without_a_traceback(command: str) -> None:
    result = run_cascade(command, "pipelines/cyclic.py:looped")
    assert result.code == 2, result
    assert (
        "Error: Invalid value for TARGET: 'pipelines/cyclic.py:looped': the graph cannot be "
        "built: the graph has a cycle through <LazyResult step-" in result.stderr
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_dry_run_shows_params_policies_resources_and_cache(tmp_path: Path) -> None:
    env = base_env(CASCADE_CACHE_DIR=str(tmp_path / "cache"))
    result = run_cascade(
        "dry-run", "pipelines/policies.py:report", "-p", 'stations=["oslo", "bergen"]', env=env
    )
    assert result.code == 0, result.stderr  # the resources, which raise, were never set up
    lines = result.stdout.splitlines()
    assert lines[0] == "params: numbers=[1, 2, 3], stations=['oslo', 'bergen']"
    assert lines[1] == "4 task(s) would run, in this order:"
    text = result.stdout
    assert re.search(r"1\. square\.map\(<param numbers=\[1, 2, 3\]>\)", text)
    assert "policies: cache InputHashCache(), concurrency 2" in text
    assert "cache: 0 of 3 items stored, the rest would run" in text
    assert "fetch.map(<param stations=['oslo', 'bergen']>)" in text
    assert "policies: retries 3 every 0.5s x2, timeout 30s" in text
    assert "resources: database (run scope)" in text
    assert "policies: executor threads" in text and "resources: scratch (task scope)" in text

    bad = run_cascade("dry-run", "pipelines/policies.py:report", "-p", "stations=oslo")
    assert bad.code == 2
    assert "param 'stations': cannot convert 'oslo' to list" in bad.stderr


def test_dry_run_says_which_cached_tasks_would_hit(tmp_path: Path) -> None:
    env = base_env(CASCADE_CACHE_DIR=str(tmp_path / "cache"))
    before = run_cascade("dry-run", "pipelines/cached.py:squares", env=env)
    assert "cache: 0 of 3 items stored, the rest would run" in before.stdout
    assert run_cascade("run", "pipelines/cached.py:squares", "--no-record", env=env).code == 0
    after = run_cascade("dry-run", "pipelines/cached.py:squares", "--output", "json", env=env)
    steps = after.json()["steps"]
    assert steps[0]["cache"] == {"status": "hit", "hits": 3, "items": 3}
    assert steps[0]["policies"] == {"cache": "InputHashCache()"}
    assert steps[1]["cache"] is None and steps[1]["resources"] == []
    text = run_cascade("dry-run", "pipelines/cached.py:squares", env=env).stdout
    assert "cache: 3 of 3 items stored: would be skipped" in text


def test_graph_draws_the_resources_tasks_inject() -> None:
    mermaid = run_cascade("graph", "pipelines/policies.py:report")
    assert mermaid.code == 0, mermaid.stderr
    nodes = dict(re.findall(r'^\s+(n\d+)\(?\["([^"]+)"\]\)?$', mermaid.stdout, re.M))
    by_label = {label: node for node, label in nodes.items()}
    resources = dict(re.findall(r'^\s+(r\d+)\[\("([^"]+)"\)\]$', mermaid.stdout, re.M))
    assert set(resources.values()) == {"resource:database", "resource:scratch (task scope)"}
    links = set(re.findall(r"^\s+(r\d+) -\.- (\w+)$", mermaid.stdout, re.M))
    database, scratch = (
        next(r for r, label in resources.items() if label.startswith(f"resource:{name}"))
        for name in ("database", "scratch")
    )
    assert links == {
        (database, by_label["store"]),
        (scratch, by_label["tidy"]),
        (database, scratch),
    }

    dot = run_cascade("graph", "pipelines/policies.py:report", "-f", "dot")
    assert dot.stdout.rstrip().endswith("}")
    assert re.search(r'r\d+ \[label="resource:database", shape=cylinder\];', dot.stdout)
    assert re.search(r"r\d+ -> n\d+ \[style=dotted, arrowhead=none\];", dot.stdout)
    plain = run_cascade("graph", "pipelines/basic.py:report")
    assert "resource:" not in plain.stdout  # no resources, nothing added


def test_run_help_lists_the_targets_params_with_types_defaults_and_descriptions() -> None:
    result = run_cascade("run", "pipelines/strict_params.py:described", "--help")
    assert result.code == 0, result.stderr
    section = result.stdout[result.stdout.index("Params of pipelines/strict_params.py") :]
    assert re.search(r"days: int\s+how many days back \[default: 7\]", section)
    assert re.search(r"stations: list\s+stations to fetch \[default: \['bergen'\]\]", section)
    assert re.search(r"limit: int \| None\s+\[default: None\]", section)
    assert re.search(r"home: Station\s+where we are \[default: None\]", section)
    required = run_cascade("run", "pipelines/typed_params.py:described", "-h")
    assert re.search(r"count: int\s+\[required\]", required.stdout)
    assert "Options of executor 'dask'" in required.stdout or "dask" not in required.stdout
    broken = run_cascade("run", "pipelines/nothing_here.py:x", "--help")
    assert broken.code == 0 and "(cannot load it)" in broken.stdout


def test_cache_clear_of_an_unknown_task_says_so_and_leaves_no_empty_shards(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = base_env(CASCADE_CACHE_DIR=str(cache))
    assert run_cascade("run", "pipelines/cached.py:squares", "--no-record", env=env).code == 0
    nope = run_cascade("cache", "clear", "--task", "nope", env=env)
    assert nope.code == 0
    assert nope.stdout == (
        f"no task 'nope' in the cache at {cache} (tasks with entries: expensive); nothing removed\n"
    )
    as_json = run_cascade("cache", "clear", "--task", "nope", "--output", "json", env=env).json()
    assert as_json["removed"] == 0 and as_json["task_found"] is False
    shards = [p for p in cache.iterdir() if p.is_dir()]
    assert shards  # the entries live in shard folders
    cleared = run_cascade("cache", "clear", "--task", "expensive", env=env)
    assert cleared.stdout.startswith("removed 3 cached entries of task 'expensive' from ")
    assert [p for p in cache.iterdir() if p.is_dir()] == []  # no empty shard folders left


def test_cache_commands_say_a_missing_directory_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    for command in ("info", "clear"):
        result = run_cascade("cache", command, "--dir", str(missing))
        assert result.code == 2, result
        assert f"the cache directory '{missing}' does not exist" in result.stderr
    default = run_cascade("cache", "info", env=base_env(CASCADE_CACHE_DIR=str(missing)))
    assert default.code == 0  # the default directory simply has no cache yet
    assert f"cache: {missing} (does not exist yet: nothing was cached here)" in default.stdout
    as_json = run_cascade(
        "cache", "info", "--output", "json", env=base_env(CASCADE_CACHE_DIR=str(missing))
    ).json()
    assert as_json["exists"] is False and as_json["entries"] == 0
    assert not os.path.exists(missing)


def test_dry_run_json_has_the_resolved_params(tmp_path: Path) -> None:
    result = run_cascade("dry-run", "pipelines/basic.py:report", "-p", "scale=3", "-o", "json")
    assert result.code == 2  # -o is not an option of dry-run
    result = run_cascade(
        "dry-run", "pipelines/basic.py:report", "-p", "scale=3", "--output", "json"
    )
    document = json.loads(result.stdout)
    assert document["params"] == {"scale": 3}
    assert document["steps"][1]["call"].endswith("factor=<param scale=3>)")
