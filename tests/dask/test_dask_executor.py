"""The dask executor on a real two-worker LocalCluster: results, data staying on the workers,
async tasks, worker-measured event times, trace context, resources and pickling errors.

Task functions are module-level so the workers import them; what happens on a worker is
observed through files in ``tmp_path`` or through values the tasks return."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_helpers import scheduler_task_count, set_env, wait_until, worker_pids

import cascade as cs
from cascade.events import (
    Event,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskRetrying,
)
from cascade.executors import TaskCall, UnpicklableTaskError
from cascade_dask import DaskExecutor, DaskResult

pytestmark = pytest.mark.timeout(60)

DRIVER_PID = os.getpid()


# -- tasks ----------------------------------------------------------------------------------


def nap(seconds: float) -> None:
    """Sleep in small steps, so a cancelled call is interrupted promptly."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


@cs.task
def inc(x: int) -> int:
    return x + 1


@cs.task
def add(a: int, b: int = 0) -> int:
    return a + b


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


@cs.task
def pid() -> int:
    return os.getpid()


@cs.task
async def async_info(delay: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


class StaysOnWorkers:
    """A payload that refuses to be unpickled in the driver process: if the driver ever fetched
    it, the run would fail."""

    def __init__(self, payload: bytes, driver_pid: int) -> None:
        self.payload = payload
        self.driver_pid = driver_pid

    def __reduce__(self) -> Any:
        return (_rebuild, (self.payload, self.driver_pid))


def _rebuild(payload: bytes, driver_pid: int) -> StaysOnWorkers:
    if os.getpid() == driver_pid:
        raise RuntimeError("the intermediate result was fetched by the driver")
    return StaysOnWorkers(payload, driver_pid)


@cs.task
def produce(size: int, driver_pid: int) -> StaysOnWorkers:
    return StaysOnWorkers(b"x" * size, driver_pid)


@cs.task
def consume(blob: StaysOnWorkers, extra: StaysOnWorkers | None = None) -> int:
    return len(blob.payload) + (len(extra.payload) if extra is not None else 0)


@cs.task
def timed(folder: str, i: int) -> tuple[float, float]:
    """Its own clock readings around its work, which is to wait for ``folder/gate``."""
    start = time.time()
    Path(folder, f"started-{i}").touch()
    gate = Path(folder, "gate")
    deadline = time.monotonic() + 60  # only stops a broken test from hanging
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return start, time.time()


@cs.task
def flaky(counter: str) -> int:
    with open(counter, "a") as handle:
        handle.write("x")
    attempts = Path(counter).stat().st_size
    if attempts < 2:
        raise ConnectionError(f"attempt {attempts} failed")
    return attempts


# -- results --------------------------------------------------------------------------------


def test_a_graph_gives_the_same_results_as_on_the_local_executor(client: Any) -> None:
    a = inc(1)
    b = add(a, b=inc(a))
    target = {"sum": add(b, 10), "list": total([a, b, 3]), "plain": inc(41)}
    on_dask = cs.run(target, executor=DaskExecutor(client=client), log_level=None)
    assert on_dask == cs.run(target, log_level=None)
    assert on_dask == {"sum": 15, "list": 10, "plain": 42}


def test_tasks_run_in_the_worker_processes(client: Any) -> None:
    pids = cs.run([pid() for _ in range(6)], executor=DaskExecutor(client=client), log_level=None)
    assert set(pids) <= set(worker_pids(client).values())
    assert DRIVER_PID not in pids


def test_executor_by_name_starts_and_closes_a_temporary_local_cluster() -> None:
    @cs.task
    def where() -> str:
        from distributed import get_worker

        return str(get_worker().scheduler.address)

    address = cs.run(where(), executor="dask", log_level=None)
    assert address.startswith("tcp://127.0.0.1:")
    distributed = pytest.importorskip("distributed")
    with pytest.raises((OSError, TimeoutError)):
        distributed.Client(address, timeout=1, set_as_default=False)


def test_an_existing_cluster_is_left_running(client: Any, dask_cluster: Any) -> None:
    executor = DaskExecutor(address=dask_cluster.scheduler_address)
    assert cs.run(inc(1), executor=executor, log_level=None) == 2
    assert cs.run(inc(2), executor=executor, log_level=None) == 3  # reconnects per run
    assert len(client.scheduler_info()["workers"]) == 2
    assert wait_until(lambda: scheduler_task_count(client) == 0)  # its results were released


def test_an_engine_can_take_the_executor_instance(client: Any) -> None:
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    assert asyncio.run(engine.run(add(inc(1), 2))) == 4


def test_an_unreachable_scheduler_is_named() -> None:
    executor = DaskExecutor("tcp://127.0.0.1:9", connect_timeout=1)
    with pytest.raises(ConnectionError, match=r"cannot connect to the Dask scheduler at tcp://127"):
        cs.run(inc(1), executor=executor, log_level=None)


async def test_an_asynchronous_client_on_the_running_loop_is_used_as_is(
    dask_cluster: Any, client: Any
) -> None:
    distributed = pytest.importorskip("distributed")
    async_client = await distributed.Client(
        dask_cluster.scheduler_address, asynchronous=True, set_as_default=False
    )
    try:
        executor = DaskExecutor(client=async_client)
        engine = cs.Engine(executor=executor, log_level=None)
        assert await engine.run(add(inc(1), 2)) == 4
        assert executor.client is None  # released after the run...
        assert async_client.status == "running"  # ...but the user's client is left open
        assert await engine.run(inc(5)) == 6
    finally:
        await async_client.close()


def test_concurrent_runs_can_share_an_executor_and_keep_their_resources_apart(
    client: Any, resource_dir: Path
) -> None:
    engine = _engine(client)

    async def both() -> list[Any]:
        first = engine.run(query.map(range(3), delay=0.2))
        second = engine.run(query.map(range(3, 6), delay=0.05))
        return list(await asyncio.gather(first, second))

    first, second = asyncio.run(both())
    assert [i for i, _ in first] == [0, 1, 2] and [i for i, _ in second] == [3, 4, 5]
    # Each run set up its own instance on each worker it used, and tore each one down.
    expected = len({p for _, p in first}) + len({p for _, p in second})
    assert len(_events(resource_dir, "setup")) == expected
    assert len(_events(resource_dir, "teardown")) == expected


# -- data stays on the workers ----------------------------------------------------------------


def test_upstream_results_move_worker_to_worker_not_through_the_driver(client: Any) -> None:
    size = 2_000_000
    blob = produce(size, DRIVER_PID)
    other = produce(10, DRIVER_PID)
    result = cs.run(
        consume(blob, extra=other), executor=DaskExecutor(client=client), log_level=None
    )
    assert result == size + 10


def test_the_guard_would_catch_a_fetch_by_the_driver(client: Any) -> None:
    # A target must come back to the driver, so here the payload is fetched and refuses.
    with pytest.raises(RuntimeError, match="fetched by the driver"):
        cs.run(produce(10, DRIVER_PID), executor=DaskExecutor(client=client), log_level=None)


def test_task_results_are_references_to_dask_futures_until_needed(client: Any) -> None:
    bus = cs.MessageBus()
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionFinished, finished.append)
    assert cs.run(add(inc(1), 1), executor=DaskExecutor(client=client), bus=bus) == 3
    previews = {event.task_name: event.result_preview for event in finished}
    assert previews["inc"] is not None and previews["inc"].startswith("<on dask: int 'inc-")


def test_materialize_fetches_references_inside_containers_in_one_go(client: Any) -> None:
    async def scenario() -> list[Any]:
        executor = DaskExecutor(client=client)
        await executor.start()
        try:
            calls = [TaskCall(f"inc-{i}", "inc", inc.fn, (i,), {}, False, "r1") for i in range(3)]
            refs = [await executor.submit(call) for call in calls]
            assert all(isinstance(ref, DaskResult) for ref in refs)
            return await executor.materialize([refs, {"x": refs[0]}, "plain", refs[2]])
        finally:
            await executor.shutdown()

    assert asyncio.run(scenario()) == [[1, 2, 3], {"x": 1}, "plain", 3]


# -- async tasks, events, trace context ---------------------------------------------------------


def test_async_tasks_run_on_the_workers(client: Any) -> None:
    infos = cs.run(
        [async_info(0.2) for _ in range(4)], executor=DaskExecutor(client=client), log_level=None
    )
    assert {info["pid"] for info in infos} <= set(worker_pids(client).values())
    assert {info["thread"] for info in infos} == {"cascade-dask-async"}


def test_events_carry_the_start_and_end_measured_on_the_worker(client: Any, tmp_path: Path) -> None:
    bus = cs.MessageBus()
    events: list[Event] = []
    bus.subscribe(Event, events.append)
    # Three calls on two single-threaded workers: the first two hold their worker until the
    # gate opens, so the third is submitted before the gate opens but begins after it.
    opened_at: list[float] = []

    def open_gate() -> None:
        wait_until(lambda: len(list(tmp_path.glob("started-*"))) >= 2, timeout=60)
        opened_at.append(time.time())
        (tmp_path / "gate").touch()

    opener = threading.Thread(target=open_gate)
    opener.start()
    try:
        readings = cs.run(
            [timed(str(tmp_path), i) for i in range(3)],
            executor=DaskExecutor(client=client),
            bus=bus,
            log_level=None,
        )
    finally:
        (tmp_path / "gate").touch()
        opener.join()
    finished = [e for e in events if isinstance(e, TaskExecutionFinished)]
    started = {e.task_id: e for e in events if isinstance(e, TaskExecutionStarted)}
    assert len(finished) == 3
    assert all(e.status == "Succeeded" and e.executor == "dask" for e in finished)
    # Each call's own clock readings lie inside the window reported for one of them...
    for worker_start, worker_end in readings:
        assert any(e.start_time <= worker_start < worker_end <= e.timestamp for e in finished)
    for e in finished:
        assert e.duration == pytest.approx(e.timestamp - e.start_time)
        assert started[e.task_id].timestamp <= e.start_time
    # ...and a window begins when the call began on its worker, not when the driver submitted
    # it: only the third call began after the gate opened, though all three were submitted
    # before.
    assert [e.start_time >= opened_at[0] for e in finished].count(True) == 1


def test_retries_publish_events_with_worker_times(client: Any, tmp_path: Path) -> None:
    bus = cs.MessageBus()
    events: list[Event] = []
    bus.subscribe(Event, events.append)
    counter = str(tmp_path / "attempts")
    result = cs.run(
        flaky(counter).with_retry(2),
        executor=DaskExecutor(client=client),
        bus=bus,
        log_level=None,
    )
    assert result == 2
    retrying = [e for e in events if isinstance(e, TaskRetrying)]
    assert [e.attempt for e in retrying] == [1]
    assert "ConnectionError: attempt 1 failed" in (retrying[0].error or "")
    finished = [e for e in events if isinstance(e, TaskExecutionFinished)]
    assert [(e.attempt, e.status) for e in finished] == [(1, "Failed"), (2, "Succeeded")]
    assert all(e.start_time <= e.timestamp for e in finished)


TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="")


@contextlib.contextmanager
def enter_trace(carrier: dict[str, str]) -> Iterator[None]:
    token = TRACE.set(carrier.get("traceparent", ""))
    try:
        yield
    finally:
        TRACE.reset(token)


@cs.task
def read_trace() -> str:
    return TRACE.get()


@cs.task
async def read_trace_async() -> str:
    await asyncio.sleep(0)
    return TRACE.get()


def test_trace_context_travels_with_the_call_to_sync_and_async_tasks(client: Any) -> None:
    def hook(call: TaskCall) -> None:
        call.carrier["traceparent"] = f"trace-of-{call.task_name}"
        call.worker_setup.append(enter_trace)

    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    engine.add_call_hook(hook)
    result = asyncio.run(engine.run([read_trace(), read_trace_async()]))
    assert result == ["trace-of-read_trace", "trace-of-read_trace_async"]


# -- pickling ---------------------------------------------------------------------------------


@cs.task
def uses(value: Any, counter: str) -> str:
    Path(counter).write_text("ran")
    return "ran"


def test_an_unpicklable_argument_fails_before_submission_naming_task_and_value(
    client: Any, tmp_path: Path
) -> None:
    counter = tmp_path / "ran"
    with pytest.raises(UnpicklableTaskError) as caught:
        cs.run(
            uses(threading.Lock(), str(counter)),
            executor=DaskExecutor(client=client),
            log_level=None,
        )
    message = str(caught.value)
    assert "task 'uses'" in message and "argument 0" in message and "lock" in message
    assert not counter.exists()


# -- resources on the workers -------------------------------------------------------------------


def _record(directory: str, event: str) -> None:
    Path(directory, f"{event}-{os.getpid()}-{time.monotonic_ns()}").touch()


def _events(directory: Path, event: str) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in directory.glob(f"{event}-*"))


@cs.resource
def conn() -> Iterator[dict[str, Any]]:
    directory = os.environ["CASCADE_DASK_TEST_DIR"]
    _record(directory, "setup")
    yield {"pid": os.getpid(), "dir": directory}
    _record(directory, "teardown")


@cs.resource
def session(conn: dict[str, Any] = cs.inject("conn")) -> Iterator[str]:
    _record(conn["dir"], "session")
    yield f"session-on-{conn['pid']}"
    _record(conn["dir"], "session_closed")


@cs.resource(scope="task")
def scratch() -> Iterator[str]:
    directory = os.environ["CASCADE_DASK_TEST_DIR"]
    _record(directory, "scratch")
    yield "scratch"
    _record(directory, "scratch_closed")


@cs.resource
async def async_pool() -> Any:
    await asyncio.sleep(0)
    yield {"loop": id(asyncio.get_running_loop())}


@cs.task
def query(i: int, delay: float, db: dict[str, Any] = cs.inject("conn")) -> tuple[int, int]:
    nap(delay)
    return i, db["pid"]


@cs.task
def query_session(s: str = cs.inject("session"), tmp: str = cs.inject("scratch")) -> str:
    return f"{s}+{tmp}"


@cs.task
async def uses_async_pool(pool: dict[str, Any] = cs.inject("async_pool")) -> bool:
    return pool["loop"] == id(asyncio.get_running_loop())


@cs.task
def fail_after(x: Any) -> None:
    raise ValueError("task failed")


@pytest.fixture
def resource_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Any) -> Path:
    # Resource providers read the directory from the environment of the worker processes.
    client.run(set_env, "CASCADE_DASK_TEST_DIR", str(tmp_path))
    monkeypatch.setenv("CASCADE_DASK_TEST_DIR", str(tmp_path))
    return tmp_path


def _engine(client: Any) -> cs.Engine:
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    for definition in (conn, session, scratch, async_pool):
        engine.register(definition)
    return engine


def test_resources_are_set_up_once_per_run_on_each_worker_and_torn_down(
    client: Any, resource_dir: Path
) -> None:
    engine = _engine(client)
    results = asyncio.run(engine.run(query.map(range(8), delay=0.1)))
    assert [i for i, _ in results] == list(range(8))
    used = {owner for _, owner in results}
    assert used <= set(worker_pids(client).values())
    # Exactly one setup on every worker that ran a query, each torn down at the end of the run.
    assert _events(resource_dir, "setup") == sorted(used)
    assert _events(resource_dir, "teardown") == sorted(used)
    # A second run sets them up afresh.
    asyncio.run(engine.run(query(0, 0.0)))
    assert len(_events(resource_dir, "setup")) == len(used) + 1
    assert len(_events(resource_dir, "teardown")) == len(used) + 1


def test_injected_resources_and_task_scoped_ones_on_the_worker(
    client: Any, resource_dir: Path
) -> None:
    engine = _engine(client)
    result = asyncio.run(engine.run([query_session(), query_session()]))
    assert all(r.startswith("session-on-") and r.endswith("+scratch") for r in result)
    assert len(_events(resource_dir, "scratch")) == 2  # once per call
    assert len(_events(resource_dir, "scratch_closed")) == 2
    assert len(_events(resource_dir, "session")) == len(_events(resource_dir, "session_closed"))
    assert asyncio.run(engine.run(uses_async_pool()))  # async resource on the tasks' loop


def test_resources_are_torn_down_when_the_run_fails(client: Any, resource_dir: Path) -> None:
    engine = _engine(client)
    with pytest.raises(ValueError, match="task failed"):
        asyncio.run(engine.run(fail_after(query(1, 0.0))))
    assert len(_events(resource_dir, "setup")) == 1
    assert len(_events(resource_dir, "teardown")) == 1


def test_resources_are_torn_down_when_the_run_is_cancelled(client: Any, resource_dir: Path) -> None:
    async def scenario() -> None:
        run = asyncio.ensure_future(_engine(client).run(query(1, 5.0)))
        assert await asyncio.to_thread(wait_until, lambda: _events(resource_dir, "setup"))
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    assert len(_events(resource_dir, "teardown")) == 1


def test_a_resource_that_cannot_be_sent_to_the_workers_is_named(client: Any) -> None:
    lock = threading.Lock()

    @cs.resource(name="conn")
    def local_only() -> Iterator[Any]:
        yield lock

    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    engine.register(local_only)
    with pytest.raises(cs.ResourceError, match="resource 'conn', which cannot be sent"):
        asyncio.run(engine.run(query(1, 0.0)))


@cs.resource(name="conn")
def broken_on_workers() -> Iterator[Any]:
    # Travels by reference (the workers import this module), so it asks where it runs.
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # not on a worker
        yield None
        return
    raise OSError("no route to database from here")


def test_a_resource_that_fails_on_the_worker_is_named(client: Any) -> None:
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    engine.register(broken_on_workers)
    with pytest.raises(cs.ResourceError) as caught:
        asyncio.run(engine.run(query(1, 0.0)))
    message = str(caught.value)
    assert "resource 'conn' failed to set up on tcp://127.0.0.1:" in message
    assert "no route to database" in message


# -- command line ---------------------------------------------------------------------------


PIPELINE = """
import os
import cascade as cs

@cs.task
def double(x: int) -> int:
    return 2 * x

@cs.task
def where() -> int:
    return os.getpid()

result = [double.map([1, 2, 3]), where()]
"""


def test_the_command_line_runs_a_pipeline_with_executor_dask(tmp_path: Path) -> None:
    pytest.importorskip("cascade_cli")
    import json
    import subprocess
    import sys

    script = Path(sys.executable).with_name("cascade")
    if not script.exists():
        pytest.skip("the `cascade` console script is not installed")
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    done = subprocess.run(
        [str(script), "run", "pipeline.py:result", "--executor", "dask", "--output", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    doubled, worker_pid = report["result"]
    assert doubled == [2, 4, 6]
    assert worker_pid != os.getpid()
    assert {task["executor"] for task in report["tasks"]} == {"dask"}
    assert "distributed.scheduler" not in done.stderr  # the temporary cluster stays quiet


# -- OpenTelemetry: spans made inside a task on a worker join the run's trace --------------------


def span_in_worker(label: str) -> dict[str, Any]:
    """Start a span with an SDK configured here, in the worker, and report where it hangs."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("worker").start_as_current_span(f"work {label}"):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None, "no span was current in the worker"
    return {
        "pid": os.getpid(),
        "trace_id": span.context.trace_id,
        "parent_span_id": span.parent.span_id,
    }


async def span_in_worker_async(label: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return span_in_worker(label)


span_task = cs.task(span_in_worker, name="span_in_worker")
span_task_async = cs.task(span_in_worker_async, name="span_in_worker_async")


def test_spans_started_in_tasks_on_workers_join_the_runs_trace(client: Any) -> None:
    cascade_otel = pytest.importorskip("cascade_otel")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = cs.Engine(executor=DaskExecutor(client=client), log_level=None)
    assert cascade_otel.instrument(engine, tracer_provider=provider) is not None
    results = asyncio.run(engine.run([span_task("sync"), span_task_async("async")]))
    spans = exporter.get_finished_spans()
    task_spans = {s.name: s for s in spans if s.attributes.get("cascade.task.executor") == "dask"}
    assert len(task_spans) == 2
    run_trace = {s.context.trace_id for s in spans}
    assert len(run_trace) == 1
    assert all(r["pid"] != os.getpid() for r in results)
    assert {r["trace_id"] for r in results} == run_trace
    assert {r["parent_span_id"] for r in results} == {
        s.context.span_id for s in task_spans.values()
    }
