"""The message bus: typed publish/subscribe for lifecycle events.

Dispatch is resolved once per event type (walking its MRO) and cached until the subscriptions
change, so publishing costs one dict lookup; ``wants()`` lets the engine skip building events
nobody listens to.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cascade.events import Event

logger = logging.getLogger("cascade.bus")

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Any]


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
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._dispatch: dict[type[Event], tuple[Handler, ...]] = {}
        self._pending: set[asyncio.Task[Any]] = set()

    def subscribe(self, event_type: type[E], handler: Callable[[E], Any]) -> None:
        """Call ``handler(event)`` for every published event that is an ``event_type``."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"subscribe() needs an Event subclass, got {event_type!r}")
        if not callable(handler):
            raise TypeError(f"subscribe() needs a callable handler, got {handler!r}")
        self._handlers.setdefault(event_type, []).append(handler)
        self._dispatch.clear()

    def unsubscribe(self, event_type: type[E], handler: Callable[[E], Any]) -> None:
        """Remove a subscription made with the same type and handler; unknown pairs are ignored."""
        handlers = self._handlers.get(event_type)
        if handlers and handler in handlers:
            handlers.remove(handler)
            self._dispatch.clear()

    def _resolve(self, event_type: type[Event]) -> tuple[Handler, ...]:
        found: list[Handler] = []
        for klass in event_type.__mro__:
            found.extend(self._handlers.get(klass, ()))
        resolved = tuple(found)
        self._dispatch[event_type] = resolved
        return resolved

    def wants(self, event_type: type[Event]) -> bool:
        """Whether publishing an ``event_type`` would reach any handler."""
        handlers = self._dispatch.get(event_type)
        if handlers is None:
            handlers = self._resolve(event_type)
        return bool(handlers)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers, in subscription order (most specific type last)."""
        handlers = self._dispatch.get(type(event))
        if handlers is None:
            handlers = self._resolve(type(event))
        for handler in handlers:
            try:
                outcome = handler(event)
            except Exception:
                logger.exception(
                    "event handler %s raised on %s; the run goes on",
                    _handler_name(handler),
                    type(event).__name__,
                )
                continue
            if inspect.isawaitable(outcome):
                self._schedule(handler, event, outcome)

    def _schedule(self, handler: Handler, event: Event, outcome: Awaitable[Any]) -> None:
        async def guarded() -> None:
            try:
                await outcome
            except Exception:
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
