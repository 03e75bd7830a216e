"""The ASGI application (Starlette): two pages, the JSON API behind them, and the live streams.

Pages: ``/`` lists the runs, ``/runs/{id}`` shows one; both are static HTML whose script
(shipped in ``static/``, loading nothing from the network) reads the API:

- ``GET /api/runs`` — runs newest first (``target``, ``status``, ``q`` an id prefix, ``limit``);
- ``GET /api/runs/{id}`` — one run: its facts, the graph grouped by task, counts, failures;
- ``GET /api/runs/{id}/tasks`` — a page of its tasks (``status``, ``name``, ``group``,
  ``offset``, ``limit``);
- ``GET /api/runs/{id}/timeline`` — its attempts as columns (``after``: from the N-th on;
  ``fields``: which columns; ``format=binary``: as typed arrays, see ``columns``);
- ``GET /api/events`` and ``GET /api/runs/{id}/events`` — server-sent events: the runs list's
  changes, and a run's page document each time its record changes.

Read-only: every route is a GET. Requests whose ``Host`` is not an allowed name are refused
(a page of another site whose name resolves to 127.0.0.1 cannot read the view), and a Content
Security Policy lets pages load only from the view itself.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cascade.records import RUN_STATUSES, RUNNING, RecordError, RunStore
from cascade_ui._version import __version__
from cascade_ui.columns import pack_columns
from cascade_ui.reader import Reader
from cascade_ui.views import DRAWN, run_summary

#: How often a live stream looks at the store.
POLL_SECONDS = 0.2
#: An idle stream sends a comment this often, so proxies and browsers keep it open.
KEEPALIVE_SECONDS = 15.0
#: The largest page of ``/api/runs/{id}/tasks``.
MAX_PAGE = 5000

_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """Adds the Content Security Policy and friends to every response (plain ASGI, so the
    event streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


@functools.cache
def _page(name: str) -> str:
    """A page of ``static/`` (read once: the package's files do not change while it runs)."""
    return (resources.files("cascade_ui") / "static" / name).read_text("utf-8")


def _error_page(status: int, title: str, message: str) -> HTMLResponse:
    body = _page("error.html").replace("{title}", html.escape(title))
    body = body.replace("{message}", html.escape(message)).replace("{status}", str(status))
    return HTMLResponse(body, status_code=status)


def _int(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(
            400, f"query parameter {name!r} must be a whole number, not {text!r}"
        ) from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise HTTPException(400, f"query parameter {name!r} must be {bound}, not {value}")
    return value


def _status(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise HTTPException(
            400, f"unknown run status {status!r}; the statuses are {', '.join(RUN_STATUSES)}"
        )
    return status


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _json(data: Any, status: int = 200) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json")


def _sse(event: str, data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n"


def create_app(store: RunStore, *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The view of ``store`` as an ASGI application. ``allowed_hosts``: the ``Host`` header
    values it answers (default: ``127.0.0.1``, ``localhost`` and ``[::1]``); the server sets
    ``app.state.stopping`` to a callable that says when to end the live streams."""
    reader = Reader(store)
    hosts = list(allowed_hosts or ["127.0.0.1", "localhost", "[::1]"])

    def stopping() -> bool:
        check: Callable[[], bool] = getattr(app.state, "stopping", lambda: False)
        return bool(check())

    async def resolve(run_id: str) -> Any:
        """The run ``run_id`` names (an id or a unique prefix), or an HTTP error."""
        try:
            run = await anyio.to_thread.run_sync(reader.run, run_id)
        except RecordError as exc:
            raise HTTPException(400, str(exc)) from None
        if run is None:
            raise HTTPException(404, f"no run '{run_id}' is recorded in {reader.location}")
        return run

    async def view_of(run_id: str) -> Any:
        run = await resolve(run_id)
        view = await anyio.to_thread.run_sync(reader.view, run.run_id)
        if view is None:  # deleted between the two reads
            raise HTTPException(404, f"no run '{run_id}' is recorded in {reader.location}")
        return view

    # -- pages ----------------------------------------------------------------------------------

    async def index(request: Request) -> Response:
        return HTMLResponse(_page("index.html"))

    warming: set[asyncio.Task[Any]] = set()

    async def warm(run_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(reader.view, run_id)
        except Exception:  # the page's own requests report what went wrong
            pass

    async def run_page(request: Request) -> Response:
        run = await resolve(request.path_params["run_id"])
        # The page's script asks for the run's view as soon as it runs: start computing it
        # now, while the browser fetches the script (the view is shared; its requests wait
        # for this computation instead of starting another).
        task = asyncio.create_task(warm(run.run_id))
        warming.add(task)
        task.add_done_callback(warming.discard)
        return HTMLResponse(_page("run.html"))

    # -- the API --------------------------------------------------------------------------------

    def list_filters(request: Request) -> dict[str, Any]:
        return {
            "target": request.query_params.get("target") or None,
            "status": _status(request),
            "prefix": (request.query_params.get("q") or "").strip() or None,
            "limit": _int(request, "limit", 200, 1, 1000),
        }

    async def api_runs(request: Request) -> Response:
        filters = list_filters(request)
        runs = await anyio.to_thread.run_sync(lambda: reader.runs(**filters))
        return _json(
            {
                "store": reader.location,
                "exists": reader.exists(),
                "version": __version__,
                "runs": runs,
            }
        )

    async def api_run(request: Request) -> Response:
        view = await view_of(request.path_params["run_id"])
        return _json(view.document())

    async def api_tasks(request: Request) -> Response:
        view = await view_of(request.path_params["run_id"])
        page = view.tasks(
            status=request.query_params.get("status") or None,
            name=request.query_params.get("name") or None,
            group=request.query_params.get("group") or None,
            offset=_int(request, "offset", 0),
            limit=_int(request, "limit", 100, 1, MAX_PAGE),
        )
        page["run_id"] = view.run.run_id
        return _json(page)

    async def api_timeline(request: Request) -> Response:
        view = await view_of(request.path_params["run_id"])
        after = _int(request, "after", 0)
        asked = request.query_params.get("fields")
        fields = tuple(f.strip() for f in asked.split(",") if f.strip()) if asked else DRAWN
        form = request.query_params.get("format") or "json"
        if form not in ("json", "binary"):
            raise HTTPException(
                400, f"query parameter 'format' must be 'json' or 'binary', not {form!r}"
            )
        key = f"timeline:{after}:{','.join(fields)}:{form}"
        body = view.responses.get(key)
        if body is None:

            def make() -> bytes:
                try:
                    data = view.timeline(after, fields)
                    data["run_id"] = view.run.run_id
                    data["run_status"] = view.run.status
                    return pack_columns(data, fields) if form == "binary" else _dumps(data)
                except ValueError as exc:
                    raise HTTPException(400, str(exc)) from None

            body = await anyio.to_thread.run_sync(make)
            if view.run.status != RUNNING and after == 0:
                view.responses[key] = body
        kind = "application/octet-stream" if form == "binary" else "application/json"
        return Response(body, media_type=kind)

    # -- live -----------------------------------------------------------------------------------

    def stream(events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def ticks() -> AsyncIterator[bool]:
        """Every ``POLL_SECONDS`` until the server stops: whether the store's file changed
        (or a while has passed: a running run's process may have gone)."""
        stamp = reader.stamp()
        checked = time.monotonic()
        yield True
        while not stopping():
            await asyncio.sleep(POLL_SECONDS)
            now_stamp = reader.stamp()
            now = time.monotonic()
            if now_stamp != stamp or now - checked > 2.0:
                stamp, checked = now_stamp, now
                yield True
            else:
                yield False

    async def runs_events(request: Request) -> Response:
        filters = list_filters(request)

        def signature(run: dict[str, Any]) -> str:
            return json.dumps([run["status"], run["tasks"], run["ended"]], default=str)

        async def events() -> AsyncIterator[str]:
            runs = await anyio.to_thread.run_sync(lambda: reader.runs(**filters))
            seen = {r["run_id"]: signature(r) for r in runs}
            newest = max((r["started"] for r in runs), default=None)
            yield _sse(
                "runs",
                {"store": reader.location, "exists": reader.exists(), "runs": runs},
            )
            quiet = 0.0
            updates_from = ticks()
            await updates_from.__anext__()  # the first tick: the snapshot above is current
            async for changed in updates_from:
                if not changed:
                    quiet += POLL_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield ": keepalive\n\n"
                    continue
                live = [run_id for run_id, sig in seen.items() if json.loads(sig)[0] == RUNNING]

                def read(since: float | None = newest, live: list[str] = live) -> list[Any]:
                    fresh = reader.runs(**{**filters, "limit": 1000}, since=since)
                    found = {r["run_id"]: r for r in fresh}
                    for run_id in live:
                        if run_id not in found:
                            run = reader.run(run_id)
                            if run is not None:
                                found[run_id] = run_summary(run)
                    return list(found.values())

                updates = []
                for run in await anyio.to_thread.run_sync(read):
                    sig = signature(run)
                    if seen.get(run["run_id"]) != sig:
                        seen[run["run_id"]] = sig
                        updates.append(run)
                    if newest is None or run["started"] > newest:
                        newest = run["started"]
                if updates:
                    quiet = 0.0
                    yield _sse("update", {"exists": reader.exists(), "runs": updates})

        return stream(events())

    async def run_events(request: Request) -> Response:
        run = await resolve(request.path_params["run_id"])
        run_id = run.run_id

        async def events() -> AsyncIterator[str]:
            last = None
            quiet = 0.0
            async for changed in ticks():
                if changed:
                    view = await anyio.to_thread.run_sync(reader.view, run_id)
                    if view is None:
                        yield _sse("gone", {"run_id": run_id})
                        return
                    document = view.document()
                    text = json.dumps(document, sort_keys=True, default=str)
                    if text != last:
                        last = text
                        quiet = 0.0
                        yield _sse("run", document)
                        continue
                quiet += POLL_SECONDS
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"

        return stream(events())

    # -- errors ---------------------------------------------------------------------------------

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        if request.url.path.startswith("/api/"):
            return _json({"error": detail, "status": status}, status)
        if status == 404 and detail == "Not Found":
            detail = f"There is no page at {request.url.path}."
        title = {404: "Not found", 400: "Bad request", 405: "Method not allowed"}.get(
            status, "Error"
        )
        return _error_page(status, title, str(detail))

    static = StaticFiles(packages=[("cascade_ui", "static")])
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/runs/{run_id}", run_page),
            Route("/api/runs", api_runs),
            Route("/api/events", runs_events),
            Route("/api/runs/{run_id}", api_run),
            Route("/api/runs/{run_id}/tasks", api_tasks),
            Route("/api/runs/{run_id}/timeline", api_timeline),
            Route("/api/runs/{run_id}/events", run_events),
            Mount("/static", app=static, name="static"),
        ],
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.reader = reader
    return app


__all__ = ["create_app"]
