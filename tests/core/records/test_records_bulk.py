"""Recording a wide run without an object per task: successes travel as columns
(``TasksSucceeded``, ``SucceededColumns``) into the SQLite store, and so do new checkpoints
(``CheckpointColumns``); calls without inputs of a task whose checkpoint is saved skip the
checkpoint step, while a resume still restores them."""

from __future__ import annotations

import asyncio
import json
import pickle
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.events import TasksSucceeded
from cascade.graph.build import build_graph
from cascade.records import (
    CHECKPOINT,
    SUCCEEDED,
    Checkpoint,
    CheckpointColumns,
    RecordBatch,
    RecordedAttempt,
    RecordedRun,
    SQLiteRunStore,
    SucceededColumns,
)
from cascade.records.checkpoint import CheckpointPolicy
from cascade.records.recorder import Recorder
from cascade.runtime.scheduler import LAUNCH_BUDGET

pytestmark = pytest.mark.timeout(120)

CALLS: Counter[str] = Counter()


@cs.task
async def tick() -> int:
    CALLS["tick"] += 1
    return 1


@cs.task
def total(*values: int) -> int:
    CALLS["total"] += 1
    return sum(values)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def test_bulk_successes_are_columns_of_equal_length_that_agree_with_attempts() -> None:
    seen: list[TasksSucceeded] = []
    bus = cs.MessageBus()
    bus.subscribe(TasksSucceeded, seen.append)
    tries = Counter[str]()

    @cs.task(retries=1)  # the policy route: its success joins the direct route's columns
    async def flaky() -> int:
        tries["flaky"] += 1
        if tries["flaky"] == 1:
            raise ConnectionError("first try")
        return 5

    @cs.task
    async def echo(x: int) -> int:
        return x

    width = 40  # ticks and echoes finish in the same passes: columns of several tasks
    target = total(flaky(), *[t for i in range(width) for t in (tick(), echo(i))])
    assert asyncio.run(cs.Engine(bus=bus).run(target)) == 5 + width + sum(range(width))
    columns = [
        (
            b.task_ids,
            b.task_names,
            b.parent_task_ids,
            b.attempt_numbers,
            b.start_times,
            b.end_times,
            b.executors,
        )
        for b in seen
    ]
    for group in columns:
        assert all(type(column) is tuple for column in group)
        assert len({len(column) for column in group}) == 1
    attempts = [a for b in seen for a in b.attempts]
    assert attempts == [row for group in columns for row in zip(*group, strict=True)]
    names = Counter(a[1] for a in attempts)
    assert names == {"tick": width, "echo": width, "flaky": 1, "total": 1}
    assert any(len(set(b.task_names)) > 1 for b in seen)
    assert [a[3] for a in attempts if a[1] == "flaky"] == [2]
    assert all(a[6] == "local" and a[4] <= a[5] for a in attempts)


def test_a_batch_reads_its_rows_then_its_success_columns_as_attempts() -> None:
    failed = RecordedAttempt("a-1", "a", "Failed", 1, 1.0, 2.0, 1.0, "local", error="boom")
    columns = SucceededColumns(
        ("a-1", "b-2"), ("a", "b"), (None, "p-0"), (2, 1), (3.0, 4.0), (3.5, 6.0), ("local",) * 2
    )
    batch = RecordBatch("run", attempts=[failed], successes=[columns])
    assert batch  # successes alone make a batch worth writing
    assert RecordBatch("run", successes=[columns])
    rows = batch.all_attempts()
    assert rows[0] == failed
    assert rows[1:] == [
        RecordedAttempt("a-1", "a", SUCCEEDED, 2, 3.0, 3.5, 0.5, "local", None),
        RecordedAttempt("b-2", "b", SUCCEEDED, 1, 4.0, 6.0, 2.0, "local", "p-0"),
    ]


def test_a_recorded_wide_run_stores_every_success_and_reads_back_each_attempt(home: Path) -> None:
    width = 300
    assert cs.run(total(*[tick() for _ in range(width)]), record=True, log_level=None) == width
    store = SQLiteRunStore()
    (run,) = store.runs()
    attempts = store.attempts(run.run_id)
    assert len(attempts) == width + 1
    assert {a.status for a in attempts} == {SUCCEEDED}
    assert len({a.task_id for a in attempts}) == width + 1
    assert all(a.duration == pytest.approx(a.ended - a.started) for a in attempts)
    assert dict(run.tasks) == {SUCCEEDED: width + 1}


def test_attempts_an_earlier_cascade_stored_as_rows_still_read(home: Path) -> None:
    assert cs.run(total(tick(), tick()), record=True, log_level=None) == 2
    store = SQLiteRunStore()
    (run,) = store.runs()
    before = store.attempts(run.run_id)
    rows = [tuple(a)[:-1] for a in before]  # every field but retry_delay, as rows were stored
    database = home / "runs.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("DELETE FROM attempt_batches WHERE run_id = ?", (run.run_id,))
        conn.execute(
            "INSERT INTO attempt_batches (run_id, seq, attempts) VALUES (?, 1, ?)",
            (run.run_id, pickle.dumps(rows, protocol=4)),
        )
    assert SQLiteRunStore(database).attempts(run.run_id) == before


def _count_lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    looked: Counter[str] = Counter()
    lookup = CheckpointPolicy.lookup

    def counting(self: CheckpointPolicy, context: cs.CacheContext) -> tuple[bool, Any]:
        looked[context.task_name] += 1
        return lookup(self, context)

    monkeypatch.setattr(CheckpointPolicy, "lookup", counting)
    return looked


def test_calls_without_inputs_skip_a_saved_checkpoint_and_a_resume_restores_them(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked = _count_lookups(monkeypatch)
    width = 6 * LAUNCH_BUDGET
    target = total(*[tick() for _ in range(width)])
    assert cs.run(target, record=True, log_level=None) == width
    # Once a call has saved the key every call of `tick` shares, the rest need no step: only
    # the calls launched before the first one finished (a launch budget or two) are looked up.
    assert 1 <= looked["tick"] <= 2 * LAUNCH_BUDGET
    assert looked["total"] == 1
    assert dict(CALLS) == {"tick": width, "total": 1}

    looked.clear()
    CALLS.clear()
    assert cs.run(target, record=True, resume="last", log_level=None) == width
    assert not CALLS  # every call took its checkpoint
    assert looked["tick"] == width  # a resume looks every call up
    store = SQLiteRunStore()
    resumed = store.runs(limit=1)[0]
    reasons = Counter(a.reason for a in store.attempts(resumed.run_id))
    assert reasons == {CHECKPOINT: width + 1}


class SettlingPolicy:
    """A checkpoint policy that, like the recorder's, settles a task once it saved the key
    its calls without inputs share."""

    def __init__(self) -> None:
        self.settled: dict[int, Any] = {}
        self.lookups: Counter[str] = Counter()
        self.saves: Counter[str] = Counter()

    def lookup(self, context: cs.CacheContext) -> tuple[bool, Any]:
        self.lookups[context.task_name] += 1
        return False, None

    def save(self, context: cs.CacheContext, value: Any) -> None:
        self.saves[context.task_name] += 1
        if not context.args and not context.kwargs:
            self.settled[id(context.task)] = context.task


def test_the_engine_skips_the_checkpoint_step_only_for_settled_calls_without_inputs() -> None:
    @cs.task
    async def echo(x: int) -> int:
        return x

    policy = SettlingPolicy()
    width = 6 * LAUNCH_BUDGET
    target = total(*[tick() for _ in range(width)], *[echo(i) for i in range(width)])
    run = cs.Engine().run(target, checkpoint=policy)
    assert asyncio.run(run) == width + sum(range(width))
    # Settled once a call has saved: only the calls launched before that are looked up.
    assert 1 <= policy.lookups["tick"] == policy.saves["tick"] <= 2 * LAUNCH_BUDGET
    assert policy.lookups["echo"] == policy.saves["echo"] == width  # inputs: every call
    assert policy.lookups["total"] == policy.saves["total"] == 1


def test_a_settled_attribute_that_is_not_a_mapping_is_an_error_naming_the_policy() -> None:
    class Odd(SettlingPolicy):
        def __repr__(self) -> str:
            return "Odd()"

    CALLS.clear()
    policy = Odd()
    policy.settled = True  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"checkpoint policy Odd\(\): its 'settled' must be a"):
        asyncio.run(cs.Engine().run(tick(), checkpoint=policy))
    assert not CALLS  # nothing ran


@cs.task
def double(x: int) -> int:
    return 2 * x


@cs.task
def add_all(values: list[int], more: int) -> int:
    return sum(values) + more


@pytest.mark.parametrize("shape", ["tasks", "with a map", "with a param"])
def test_the_graph_snapshot_names_every_node_and_its_kind(home: Path, shape: str) -> None:
    if shape == "tasks":
        target = total(tick(), tick())
        expected = {("tick", "task"), ("total", "task")}
    elif shape == "with a map":
        target = add_all(double.map([1, 2, 3]), total(tick()))
        expected = {("double", "map"), ("tick", "task"), ("total", "task"), ("add_all", "task")}
    else:
        target = add_all(double.map([1]), cs.Param("extra", type=int, default=4))
        expected = {("double", "map"), ("param:extra", "param"), ("add_all", "task")}
    assert cs.run(target, record=True, log_level=None) is not None
    store = SQLiteRunStore()
    (run,) = store.runs()
    nodes = store.graph(run.run_id)
    assert {(node.task_name, node.kind) for node in nodes} == expected
    assert len({node.task_id for node in nodes}) == len(nodes)


# -- checkpoints as columns ----------------------------------------------------------------------


def test_a_batch_reads_its_checkpoint_rows_then_its_columns_as_checkpoints() -> None:
    reused = Checkpoint("a-1", "k1", "entry/old")
    columns = CheckpointColumns("entry/1", ("b-2", "c-3"), ("k2", "k3"))
    batch = RecordBatch("run", checkpoints=[reused], checkpoint_columns=[columns])
    assert RecordBatch("run", checkpoint_columns=[columns])  # columns alone are worth writing
    assert batch.all_checkpoints() == [
        reused,
        Checkpoint("b-2", "k2", "entry/1"),
        Checkpoint("c-3", "k3", "entry/1"),
    ]


def test_the_sqlite_store_keeps_checkpoint_rows_and_columns_alike_and_adds_to_an_entry(
    home: Path,
) -> None:
    store = SQLiteRunStore()
    run = RecordedRun(run_id="r1", target="t", status="Running", started=1.0)
    odd = 'a "quoted"\\ name é'  # task ids are JSON text in the store: escaped as json does
    store.write(
        RecordBatch(
            "r1",
            seq=1,
            start=run,
            checkpoints=[Checkpoint("a-1", "k1", "e/1")],
            checkpoint_columns=[CheckpointColumns("e/2", ("b-2", odd), ("k2", "k3"))],
        )
    )
    store.write(  # a later batch adding to an entry the store holds already
        RecordBatch("r1", seq=2, checkpoint_columns=[CheckpointColumns("e/1", ("d-4",), ("k4",))])
    )
    assert sorted(store.checkpoints("r1")) == sorted(
        [
            Checkpoint("a-1", "k1", "e/1"),
            Checkpoint("d-4", "k4", "e/1"),
            Checkpoint("b-2", "k2", "e/2"),
            Checkpoint(odd, "k3", "e/2"),
        ]
    )
    with sqlite3.connect(home / "runs.sqlite3") as conn:
        texts = dict(conn.execute("SELECT entry, keys FROM checkpoint_entries"))
    # The text json.dumps made before checkpoints came as columns: earlier stores read alike.
    assert texts["e/1"] == json.dumps([["k1", "a-1"], ["k4", "d-4"]], separators=(",", ":"))
    assert texts["e/2"] == json.dumps([["k2", "b-2"], ["k3", odd]], separators=(",", ":"))


def test_checkpoints_handed_over_while_the_recorder_takes_them_are_each_written_once(
    home: Path,
) -> None:
    # The event loop hands checkpoints over (``Recorder.checkpoint``) while the recorder's
    # thread takes what has arrived: none may be lost or taken twice, and each key keeps its
    # own result, in the order they came.
    store = SQLiteRunStore()
    graph = build_graph([tick()])
    recorder = Recorder(store, graph, target="tick", checkpoints=store.checkpoint_store())
    recorder.run_id = "r" * 32
    count = 20_000
    done = threading.Event()

    def hand_over() -> None:
        for i in range(count):
            recorder.checkpoint(f"t-{i}", f"k{i}", pickle.dumps(i))
        done.set()

    producer = threading.Thread(target=hand_over)
    batches: list[RecordBatch] = []
    producer.start()
    while True:
        finished = done.is_set()
        batch = RecordBatch(recorder.run_id)
        recorder._write_checkpoints(batch)
        batches.append(batch)
        if finished:
            break
    producer.join()
    rows = [c for b in batches for c in b.all_checkpoints()]
    assert [(c.task_id, c.key) for c in rows] == [(f"t-{i}", f"k{i}") for i in range(count)]
    assert len([b for b in batches if b.checkpoint_columns]) > 1  # taken while arriving
    entries = store.checkpoint_store()
    for batch in batches:
        for columns in batch.checkpoint_columns:
            hit, stored = entries.get(columns.entry)
            assert hit
            values = stored["values"]
            assert [pickle.loads(values[key]) for key in columns.keys] == [
                int(key[1:]) for key in columns.keys
            ]
            assert batch.entry_sizes[columns.entry] == sum(map(len, values.values()))


LEFT_WAITING = threading.Event()
RELEASED: list[bool] = [False]


@cs.task
async def echo_or_wait(i: int) -> int:
    CALLS[f"echo-{i}"] += 1
    if i % 2 and not RELEASED[0]:
        await asyncio.Event().wait()  # until the run is cancelled
    return i


@cs.task
def halves_done(values: list[int]) -> int:
    return len(values)


@cs.task
async def signal(count: int) -> int:
    LEFT_WAITING.set()  # halves_done settled (its checkpoint saved) before this started
    if not RELEASED[0]:
        await asyncio.Event().wait()
    return count


@cs.task
def add(values: list[int], marker: int) -> int:
    return sum(values) + marker


def test_a_run_cancelled_mid_fan_out_keeps_a_checkpoint_for_each_success_it_recorded(
    home: Path,
) -> None:
    width = 4 * LAUNCH_BUDGET
    RELEASED[0] = False
    LEFT_WAITING.clear()

    def target() -> Any:
        calls = [echo_or_wait(i) for i in range(width)]
        return add(calls, signal(halves_done(calls[0::2])))

    async def cancelled() -> None:
        run = asyncio.ensure_future(cs.run_async(target(), log_level=None, record=True))
        while not LEFT_WAITING.is_set():  # the even calls settled, and their dependent
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(cancelled())
    store = SQLiteRunStore()
    (first,) = store.runs()
    assert first.status == "Cancelled"
    succeeded = {a.task_id for a in store.attempts(first.run_id) if a.status == SUCCEEDED}
    assert len(succeeded) == width // 2 + 1  # the even calls and halves_done
    assert {c.task_id for c in store.checkpoints(first.run_id)} == succeeded

    CALLS.clear()
    RELEASED[0] = True
    assert cs.run(target(), record=True, resume="last", log_level=None) == sum(range(width)) + (
        width // 2
    )
    assert set(CALLS) == {f"echo-{i}" for i in range(1, width, 2)}  # only the odd ones ran
    resumed = store.runs(limit=1)[0]
    restored = Counter(
        a.task_name for a in store.attempts(resumed.run_id) if a.reason == CHECKPOINT
    )
    assert restored == {"echo_or_wait": width // 2, "halves_done": 1}
