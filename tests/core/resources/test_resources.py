"""The seed's dependency-injection scenarios, plus the resource semantics the issue adds."""

import asyncio

import pytest

import cascade as cs
from cascade.events import Event, ResourceAcquired, ResourceReleased

log: list[str] = []


@cs.resource
def config():
    log.append("config setup")
    yield {"db_url": "production_url"}
    log.append("config teardown")


@cs.resource
def db_connection(config: dict = cs.inject("config")):
    log.append("db setup")
    yield f"connection to {config['db_url']}"
    log.append("db teardown")


@cs.task
def task_using_resource(conn: str = cs.inject("db_connection")):
    return conn.removeprefix("connection to ")


@pytest.fixture(autouse=True)
def _clear_log():
    log.clear()


def test_di_end_to_end():
    """Tests the full lifecycle: registration, injection, execution, teardown."""
    engine = cs.Engine()
    engine.register(config)
    engine.register(db_connection)

    result = asyncio.run(engine.run(task_using_resource()))

    assert result == "production_url"
    assert log == ["config setup", "db setup", "db teardown", "config teardown"]


def test_resource_events():
    """Tests that resource lifecycle events are emitted in setup then reverse order."""
    events = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)

    engine = cs.Engine(bus=bus)
    engine.register(config)
    engine.register(db_connection)

    asyncio.run(engine.run(task_using_resource()))

    resource_events = [
        (type(e).__name__, e.resource_name)
        for e in events
        if isinstance(e, (ResourceAcquired, ResourceReleased))
    ]
    assert resource_events == [
        ("ResourceAcquired", "config"),
        ("ResourceAcquired", "db_connection"),
        ("ResourceReleased", "db_connection"),
        ("ResourceReleased", "config"),
    ]
    names = [type(e).__name__ for e in events]
    assert names[0] == "RunStarted" and names[-1] == "RunFinished"
    assert names.index("ResourceAcquired") < names.index("TaskExecutionStarted")
    assert names.index("ResourceReleased") > names.index("TaskExecutionFinished")


def test_resource_override():
    """Tests that a resource can be overridden and restored."""
    engine = cs.Engine()
    engine.register(config)
    engine.register(db_connection)

    @cs.resource
    def mock_db_connection():
        yield "connection to mock_db_url"

    with cs.override_resource(engine, "db_connection", mock_db_connection):
        result = asyncio.run(engine.run(task_using_resource()))

    assert result == "mock_db_url"

    result_after = asyncio.run(engine.run(task_using_resource()))
    assert result_after == "production_url"


def test_resource_must_be_generator():
    with pytest.raises(TypeError, match="must be a generator"):

        @cs.resource
        def not_a_generator():
            return "foo"


def test_async_generator_resource_and_task_scope():
    created: list[int] = []
    closed: list[int] = []

    @cs.resource(scope="task")
    async def session():
        n = len(created)
        created.append(n)
        yield n
        closed.append(n)

    @cs.task
    def use(i, s=cs.inject("session")):
        return (i, s)

    engine = cs.Engine()
    engine.register(session)
    result = asyncio.run(engine.run([use(i) for i in range(3)]))
    assert sorted(s for _, s in result) == [0, 1, 2]
    assert sorted(closed) == [0, 1, 2]


def test_run_scope_is_shared_and_set_up_once():
    setups: list[str] = []

    @cs.resource(name="shared")
    def shared_res():
        setups.append("x")
        yield object()

    @cs.task
    def ident(i, r=cs.inject("shared")):
        return id(r)

    engine = cs.Engine()
    engine.register(shared_res)
    ids = asyncio.run(engine.run([ident(i) for i in range(5)]))
    assert len(set(ids)) == 1
    assert setups == ["x"]


def test_teardown_on_failure_receives_the_exception():
    seen: list[str] = []

    @cs.resource
    def txn():
        try:
            yield "txn"
        except ValueError as exc:
            seen.append(f"rollback after {exc}")
            raise
        else:
            seen.append("commit")

    @cs.task
    def boom(t=cs.inject("txn")):
        raise ValueError("bad row")

    engine = cs.Engine()
    engine.register(txn)
    with pytest.raises(ValueError, match="bad row"):
        asyncio.run(engine.run(boom()))
    assert seen == ["rollback after bad row"]


def test_teardown_on_cancellation():
    seen: list[str] = []

    @cs.resource
    def res():
        seen.append("setup")
        yield 1
        seen.append("teardown")

    running = asyncio.Event()

    @cs.task
    async def slow(r=cs.inject("res")):
        running.set()
        await asyncio.sleep(3600)

    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    engine = cs.Engine(bus=bus)
    engine.register(res)

    async def main():
        runner = asyncio.create_task(engine.run(slow()))
        await asyncio.wait_for(
            running.wait(), timeout=60
        )  # cancel once the task holds the resource
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())
    assert seen == ["setup", "teardown"]
    assert events[-1].status == "Cancelled"
    finished = [e for e in events if type(e).__name__ == "TaskExecutionFinished"]
    assert [e.status for e in finished] == ["Cancelled"]


def test_only_needed_resources_are_set_up():
    seen: list[str] = []

    @cs.resource
    def unused():
        seen.append("unused")
        yield 1

    @cs.task
    def plain():
        return 1

    engine = cs.Engine()
    engine.register(unused)
    assert asyncio.run(engine.run(plain())) == 1
    assert seen == []


def test_unknown_resource_fails_before_any_task():
    ran: list[int] = []

    @cs.task
    def first():
        ran.append(1)

    @cs.task
    def needs(x, c=cs.inject("nope")):
        return c

    with pytest.raises(cs.ResourceError, match="task 'needs' needs resource 'nope'"):
        asyncio.run(cs.Engine().run(needs(first())))
    assert ran == []


def test_resource_cycle_is_reported_with_the_chain():
    @cs.resource(name="a")
    def res_a(b=cs.inject("b")):
        yield 1

    @cs.resource(name="b")
    def res_b(a=cs.inject("a")):
        yield 2

    @cs.task
    def t(x=cs.inject("a")):
        return x

    engine = cs.Engine()
    engine.register(res_a)
    engine.register(res_b)
    with pytest.raises(cs.ResourceError, match="cycle: a -> b -> a"):
        asyncio.run(engine.run(t()))
