"""A cache miss under ``InputHashCache`` says why the task ran when the cache held an earlier
result of the same task (its code, a named input, a named global, a param, a dependency, its
version, an expired entry), as a resume says why a task ran again: on the
``TaskCacheMissed`` event and in the run record (``why_ran``). No earlier result, no reason.
Every test uses a real cache directory and records into a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.caching import DirectoryStore
from cascade.events import TaskCacheMissed
from cascade.records import SQLiteRunStore

pytestmark = pytest.mark.timeout(120)

RATE = 2
RAN: list[str] = []


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A run store of the test's own beside its cache directory (``cache_dir``, from
    conftest.py)."""
    monkeypatch.setenv("CASCADE_HOME", str(tmp_path / "home"))
    RAN.clear()
    yield tmp_path


@cs.task(cache=cs.InputHashCache())
def scaled(day: str, n: int) -> str:
    RAN.append("scaled")
    return f"{day}:{n * RATE}"


@cs.task(cache=cs.InputHashCache())
def shout(text: str) -> str:
    RAN.append("shout")
    return text.upper()


def flow(n: int = 1) -> Any:
    return shout(scaled(cs.Param("day", default="2026-01-31"), n))


def run(target: Any, **options: Any) -> tuple[Any, dict[str, str | None], list[Any]]:
    """Run recorded; the result, why each task ran (by name) and the cache-miss events."""
    bus = cs.MessageBus()
    events: list[Any] = []
    bus.subscribe(TaskCacheMissed, events.append)
    result = cs.run(target, record=True, log_level=None, bus=bus, **options)
    store = SQLiteRunStore()
    recorded = store.runs(limit=1)[0]
    why = {a.task_name: a.why_ran for a in store.attempts(recorded.run_id)}
    return result, why, events


def test_no_earlier_entry_means_no_reason() -> None:
    result, why, events = run(flow())
    assert result == "2026-01-31:2".upper()
    assert why == {"scaled": None, "shout": None}
    assert events == []
    # every call hits now: nothing ran, nothing to explain
    _, why, events = run(flow())
    assert RAN == ["scaled", "shout"] and events == [] and why == {"scaled": None, "shout": None}


def test_a_changed_param_is_named_with_both_values_and_the_dependency_after_it() -> None:
    run(flow())
    result, why, events = run(flow(), params={"day": "2026-02-01"})
    assert result == "2026-02-01:2".upper()
    assert why["scaled"] == (
        "param 'day' changed (\"2026-01-31\" -> \"2026-02-01\"), its input 'day'"
    )
    assert why["shout"] == "its input 'text' changed: it comes from task 'scaled', a dependency"
    assert [(e.task_name, e.reason) for e in events] == [
        ("scaled", why["scaled"]),
        ("shout", why["shout"]),
    ]
    assert all(e.task_id and e.run_id for e in events)


def test_a_changed_input_given_in_the_code_is_named() -> None:
    run(flow(n=1))
    result, why, _ = run(flow(n=5))
    assert result == "2026-01-31:10".upper()
    assert why["scaled"] == "its input 'n' changed (1 -> 5)"


def test_a_changed_global_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    run(flow())
    monkeypatch.setattr(sys.modules[__name__], "RATE", 3)
    result, why, _ = run(flow())
    assert result == "2026-01-31:3".upper()
    assert why["scaled"] == "a global it reads changed: 'RATE'"


def test_a_changed_version_and_an_expired_entry_are_named(folders: Path) -> None:
    now = [1000.0]
    store = DirectoryStore(folders / "cache", clock=lambda: now[0])

    def made(version: int) -> Any:
        @cs.task(name="stamp", cache=cs.InputHashCache(version=version, ttl=60, store=store))
        def stamp(x: int) -> int:
            return x

        return stamp

    run(made(1)(7))
    _, why, _ = run(made(2)(7))
    assert why["stamp"] == "its version changed (1 -> 2)"
    now[0] += 3600  # the entry of version 2 expired
    _, why, _ = run(made(2)(7))
    assert why["stamp"] == "its cached result expired or was removed"


def test_the_calls_of_one_run_never_explain_each_other() -> None:
    @cs.task(cache=cs.InputHashCache())
    def item(i: int) -> int:
        return i * 2

    _, why, events = run(item.map([1, 2, 3]))
    assert set(why.values()) == {None} and events == []
    store = SQLiteRunStore()
    _, why, events = run(item.map([1, 2, 4]))
    attempts = store.attempts(store.runs(limit=1)[0].run_id)
    reasons = {a.task_id.split("[")[1]: (a.status, a.why_ran) for a in attempts if "[" in a.task_id}
    assert reasons["0]"] == ("Skipped", None) and reasons["1]"] == ("Skipped", None)
    assert reasons["2]"] == ("Succeeded", "its input 'i' changed")
    assert len(events) == 1


def test_cache_info_and_clear_count_entries_only(folders: Path) -> None:
    run(flow())
    stats = cs.cache_stats()
    assert stats.entries == 2 and set(stats.tasks) == {"scaled", "shout"}
    assert stats.writes == 2
    assert cs.clear_cache(task="scaled") == 1
    _, why, _ = run(flow())
    assert why["scaled"] is None  # its earlier result went with the entries it cleared
    assert cs.clear_cache() == 2
    assert not list((folders / "cache").glob("*/*"))


def test_a_changed_task_body_is_named_as_code_changed_across_processes(folders: Path) -> None:
    module = folders / "cached_mod.py"

    def write(body: str) -> None:
        module.write_text(
            "import cascade as cs\n\n"
            "@cs.task(cache=cs.InputHashCache())\n"
            f"def step(x):\n    return {body}\n"
        )

    script = folders / "drive.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, cascade as cs
            sys.path.insert(0, sys.argv[1])
            import cached_mod
            from cascade.records import SQLiteRunStore
            print(cs.run(cached_mod.step(1), record=True, log_level=None))
            store = SQLiteRunStore()
            run = store.runs(limit=1)[0]
            print([a.why_ran for a in store.attempts(run.run_id)])
            """
        )
    )
    env = dict(os.environ)

    def drive() -> list[str]:
        done = subprocess.run(
            [sys.executable, str(script), str(folders)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    write("x + 1")
    assert drive() == ["2", "[None]"]
    assert drive() == ["2", "[None]"]  # a hit: nothing ran
    write("x + 10")
    assert drive() == ["11", "['its code changed']"]


@cs.task
def publish(text: str) -> str:
    if RAN.count("fail-publish") == 0:
        RAN.append("fail-publish")
        raise ConnectionError("the portal is down")
    return text


def test_explaining_a_resume_leaves_a_task_with_its_own_cache_to_its_cache() -> None:
    from cascade.records import explain_resume

    target = publish(scaled(cs.Param("day", default="2026-01-31"), 1))
    with pytest.raises(ConnectionError):
        cs.run(target, record=True, log_level=None)
    resumed, explained = explain_resume(target, None, "last")
    assert resumed is not None and resumed.status == "Failed"
    by_name = {e.task_name: e for e in explained}
    # before: "runs again: no checkpoint in run ..." although its cache has the result
    assert by_name["scaled"].cached and by_name["scaled"].reason is None
    assert by_name["publish"].reason == f"it failed in run {resumed.run_id[:8]}"
    assert cs.run(target, resume="last", log_level=None) == "2026-01-31:2"
    assert RAN.count("scaled") == 1  # the cache had it
