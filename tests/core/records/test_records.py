"""Run records in a real SQLite file (issue 13): what a record holds, listing, deleting and
pruning, resume after a failure (only the failed branch and its dependents run again),
checkpoints and what invalidates them, unwritable and locked stores, migrations, concurrent
runs on one engine, and the report's HTML. The runs killed with SIGKILL and the processes
writing into one store at once are in tests/cli/test_cli_runs.py."""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import json
import linecache
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import run

import cascade as cs
from cascade.records import (
    CHECKPOINT,
    RecordError,
    RecordWarning,
    SQLiteRunStore,
    delete_runs,
    prune,
    render_report,
)

pytestmark = pytest.mark.timeout(120)

# -- tasks that count their calls (through a helper: what a task calls by name is not part of
# its checkpoint key, so counting does not change the keys) ----------------------------------

CALLS: Counter[str] = Counter()
FAILING: set[str] = set()
FLAKY: Counter[str] = Counter()  # failures still to come, by task name


def ran(name: str) -> None:
    CALLS[name] += 1
    if FLAKY[name] > 0:
        FLAKY[name] -= 1
        raise RuntimeError(f"{name} is flaky")
    if name in FAILING:
        raise RuntimeError(f"{name} failed")


@cs.task
def load(n: int) -> list[int]:
    ran("load")
    return list(range(n))


@cs.task
def square(x: int) -> int:
    ran("square")
    return x * x


@cs.task
def left(values: list[int]) -> int:
    ran("left")
    return sum(values)


@cs.task
def right(values: list[int]) -> int:
    ran("right")
    return max(values)


@cs.task
def combine(a: int, b: int) -> int:
    ran("combine")
    return a + b


@cs.task(retries=cs.RetryPolicy(retries=2, delay=0.01))
def flaky(x: int) -> int:
    ran("flaky")
    return x + 1


# Tasks that return graphs (module-level, so the graph they return can be checkpointed).

API_UP = {"orders": False}
#: A module global a returned task reads: part of that task's checkpoint key.
OFFSET = 0


@cs.task
def fetch_api(n: int) -> int:
    ran("fetch_api")
    if not API_UP["orders"]:
        raise ConnectionError("the orders API is down")
    return n * 100


@cs.task
def via_api(n: int) -> Any:
    ran("via_api")
    return fetch_api(n).with_fallback(-1)


@cs.task
def shifted(i: int, factor: int) -> int:
    ran("shifted")
    return i * factor + OFFSET


@cs.task
def fan_shifted(n: int) -> Any:
    ran("fan_shifted")
    return [shifted(i, cs.Param("factor", type=int, default=1)) for i in range(n)]


@cs.task
def maybe(x: int) -> int:
    ran("maybe")
    return x


@cs.task
def never_maybe(x: int) -> Any:
    ran("never_maybe")
    return maybe(x).run_if(False)


@cs.task
def after_maybe(value: Any) -> Any:
    ran("after_maybe")
    return ("after", value)


def diamond() -> cs.LazyResult[int]:
    values = load(cs.Param("n", type=int, default=4))
    return combine(left(square.map(values)), right(values))


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    CALLS.clear()
    FAILING.clear()
    FLAKY.clear()
    API_UP["orders"] = False
    yield
    CALLS.clear()
    FAILING.clear()
    FLAKY.clear()


def store() -> SQLiteRunStore:
    return SQLiteRunStore()  # $CASCADE_HOME/runs.sqlite3


def failed_run(target: Any, **options: Any) -> None:
    with pytest.raises((RuntimeError, cs.RunFailed)):
        run(target, **options)


# -- what a record holds -------------------------------------------------------------------------


def test_a_recorded_run_holds_the_run_its_params_and_every_attempt(home: Path) -> None:
    FLAKY["flaky"] = 1
    started = time.time()
    assert run([diamond(), flaky(1)], params={"n": 3}, record=True) == [5 + 2, 2]
    (recorded,) = store().runs()
    assert (home / "runs.sqlite3").is_file()
    assert recorded.status == "Succeeded"
    assert recorded.target == "combine, flaky"
    assert recorded.params == {"n": {"value": 3}}
    assert recorded.cascade_version == cs.__version__
    assert (recorded.host, recorded.pid) == (socket.gethostname(), os.getpid())
    assert started <= recorded.started <= recorded.ended  # type: ignore[operator]
    assert recorded.duration is not None and recorded.duration > 0
    assert recorded.resumed_from is None and recorded.trace_id is None
    assert recorded.tasks == {"Succeeded": 8}  # load, 3 squares, left, right, combine, flaky

    attempts = store().attempts(recorded.run_id)
    by_name = Counter(a.task_name for a in attempts)
    assert by_name == {"load": 1, "square": 3, "left": 1, "right": 1, "combine": 1, "flaky": 2}
    first, second = [a for a in attempts if a.task_name == "flaky"]
    assert (first.status, first.attempt, first.will_retry) == ("Failed", 1, True)
    assert first.error == "RuntimeError: flaky is flaky" and first.error_type == "RuntimeError"
    assert first.retry_delay == pytest.approx(0.01)
    assert (second.status, second.attempt, second.error) == ("Succeeded", 2, None)
    squares = sorted(a.task_id for a in attempts if a.task_name == "square")
    assert [t[t.index("[") :] for t in squares] == ["[0]", "[1]", "[2]"]
    for attempt in attempts:
        assert attempt.executor == "local"
        assert recorded.started <= attempt.started <= attempt.ended
        assert attempt.duration == pytest.approx(attempt.ended - attempt.started, abs=1e-3)
    graph = store().graph(recorded.run_id)
    kinds = Counter(node.kind for node in graph)
    assert kinds == {"param": 1, "task": 5, "map": 1}
    combine_node = next(node for node in graph if node.task_name == "combine")
    assert len(combine_node.deps) == 2


def test_params_that_are_not_json_are_kept_as_type_and_repr(home: Path) -> None:
    @cs.task
    def show(value: Any) -> str:
        return repr(value)

    target = show(cs.Param("when", default=None))
    run(target, params={"when": {1, 2}}, record=True)
    (recorded,) = store().runs()
    assert recorded.params == {"when": {"type": "builtins.set", "repr": "{1, 2}"}}


def test_skips_are_recorded_with_their_reason(home: Path, tmp_path: Path) -> None:
    cached = cs.task(cache=cs.InputHashCache(store=cs.caching.DirectoryStore(tmp_path / "c")))(
        lambda x: x + 1
    )

    @cs.task
    def never(x: int) -> int:
        return x

    target = [cached(1), never(2).run_if(False)]
    run(target, record=True)
    run(target, record=True)
    latest = store().runs()[0]
    reasons = {a.task_name: (a.status, a.reason) for a in store().attempts(latest.run_id)}
    assert reasons == {"<lambda>": ("Skipped", "CacheHit"), "never": ("Skipped", "ConditionFalse")}


def test_a_task_that_returns_a_graph_records_its_children_with_their_parent(home: Path) -> None:
    @cs.task
    def fan(n: int) -> list[cs.LazyResult[int]]:
        return [square(i) for i in range(n)]

    assert run(fan(3), record=True) == [0, 1, 4]
    (recorded,) = store().runs()
    attempts = store().attempts(recorded.run_id)
    parent = next(a for a in attempts if a.task_name == "fan")
    children = [a for a in attempts if a.task_name == "square"]
    assert len(children) == 3
    assert {a.parent_task_id for a in children} == {parent.task_id}
    html = render_report(store(), recorded.run_id)
    # fan, and one node for the three calls it returned (their count on it)
    assert html.count('class="node"') == 1 + 1
    assert 'data-kind="calls" data-count="3"' in html and "square ×3" in html
    assert "stroke-dasharray" in html  # added at run time: a dashed edge from their parent


def test_a_cancelled_run_is_recorded_as_cancelled(home: Path) -> None:
    started = threading.Event()

    @cs.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.ensure_future(cs.run_async(forever(), log_level=None, record=True))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (recorded,) = store().runs()
    assert recorded.status == "Cancelled"


def test_runs_on_one_engine_at_once_are_recorded_apart(home: Path) -> None:
    async def main() -> list[int]:
        engine = cs.Engine(log_level=None)
        return list(
            await asyncio.gather(
                engine.run(left(square.map([1, 2])), record=True),
                engine.run(right([7, 8, 9]), record=True),
            )
        )

    assert asyncio.run(main()) == [5, 9]
    runs = {r.target: r for r in store().runs()}
    assert set(runs) == {"left", "right"}
    assert runs["left"].tasks == {"Succeeded": 3} and runs["right"].tasks == {"Succeeded": 1}
    assert [a.task_name for a in store().attempts(runs["right"].run_id)] == ["right"]


# -- listing, deleting, pruning ------------------------------------------------------------------


def test_list_is_newest_first_and_filters_by_target_status_since_and_limit(home: Path) -> None:
    run(left([1]), record=True)
    FAILING.add("right")
    failed_run(right([1]), record=True)
    FAILING.clear()
    run(left([2]), record=True)
    every = store().runs()
    assert [r.target for r in every] == ["left", "right", "left"]
    assert [r.status for r in every] == ["Succeeded", "Failed", "Succeeded"]
    assert [r.run_id for r in store().runs(target="left")] == [every[0].run_id, every[2].run_id]
    assert [r.run_id for r in store().runs(status="Failed")] == [every[1].run_id]
    assert [r.run_id for r in store().runs(limit=1)] == [every[0].run_id]
    assert [r.run_id for r in store().runs(since=every[1].started)] == [
        every[0].run_id,
        every[1].run_id,
    ]
    assert store().run(every[1].run_id[:10]) == every[1]  # a unique prefix finds it
    assert store().run("nope") is None


def test_delete_and_prune_remove_runs_and_the_checkpoints_nothing_else_needs(home: Path) -> None:
    run(diamond(), record=True)
    first = store().runs()[0]
    run(diamond(), resume="last")  # takes everything from the first run's checkpoints
    second = store().runs()[0]
    entries = {c.entry for c in store().checkpoints(first.run_id)}
    assert entries and entries == {c.entry for c in store().checkpoints(second.run_id)}
    checkpoints = store().checkpoint_store(first.checkpoints)
    assert all(checkpoints.get(entry)[0] for entry in entries)

    assert delete_runs(store(), [first.run_id]) == 0  # the second run still refers to them
    assert [r.run_id for r in store().runs()] == [second.run_id]
    assert all(checkpoints.get(entry)[0] for entry in entries)

    pruned = prune(store(), 30 * 86400)  # nothing is 30 days old
    assert pruned.runs == [] and store().runs() != []
    month_later = time.time() + 31 * 86400
    pruned = prune(store(), 30 * 86400, now=month_later)
    assert [r.run_id for r in pruned.runs] == [second.run_id]
    assert pruned.checkpoint_entries == len(entries)
    assert store().runs() == []
    assert not any(checkpoints.get(entry)[0] for entry in entries)


# -- resume ----------------------------------------------------------------------------------------


def test_resume_after_a_failure_runs_only_the_failed_branch_and_its_dependents(
    home: Path,
) -> None:
    FAILING.add("right")
    failed_run(diamond(), params={"n": 4}, record=True, on_failure="continue")
    assert CALLS == {"load": 1, "square": 4, "left": 1, "right": 1}
    failed = store().runs()[0]
    assert failed.status == "Failed" and failed.tasks["Failed"] == 1

    FAILING.clear()
    CALLS.clear()
    assert run(diamond(), params={"n": 4}, resume="last") == 14 + 3
    assert CALLS == {"right": 1, "combine": 1}
    resumed = store().runs()[0]
    assert resumed.resumed_from == failed.run_id and resumed.status == "Succeeded"
    restored = {a.task_name for a in store().attempts(resumed.run_id) if a.reason == CHECKPOINT}
    assert restored == {"load", "square", "left"}

    # A resume of the resumed run finds every value: what it restored and what it ran.
    CALLS.clear()
    assert run(diamond(), params={"n": 4}, resume=resumed.run_id) == 17
    assert CALLS == {}


def test_resume_after_a_run_that_stopped_at_its_first_failure(home: Path) -> None:
    FAILING.add("square")
    failed_run(combine(left(square.map(load(3))), right(load(3))), record=True)
    FAILING.clear()
    CALLS.clear()
    assert run(combine(left(square.map(load(3))), right(load(3))), resume="last") == 5 + 2
    assert CALLS["load"] == 0 and CALLS["square"] == 3 and CALLS["combine"] == 1


def test_changed_inputs_run_again_while_unchanged_tasks_keep_their_checkpoint(
    home: Path,
) -> None:
    FAILING.add("combine")
    failed_run(diamond(), params={"n": 3}, record=True)
    FAILING.clear()
    CALLS.clear()
    assert run(diamond(), params={"n": 4}, resume="last") == 14 + 3
    # load's input changed, so it runs, and so does what gets new inputs from it; squares of
    # 0, 1 and 2 had these very inputs in the failed run and keep their checkpoints.
    assert CALLS == {"load": 1, "square": 1, "left": 1, "right": 1, "combine": 1}


def test_changed_code_invalidates_a_checkpoint(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    module = folder / "changing_flow.py"
    source = """
        import cascade as cs
        from test_records import ran

        @cs.task
        def first(x: int) -> int:
            ran("first")
            return x + 1

        @cs.task
        def second(x: int) -> int:
            ran("second")
            return x * {factor}

        @cs.task
        def third(x: int) -> int:
            ran("third")
            return x - 1

        def flow():
            return third(second(first(1)))
    """
    module.write_text(textwrap.dedent(source.format(factor=10)))
    sys.path.insert(0, str(folder))
    try:
        flow = importlib.import_module("changing_flow")
        FAILING.add("third")
        failed_run(flow.flow(), record=True)
        FAILING.clear()
        CALLS.clear()
        module.write_text(textwrap.dedent(source.format(factor=100)))  # second changes
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        linecache.clearcache()
        flow = importlib.reload(flow)
        assert run(flow.flow(), resume="last") == 199
        assert CALLS == {"second": 1, "third": 1}  # first's code and input are unchanged
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("changing_flow", None)


def test_a_result_that_cannot_be_pickled_warns_and_runs_again_on_resume(home: Path) -> None:
    @cs.task
    def opener() -> Any:
        ran("opener")
        return threading.Lock()

    @cs.task
    def user(lock: Any) -> str:
        ran("user")
        if "user" in FAILING:
            raise RuntimeError("user failed")
        return type(lock).__name__

    FAILING.add("user")
    with pytest.warns(RecordWarning) as caught:
        failed_run(user(opener()), record=True)
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith("task 'opener': its result (a _thread.lock) cannot be pickled")
        for m in messages
    ), messages
    assert any("task 'user': argument 'lock' has no stable hash" in m for m in messages), messages
    FAILING.clear()
    CALLS.clear()
    with pytest.warns(RecordWarning):
        assert run(user(opener()), resume="last") == "lock"
    assert CALLS == {"opener": 1, "user": 1}


def test_a_fallback_value_is_not_checkpointed(home: Path) -> None:
    FAILING.update({"right", "combine"})
    failed_run(combine(1, right([1]).with_fallback(0)), record=True)
    FAILING.clear()
    CALLS.clear()
    assert run(combine(1, right([1]).with_fallback(0)), resume="last") == 2
    assert CALLS == {"right": 1, "combine": 1}  # right failed: it runs again


def test_a_task_that_fell_back_inside_a_returned_graph_runs_again_on_resume(home: Path) -> None:
    # While the API is down the returned fetch falls back; once it is back, a resume runs it
    # (the parent's checkpoint is the graph it returned, not the -1 it resolved to).
    assert run(via_api(7), record=True) == -1
    assert CALLS == {"via_api": 1, "fetch_api": 1}
    API_UP["orders"] = True
    CALLS.clear()
    assert run(via_api(7), resume="last") == 700
    assert CALLS == {"fetch_api": 1}  # via_api came from its checkpoint, fetch_api ran
    resumed = store().runs()[0]
    reasons = {a.task_name: (a.status, a.reason) for a in store().attempts(resumed.run_id)}
    assert reasons == {"via_api": ("Skipped", CHECKPOINT), "fetch_api": ("Succeeded", None)}
    # Now fetch_api succeeded: a resume of that run restores both.
    CALLS.clear()
    assert run(via_api(7), resume="last") == 700
    assert CALLS == {}


def test_a_returned_task_whose_code_changed_runs_again_on_resume(
    home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    module = folder / "changing_dynamic_flow.py"
    source = """
        import cascade as cs
        from test_records import ran

        @cs.task
        def b(i: int) -> int:
            ran("b")
            return i * 10 + {offset}

        @cs.task
        def dyn(n: int):
            ran("dyn")
            return [b(i) for i in range(n)]
    """
    module.write_text(textwrap.dedent(source.format(offset=1)))
    sys.path.insert(0, str(folder))
    try:
        flow = importlib.import_module("changing_dynamic_flow")
        assert run(flow.dyn(3), record=True) == [1, 11, 21]
        CALLS.clear()
        module.write_text(textwrap.dedent(source.format(offset=2)))  # b's body changes
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        linecache.clearcache()
        flow = importlib.reload(flow)
        assert run(flow.dyn(3), resume="last") == [2, 12, 22]
        assert CALLS == {"b": 3}  # dyn's code and input are unchanged: restored
        CALLS.clear()
        assert run(flow.dyn(3), resume="last") == [2, 12, 22]
        assert CALLS == {}
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("changing_dynamic_flow", None)


def test_the_params_and_globals_a_returned_task_reads_are_part_of_its_checkpoint(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def target() -> dict[str, Any]:
        # The run declares the param (square reads it); fan_shifted never sees it, but the
        # tasks it returns do.
        return {"values": fan_shifted(3), "factor": square(cs.Param("factor", type=int))}

    assert run(target(), params={"factor": 2}, record=True) == {"values": [0, 2, 4], "factor": 4}
    CALLS.clear()
    assert run(target(), params={"factor": 3}, resume="last")["values"] == [0, 3, 6]
    assert CALLS == {"shifted": 3, "square": 1}  # fan_shifted came from its checkpoint
    CALLS.clear()
    monkeypatch.setattr(sys.modules[__name__], "OFFSET", 100)  # a global shifted reads
    assert run(target(), params={"factor": 3}, resume="last")["values"] == [100, 103, 106]
    assert CALLS == {"shifted": 3}
    CALLS.clear()
    assert run(target(), params={"factor": 3}, resume="last")["values"] == [100, 103, 106]
    assert CALLS == {}


def test_recording_and_resuming_never_change_what_runs(home: Path) -> None:
    # A task that returns a call whose condition is false is skipped, and so is what depends
    # on it: with or without recording, and on a resume.
    def target() -> list[cs.LazyResult[Any]]:
        return [never_maybe(1), after_maybe(never_maybe(2))]

    outcomes = {}
    for mode in ("plain", "record", "resume"):
        CALLS.clear()
        options: dict[str, Any] = {"plain": {}, "record": {"record": True}}.get(
            mode, {"resume": "last"}
        )
        outcomes[mode] = (run(target(), **options), dict(CALLS))
    assert outcomes["plain"] == ([None, None], {"never_maybe": 2})
    assert outcomes["record"] == outcomes["plain"]
    assert outcomes["resume"] == ([None, None], {})


def test_resume_errors_name_the_problem_and_list_recent_runs_of_the_target(home: Path) -> None:
    with pytest.raises(RecordError, match=r"no run of 'left' is recorded in .*runs.sqlite3"):
        run(left([1]), resume="last")
    run(left([1]), record=True)
    run(right([1]), record=True)
    lefts = store().runs(target="left")
    with pytest.raises(RecordError) as unknown:
        run(left([1]), resume="0123456789")
    assert "there is no such run" in str(unknown.value)
    assert "recent runs of 'left'" in str(unknown.value)
    assert lefts[0].run_id in str(unknown.value)
    other = store().runs(target="right")[0]
    with pytest.raises(RecordError, match=r"it is a run of 'right'.*recent runs of 'left'"):
        run(left([1]), resume=other.run_id)
    with pytest.raises(ValueError, match="checkpoint= cannot be combined"):
        asyncio.run(cs.Engine(log_level=None).run(left([1]), record=True, checkpoint=object()))  # type: ignore[arg-type]


# -- stores --------------------------------------------------------------------------------------


def test_record_takes_a_path_or_a_store_and_never_creates_what_it_only_reads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "elsewhere" / "history.sqlite3"
    run(left([1]), record=str(path))
    assert [r.target for r in SQLiteRunStore(path).runs()] == ["left"]
    assert (path.parent / ".gitignore").read_text().strip().endswith("*")
    mine = SQLiteRunStore(tmp_path / "mine.sqlite3")
    run(right([1]), record=mine)
    assert [r.target for r in mine.runs()] == ["right"]
    missing = SQLiteRunStore(tmp_path / "nothing" / "runs.sqlite3")
    assert missing.runs() == [] and missing.run("x") is None
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(cs.PluginError, match="unknown run store 'postgres'"):
        run(left([1]), record="postgres")


def test_a_store_below_a_file_warns_naming_the_path_and_the_run_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CASCADE_HOME", str(blocker / "home"))
    with pytest.warns(RecordWarning) as caught:
        assert run(diamond(), record=True) == 14 + 3
    messages = [str(w.message) for w in caught]
    where = str(blocker / "home" / "runs.sqlite3")
    assert any(f"could not be written to {where}: NotADirectoryError" in m for m in messages)


def _without_dac_override() -> None:
    """In a child of root, before it runs Python: drop the capability that lets root write
    into a directory it may not write to, so a read-only directory is one for it too."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_directory_warns_naming_the_path_and_the_run_succeeds(
    tmp_path: Path,
) -> None:
    home = tmp_path / "read-only"
    home.mkdir()
    script = tmp_path / "ro.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, warnings, cascade as cs

            print(os.access(os.environ["CASCADE_HOME"], os.W_OK))

            @cs.task
            def add(a, b):
                return a + b

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                print(cs.run(add(1, 2), record=True, log_level=None))
            for warning in caught:
                print(type(warning.message).__name__, warning.message)
            """
        )
    )
    home.chmod(0o555)
    env = {**os.environ, "CASCADE_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CASCADE_CACHE_DIR", None)
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            # Root may write anywhere: its child runs without that capability.
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
        )
    finally:
        home.chmod(0o755)
    assert done.returncode == 0, done.stderr
    writable, result, *warned = done.stdout.splitlines()
    assert writable == "False", "the directory should not be writable for the run"
    assert result == "3"
    where = str(home / "runs.sqlite3")
    assert any(line.startswith("RecordWarning") and where in line for line in warned), warned
    assert not (home / "runs.sqlite3").exists()


def test_a_store_locked_by_another_writer_warns_and_the_run_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cascade.records.sqlite as records_sqlite

    path = tmp_path / "locked.sqlite3"
    run(left([1]), record=str(path))  # the schema exists
    SQLiteRunStore(path).close()
    monkeypatch.setattr(records_sqlite, "BUSY_TIMEOUT", 0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(RecordWarning) as caught:
            assert run(left([2]), record=str(path)) == 2
        messages = [str(w.message) for w in caught]
        assert any(str(path) in m and "database is locked" in m for m in messages), messages
    finally:
        other.execute("ROLLBACK")
        other.close()
        SQLiteRunStore(path).close()


def test_an_old_schema_is_migrated_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    import cascade.records.sqlite as records_sqlite

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    version, script = records_sqlite.MIGRATIONS[0]
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        "INSERT INTO runs (run_id, target, status, started) VALUES ('old', 'left', 'Failed', 1)"
    )
    conn.close()
    old = SQLiteRunStore(path)
    assert [r.run_id for r in old.runs()] == ["old"]
    assert old.schema_version() == records_sqlite.SCHEMA_VERSION
    indexes = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "runs_by_status" in indexes
    old.close()

    newer = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {records_sqlite.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RecordError, match="written by a newer Cascade"):
        SQLiteRunStore(newer).runs()


def test_a_record_left_running_by_a_process_that_is_gone_reads_as_crashed(
    tmp_path: Path,
) -> None:
    from cascade.records import RecordBatch, RecordedRun

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(gone.stdout)
    path = tmp_path / "runs.sqlite3"
    live = SQLiteRunStore(path)
    now = time.time()
    for run_id, host, owner, beat in [
        ("mine-alive", socket.gethostname(), os.getpid(), now),
        ("mine-gone", socket.gethostname(), pid, now),
        ("elsewhere-beating", "another-host", 1, now),
        ("elsewhere-silent", "another-host", 1, now - 3600),
    ]:
        record = RecordedRun(run_id, "t", "Running", now, host=host, pid=owner, heartbeat=beat)
        live.write(RecordBatch(run_id, start=record))
    statuses = {r.run_id: r.status for r in live.runs()}
    assert statuses == {
        "mine-alive": "Running",
        "mine-gone": "Crashed",
        "elsewhere-beating": "Running",
        "elsewhere-silent": "Crashed",
    }
    assert {r.run_id for r in live.runs(status="Crashed")} == {"mine-gone", "elsewhere-silent"}


def test_a_plugin_registers_another_run_store(tmp_path: Path) -> None:
    from cascade.plugins import PluginManager, reset_plugin_manager

    made: list[SQLiteRunStore] = []

    class TeamStore:
        @cs.hookimpl
        def cascade_register_run_stores(self, register: Any) -> None:
            def factory(**options: Any) -> SQLiteRunStore:
                made.append(SQLiteRunStore(tmp_path / "team.sqlite3", **options))
                return made[-1]

            register("team", factory)

    manager = PluginManager(load_entrypoints=False)
    manager.register(TeamStore(), "team-store")
    assert set(manager.run_stores()) == {"sqlite", "team"}
    reset_plugin_manager(manager)
    try:
        assert run(left([3]), record="team") == 3
    finally:
        reset_plugin_manager(None)
    assert [r.target for r in made[0].runs()] == ["left"]


# -- the report ----------------------------------------------------------------------------------


def test_the_report_is_one_self_contained_page_with_every_attempt(home: Path) -> None:
    FLAKY["flaky"] = 1
    FAILING.add("right")
    failed_run([diamond(), flaky(1)], record=True, on_failure="continue")
    recorded = store().runs()[0]
    html = render_report(store(), recorded.run_id[:8])
    attempts = [a for a in store().attempts(recorded.run_id) if a.status != "Skipped"]
    assert html.count('class="bar"') == len(attempts) == 4 + 1 + 1 + 2 + 1
    for name in ("load", "square", "left", "right", "flaky", "combine"):
        assert f">{name}" in html
    assert "RuntimeError: right failed" in html and "Retried" in html
    assert "<td>n</td>" in html  # the param, by name
    assert not re.search(r"(src|href)\s*=|https?://|<script|@import|url\((?!#)", html)
    assert json.dumps(recorded.run_id)[1:-1] in html
