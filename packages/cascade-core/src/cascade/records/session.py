"""A recording session: what ``Engine.run(..., record=..., resume=...)`` opens for one run.

It chooses the run store (``record=True``: the ``"sqlite"`` store registered through
``cascade_register_run_stores``; a name: another registered store; a path: an SQLite file; or
a ``RunStore`` object), finds the run to resume and checks that it is a run of the same target
(a clear ``RecordError`` listing that target's recent runs otherwise), attaches the recorder to
the engine's bus and makes the checkpoint policy the engine applies to every task. ``close``
detaches it and waits, without blocking the event loop, for the recorder's last write, then
warns (``RecordWarning``) about anything that could not be recorded.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Mapping
from typing import Any

from cascade.bus import MessageBus
from cascade.executors import LogShipping
from cascade.graph.build import Graph, build_graph
from cascade.graph.targets import normalize_target
from cascade.plugins import PluginError, PluginManager, get_plugin_manager
from cascade.records.capture import CAPTURE, LogSink
from cascade.records.checkpoint import CheckpointPolicy
from cascade.records.explain import Explanation, PreviousRun
from cascade.records.model import (
    RUNNING,
    SUCCEEDED,
    RecordedRun,
    RecordError,
    RecordWarning,
    RunStore,
    current_label,
    iso_time,
)
from cascade.records.options import RecordOptions, ResolvedOptions
from cascade.records.recorder import Recorder
from cascade.records.retention import apply_retention

DEFAULT_STORE = "sqlite"


def target_key(graph: Graph) -> str:
    """What a run's record calls its target: the names of its target tasks, sorted."""
    names = sorted({graph.nodes[i].name for i in graph.targets})
    return ", ".join(names)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.endswith((".sqlite3", ".sqlite", ".db"))


def resolve_run_store(
    spec: bool | str | RunStore | None = True, plugins: PluginManager | None = None
) -> RunStore:
    """The run store ``spec`` means: ``True`` (or ``None``) the default (``"sqlite"`` at
    ``$CASCADE_HOME/runs.sqlite3`` or ``.cascade/runs.sqlite3``), a name registered through
    ``cascade_register_run_stores``, a path to an SQLite file, or a ``RunStore`` object."""
    if spec is None or spec is True:
        spec = DEFAULT_STORE
    if isinstance(spec, str):
        manager = plugins if plugins is not None else get_plugin_manager()
        registry = manager.run_stores()
        if spec in registry:
            store = manager.create_run_store(spec)
        elif _looks_like_path(spec):
            store = manager.create_run_store(DEFAULT_STORE, path=spec)
        else:
            available = ", ".join(sorted(registry)) or "none"
            raise PluginError(
                f"unknown run store '{spec}'; available run stores: {available} (or give a "
                "path to an SQLite file, such as runs.sqlite3)"
            )
        if not isinstance(store, RunStore):
            raise TypeError(f"run store '{spec}' made {store!r}, which is not a RunStore")
        return store
    if isinstance(spec, RunStore):
        return spec
    raise TypeError(
        "record= takes True, a run store name, a path to an SQLite file or a RunStore, "
        f"got {spec!r}"
    )


def recent_runs_text(store: RunStore, target: str, limit: int = 5) -> str:
    """The recent runs of ``target`` as the lines an error shows."""
    try:
        runs = store.runs(target=target, limit=limit)
    except Exception as exc:  # the store itself is the problem: say so, not something else
        return f"the run store {store.location} cannot be read: {type(exc).__name__}: {exc}"
    if not runs:
        return f"no run of '{target}' is recorded in {store.location}"
    lines = [f"recent runs of '{target}' in {store.location}:"]
    for run in runs:
        lines.append(f"  {run.run_id}  {run.status:<9}  {iso_time(run.started)}")
    return "\n".join(lines)


def find_resumable(store: RunStore, target: str, resume: str) -> RecordedRun | None:
    """The run ``resume`` names (``"last"``: the latest run of ``target`` that is not still
    running), which must be a run of ``target``. ``"auto"``: that latest run if it did not
    succeed, else ``None`` (a fresh run; also when the target has no run yet)."""
    if not isinstance(resume, str) or not resume.strip():
        raise TypeError(f"resume= takes 'last', 'auto' or a run id, got {resume!r}")
    if resume == "auto":
        for run in store.runs(target=target, limit=20):
            if run.status != RUNNING:
                return None if run.status == SUCCEEDED else run
        return None
    if resume == "last":
        for run in store.runs(target=target, limit=20):
            if run.status != RUNNING:
                return run
        raise RecordError(f"resume='last': {recent_runs_text(store, target)}")
    found = store.run(resume)
    if found is None:
        raise RecordError(
            f"cannot resume run '{resume}': there is no such run in {store.location}; "
            f"{recent_runs_text(store, target)}"
        )
    if found.target != target:
        raise RecordError(
            f"cannot resume run {found.run_id}: it is a run of '{found.target}', and this run's "
            f"target is '{target}'; {recent_runs_text(store, target)}"
        )
    return found


def explain_resume(
    target: Any,
    params: Mapping[str, Any] | None,
    resume: str,
    record: bool | str | RunStore | None = True,
) -> tuple[RecordedRun | None, list[Explanation]]:
    """What ``cs.run(target, params, resume=resume)`` would do, said before it runs
    (``cascade run --resume ... --explain``): the run it resumes (``None``: ``"auto"`` runs
    afresh) and, per task, why it will run again as far as can be told now (see
    ``PreviousRun.preview``). ``target`` is what ``cs.run`` takes."""
    graph = build_graph(normalize_target(target)[0])
    store = resolve_run_store(record)
    resumed = find_resumable(store, target_key(graph), resume)
    if resumed is None:
        return None, []
    previous = PreviousRun.read(store, resumed, store.checkpoints(resumed.run_id), graph)
    return resumed, previous.preview(dict(params or {}))


class RecordingSession:
    """One recorded run: the recorder on the engine's bus, the checkpoint policy, the capture
    of what tasks log, and, when the run ends, the retention of older runs."""

    def __init__(
        self,
        bus: MessageBus,
        store: RunStore,
        recorder: Recorder,
        policy: CheckpointPolicy,
        options: ResolvedOptions | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.recorder = recorder
        self.checkpoint = policy
        self.options = options if options is not None else ResolvedOptions()
        recorder.attach(bus)

    @property
    def resumed_from(self) -> str | None:
        return self.recorder.resumed_from

    @property
    def captures_logs(self) -> bool:
        """Whether the engine should mark attempts for log capture."""
        return self.options.logs is not None

    def log_shipping(self) -> LogShipping | None:
        """What the run's executors need to send back what tasks log in their workers
        (``RunInfo.logs``); ``None`` when the run captures nothing. Call after ``bind``."""
        sink = self.recorder.log_sink
        return None if sink is None else CAPTURE.shipping(sink)

    def bind(self, run_id: str) -> None:
        """The engine made the run's plan: this is run ``run_id``; start recording (and
        capturing what its tasks log); once its record is written, older runs are tidied
        (``cascade.records.retention``) on the recorder's thread, off the event loop."""
        store, target, options = self.store, self.recorder.target, self.options
        self.recorder.after_last_write = lambda: apply_retention(store, target, options, run_id)
        self.recorder.bind(run_id)
        if self.options.logs is not None:
            sink = LogSink(self.options.logs, self.options.max_log_records)
            self.recorder.log_sink = sink
            CAPTURE.add(run_id, sink)

    def watch(self, run: Any) -> None:
        """The engine's run (its ``inflight`` calls, future → graph node, and the one it is
        ``submitting``): ``async def`` calls on its fast path carry no attempt mark, and what
        they log is found through them (see ``cascade.records.capture``)."""
        sink = self.recorder.log_sink
        if sink is not None:
            sink.run = run

    async def close(self) -> None:
        """Detach, let the recorder write what is left, apply retention, and warn about what
        could not be done."""
        self.recorder.detach(self.bus)
        if self.recorder.log_sink is not None:
            CAPTURE.remove(self.recorder.run_id)
        finished = asyncio.wrap_future(self.recorder.stop())
        try:
            await asyncio.shield(finished)
        finally:
            # Cancelled again while waiting: the thread (not a daemon) still finishes its
            # write before the interpreter exits; what it reports is only lost for warnings.
            if finished.done():
                for problem in self.recorder.problems:
                    warnings.warn(problem, RecordWarning, stacklevel=3)


def open_session(
    engine: Any,
    graph: Graph,
    record: bool | str | RunStore | None,
    resume: str | None,
    options: RecordOptions | None = None,
) -> RecordingSession:
    """Start recording a run of ``graph`` on ``engine`` (``record``: where, see
    ``resolve_run_store``; ``resume``: ``"last"``, ``"auto"`` or a run id of the same target;
    ``options``: what the run keeps, see ``RecordOptions``)."""
    if options is not None and not isinstance(options, RecordOptions):
        raise TypeError(f"record_options= takes a cs.RecordOptions, got {options!r}")
    resolved = (options or RecordOptions()).resolved()
    plugins = getattr(engine, "plugins", None)
    store = resolve_run_store(True if record is False else record, plugins)
    target = target_key(graph)
    resumed: RecordedRun | None = None
    if resume is not None:
        resumed = find_resumable(store, target, resume)
    checkpoints = store.checkpoint_store()
    recorder = Recorder(
        store,
        graph,
        target=target,
        label=current_label(),
        resumed_from=resumed.run_id if resumed is not None else None,
        checkpoints=checkpoints,
        checkpoints_location=store.checkpoint_location(),
    )
    if resumed is None:
        policy = CheckpointPolicy(recorder, max_bytes=resolved.max_checkpoint_bytes, graph=graph)
    else:
        saved = store.checkpoints(resumed.run_id)
        policy = CheckpointPolicy(
            recorder,
            {c.key: c for c in saved},
            store.checkpoint_store(resumed.checkpoints),
            max_bytes=resolved.max_checkpoint_bytes,
            previous=PreviousRun.read(store, resumed, saved, graph),
            graph=graph,
        )
    if policy.previous is not None and policy.previous.pruned:
        warnings.warn(
            f"run {resumed.run_id[:8] if resumed else ''} no longer has its checkpoints (only the "
            f"{resolved.keep_checkpoints} latest runs of '{target}' keep theirs): its tasks run "
            "again",
            RecordWarning,
            stacklevel=4,
        )
    return RecordingSession(engine.bus, store, recorder, policy, resolved)


__all__ = [
    "DEFAULT_STORE",
    "RecordingSession",
    "explain_resume",
    "find_resumable",
    "open_session",
    "recent_runs_text",
    "resolve_run_store",
    "target_key",
]
