"""Caching: FileExistenceCache, InputHashCache, the directory store, clear_cache and cache_stats.

Every test gets its own cache directory through ``CASCADE_CACHE_DIR``; scenarios that must cross
a process boundary run real ``python`` subprocesses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import EventLog

import cascade as cs
from cascade.caching import CacheContext, CacheWarning, DirectoryStore, MemoryStore
from cascade.caching.hashing import UnhashableInputError, stable_hash
from cascade.events import TaskExecutionStarted, TaskSkipped
from cascade.plugins import PluginError, PluginManager, hookimpl, reset_plugin_manager

pytestmark = pytest.mark.timeout(60)


def run(target: Any, recorder: EventLog | None = None) -> Any:
    return cs.run(target, log_level=None, bus=recorder.bus if recorder else None)


def entry_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.entry"))


def subprocess_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CASCADE_CACHE_DIR"] = str(cache_dir)
    env["CASCADE_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def run_python(script: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- FileExistenceCache ------------------------------------------------------------------------


def test_file_existence_miss_then_hit_with_event_and_path_result(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.txt"
    calls: list[str] = []

    @cs.task(cache=cs.FileExistenceCache(target))
    def report(text: str) -> Path:
        calls.append(text)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    first = EventLog()
    assert run(report("hello"), first) == target
    assert calls == ["hello"]
    assert first.of(TaskSkipped) == []

    second = EventLog()
    result = run(report("hello"), second)
    assert isinstance(result, pathlib.Path) and result == target
    assert calls == ["hello"]
    skipped = second.of(TaskSkipped)
    assert [(e.task_name, e.reason) for e in skipped] == [("report", "CacheHit")]
    assert second.of(TaskExecutionStarted) == []


@cs.task
def write_target(path: str, text: str) -> str:
    Path(path).write_text(text)
    return path


def test_file_existence_on_a_task_whose_returned_graph_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    calls: list[str] = []

    @cs.task(cache=cs.FileExistenceCache(target))
    def report(text: str) -> Any:
        calls.append(text)
        return write_target(str(target), text)  # a task it returns writes the file

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # nothing to warn about
        assert run(report("hello")) == str(target)
        second = EventLog()
        assert run(report("hello"), second) == target  # skipped, graph and all
    assert calls == ["hello"] and target.read_text() == "hello"
    assert second.of(TaskExecutionStarted) == []


def test_file_existence_target_fields_and_function(tmp_path: Path) -> None:
    ran: list[str] = []

    @cs.task(cache=cs.FileExistenceCache(str(tmp_path / "{day}-{kind}.csv")))
    def export(day: str, kind: str = "full") -> Path:
        ran.append(day)
        path = tmp_path / f"{day}-{kind}.csv"
        path.write_text("rows")
        return path

    # The field is filled whether the input is passed by position or by name.
    run(export("mon", kind="full"))
    run(export(day="mon", kind="full"))
    run(export("tue", "full"))
    assert ran == ["mon", "tue"]

    @cs.task(cache=cs.FileExistenceCache(lambda n, **_: tmp_path / f"square-{n}.txt"))
    def square(n: int, suffix: str = "") -> Path:
        ran.append(f"square {n}")
        path = tmp_path / f"square-{n}.txt"
        path.write_text(str(n * n) + suffix)
        return path

    paths = run(square.map([2, 3]))
    assert paths == [tmp_path / "square-2.txt", tmp_path / "square-3.txt"]
    assert run(square.map([2, 3, 4])) == [tmp_path / f"square-{n}.txt" for n in (2, 3, 4)]
    assert ran.count("square 2") == 1 and ran.count("square 4") == 1


def test_file_existence_warns_when_task_breaks_its_contract(tmp_path: Path) -> None:
    target = tmp_path / "never.txt"

    @cs.task(cache=cs.FileExistenceCache(target))
    def forgets() -> str:
        return "done"

    with pytest.warns(CacheWarning, match=r"task 'forgets' finished without creating"):
        assert run(forgets()) == "done"

    other = tmp_path / "written.txt"

    @cs.task(cache=cs.FileExistenceCache(other))
    def returns_text() -> str:
        other.write_text("x")
        return "x"

    with pytest.warns(CacheWarning, match=r"task 'returns_text' returned str 'x' rather than"):
        run(returns_text())

    @cs.task(cache=cs.FileExistenceCache(str(tmp_path / "{missing}.txt")))
    def needs(day: str) -> None:
        return None

    with pytest.raises(ValueError, match=r"task 'needs'.*'missing'.*\(day\)"):
        run(needs("mon"))


# -- InputHashCache within a process ------------------------------------------------------------


def test_input_hash_hit_across_runs_and_argument_forms(cache_dir: Path) -> None:
    calls: list[tuple[int, int]] = []

    @cs.task(cache=cs.InputHashCache())
    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    assert run(add(1, 2)) == 3
    recorder = EventLog()
    assert run(add(1, 2), recorder) == 3
    assert run(add(a=1, b=2)) == 3  # the same inputs by name
    assert calls == [(1, 2)]
    assert [e.reason for e in recorder.of(TaskSkipped)] == ["CacheHit"]
    assert run(add(2, 1)) == 3
    assert calls == [(1, 2), (2, 1)]
    assert len(entry_files(cache_dir)) == 2


def test_cached_none_is_a_hit() -> None:
    calls: list[int] = []

    @cs.task(cache=cs.InputHashCache())
    def side_effect(x: int) -> None:
        calls.append(x)

    assert run(side_effect(1)) is None
    assert run(side_effect(1)) is None
    assert calls == [1]


def test_ttl_expiry_with_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    store = DirectoryStore(tmp_path / "ttl", clock=lambda: now[0])
    calls: list[int] = []

    @cs.task(cache=cs.InputHashCache(ttl=60, store=store))
    def fetch(x: int) -> int:
        calls.append(x)
        return x * 10

    assert run(fetch(1)) == 10
    now[0] += 59
    assert run(fetch(1)) == 10
    assert calls == [1]
    now[0] += 2  # 61 s after the write
    assert store.stats().expired == 1
    assert run(fetch(1)) == 10
    assert calls == [1, 1]
    assert store.stats().expired == 0  # rewritten with a fresh expiry


def test_version_and_key_fn_change_the_key() -> None:
    def context_for(task: Any, *args: Any) -> CacheContext:
        return CacheContext(task, "t-1", args, {})

    def plain(x: int) -> int:
        return x

    v1 = cs.task(plain, cache=cs.InputHashCache(version=1))
    v2 = cs.task(plain, cache=cs.InputHashCache(version=2))
    key_v1 = v1.cache.key_for(context_for(v1, 5))  # type: ignore[union-attr]
    assert key_v1 == v1.cache.key_for(context_for(v1, 5))  # type: ignore[union-attr]
    assert key_v1 != v2.cache.key_for(context_for(v2, 5))  # type: ignore[union-attr]
    assert key_v1 != v1.cache.key_for(context_for(v1, 6))  # type: ignore[union-attr]

    by_parity = cs.task(plain, cache=cs.InputHashCache(key_fn=lambda c: str(c.args[0] % 2)))
    policy = by_parity.cache
    assert policy.key_for(context_for(by_parity, 1)) == policy.key_for(  # type: ignore[union-attr]
        context_for(by_parity, 3)
    )
    assert policy.key_for(context_for(by_parity, 1)) != policy.key_for(  # type: ignore[union-attr]
        context_for(by_parity, 2)
    )


MODULE_V1 = """
import cascade as cs

@cs.task(cache=cs.InputHashCache())
def work(x):
    return x + 1
"""

MODULE_V1_REFORMATTED = '''
import cascade as cs

@cs.task(cache=cs.InputHashCache(ttl=3600))  # new options do not change the code
def work(x):
    """Now documented."""
    # and commented
    return (x
            + 1)
'''

MODULE_V2 = """
import cascade as cs

@cs.task(cache=cs.InputHashCache())
def work(x):
    return x + 2
"""


def test_source_change_changes_key(tmp_path: Path) -> None:
    import importlib.util

    def key_of(source: str, folder: str) -> str:
        path = tmp_path / folder / "cached_module.py"
        path.parent.mkdir()
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("cached_module", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        task = module.work
        return str(task.cache.key_for(CacheContext(task, "work-1", (1,), {})))

    original = key_of(MODULE_V1, "a")
    assert key_of(MODULE_V1_REFORMATTED, "b") == original
    assert key_of(MODULE_V2, "c") != original


def test_injected_resources_are_not_part_of_the_key() -> None:
    calls: list[int] = []
    opened = []

    @cs.resource
    def connection() -> Iterator[object]:
        handle = object()  # a new, unhashable object every run
        opened.append(handle)
        yield handle

    @cs.resource(scope="task")
    def session() -> Iterator[object]:
        yield object()

    @cs.task(cache=cs.InputHashCache())
    def query(n: int, conn: object = cs.inject("connection")) -> int:
        assert conn is opened[-1]
        calls.append(n)
        return n * 2

    @cs.task(cache=cs.InputHashCache())
    def scoped(n: int, s: object = cs.inject("session")) -> int:
        calls.append(-n)
        return n

    def run_once() -> list[int]:
        engine = cs.Engine(log_level=None)
        engine.register(connection)
        engine.register(session)
        import asyncio

        return list(asyncio.run(engine.run([query(4), scoped(5)])))

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert run_once() == [8, 5]
        assert run_once() == [8, 5]
    assert calls == [4, -5]
    assert len(opened) == 2


class Opaque:
    pass


def test_unhashable_input_warns_runs_and_stores_nothing(cache_dir: Path) -> None:
    calls: list[str] = []

    @cs.task(cache=cs.InputHashCache())
    def use(label: str, thing: object) -> str:
        calls.append(label)
        return label

    for _ in range(2):
        with pytest.warns(CacheWarning, match=r"task 'use': argument 'thing' has no stable hash"):
            assert run(use("a", {"nested": [Opaque()]})) == "a"
    assert calls == ["a", "a"]
    assert entry_files(cache_dir) == []
    assert cs.cache_stats().entries == 0


def test_unpicklable_result_warns_and_still_returns() -> None:
    @cs.task(cache=cs.InputHashCache())
    def make_lock(n: int) -> Any:
        import threading

        return threading.Lock()

    with pytest.warns(CacheWarning, match=r"task 'make_lock': its result was not cached"):
        lock = run(make_lock(1))
    assert hasattr(lock, "acquire")


def test_named_and_plugin_stores() -> None:
    calls: list[int] = []

    @cs.task(cache=cs.InputHashCache(store="memory"))
    def in_memory(x: int) -> int:
        calls.append(x)
        return x

    cs.clear_cache(store="memory")
    run(in_memory(1))
    run(in_memory(1))
    assert calls == [1]
    assert cs.cache_stats().entries == 0  # nothing went to the directory
    assert cs.cache_stats(store="memory").tasks["in_memory"].entries == 1  # one shared store
    assert cs.clear_cache(task="in_memory", store="memory") == 1

    shared = MemoryStore()

    class TeamStores:
        @hookimpl
        def cascade_register_cache_stores(self, register: Any) -> None:
            register("team", lambda: shared)

    manager = PluginManager(load_entrypoints=False)
    manager.register(TeamStores(), "team-stores")
    reset_plugin_manager(manager)
    try:

        @cs.task(cache=cs.InputHashCache(store="team"))
        def on_team(x: int) -> int:
            calls.append(x)
            return x

        run(on_team(2))
        run(on_team(2))
        assert calls == [1, 2]
        assert shared.stats().tasks["on_team"].entries == 1
        assert cs.clear_cache(store="team") == 1
        with pytest.raises(PluginError, match="unknown cache store 'nope'"):
            cs.cache_stats(store="nope")
    finally:
        reset_plugin_manager(None)

    with pytest.raises(TypeError, match="store= takes a store name"):
        cs.InputHashCache(store=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl must be a positive number"):
        cs.InputHashCache(ttl=0)


# -- the directory store ------------------------------------------------------------------------


def test_truncated_entry_is_a_logged_miss_and_rewritten(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @cs.task(cache=cs.InputHashCache())
    def heavy(x: int) -> list[int]:
        calls.append(x)
        return list(range(x))

    assert run(heavy(50)) == list(range(50))
    (entry,) = entry_files(cache_dir)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) - 20])

    with caplog.at_level(logging.WARNING, logger="cascade.caching"):
        assert run(heavy(50)) == list(range(50))
    assert calls == [50, 50]
    assert any(
        "truncated" in r.getMessage() and str(entry) in r.getMessage() for r in caplog.records
    )
    assert DirectoryStore(cache_dir).get(entry.stem) == (True, list(range(50)))  # rewritten
    assert run(heavy(50)) == list(range(50))
    assert calls == [50, 50]  # the rewritten entry is a hit

    entry.write_bytes(b"garbage that is not an entry")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cascade.caching"):
        assert run(heavy(50)) == list(range(50))
    assert calls == [50, 50, 50]
    assert any(
        "does not start with a Cascade cache header" in r.getMessage() for r in caplog.records
    )
    assert cs.cache_stats().errors >= 2


def test_store_protocol_on_directory_store(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    assert store.get("k") == (False, None)
    store.set("k", {"a": 1}, task="t1")
    store.set("plain key with spaces", None, task="t2")
    assert store.get("k") == (True, {"a": 1})
    assert store.get("plain key with spaces") == (True, None)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert (tmp_path / "s" / "CACHEDIR.TAG").exists()
    assert store.clear() == 1
    assert store.stats().entries == 0


def test_clear_cache_by_task_and_stats(cache_dir: Path) -> None:
    @cs.task(cache=cs.InputHashCache())
    def alpha(x: int) -> str:
        return "a" * x

    @cs.task(cache=cs.InputHashCache())
    def beta(x: int) -> int:
        return x

    before = cs.cache_stats()
    run([alpha(1), alpha(2), alpha(3), beta(1)])
    run([alpha(1), beta(1)])

    stats = cs.cache_stats()
    assert stats.directory == str(cache_dir)
    assert stats.entries == 4
    assert stats.tasks["alpha"].entries == 3 and stats.tasks["beta"].entries == 1
    assert stats.bytes == sum(p.stat().st_size for p in entry_files(cache_dir)) > 0
    assert stats.tasks["alpha"].bytes + stats.tasks["beta"].bytes == stats.bytes
    assert (stats.hits - before.hits, stats.misses - before.misses) == (2, 4)
    assert stats.writes - before.writes == 4
    as_dict = stats.to_dict()
    assert as_dict["tasks"]["alpha"] == {"entries": 3, "bytes": stats.tasks["alpha"].bytes}

    assert cs.clear_cache(task=alpha) == 3  # a task object or its name
    assert cs.clear_cache(task="alpha") == 0
    after = cs.cache_stats()
    assert after.entries == 1 and set(after.tasks) == {"beta"}
    assert cs.clear_cache() == 1
    assert cs.cache_stats().entries == 0


# -- across processes ---------------------------------------------------------------------------

KEY_SCRIPT = """
import sys
import cascade as cs
from cascade.caching import CacheContext, stable_hash

@cs.task(cache=cs.InputHashCache())
def work(name, tags, options, when, ratio):
    return name

import datetime, decimal, fractions, uuid, pathlib
args = (
    "résumé",
    {"z", "a", "m", "q", "b", "k"},
    {"b": frozenset({"x", "y", "w"}), "a": [1, 2.5, None, True, b"raw", ("t", 3j)]},
    datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    fractions.Fraction(1, 3),
)
kwargs = {}
context = CacheContext(work, "work-1", args, kwargs)
extra = stable_hash(
    [decimal.Decimal("1.10"), uuid.UUID(int=7), pathlib.PurePosixPath("a/b"), range(1, 9, 2)]
)
print(work.cache.key_for(context), extra, hash("résumé"))
"""


@pytest.mark.slow
def test_key_is_stable_across_processes_and_hash_seeds(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "key_script.py"
    script.write_text(KEY_SCRIPT)
    outputs = [
        run_python(script, subprocess_env(cache_dir, PYTHONHASHSEED=seed)).split()
        for seed in ("1", "2", "12345")
    ]
    assert len({hash_of_str for *_, hash_of_str in outputs}) == 3  # the seeds really differ
    assert len({(key, extra) for key, extra, _ in outputs}) == 1
    assert len(outputs[0][0]) == 64


PIPELINE_SCRIPT = """
import sys
from pathlib import Path
import cascade as cs

COUNTER = Path(sys.argv[1])

def executed(name):
    with COUNTER.open("a") as handle:
        handle.write(name + "\\n")

@cs.task(cache=cs.InputHashCache())
def load(n):
    executed("load")
    return list(range(n))

@cs.task(cache=cs.InputHashCache())
def square(xs):
    executed("square")
    return [x * x for x in xs]

@cs.task(cache=cs.InputHashCache())
def total(xs, label=None):
    executed("total")
    return {"label": label, "total": sum(xs)}

print(cs.run(total(square(load(10)), label={"k": {1, 2}}), log_level=None))
"""


@pytest.mark.slow
def test_cache_survives_a_new_process(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE_SCRIPT)
    counter = tmp_path / "executed.txt"
    first = run_python(script, subprocess_env(cache_dir, PYTHONHASHSEED="1"), str(counter))
    assert counter.read_text().split() == ["load", "square", "total"]
    second = run_python(script, subprocess_env(cache_dir, PYTHONHASHSEED="2"), str(counter))
    assert second == first == "{'label': {'k': {1, 2}}, 'total': 285}"
    assert counter.read_text().split() == ["load", "square", "total"]  # nothing ran again


RACE_SCRIPT = """
import sys
from cascade.caching import DirectoryStore

import time
from pathlib import Path

store = DirectoryStore(sys.argv[1])
me = sys.argv[2]
rounds = int(sys.argv[3])
barrier = Path(sys.argv[4])
(barrier / me).touch()
while len(list(barrier.iterdir())) < 2:  # start together
    time.sleep(0.001)
bad = 0
for i in range(rounds):
    # Values of very different sizes, so a torn write could not pass as another value.
    value = {"writer": me, "round": i, "blob": me * (1 + (i * 7919) % 50000)}
    store.set("shared-key", value, task="race")
    found, got = store.get("shared-key")
    ok = found and set(got) == {"writer", "round", "blob"} and len(got["blob"]) == (
        1 + (got["round"] * 7919) % 50000
    ) and set(got["blob"]) == {got["writer"]}
    bad += not ok
stats = store.stats()
print(bad, stats.errors)
"""


@pytest.mark.slow
def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path) -> None:
    script = tmp_path / "race.py"
    script.write_text(RACE_SCRIPT)
    directory = tmp_path / "race-cache"
    env = subprocess_env(directory)
    rounds = "400"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(directory), name, rounds, str(barrier)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        outputs.append(out.split())
    assert outputs == [["0", "0"], ["0", "0"]]

    store = DirectoryStore(directory)
    found, value = store.get("shared-key")
    assert found and value["writer"] in ("a", "b")
    assert store.stats().entries == 1
    assert not list(directory.glob("*/.*.tmp"))  # no temporary file left behind


# -- stable hashing -------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


class Versioned:
    def __init__(self, name: str, revision: int) -> None:
        self.name = name
        self.revision = revision

    def __cascade_hash__(self) -> tuple[str, int]:
        return (self.name, self.revision)


def test_stable_hash_distinguishes_types_and_ignores_order() -> None:
    values = [
        None, True, 1, 1.0, "1", b"1", bytearray(b"1"), 1 + 0j, [1], (1,), {1}, frozenset({1}),
        {1: None}, Colour.RED, Point(1.0, 2.0), pathlib.PurePosixPath("1"), range(1),
        Versioned("a", 1), -0.0, 0.0, float("inf"), 2**200,
    ]  # fmt: skip
    digests = [stable_hash(v) for v in values]
    assert len(set(digests)) == len(values)
    assert stable_hash({"a": 1, "b": [2, 3]}) == stable_hash({"b": [2, 3], "a": 1})
    assert stable_hash({3, 1, 2}) == stable_hash({2, 3, 1})
    assert stable_hash([1, 2]) != stable_hash([2, 1])
    assert stable_hash(Versioned("a", 1)) == stable_hash(Versioned("a", 1))
    assert stable_hash(Versioned("a", 1)) != stable_hash(Versioned("a", 2))
    assert stable_hash(float("nan")) == stable_hash(float("nan"))


def test_stable_hash_refuses_cycles_depth_and_unknown_objects() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(UnhashableInputError, match=r"reference cycle.*\(at \[1\]\)"):
        stable_hash(loop)
    deep: list[Any] = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(UnhashableInputError, match="nested more than"):
        stable_hash(deep)
    with pytest.raises(UnhashableInputError, match=r"Opaque has no stable hash.*\['k'\]"):
        stable_hash({"k": Opaque()})
    shared = [1, 2]
    assert stable_hash([shared, shared]) == stable_hash([[1, 2], [1, 2]])  # sharing is no cycle


def test_stable_hash_of_numpy_and_pandas() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    grid = np.arange(6, dtype="int64").reshape(2, 3)
    assert stable_hash(grid) == stable_hash(np.arange(6, dtype="int64").reshape(2, 3))
    assert stable_hash(grid) != stable_hash(grid.reshape(3, 2))
    assert stable_hash(grid) != stable_hash(grid.astype("int32"))
    assert stable_hash(grid.T) == stable_hash(np.ascontiguousarray(grid.T))
    assert stable_hash(np.array([1, None], dtype=object)) != stable_hash(np.array([1, 2]))

    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    assert stable_hash(frame) == stable_hash(pd.DataFrame({"a": [1, 2], "b": ["x", None]}))
    assert stable_hash(frame) != stable_hash(frame.rename(columns={"a": "c"}))
    assert stable_hash(frame) != stable_hash(frame.set_index(pd.Index([5, 6])))
    assert stable_hash(frame["a"]) != stable_hash(frame["a"].astype("float64"))
    assert stable_hash(pd.array([1, None], dtype="Int64")) == stable_hash(
        pd.array([1, None], dtype="Int64")
    )


def test_import_cascade_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, cascade as cs\n"
        "@cs.task\n"
        "def f(x):\n    return x\n"
        "print(sorted(m for m in sys.modules if m.startswith('cascade.caching')))\n"
        "cs.InputHashCache()\n"
        "print(sorted(m for m in sys.modules if m.startswith('cascade.caching')))\n"
    )
    script = tmp_path / "light.py"
    script.write_text(textwrap.dedent(code))
    declared, used = run_python(script, subprocess_env(tmp_path / "c")).splitlines()
    assert declared == "[]", "declaring a task loads no caching module"
    assert "cascade.caching.hashing" in used and "cascade.caching.store" in used


def test_stable_hash_properties() -> None:
    import copy
    import random

    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            | st.frozensets(st.integers() | st.text(max_size=3), max_size=4)
        ),
        max_leaves=20,
    )

    @settings(max_examples=150, deadline=None)
    @given(values, st.randoms())
    def check(value: Any, rng: random.Random) -> None:
        assert stable_hash(value) == stable_hash(copy.deepcopy(value))
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            assert stable_hash(value) == stable_hash(dict(items))

    check()


def test_long_sequences_of_numbers_keep_the_keys_item_by_item_hashing_gave() -> None:
    # Long all-int and all-float sequences are encoded in one pass; the digests are the ones
    # the item-by-item encoding gave (recorded before that pass existed), so no key changes.
    ints = [*range(-50, 50), 2**70, -(2**65)]
    floats = (*[i / 7 for i in range(40)], float("inf"), -0.0, float("nan"))
    assert stable_hash(ints) == "75121cc5d56323000ea31ad19078c80eae3043fcdf7cbb6d676a8985c6bbd781"
    assert stable_hash(floats) == "1fb9d0d718577851f25d3a6e85cb5d2be5795899e9946e0bf6f6a734fd3ad272"
    mixed = [1, True] * 10  # bool is not int here: item by item
    assert stable_hash(mixed) == "e40707f92c66a13b010e7511f34e08478d5ad40444b96535df8ff279810741da"
    assert stable_hash(list(range(20))) != stable_hash(tuple(range(20)))
    assert stable_hash([1.0] * 20) != stable_hash([1] * 20)


def test_a_tasks_code_is_read_once_per_process_and_a_redefinition_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cascade.caching.inputs as inputs

    read: list[str] = []
    getsource = inputs.inspect.getsource

    def counting(obj: Any) -> str:
        read.append(getattr(obj, "__name__", "?"))
        return getsource(obj)

    monkeypatch.setattr(inputs.inspect, "getsource", counting)

    def define(factor: int) -> Any:
        @cs.task
        def scale(x: int) -> int:
            return x * factor

        return scale

    def checkpointed(target: Any) -> Any:
        # A policy of its own per run, as every recorded run has.
        return asyncio.run(cs.Engine().run(target, checkpoint=cs.InputHashCache()))

    scale = define(2)
    assert [checkpointed(scale(i)) for i in range(3)] == [0, 2, 4]
    assert read.count("scale") == 1
    again = define(3)  # a new function object: its code is read for itself
    assert checkpointed(again(1)) == 3
    assert read.count("scale") == 2
