"""Streams in flight: the item-by-item channel from a producer to its consumers, with
backpressure, and the driver that runs a generator task into one.

A ``Stream`` belongs to one producer node (a generator task's call, or a ``.map`` that
another stage is mapped over). The producer pushes each item as it exists; every consumer
(a ``.map`` or a ``cs.fold`` reading it, see ``cascade.runtime.streams``) has a
``Subscription`` that delivers it into the consumer's ``Inbox``. A consumer *releases* an
item once it has taken it: when the call made for it starts (``item_started``, called from
the attempt's announcement) or settles without one (a checkpoint). ``held`` counts items some
live consumer has not released; once it reaches the producer's ``buffer`` the producer is
paused (a generator waits before it is asked for its next item), so memory does not grow
with the number of items, however slow the consumers are.

Everything runs on the event loop's thread except a sync generator, which runs in a thread of
its own and hands items over in batches (``put_from_thread``); the counters it reads are kept
under the stream's condition lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

from cascade.executors import Executor, TaskCall
from cascade.executors.local import LocalExecutor
from cascade.runtime.markers import FAILED, SKIPPED, _Marker
from cascade.spec.task import Task

#: The value of a producer node whose items were only streamed: no task needed the list (and
#: it is not a target), so the list was never kept (docs/streams.md, "Memory").
STREAMED: Any = _Marker("streamed")

# What an inbox entry says (``(slot, kind, index, value)``).
#: Item ``index`` of the input in ``slot``, with its value.
ITEM = 0
#: Item ``index`` did not complete upstream (``value``: the id of the item or task that
#: failed or was not run): with ``on_failure="continue"``, the consumer skips its own item.
ITEM_FAILED = 1
#: The input ended after ``index`` items.
END = 2
#: The input ended after ``index`` items because its producer failed (``value``: its id).
ABORTED = 3
#: The producer was skipped (its condition was false, or an input of it was skipped).
SKIPPED_INPUT = 4

Entry = tuple[int, int, int, Any]


class Inbox:
    """One consumer's arrivals from all of its stream inputs, in arrival order, and the one
    future its driver sleeps on (woken by arrivals, by items of its own that ended, and by
    room in its own output stream)."""

    __slots__ = ("entries", "loop", "waiter", "woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.entries: deque[Entry] = deque()
        self.loop = loop
        self.waiter: asyncio.Future[None] | None = None
        #: Woken while its driver was busy elsewhere (not asleep): its next sleep returns.
        self.woken = False

    def put(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is None:
            self.woken = True
        elif not waiter.done():
            waiter.set_result(None)

    async def sleep(self) -> None:
        """Wait until ``wake`` is called (at once if it was since the last sleep ended)."""
        if self.woken:
            self.woken = False
            return
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class Subscription:
    """One consumer's reading of one stream: the items it has been given and not released."""

    __slots__ = ("closed", "held", "inbox", "slot", "stream")

    def __init__(self, stream: Stream, inbox: Inbox, slot: int) -> None:
        self.stream = stream
        self.inbox = inbox
        self.slot = slot
        self.held: set[int] = set()
        self.closed = False

    def release(self, index: int) -> None:
        """The consumer has taken item ``index``: it no longer counts against the buffer."""
        if index in self.held:
            self.held.discard(index)
            self.stream.released(index)

    def close(self) -> None:
        """The consumer reads no more (it ended, was skipped or cancelled): what it held is
        released, and the stream stops counting it."""
        if self.closed:
            return
        self.closed = True
        self.stream.live.remove(self)
        for index in self.held:
            self.stream.released(index)
        self.held.clear()
        self.stream.wake_producer()


class Stream:
    """The items of one producer node, on their way to its consumers."""

    def __init__(
        self, owner: str, buffer: int, keep: bool, loop: asyncio.AbstractEventLoop
    ) -> None:
        #: The producer's task id (what a consumer names as the culprit when it fails).
        self.owner = owner
        self.buffer = buffer
        #: Whether the producer's node keeps the whole list as its value: a task that is not
        #: a stream consumer takes it, or it is a target of the run.
        self.keep = keep
        self.loop = loop
        self.subscriptions: list[Subscription] = []
        #: The subscriptions not closed yet.
        self.live: list[Subscription] = []
        #: Whether a sync generator's thread reads the counters (they are locked only then).
        self.threaded = False
        #: Set by a producing stage that holds ready items back for want of room: it is
        #: woken when an item is released.
        self.paused = False
        self.count = 0
        self.ended = False
        #: Item index → how many live consumers have not released it.
        self.unreleased: dict[int, int] = {}
        self.held = 0
        #: Set when the run stops or the producer is cancelled: a generator asks for nothing
        #: more and is closed.
        self.stopped = False
        self.lock = threading.Condition()
        self.room: asyncio.Future[None] | None = None
        #: The consumer whose output this is, woken when its output has room again.
        self.producer_inbox: Inbox | None = None
        # A sync generator's items on their way from its thread to the loop.
        self.incoming: deque[Any] = deque()
        self.draining = False

    def subscribe(self, inbox: Inbox, slot: int) -> Subscription:
        subscription = Subscription(self, inbox, slot)
        self.subscriptions.append(subscription)
        self.live.append(subscription)
        return subscription

    # -- the producer's side, on the loop ---------------------------------------------------

    def push(self, index: int, value: Any, kind: int = ITEM, counted: bool = False) -> None:
        """Deliver item ``index`` (or, with ``ITEM_FAILED``, the news that it failed);
        ``counted``: it is in ``held`` already (handed over by a generator's thread)."""
        if self.ended:
            return
        if index >= self.count:
            self.count = index + 1
        live = self.live
        if not live:
            if counted:
                self.released_all(1)
            return
        self.unreleased[index] = len(live)
        if not counted:
            if self.threaded:
                with self.lock:
                    self.held += 1
            else:
                self.held += 1
        for subscription in live:
            subscription.held.add(index)
            subscription.inbox.put((subscription.slot, kind, index, value))

    def end(self, kind: int = END, culprit: str | None = None) -> None:
        """No more items: the input ended normally (``END``), because its producer failed
        (``ABORTED``, naming it), or without any item because it was skipped."""
        if self.ended:
            return
        self.drain()
        self.ended = True
        for subscription in self.subscriptions:
            if not subscription.closed:
                subscription.inbox.put((subscription.slot, kind, self.count, culprit))

    def full(self) -> bool:
        return self.held >= self.buffer and not self.stopped

    async def wait_room(self) -> None:
        """Wait while the buffer is full (an async generator waits here between items)."""
        while self.full():
            self.room = self.loop.create_future()
            try:
                await self.room
            finally:
                self.room = None

    def stop(self) -> None:
        """The run stops or the producer was cancelled: a paused generator wakes and closes."""
        with self.lock:
            self.stopped = True
            self.lock.notify_all()
        self.wake_producer()

    # -- the consumers' side ---------------------------------------------------------------

    def released(self, index: int) -> None:
        left = self.unreleased.get(index)
        if left is None:
            return
        if left > 1:
            self.unreleased[index] = left - 1
            return
        del self.unreleased[index]
        self.released_all(1)

    def released_all(self, count: int) -> None:
        if self.threaded:
            with self.lock:
                self.held -= count
                if self.held < self.buffer:
                    self.lock.notify_all()
        else:
            self.held -= count
        if self.held < self.buffer and (self.room is not None or self.paused):
            self.wake_producer()

    def wake_producer(self) -> None:
        room = self.room
        if room is not None and not room.done():
            room.set_result(None)
        if self.producer_inbox is not None:
            self.producer_inbox.wake()
        if self.threaded and not self.live:
            with self.lock:  # nobody left to wait for: a paused thread goes on
                self.lock.notify_all()

    # -- a sync generator's thread -----------------------------------------------------------

    def put_from_thread(self, value: Any) -> bool:
        """Hand one item from the generator's thread to the loop, then wait while the buffer
        is full. False once the stream is stopped: the generator is to be closed."""
        with self.lock:
            if self.stopped:
                return False
            self.incoming.append(value)
            if not self.draining:
                self.draining = True
                self.loop.call_soon_threadsafe(self.drain)
            while (
                not self.stopped
                and self.held + len(self.incoming) >= self.buffer
                and self._counted()
            ):
                self.lock.wait()
            return not self.stopped

    def _counted(self) -> bool:
        """Whether any consumer still reads (so the buffer applies)."""
        return bool(self.live)

    def drain(self) -> None:
        """On the loop: deliver what the generator's thread handed over."""
        with self.lock:
            batch = list(self.incoming)
            self.incoming.clear()
            self.draining = False
            # Counted as the thread sees them, in one step: never out of both counts.
            counted = self._counted()
            if counted:
                self.held += len(batch)
        for value in batch:
            self.push(self.count, value, counted=counted)


class StreamTable:
    """The streams of one run: what ``cascade.runtime.streams`` planned before it started."""

    def __init__(self) -> None:
        #: Producer node index → its stream.
        self.by_node: dict[int, Stream] = {}
        #: Producer task id → its stream (how a generator's attempt finds it).
        self.by_id: dict[str, Stream] = {}
        #: Consumer node index → its inbox and its subscriptions by input slot.
        self.inboxes: dict[int, Inbox] = {}
        self.subscriptions: dict[int, list[Subscription]] = {}
        #: Consumer node index → its stream inputs: (argument position or keyword, producer).
        self.inputs: dict[int, tuple[tuple[int | str, int], ...]] = {}
        #: Consumers with nothing to wait for but their streams: ready as the run starts.
        self.start_now: list[int] = []
        #: Nodes whose call ``cascade.runtime.streams`` runs (consumers, and maps whose items
        #: stream on), rather than the usual map fan-out.
        self.driven: set[int] = set()

    def settle(self, index: int, value: Any, culprit: str | None) -> None:
        """Node ``index`` completed, however (ran, skipped, failed or not run): a stream it
        produces is ended if its producer did not end it, and its own subscriptions close."""
        stream = self.by_node.get(index)
        if stream is not None and not stream.ended:
            if value is SKIPPED:
                stream.end(SKIPPED_INPUT)
            elif value is FAILED:
                stream.end(ABORTED, culprit or stream.owner)
            else:
                stream.end()
        for subscription in self.subscriptions.get(index, ()):
            subscription.close()

    def stop_all(self) -> None:
        """The run is stopping: every generator is told to stop and be closed."""
        for stream in self.by_node.values():
            stream.stop()


#: Set by a consumer's item while it waits to start: called when its attempt is announced
#: (``cascade.runtime.attempt.announce``), which releases the item's inputs, so the buffer
#: counts items waiting at a pool, a rate or a concurrency limit, not those running.
ITEM_STARTED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "cascade_stream_item_started", default=None
)


def item_started() -> None:
    """Called as an attempt starts: release the stream items it was made from, if any."""
    release = ITEM_STARTED.get()
    if release is not None:
        release()


#: Where a generator task's attempt runs: its driver is an ``async def`` on the event loop
#: (which starts a thread of its own for a sync generator), whatever the task's executor, so
#: its items reach the consumers' executors as they come. Only its async path is used, which
#: needs no start.
LOOP_EXECUTOR: tuple[str, Executor] = ("local", cast(Executor, LocalExecutor(max_workers=1)))


class LoopHandle:
    """``LOOP_EXECUTOR``'s handle for a run (``cascade.executors.ExecutorRun``): it runs a
    generator's driver on the run's event loop (``run_on_loop``)."""

    reports_start = True
    submit_plain = None

    def submit(self, call: TaskCall) -> Any:
        return run_on_loop(call)


def loop_executor(handles: dict[int, Any]) -> tuple[str, Executor]:
    """``LOOP_EXECUTOR``, its handle registered among a run's ``handles`` (by executor id)."""
    handles.setdefault(id(LOOP_EXECUTOR[1]), LoopHandle())
    return LOOP_EXECUTOR


async def run_on_loop(call: TaskCall) -> Any:
    """Run a generator's driver (``call.fn``, an ``async def``) on the event loop, as
    ``LOOP_EXECUTOR`` would: its start reported first, its times noted."""
    if call.on_start is not None:
        call.on_start()
    call.start_time = time.time()
    try:
        return await call.fn(*call.args, **call.kwargs)
    finally:
        call.end_time = time.time()


# -- the generator task's driver -------------------------------------------------------------


def generator_call(
    table: StreamTable | None, task: Task[..., Any], task_id: str, loop: asyncio.AbstractEventLoop
) -> Callable[..., Any]:
    """The function a generator task's attempt runs instead of the task's own: an ``async
    def`` on the event loop that calls the generator function with the attempt's arguments
    (injected resources included) and feeds what it yields into the node's stream. An async
    generator is iterated on the loop; a sync one runs in a thread of its own (so it never
    holds a thread its own consumers need), started in the attempt's context. It returns the
    list of items when the node keeps it, else ``STREAMED``. A stream not planned (a
    generator in a graph a task returned) has no consumers and keeps the list."""
    stream = table.by_id.get(task_id) if table is not None else None
    if stream is None:
        stream = Stream(task_id, task.buffer, True, loop)
    fn = task.fn

    async def drive(*args: Any, **kwargs: Any) -> Any:
        produced = fn(*args, **kwargs)
        try:
            if isinstance(produced, AsyncIterator):
                kept = await _drive_async(stream, produced)
            else:
                kept = await _drive_sync(stream, produced, task.name)
        except BaseException:
            stream.stop()
            stream.end(ABORTED, stream.owner)
            raise
        stream.end()
        return kept if stream.keep else STREAMED

    return drive


async def _drive_async(stream: Stream, agen: AsyncIterator[Any]) -> list[Any] | None:
    kept: list[Any] | None = [] if stream.keep else None
    try:
        index = 0
        async for item in agen:
            if kept is not None:
                kept.append(item)
            stream.push(index, item)
            index += 1
            if stream.full():
                await stream.wait_room()
            if stream.stopped:
                break
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()  # its finally blocks run now, also when cancelled
    return kept


async def _drive_sync(stream: Stream, gen: Iterator[Any], name: str) -> list[Any] | None:
    loop = stream.loop
    done: asyncio.Future[list[Any] | None] = loop.create_future()

    def settle(kept: list[Any] | None, exc: BaseException | None) -> None:
        stream.drain()
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(kept)

    def work() -> None:
        kept: list[Any] | None = [] if stream.keep else None
        try:
            try:
                for item in gen:
                    if kept is not None:
                        kept.append(item)
                    if not stream.put_from_thread(item):
                        break
            finally:
                close = getattr(gen, "close", None)
                if close is not None:
                    close()  # its finally blocks run now, in its own thread
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
            return
        loop.call_soon_threadsafe(settle, kept, None)

    stream.threaded = True
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(work,), name=f"cascade-stream-{name}", daemon=True
    )
    thread.start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # Stop the generator and wait until its thread has closed it: its finally blocks,
        # and the resources it was given, must not outlive the attempt.
        stream.stop()
        while not done.done():
            try:
                await asyncio.wait({done})
            except asyncio.CancelledError:
                continue
        done.exception()  # retrieved: the cancellation is what the attempt reports
        raise
