"""The executor protocol with a run: the engine opens each executor once per run
(``cascade.executors.open_run``) and submits the run's calls to the handle it yields.

A new-style executor gets its ``RunInfo``; ``BaseExecutor`` subclasses written against
start/submit/shutdown keep working without a warning; an executor of the first protocol that
does not subclass ``BaseExecutor`` still runs a graph, with one ``DeprecationWarning`` naming
its class; two runs at once on one executor each see their own handle, the ``processes``
executor's included (their resources in the workers are theirs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import cascade as cs
from cascade.events import RunStarted
from cascade.executors import (
    BaseExecutor,
    Executor,
    ExecutorRun,
    LogShipping,
    RunInfo,
    TaskCall,
)
from cascade.executors.processes import ProcessExecutor


@cs.task
def add(a: int, b: int) -> int:
    return a + b


@cs.task
async def double(x: int) -> int:
    return x * 2


async def _call(call: TaskCall) -> Any:
    if call.is_async:
        return await call.fn(*call.args, **call.kwargs)
    return call.fn(*call.args, **call.kwargs)


# -- the protocol declares what the engine reads --------------------------------------------------


def test_the_protocol_declares_everything_the_engine_reads() -> None:
    declared = set(Executor.__annotations__) | {
        name for name in vars(Executor) if not name.startswith("_")
    }
    for member in (
        "name",
        "requires_pickle",
        "stops_on_cancel",
        "returns_references",
        "remote_resources",
        "reports_start",
        "submit_plain",
        "open_run",
        "submit",
        "materialize",
    ):
        assert member in declared, member
    assert isinstance(ProcessExecutor(), Executor)
    assert {"info", "submit", "submit_plain", "reports_start"} <= set(
        ExecutorRun.__annotations__
    ) | set(vars(ExecutorRun))


# -- the first protocol keeps working, with a warning --------------------------------------------


class LegacyExecutor:
    """Written against the first documented protocol: no BaseExecutor, no open_run, no
    reports_start, no submit_plain."""

    name: ClassVar[str] = "legacy"
    requires_pickle: ClassVar[bool] = False
    stops_on_cancel: ClassVar[bool] = False
    returns_references: ClassVar[bool] = False
    remote_resources: ClassVar[bool] = False

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def shutdown(self) -> None:
        self.events.append("shutdown")

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        self.events.append(f"submit {call.task_name}")
        return _call(call)

    async def materialize(self, values: list[Any]) -> list[Any]:
        return values


def test_a_legacy_executor_runs_a_graph_and_warns_once_naming_its_class() -> None:
    executor = LegacyExecutor()
    with pytest.warns(DeprecationWarning) as caught:
        assert cs.run(double(add(1, 2)).with_timeout(30), executor=executor, log_level=None) == 6
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1
    assert "test_run_handles.LegacyExecutor" in messages[0]
    assert "open_run" in messages[0] and "BaseExecutor" in messages[0]
    assert executor.events == ["start", "submit add", "submit double", "shutdown"]

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # once per class, not per run
        assert cs.run(add(2, 3), executor=executor, log_level=None) == 5
    assert executor.events[-1] == "shutdown"


class OldStyleSubclass(BaseExecutor):
    """A BaseExecutor subclass that only writes start/submit/shutdown."""

    name: ClassVar[str] = "old-style"

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def shutdown(self) -> None:
        self.events.append("shutdown")

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        self.events.append(f"submit {call.task_name}")
        return _call(call)


def test_a_base_executor_subclass_with_start_and_shutdown_needs_no_change() -> None:
    executor = OldStyleSubclass()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert cs.run(add(1, 2), executor=executor, log_level=None) == 3
    assert executor.events == ["start", "submit add", "shutdown"]


# -- a new-style executor gets its run ----------------------------------------------------------


class RunAware(BaseExecutor):
    """Keeps every handle it opened, and which handle each call went to."""

    name: ClassVar[str] = "run-aware"
    remote_resources: ClassVar[bool] = True

    def __init__(self) -> None:
        self.opened: list[Handle] = []
        self.closed: list[str] = []

    @contextlib.asynccontextmanager
    async def open_run(self, run: RunInfo) -> AsyncIterator[ExecutorRun]:
        handle = Handle(run)
        self.opened.append(handle)
        try:
            yield handle
        finally:
            self.closed.append(run.run_id)


class Handle:
    reports_start = False
    submit_plain = None

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.calls: list[TaskCall] = []
        self.gate: asyncio.Event | None = None

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        self.calls.append(call)
        return self._run(call)

    async def _run(self, call: TaskCall) -> Any:
        if call.resources:
            # Set up "where the call runs", from the definitions the run gave the executor.
            definition = self.info.resource_providers[call.resources["tag"]]
            return f"{call.args[0]}:{next(definition.func())}"
        if self.gate is not None and call.task_name == "wait_here":
            await self.gate.wait()
        return await _call(call)


@cs.resource(name="runs_tag")
def runs_tag() -> Iterator[str]:
    yield "tagged"


@cs.task
def tagged(x: int, tag: str = cs.inject("runs_tag")) -> str:
    return f"{x}:{tag}"


def test_a_new_style_executor_gets_its_run_info() -> None:
    executor = RunAware()
    engine = cs.Engine(executor=executor, log_level=None)
    started: list[RunStarted] = []
    engine.bus.subscribe(RunStarted, started.append)

    async def scenario() -> tuple[str, asyncio.AbstractEventLoop]:
        return await engine.run(tagged(1)), asyncio.get_running_loop()

    value, loop = asyncio.run(scenario())
    assert value == "1:tagged"
    (handle,) = executor.opened
    info = handle.info
    assert info.run_id == started[0].run_id and executor.closed == [info.run_id]
    assert info.loop is loop
    assert set(info.resource_providers) == {"runs_tag"}
    assert info.logs is None  # a run that captures nothing: workers collect nothing
    assert [c.task_name for c in handle.calls] == ["tagged"]


def test_a_recorded_run_tells_its_executors_how_to_ship_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASCADE_HOME", str(tmp_path))
    monkeypatch.delenv("CASCADE_CAPTURE_LOGS", raising=False)
    executor = RunAware()
    options = cs.RecordOptions(logs="ERROR", max_log_records=7)
    assert cs.run(add(1, 2), executor=executor, record=True, record_options=options) == 3
    shipping = executor.opened[0].info.logs
    assert isinstance(shipping, LogShipping)
    assert shipping.level == 40 and shipping.limit == 7


@cs.task
def wait_here(x: int) -> int:
    return x


def test_two_runs_at_once_on_one_executor_each_see_their_own_handle() -> None:
    executor = RunAware()

    async def scenario() -> list[Any]:
        engine = cs.Engine(executor=executor, log_level=None)
        first = asyncio.ensure_future(engine.run(add(wait_here(1), 1)))
        while len(executor.opened) < 1 or not executor.opened[0].calls:
            await asyncio.sleep(0)
        gate = executor.opened[0].gate = asyncio.Event()
        second = asyncio.ensure_future(engine.run(double(wait_here(10))))
        while len(executor.opened) < 2 or not executor.opened[1].calls:
            await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(first, second))

    assert asyncio.run(scenario()) == [2, 20]
    one, two = executor.opened
    assert one.info.run_id != two.info.run_id
    assert sorted(executor.closed) == sorted([one.info.run_id, two.info.run_id])
    assert {c.run_id for c in one.calls} == {one.info.run_id}
    assert {c.run_id for c in two.calls} == {two.info.run_id}
    assert [c.task_name for c in one.calls] == ["wait_here", "add"]
    assert [c.task_name for c in two.calls] == ["wait_here", "double"]


# -- two runs at once on one processes executor ------------------------------------------------


@cs.resource(name="runs_session")
def runs_session() -> Iterator[str]:
    directory = Path(os.environ["CASCADE_RUNS_TEST_DIR"])
    ident = f"{os.getpid()}-{os.urandom(4).hex()}"
    (directory / f"setup-{ident}").touch()
    yield ident
    (directory / f"teardown-{ident}").touch()


@cs.task
def session_of(i: int, session: str = cs.inject("runs_session")) -> str:
    (Path(os.environ["CASCADE_RUNS_TEST_DIR"]) / f"done-{i}").touch()
    return session


@cs.task
def hold(session: str = cs.inject("runs_session")) -> tuple[str, bool]:
    """Holds its worker until the test says so; then whether its session is still up."""
    import time

    directory = Path(os.environ["CASCADE_RUNS_TEST_DIR"])
    (directory / "holding").touch()
    while not (directory / "go").exists():
        time.sleep(0.01)
    return session, not (directory / f"teardown-{session}").exists()


def _names(directory: Path, prefix: str) -> set[str]:
    return {p.name[len(prefix) + 1 :] for p in directory.glob(f"{prefix}-*")}


async def _until(path: Path) -> None:
    while not path.exists():
        await asyncio.sleep(0.01)


async def test_two_runs_at_once_on_one_processes_executor_keep_their_own_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASCADE_RUNS_TEST_DIR", str(tmp_path))
    executor = ProcessExecutor(max_workers=2)
    engine = cs.Engine(executor=executor, log_level=None)
    long_run = asyncio.ensure_future(engine.run(hold()))
    await _until(tmp_path / "holding")
    (long_session,) = _names(tmp_path, "setup")
    short_run = asyncio.ensure_future(engine.run([session_of(1), session_of(2)]))
    await _until(tmp_path / "done-1")
    await _until(tmp_path / "done-2")
    (tmp_path / "go").touch()
    short = await short_run
    # The short run had a session of its own (the long run's worker was busy), and the long
    # run's session was still up when its call ended: each run's end tears down its own.
    assert len(set(short)) == 1 and short[0] != long_session
    assert await long_run == (long_session, True)
    assert _names(tmp_path, "setup") == _names(tmp_path, "teardown") == {short[0], long_session}
    assert not executor._open_runs and executor._pool is None


def test_a_subclass_overriding_start_of_a_run_scoped_executor_is_told_to_use_open_run() -> None:
    with pytest.warns(DeprecationWarning, match=r"Tuned overrides start of ProcessExecutor"):

        class Tuned(ProcessExecutor):
            async def start(self) -> None:
                await super().start()

    assert Tuned.start is not ProcessExecutor.start
