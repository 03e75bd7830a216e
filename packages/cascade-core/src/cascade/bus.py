"""The message bus: typed publish/subscribe for lifecycle events.

Dispatch is resolved once per event type (walking its MRO, except for bulk events that reach
only their own subscribers) and cached until the subscriptions change, so publishing costs one
dict lookup; ``wants()`` lets the engine skip building events nobody listens to. A
subscription may name the ``statuses`` it cares about (for events that have one, such as
``TaskExecutionFinished``), so the engine can skip successes that only a failure handler
would have seen.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from cascade.events import Event

logger = logging.getLogger("cascade.bus")

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Any]
#: A handler and the statuses it wants (``None``: every event of its type).
_Subscription = tuple[Handler, "frozenset[str] | None"]

#: What a handler raising is allowed to stop: the whole process (Ctrl-C, ``sys.exit``). Any
#: other exception, CancelledError and GeneratorExit included, is logged and contained.
_PROCESS_EXITS = (KeyboardInterrupt, SystemExit)


def _handler_name(handler: Handler) -> str:
    name = getattr(handler, "__qualname__", None) or repr(handler)
    owner = getattr(handler, "__self__", None)
    if owner is not None and "." not in name:
        name = f"{type(owner).__qualname__}.{name}"
    return str(name)


class MessageBus:
    """Delivers each published event to the handlers subscribed to its type or a base type.

    A handler that raises is logged with its name and never breaks the run or the handlers after
    it. ``async def`` handlers are scheduled on the running loop; ``flush()`` waits for them.
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[_Subscription]] = {}
        self._dispatch: dict[type[Event], tuple[_Subscription, ...]] = {}
        self._pending: set[asyncio.Task[Any]] = set()

    def subscribe(
        self,
        event_type: type[E],
        handler: Callable[[E], Any],
        *,
        statuses: Collection[str] | None = None,
    ) -> None:
        """Call ``handler(event)`` for every published event that is an ``event_type`` (and,
        with ``statuses``, whose ``status`` is one of them)."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"subscribe() needs an Event subclass, got {event_type!r}")
        if not callable(handler):
            raise TypeError(f"subscribe() needs a callable handler, got {handler!r}")
        wanted = None
        if statuses is not None:
            if isinstance(statuses, str):
                raise TypeError(f"statuses= takes a collection of statuses, got {statuses!r}")
            wanted = frozenset(statuses)
        self._handlers.setdefault(event_type, []).append((handler, wanted))
        self._dispatch.clear()

    def unsubscribe(self, event_type: type[E], handler: Callable[[E], Any]) -> None:
        """Remove the subscriptions of ``handler`` to ``event_type``; unknown pairs are
        ignored."""
        subscriptions = self._handlers.get(event_type)
        if subscriptions:
            kept = [s for s in subscriptions if s[0] != handler]
            if len(kept) != len(subscriptions):
                self._handlers[event_type] = kept
                self._dispatch.clear()

    def _resolve(self, event_type: type[Event]) -> tuple[_Subscription, ...]:
        found: list[_Subscription] = []
        if not event_type.delivered_to_base_subscribers:
            found.extend(self._handlers.get(event_type, ()))
        else:
            for klass in event_type.__mro__:
                found.extend(self._handlers.get(klass, ()))
        resolved = tuple(found)
        self._dispatch[event_type] = resolved
        return resolved

    def wants(self, event_type: type[Event], status: str | None = None) -> bool:
        """Whether publishing an ``event_type`` (with ``status``, if given) would reach any
        handler."""
        subscriptions = self._dispatch.get(event_type)
        if subscriptions is None:
            subscriptions = self._resolve(event_type)
        if status is None:
            return bool(subscriptions)
        return any(wanted is None or status in wanted for _, wanted in subscriptions)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers, in subscription order (most specific type last)."""
        subscriptions = self._dispatch.get(type(event))
        if subscriptions is None:
            subscriptions = self._resolve(type(event))
        for handler, wanted in subscriptions:
            if wanted is not None and getattr(event, "status", None) not in wanted:
                continue
            try:
                outcome = handler(event)
            except BaseException as exc:
                if isinstance(exc, _PROCESS_EXITS):
                    raise
                logger.exception(
                    "event handler %s raised on %s; the run goes on",
                    _handler_name(handler),
                    type(event).__name__,
                )
                continue
            # Most handlers return None: that test is cheap, isawaitable is not (per event).
            if outcome is not None and inspect.isawaitable(outcome):
                self._schedule(handler, event, outcome)

    def _schedule(self, handler: Handler, event: Event, outcome: Awaitable[Any]) -> None:
        async def guarded() -> None:
            try:
                await outcome
            except BaseException as exc:
                if isinstance(exc, _PROCESS_EXITS):
                    raise
                logger.exception(
                    "async event handler %s raised on %s; the run goes on",
                    _handler_name(handler),
                    type(event).__name__,
                )

        try:
            task = asyncio.get_running_loop().create_task(guarded())
        except RuntimeError:  # published outside a loop: run it to completion here
            asyncio.run(guarded())
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait until every async handler scheduled so far has finished."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


__all__ = ["MessageBus"]
