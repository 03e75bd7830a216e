"""Issue 22: defects found where two features meet (dynamic graphs and resources, worker
processes and fallbacks, timeouts and pools, cancellation and teardown). Each test is a
reproduction that failed before its fix. Synchronised on events, markers and counters."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import cascade as cs
from cascade.events import RunFinished, TaskWaiting

pytestmark = pytest.mark.timeout(120)

OBSERVERS = [None, "INFO"]


# -- 1. a run-scoped async resource is set up once per run, however many calls need it first


resource_log: list[str] = []


@cs.resource
async def slow_conn() -> Any:
    await asyncio.sleep(0.05)  # the setup suspends while the fan-out's calls all ask for it
    handle = object()
    resource_log.append("up")
    yield handle
    resource_log.append("down")


@cs.task
def use_conn(i: int, conn: Any = cs.inject("slow_conn")) -> int:
    return id(conn)


@cs.task
async def use_conn_async(i: int, conn: Any = cs.inject("slow_conn")) -> int:
    return id(conn)


@cs.task
def fan_out_conn(n: int, use_async: bool) -> Any:
    task = use_conn_async if use_async else use_conn
    return [task(i) for i in range(n)]


@pytest.mark.parametrize("log_level", OBSERVERS)
@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("n", [2, 5, 20])
def test_a_run_scoped_resource_of_dynamic_calls_is_set_up_once(
    n: int, use_async: bool, log_level: str | None
) -> None:
    resource_log.clear()
    seen = cs.run(fan_out_conn(n, use_async), log_level=log_level)
    assert resource_log == ["up", "down"]
    assert len(set(seen)) == 1 and len(seen) == n


# -- 2. a failure in a graph returned from a worker process is not swallowed


@cs.task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@cs.task
def plus_one(x: int) -> int:
    return x + 1


@cs.task(executor="processes")
def returns_a_failure() -> Any:
    return boom(1)


@cs.task(executor="processes")
def returns_a_failure_and_a_success() -> Any:
    return [plus_one(boom(2)), plus_one(41)]


@cs.task(executor="processes")
def returns_a_required_param() -> Any:
    return plus_one(cs.Param("needed"))


def test_a_failure_returned_from_a_worker_process_fails_the_run() -> None:
    with pytest.raises(ValueError, match="boom 1"):
        cs.run(returns_a_failure(), log_level=None)


def test_a_failure_returned_from_a_worker_process_is_reported_in_continue_mode() -> None:
    with pytest.raises(cs.RunFailed) as caught:
        cs.run(returns_a_failure_and_a_success(), log_level=None, on_failure="continue")
    failures = caught.value.failures
    assert [type(e) for e in failures.values()] == [ValueError]
    assert "boom 2" in str(next(iter(failures.values())))


def test_a_required_param_returned_from_a_worker_process_is_a_param_error() -> None:
    with pytest.raises(cs.ParamError, match="needed"):
        cs.run(returns_a_required_param(), log_level=None)


def test_the_missing_marker_survives_pickling() -> None:
    import pickle

    from cascade.spec.task import MISSING

    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    lazy = plus_one(1)
    assert pickle.loads(pickle.dumps(lazy)).fallback is MISSING


# -- 11. dynamic fan-out onto processes with an injected resource


@cs.resource
def counter_res() -> Any:
    yield 10


@cs.task(executor="processes")
def in_proc(i: int, res: int = cs.inject("counter_res")) -> int:
    return i + res


@cs.task
def fan_out_to_processes(n: int) -> Any:
    return [in_proc(i) for i in range(n)]


@pytest.mark.parametrize("log_level", OBSERVERS)
def test_dynamic_calls_on_processes_get_their_resources_in_the_worker(
    log_level: str | None,
) -> None:
    assert cs.run(fan_out_to_processes(3), log_level=log_level) == [10, 11, 12]


# -- 6. a cancel during resource teardown leaves nothing open


teardown_log: list[str] = []
teardown_marks: dict[str, asyncio.Event] = {}


@cs.resource
def lower_res() -> Any:
    teardown_log.append("lower up")
    try:
        yield "L"
    finally:
        teardown_log.append("lower down")


@cs.resource
async def upper_res(low: str = cs.inject("lower_res")) -> Any:
    teardown_log.append("upper up")
    try:
        yield "U" + low
    finally:
        teardown_marks["tearing"].set()
        await teardown_marks["release"].wait()  # an await in teardown, cancelled meanwhile
        teardown_log.append("upper down")


@cs.resource(scope="task")
async def upper_task_res(low: str = cs.inject("lower_res")) -> Any:
    teardown_log.append("task upper up")
    try:
        yield "T" + low
    finally:
        teardown_marks["tearing"].set()
        await teardown_marks["release"].wait()
        teardown_log.append("task upper down")


@cs.task
def uses_upper(res: str = cs.inject("upper_res")) -> str:
    return res


@cs.task
def uses_task_upper(res: str = cs.inject("upper_task_res")) -> str:
    return res


@pytest.mark.parametrize("log_level", OBSERVERS)
@pytest.mark.parametrize("scope", ["run", "task"])
@pytest.mark.parametrize("cancels", [1, 3])
async def test_a_cancel_during_teardown_tears_everything_down_in_reverse(
    scope: str, cancels: int, log_level: str | None
) -> None:
    teardown_log.clear()
    teardown_marks.update(tearing=asyncio.Event(), release=asyncio.Event())
    target = uses_upper() if scope == "run" else uses_task_upper()
    run = asyncio.ensure_future(cs.run_async(target, log_level=log_level))
    await teardown_marks["tearing"].wait()
    for _ in range(cancels):
        run.cancel()
        await asyncio.sleep(0)
    teardown_marks["release"].set()
    with pytest.raises(asyncio.CancelledError):
        await run
    upper = "upper" if scope == "run" else "task upper"
    assert teardown_log == ["lower up", f"{upper} up", f"{upper} down", "lower down"]


# -- 8. a pool (and a concurrency limit) stays held until an abandoned thread really stops


class Overlap:
    """Counts how many calls are inside a slot at once. A call's thread stays in until the
    attempt has timed out (then it is let go), so if a slot were given back at the timeout
    the next call would start beside a thread still in it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.threads: list[threading.Event] = []

    def enter(self) -> threading.Event:
        release = threading.Event()
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.threads.append(release)
        return release

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

    def let_go(self) -> None:
        with self.lock:
            for release in self.threads:
                release.set()

    def let_go_soon(self, hops: int = 20) -> None:
        """Let the threads go some event-loop passes from now: a call given a slot back at
        the timeout would have started by then (a couple of passes), beside a thread not
        yet let go; counted in passes, not in time."""
        if hops:
            asyncio.get_running_loop().call_soon(self.let_go_soon, hops - 1)
        else:
            self.let_go()


overlap = Overlap()


# -- 7. the task-scoped resource of a timed-out sync attempt is torn down


thread_log: list[str] = []


@cs.resource(scope="task")
def per_attempt() -> Any:
    thread_log.append("up")
    try:
        yield 1
    finally:
        thread_log.append("down")


@cs.task
def stuck_until_released(release: threading.Event, r: int = cs.inject("per_attempt")) -> int:
    release.wait(30)
    thread_log.append("thread ended")
    return r


@pytest.mark.parametrize("log_level", OBSERVERS)
@pytest.mark.parametrize("fallback", [False, True])
def test_a_timed_out_threads_task_resource_is_torn_down_when_it_ends(
    fallback: bool, log_level: str | None
) -> None:
    thread_log.clear()
    release = threading.Event()
    bus = cs.MessageBus()
    # The thread is let go some event-loop passes after the attempt timed out: by then a
    # run that does not wait for it would have ended (and closed its loop).
    passes = Overlap()
    passes.threads.append(release)
    bus.subscribe(
        cs.events.TaskExecutionFinished,
        lambda e: passes.let_go_soon() if e.status == "Failed" else None,
    )
    call = stuck_until_released(release).with_timeout(0.05)
    if fallback:
        assert cs.run(call.with_fallback(0), log_level=log_level, bus=bus) == 0
    else:
        with pytest.raises(cs.TaskTimeoutError):
            cs.run(call, log_level=log_level, bus=bus)
    # The run ended only after the abandoned thread had, and its resource was closed then.
    assert thread_log == ["up", "thread ended", "down"]


@cs.task
def hold_a_slot(i: int) -> int:
    release = overlap.enter()
    release.wait(30)
    overlap.leave()
    return 1


@cs.task(concurrency=1)
def hold_a_task_slot(i: int) -> int:
    return hold_a_slot.fn(i)  # type: ignore[no-any-return]


@pytest.mark.parametrize("log_level", OBSERVERS)
@pytest.mark.parametrize("limit", ["pool", "max_concurrency", "concurrency"])
def test_abandoned_threads_keep_their_slot_until_they_stop(
    limit: str, log_level: str | None
) -> None:
    global overlap
    overlap = Overlap()
    waiting: list[str] = []
    bus = cs.MessageBus()
    bus.subscribe(
        cs.events.TaskExecutionFinished,
        lambda e: overlap.let_go_soon() if e.status == "Failed" else None,
    )
    bus.subscribe(TaskWaiting, lambda e: waiting.append(e.waiting_for))
    task = hold_a_task_slot if limit == "concurrency" else hold_a_slot
    calls = [task(i).with_timeout(0.05).with_fallback(0) for i in range(4)]
    options: dict[str, Any] = {}
    if limit == "pool":
        calls = [call.with_pools(c=1) for call in calls]
        options["pools"] = {"c": 1}
    elif limit == "max_concurrency":
        options["max_concurrency"] = 1
    assert cs.run(calls, log_level=log_level, bus=bus, **options) == [0, 0, 0, 0]
    assert overlap.most == 1
    assert overlap.now == 0, "the run ended after the last abandoned thread"
    named = {"pool": "pool 'c'", "max_concurrency": "max_concurrency"}
    assert waiting and set(waiting) == {named.get(limit, "concurrency of task 'hold_a_task_slot'")}


# -- 9. an engine's pools are one quota for all its runs


class Entries:
    """Async calls that entered a slot: each waits for its own release; the test takes them
    in the order they entered."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.entered: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def hold(self) -> None:
        release = asyncio.Event()
        self.inside += 1
        self.most = max(self.most, self.inside)
        self.entered.put_nowait(release)
        try:
            await release.wait()
        finally:
            self.inside -= 1


entries: Entries


@cs.task
async def hold_async(label: str) -> str:
    await entries.hold()
    return label


async def test_an_engines_pool_is_shared_by_its_concurrent_runs() -> None:
    global entries
    entries = Entries()
    engine = cs.Engine(pools={"c": 1}, log_level=None)
    queued = asyncio.Event()
    engine.bus.subscribe(TaskWaiting, lambda e: queued.set())
    first = asyncio.ensure_future(engine.run(hold_async("a").with_pools(c=1)))
    second = asyncio.ensure_future(engine.run(hold_async("b").with_pools(c=1)))
    release_first = await entries.entered.get()
    await queued.wait()  # the other run's call queues at the engine's pool
    assert entries.inside == 1
    release_first.set()
    (await entries.entered.get()).set()
    assert sorted([await first, await second]) == ["a", "b"]
    assert entries.most == 1


async def test_a_pool_given_to_one_run_is_that_runs_own() -> None:
    global entries
    entries = Entries()
    engine = cs.Engine(log_level=None)
    both = asyncio.gather(
        engine.run(hold_async("a").with_pools(c=1), pools={"c": 1}),
        engine.run(hold_async("b").with_pools(c=1), pools={"c": 1}),
    )
    releases = [await entries.entered.get(), await entries.entered.get()]
    assert entries.inside == 2  # both in at once: each run has a pool 'c' of its own
    for release in releases:
        release.set()
    assert await both == ["a", "b"]


@cs.task
def fails_when(go: bool) -> None:
    raise ValueError("stop")


async def test_a_stopped_run_gives_back_the_engine_pool_slots_it_held() -> None:
    global entries
    entries = Entries()
    engine = cs.Engine(pools={"c": 1}, log_level=None)
    held = hold_async("0").with_pools(c=1)
    queued = [hold_async(str(i)).with_pools(c=1) for i in (1, 2)]
    run = asyncio.ensure_future(engine.run([held, *queued, fails_when(held)]))
    await entries.entered.get()
    assert entries.inside == 1
    # Cancelling the run stops the call in the slot and drops the queued ones.
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # Every slot came back: a new run of the engine takes the pool's one slot at once.
    later = asyncio.ensure_future(engine.run(hold_async("later").with_pools(c=1)))
    (await entries.entered.get()).set()
    assert await later == "later"


# -- 10. a cancel that arrives while a failed run waits for its threads is raised


@cs.task
def slow_thread(started: threading.Event, release: threading.Event) -> int:
    started.set()
    release.wait(30)
    return 1


@cs.task
async def fails_after(started: threading.Event) -> None:
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
    raise ValueError("bad")


@pytest.mark.parametrize("log_level", OBSERVERS)
async def test_a_cancel_while_a_failed_run_waits_for_its_threads_is_raised(
    log_level: str | None,
) -> None:
    started, release = threading.Event(), threading.Event()
    bus = cs.MessageBus()
    failed = asyncio.Event()
    bus.subscribe(
        cs.events.TaskExecutionFinished, lambda e: failed.set() if e.status == "Failed" else None
    )
    run = asyncio.ensure_future(
        cs.run_async(
            [slow_thread(started, release), fails_after(started)], log_level=log_level, bus=bus
        )
    )
    await failed.wait()  # the run has failed and now waits for the thread
    await asyncio.sleep(0)
    run.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await run


# -- issue 21: resource providers are checked once, the same way for every executor


@cs.resource(scope="task")
def per_call_token() -> Any:
    yield "token"


@cs.resource
def run_wide_client(token: str = cs.inject("per_call_token")) -> Any:
    yield f"client({token})"


@cs.task
def uses_client(client: str = cs.inject("run_wide_client")) -> str:
    return client


@cs.task(executor="processes")
def uses_client_in_a_worker(client: str = cs.inject("run_wide_client")) -> str:
    return client


@pytest.mark.parametrize("task", [uses_client, uses_client_in_a_worker])
def test_a_run_scoped_resource_cannot_inject_a_task_scoped_one_on_any_executor(task: Any) -> None:
    with pytest.raises(
        cs.ResourceError,
        match="run-scoped resource 'run_wide_client' cannot inject task-scoped resource "
        "'per_call_token'",
    ):
        cs.run(task(), log_level=None)


# -- one scope stops everything a run started (issue 21) -------------------------------------

_cleanup_started: list[int] = []
_cleanup_finished: list[int] = []
_items_started = 0


@cs.task
async def slow_to_stop(i: int) -> int:
    """Waits forever; cancelled, it needs many event-loop passes to clean up."""
    global _items_started
    _items_started += 1
    try:
        await asyncio.Event().wait()
    finally:
        _cleanup_started.append(i)
        for _ in range(200):
            await asyncio.sleep(0)
        _cleanup_finished.append(i)
    return i


@pytest.mark.parametrize("timeout", [None, 60.0])
async def test_a_second_cancel_while_map_items_clean_up_still_waits_for_all_of_them(
    timeout: float | None,
) -> None:
    global _items_started
    _items_started = 0
    _cleanup_started.clear()
    _cleanup_finished.clear()
    mapped = slow_to_stop.map(range(4))
    if timeout is not None:
        mapped = mapped.with_timeout(timeout)
    at_run_end: list[list[int]] = []
    engine = cs.Engine()
    engine.bus.subscribe(RunFinished, lambda _: at_run_end.append(sorted(_cleanup_finished)))
    run = asyncio.ensure_future(engine.run(mapped))
    while _items_started < 4:
        await asyncio.sleep(0)
    run.cancel()
    while not _cleanup_started:  # the items are cleaning up now
        await asyncio.sleep(0)
    run.cancel()  # a second cancel, while they do
    with pytest.raises(asyncio.CancelledError):
        await run
    assert at_run_end == [[0, 1, 2, 3]]  # every item had stopped before the run ended
