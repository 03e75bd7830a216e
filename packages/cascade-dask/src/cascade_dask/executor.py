"""``DaskExecutor``: Cascade's executor protocol on top of Dask distributed.

Cascade keeps scheduling, events and policies; Dask runs the calls. Each call becomes one Dask
task (``cascade_dask.worker.run_call``) and completes with a ``DaskResult``, a reference to the
Dask future, not the value. The engine passes references back as top-level arguments of
downstream calls, which are submitted with the upstream futures as arguments, so Dask moves data
worker to worker; ``materialize`` fetches values only when the engine needs them.

Each run has its handle (``open_run``, ``_DaskRun``): the futures the run submitted and whether
its calls set resources up on the workers, so its end releases and tears down exactly that,
while other runs on the same cluster go on. The client (and a temporary cluster) lives while at
least one run is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, ClassVar

import cloudpickle  # type: ignore[import-untyped]

from cascade import ResourceError
from cascade.executors import (
    CallSpec,
    ExecutorRun,
    PlainSubmit,
    Provider,
    RunInfo,
    RunScopedExecutor,
    ShippedLine,
    TaskCall,
    check_picklable,
    order_providers,
)
from cascade_dask.worker import (
    TIMES_TOPIC,
    Literal,
    ReturnedGraph,
    TaskFunction,
    interrupt_calls,
    run_call,
    teardown_runs,
)

logger = logging.getLogger("cascade.dask")

# Values of these types always pickle; the pre-submission check skips them.
_PLAIN_TYPES = (int, float, complex, str, bytes, bool, type(None))

#: Schemes ``distributed`` connects with; an address with another one is refused at once.
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


class _DaskRun:
    """cascade-dask's handle for one run: every future the run submitted, released when it
    ends (not when the garbage collector finds them: an exception's traceback, or a cycle,
    would keep them and their data alive), and whether its calls set resources up on the
    workers."""

    reports_start = False
    submit_plain: PlainSubmit | None = None

    def __init__(self, executor: DaskExecutor, info: RunInfo) -> None:
        self.executor = executor
        self.info = info
        self.futures: list[Any] = []
        self.uses_resources = False

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        return self.executor._submit(call, self)

    def __repr__(self) -> str:
        return f"<run {self.info.run_id[:8]} of {self.executor!r}>"


class DaskTaskCancelled(RuntimeError):
    """The Dask future of a call was cancelled on the cluster by someone other than Cascade."""


class DaskResult:
    """A task's result kept on the Dask cluster.

    The engine hands it back to the executor that made it (so downstream calls receive the Dask
    future and the data stays on the workers) and asks that executor to ``materialize`` it when
    the value itself is needed. ``future`` is the ``distributed.Future``.
    """

    __slots__ = ("_has_value", "_value", "future", "task_name")

    def __init__(self, future: Any, task_name: str) -> None:
        self.future = future
        self.task_name = task_name
        self._has_value = False
        self._value: Any = None

    @property
    def key(self) -> str:
        """The Dask key of the result (shown on the Dask dashboard)."""
        return str(self.future.key)

    def __repr__(self) -> str:
        kind = self.future.type
        type_name = getattr(kind, "__name__", None) or (kind if isinstance(kind, str) else "?")
        return f"<on dask: {type_name} {self.key!r}>"


def _noop_function() -> None:
    """Stands in for a task function already known to pickle, in the pre-submission check."""


class DaskExecutor(RunScopedExecutor):
    """Run tasks on a Dask distributed cluster.

    - ``DaskExecutor()`` (what ``executor="dask"`` makes) starts a temporary ``LocalCluster`` of
      worker processes bound to 127.0.0.1 when a run starts and closes it when the run ends.
      ``n_workers``, ``threads_per_worker`` and ``cluster_options`` (more ``LocalCluster``
      keyword arguments) shape it; by default Dask picks them from the CPU count.
    - ``DaskExecutor(address="tcp://host:8786")`` connects to a running scheduler, and
      ``DaskExecutor(client=client)`` to the cluster of an existing ``distributed.Client``;
      both leave the cluster running. An asynchronous client running on the run's event loop is
      used as is; any other gets a companion asynchronous connection for the run.

    ``worker_times=False`` stops workers from publishing each call's start and end times (the
    events then carry the driver's times), saving one small message per task.
    ``connect_timeout`` (seconds, default 10) bounds how long connecting to a scheduler may take
    before the run fails with a ``ConnectionError`` naming the address; an address that is not
    one (``htp://x``) is refused at once with a ``ValueError``. Futures a run submitted are
    released when it ends, failed or not, so a long-lived cluster holds none of its keys.
    """

    name: ClassVar[str] = "dask"
    requires_pickle: ClassVar[bool] = True
    stops_on_cancel: ClassVar[bool] = True
    returns_references: ClassVar[bool] = True
    remote_resources: ClassVar[bool] = True

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        cluster_options: Mapping[str, Any] | None = None,
        worker_times: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        if address is not None and client is not None:
            raise TypeError("DaskExecutor takes address= or client=, not both")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"DaskExecutor: address= takes 'tcp://host:port', got {address!r}")
        if address is not None:
            _check_address(address)
        self.address = address
        self.given_client = client
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.cluster_options = dict(cluster_options or {})
        self.worker_times = worker_times
        self.connect_timeout = connect_timeout
        self.client: Any = None
        self._cluster: Any = None
        self._owns_client = False
        self._open_runs: set[_DaskRun] = set()
        self._start_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._reports: dict[str, tuple[float, float, list[ShippedLine], int]] = {}
        self._waiting: set[str] = set()
        self._picklable: dict[int, Any] = {}
        self._to_cancel: list[Any] = []
        self._cancelling: asyncio.Task[None] | None = None
        self._dask_log_level: int | None = None

    def __repr__(self) -> str:
        where = self.address or ("client" if self.given_client is not None else "local cluster")
        return f"<DaskExecutor {where}>"

    # -- lifecycle ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_run(self, run: RunInfo) -> AsyncIterator[ExecutorRun]:
        """The client (connected, or a temporary cluster started, by the first open run) and
        a handle for ``run``; leaving it releases the run's futures, tears down what it set
        up on the workers, and disconnects after the last open run."""
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._lock_loop is not loop:
            self._start_lock, self._lock_loop = asyncio.Lock(), loop
        handle = _DaskRun(self, run)
        async with self._start_lock:
            if self.client is None:
                await self._connect()
            self._open_runs.add(handle)
        try:
            yield handle
        finally:
            await self._close_run(handle)

    async def _connect(self) -> None:
        given = self.given_client
        try:
            if given is not None:
                if getattr(given, "asynchronous", False) and _loop_of(given) is (
                    asyncio.get_running_loop()
                ):
                    self.client, self._owns_client = given, False
                else:
                    self.client = await self._open_client(
                        given.scheduler.address, security=given.security
                    )
                    self._owns_client = True
            elif self.address is not None:
                self.client = await self._open_client(self.address)
                self._owns_client = True
            else:
                await self._start_local_cluster()
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            where = self.address or getattr(getattr(given, "scheduler", None), "address", "?")
            raise ConnectionError(
                f"executor 'dask' cannot connect to the Dask scheduler at {where} (waited up "
                f"to {self.connect_timeout:g} s, DaskExecutor(connect_timeout=...)): {exc}. "
                "Start one (`dask scheduler` and `dask worker ...`), or use DaskExecutor() "
                "without an address for a temporary local cluster."
            ) from exc
        self.client.subscribe_topic(TIMES_TOPIC, self._on_report)

    async def _open_client(self, address: str, **options: Any) -> Any:
        """An asynchronous client connected to ``address``; closed again if connecting fails
        or is cancelled, so no half-open client is left to the garbage collector."""
        import distributed

        Client: Any = distributed.Client
        try:
            client = Client(
                address,
                asynchronous=True,
                set_as_default=False,
                timeout=self.connect_timeout,
                **options,
            )
        except ValueError as exc:
            raise ValueError(f"executor 'dask': {_bad_address(address)}: {exc}") from exc
        try:
            await client
        except BaseException as exc:
            await _finish(client.close())
            if isinstance(exc, ValueError):
                raise ValueError(f"executor 'dask': {_bad_address(address)}: {exc}") from exc
            raise
        return client

    async def _start_local_cluster(self) -> None:
        import distributed

        Client: Any = distributed.Client
        LocalCluster: Any = distributed.LocalCluster
        options: dict[str, Any] = {
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
        if self.n_workers is not None:
            options["n_workers"] = self.n_workers
        if self.threads_per_worker is not None:
            options["threads_per_worker"] = self.threads_per_worker
        options.update(self.cluster_options)
        # Without a dashboard the scheduler still serves health routes over HTTP, on port 8787
        # unless told otherwise: take a free port on loopback, so runs never collide.
        options["scheduler_kwargs"] = {
            "dashboard_address": "127.0.0.1:0",
            **options.get("scheduler_kwargs", {}),
        }
        self._quiet_dask_logs()
        try:
            cluster = LocalCluster(asynchronous=True, **options)
            try:
                await cluster
                self.client = await Client(cluster, asynchronous=True, set_as_default=False)
            except BaseException:
                # Failed or cancelled part-way (a Ctrl-C while workers start): close what was
                # started, workers still starting included, before giving up.
                await _finish(_abandon_cluster(cluster))
                raise
        except BaseException:
            self._restore_dask_logs()
            raise
        self._cluster, self._owns_client = cluster, True

    def _quiet_dask_logs(self) -> None:
        """A temporary cluster is an implementation detail of the run: keep the scheduler's and
        nannies' start/stop chatter (INFO) out of the program's logs, warnings still pass."""
        dask_logger = logging.getLogger("distributed")
        if dask_logger.getEffectiveLevel() < logging.WARNING:
            self._dask_log_level = dask_logger.level
            dask_logger.setLevel(logging.WARNING)
        else:
            self._dask_log_level = None

    def _restore_dask_logs(self) -> None:
        level = self._dask_log_level
        if level is not None:
            logging.getLogger("distributed").setLevel(level)
            self._dask_log_level = None

    async def _close_run(self, handle: _DaskRun) -> None:
        self._open_runs.discard(handle)
        last = not self._open_runs
        try:
            await self._flush_cancellations()
            if handle.uses_resources:
                await self._teardown([handle.info.run_id])
        finally:
            _release(handle.futures)
            if last:
                await self._disconnect()

    async def _teardown(self, run_ids: list[str]) -> None:
        """Tear down the resources of finished runs on every worker."""
        try:
            reports = await self.client.run(teardown_runs, run_ids, on_error="return")
        except Exception as exc:
            logger.error("executor 'dask' could not tear down resources on the workers: %r", exc)
            return
        for worker, report in reports.items():
            if isinstance(report, BaseException):
                logger.error("executor 'dask': teardown on %s failed: %r", worker, report)
                continue
            for message in report:
                logger.error("executor 'dask': %s", message)

    async def _disconnect(self) -> None:
        client, cluster = self.client, self._cluster
        self.client = self._cluster = None
        self._reports.clear()
        self._waiting.clear()
        self._picklable.clear()
        if client is None:
            return
        try:
            client.unsubscribe_topic(TIMES_TOPIC)
        except Exception:
            pass
        try:
            if self._owns_client:
                await client.close()
        finally:
            if cluster is not None:
                try:
                    await cluster.close()
                finally:
                    self._restore_dask_logs()

    # -- calls --------------------------------------------------------------------------------

    def _submit(self, call: TaskCall, handle: _DaskRun) -> Awaitable[Any]:
        client = self.client
        if client is None:
            raise RuntimeError(f"executor '{self.name}' was not started")
        args = tuple(_to_futures(value) for value in call.args)
        kwargs = {key: _to_futures(value) for key, value in call.kwargs.items()}
        self._check_picklable(call, args, kwargs)
        info = handle.info
        providers: dict[str, Provider] = {}
        if call.resources:
            providers = self._providers_for(call, info)
            handle.uses_resources = True
        logs = info.logs
        spec = CallSpec(
            key=f"{call.task_id}#{call.attempt}-{info.run_id[:8]}",
            task_name=call.task_name,
            run_id=info.run_id,
            is_async=call.is_async,
            task_id=call.task_id,
            attempt=call.attempt,
            carrier=call.carrier,
            worker_setup=call.worker_setup,
            resources=call.resources,
            providers=providers,
            logs=None if logs is None else (logs.level, logs.limit, logs.message_limit),
            report_times=self.worker_times,
        )
        return self._run(client, call, spec, args, kwargs, handle)

    async def _run(
        self,
        client: Any,
        call: TaskCall,
        spec: CallSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        handle: _DaskRun,
    ) -> Any:  # a DaskResult, or the LazyResults a task returned
        key = str(spec.key)
        logs = handle.info.logs
        reported = self.worker_times or logs is not None
        if reported:
            self._waiting.add(key)
        try:
            future = client.submit(
                run_call, spec, TaskFunction(call.fn), args, kwargs, key=key, pure=False
            )
            handle.futures.append(future)
            try:
                await future.exception()  # waits for the end without fetching the result
            except asyncio.CancelledError:
                self._cancel_later(future)
                raise
        finally:
            if reported:
                self._waiting.discard(key)
                report = self._reports.pop(key, None)
                if report is not None:
                    start, end, lines, emitted = report
                    if start:
                        call.start_time, call.end_time = start, end
                    if logs is not None and emitted:
                        logs.deliver(call.task_id, call.attempt, lines, emitted)
        status = future.status
        if status == "error":
            await future  # raises the task's own exception, with its traceback
        if status == "cancelled":
            raise DaskTaskCancelled(
                f"task '{call.task_name}': its Dask future '{key}' was cancelled on the "
                "cluster (by another client, or the cluster restarted)"
            )
        if future.type is ReturnedGraph:
            # The task returned LazyResults: the engine runs them here, in the same run.
            returned = await future
            future.release()
            return returned.value
        return DaskResult(future, call.task_name)

    def _on_report(self, event: tuple[float, Any]) -> None:
        """Dask event handler: worker-measured times and collected log lines, delivered
        before the task's result."""
        key, start, end, lines, emitted = event[1]
        if key in self._waiting:
            self._reports[key] = (start, end, [tuple(line) for line in lines], emitted)

    def _cancel_later(self, future: Any) -> None:
        """Batch cancellations: one ``cancel`` and one interrupt broadcast for all calls
        cancelled together (a failed run cancels everything in flight at once)."""
        self._to_cancel.append(future)
        if self._cancelling is None or self._cancelling.done():
            self._cancelling = asyncio.get_running_loop().create_task(self._cancel_batch())

    async def _cancel_batch(self) -> None:
        await asyncio.sleep(0)  # let the rest of the batch arrive
        futures, self._to_cancel = self._to_cancel, []
        client = self.client
        if not futures or client is None:
            return
        keys = [f.key for f in futures]
        try:
            await client.cancel(futures, reason="cancelled by Cascade")
            await client.run(interrupt_calls, keys, on_error="ignore")
        except Exception as exc:
            logger.warning("executor 'dask' could not cancel %d call(s): %r", len(keys), exc)

    async def _flush_cancellations(self) -> None:
        while self._cancelling is not None and not self._cancelling.done():
            await asyncio.shield(self._cancelling)
        if self._to_cancel:
            await self._cancel_batch()

    # -- checks before submission ---------------------------------------------------------------

    def _check_picklable(
        self, call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Fail before submission, naming the task and the value that cannot be sent.
        ``args``/``kwargs`` are the call's arguments with references turned into futures."""
        fn_known = id(call.fn) in self._picklable
        probe_args = [None if _skip_check(v) else v for v in args]
        probe_kwargs = {k: None if _skip_check(v) else v for k, v in kwargs.items()}
        if (
            fn_known
            and all(v is None for v in probe_args)
            and all(v is None for v in probe_kwargs.values())
        ):
            return
        probe = TaskCall(
            call.task_id,
            call.task_name,
            _noop_function if fn_known else call.fn,
            tuple(probe_args),
            probe_kwargs,
            call.is_async,
        )
        check_picklable(probe, dumps=cloudpickle.dumps, portable=TaskFunction)
        self._picklable[id(call.fn)] = call.fn

    def _providers_for(self, call: TaskCall, info: RunInfo) -> dict[str, Provider]:
        """The definitions a call's resources need, in setup order, checked to be sendable
        to the workers (the engine checked the definitions themselves)."""
        available = call.resource_providers or info.resource_providers
        needed = order_providers(call.task_name, call.resources, available, TaskFunction)
        for name, provider in needed.items():
            definition = available[name]
            if id(definition) in self._picklable:
                continue
            try:
                cloudpickle.dumps(provider)
            except Exception as exc:
                raise ResourceError(
                    f"task '{call.task_name}' needs resource '{name}', which cannot be sent to "
                    f"the Dask workers: {type(exc).__name__}: {exc}. Resources of tasks on the "
                    "'dask' executor are set up on the worker that runs the task; make the "
                    "provider picklable (no locks, sockets or open files in its closure), or "
                    "run this task on a local executor."
                ) from exc
            self._picklable[id(definition)] = definition
        return needed

    # -- references -------------------------------------------------------------------------------

    async def materialize(self, values: list[Any]) -> list[Any]:
        """Fetch the values behind ``DaskResult`` references, also inside lists, tuples and
        dicts (a mapped task's result is a list of them), in one round trip; other values pass
        through."""
        found: list[DaskResult] = []
        for value in values:
            _collect_refs(value, found)
        pending = [ref for ref in found if not ref._has_value]
        if pending:
            client = self.client
            if client is None:
                raise RuntimeError(f"executor '{self.name}' was not started")
            fetched = await client.gather([ref.future for ref in pending])
            for ref, value in zip(pending, fetched, strict=True):
                ref._value, ref._has_value = value, True
        if not found:
            return values
        return [_with_values(value) for value in values]


_CONTAINERS = (list, tuple, dict)


def _to_futures(value: Any) -> Any:
    """A call argument with every ``DaskResult`` (top level, or inside lists, tuples and dicts)
    replaced by its Dask future, which Dask resolves on the worker. A container without one is
    wrapped in a ``Literal``, so Dask passes it untouched instead of walking it (a literal that
    contains itself would never end)."""
    if isinstance(value, DaskResult):
        return value.future
    if type(value) not in _EXACT_CONTAINERS:
        return value
    if not _holds_ref(value):
        return Literal(value)
    return _swap_refs(value, {})


_EXACT_CONTAINERS = (list, tuple, dict)


def _holds_ref(value: Any) -> bool:
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, DaskResult):
            return True
        kind = type(item)
        if kind not in _EXACT_CONTAINERS or id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(item.values() if kind is dict else item)
    return False


def _swap_refs(value: Any, made: dict[int, Any]) -> Any:
    if isinstance(value, DaskResult):
        return value.future
    kind = type(value)
    if kind not in _EXACT_CONTAINERS:
        return value
    if id(value) in made:
        return made[id(value)]
    if kind is list:
        items: list[Any] = []
        made[id(value)] = items
        items.extend(_swap_refs(item, made) for item in value)
        return items
    if kind is dict:
        mapping: dict[Any, Any] = {}
        made[id(value)] = mapping
        mapping.update((key, _swap_refs(item, made)) for key, item in value.items())
        return mapping
    return tuple(_swap_refs(item, made) for item in value)


def _collect_refs(value: Any, found: list[DaskResult]) -> None:
    if isinstance(value, DaskResult):
        found.append(value)
    elif type(value) in (list, tuple):
        for item in value:
            if isinstance(item, (DaskResult, *_CONTAINERS)):
                _collect_refs(item, found)
    elif type(value) is dict:
        for item in value.values():
            if isinstance(item, (DaskResult, *_CONTAINERS)):
                _collect_refs(item, found)


def _with_values(value: Any) -> Any:
    if isinstance(value, DaskResult):
        return value._value
    if type(value) in (list, tuple):
        if not any(isinstance(item, (DaskResult, *_CONTAINERS)) for item in value):
            return value
        return type(value)(_with_values(item) for item in value)
    if type(value) is dict:
        if not any(isinstance(item, (DaskResult, *_CONTAINERS)) for item in value.values()):
            return value
        return {key: _with_values(item) for key, item in value.items()}
    return value


def _bad_address(address: str) -> str:
    return (
        f"{address!r} is not a Dask scheduler address (use 'tcp://host:8786', or "
        "DaskExecutor() without an address for a temporary local cluster)"
    )


def _check_address(address: str) -> None:
    scheme, separator, rest = address.partition("://")
    if separator and (scheme not in _SCHEMES or not rest):
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ValueError(f"DaskExecutor: {_bad_address(address)}; known schemes: {known}")


async def _finish(awaitable: Any) -> None:
    """Await clean-up to its end even if this task is cancelled meanwhile, ignoring its
    errors (the error that made us clean up is the one to raise)."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue
        except Exception:
            break
    if task.done() and not task.cancelled():
        task.exception()


async def _abandon_cluster(cluster: Any) -> None:
    """Close a ``LocalCluster`` whose start was interrupted. Its workers (nannies) may still be
    starting in tasks of their own; each is awaited to the end of its start and closed, so no
    worker process outlives the run, then the cluster itself is closed."""
    for worker in list(getattr(cluster, "_created", ())):
        try:
            await asyncio.wait_for(_awaited(worker), 60)
        except BaseException:
            pass
        try:
            await worker.close()
        except BaseException:
            pass
    try:
        await cluster.close()
    except BaseException:
        pass


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _release(futures: list[Any]) -> None:
    """Drop this client's hold on the keys of ``futures`` now (idempotent per future)."""
    for future in futures:
        try:
            future.release()
        except Exception:  # the client is already closed: nothing is held any more
            pass
    futures.clear()


def _skip_check(value: Any) -> bool:
    return isinstance(value, _PLAIN_TYPES) or _is_dask_future(value)


def _is_dask_future(value: Any) -> bool:
    from distributed import Future

    return isinstance(value, Future)


def _loop_of(client: Any) -> asyncio.AbstractEventLoop | None:
    loop = getattr(client, "loop", None)
    return getattr(loop, "asyncio_loop", None)


__all__ = ["DaskExecutor", "DaskResult", "DaskTaskCancelled"]
