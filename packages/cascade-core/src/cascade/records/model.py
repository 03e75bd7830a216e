"""What a run record is: the run, its task attempts, its graph and checkpoints, the batch a
recorder writes, the ``RunStore`` protocol every store implements, and how a record whose
process is gone reads as ``Crashed``.

Standard library only, so stores from plugins can implement the protocol without loading the
SQLite store, and ``import cascade`` stays light.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cascade.caching.store import CacheStore

# Run statuses. ``Running`` is what a live run's record says; a ``Running`` record whose
# process has gone reads as ``Crashed``.
RUNNING = "Running"
"""A run in progress (or, if its process has gone, one that reads as ``CRASHED``)."""
SUCCEEDED = "Succeeded"
"""A run whose target was computed; also an attempt that returned."""
FAILED = "Failed"
"""A run that ended with an exception; also an attempt that raised."""
CANCELLED = "Cancelled"
"""A run that was cancelled (Ctrl-C, a cancelled ``asyncio`` task); also such an attempt."""
CRASHED = "Crashed"
"""A ``RUNNING`` record whose process stopped proving it is alive (killed, power cut)."""
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELLED, CRASHED)
"""Every status a run record can have, in that order."""
SKIPPED = "Skipped"
"""An attempt's status when the task did not run (``reason`` says why); the other statuses of
an attempt are ``SUCCEEDED``, ``FAILED`` and ``CANCELLED``."""
CHECKPOINT = "Checkpoint"
"""The skip reason of a task that took its value from the checkpoint of the run it resumed."""

#: A stored traceback keeps at most this many characters: its start and its end (where the
#: error is), with a line saying how much was cut between.
TRACEBACK_LIMIT = 20_000
#: A captured log message keeps at most this many characters.
LOG_MESSAGE_LIMIT = 2_000

#: How often a recording process proves it is alive, and after how long without that a
#: ``Running`` record on another host reads as ``Crashed``.
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0


class RecordError(RuntimeError):
    """A run record cannot be used as asked: an unknown or ambiguous run id, a resume of a
    run of another target, a store written by a newer Cascade."""


class RecordWarning(UserWarning):
    """Recording or checkpointing fell short (a store that cannot be written, a result that
    cannot be pickled); the run itself went on."""


@dataclass(frozen=True)
class RecordedRun:
    """One run as its record holds it.

    ``target`` names the target tasks (``"total"``, ``"load, report"``): what a resume must
    match. ``label`` is how the run was asked for where that is known (the command line's
    ``TARGET``). ``params`` maps each param to ``{"value": ...}`` when its value serializes as
    JSON, else to ``{"type": ..., "repr": ...}``. ``status`` is ``Crashed`` for a record left
    ``Running`` by a process that is gone. ``checkpoints`` is where the run's checkpointed
    results are (the cache store's directory). ``tasks`` counts the run's tasks by their last
    status (filled by ``RunStore.runs`` and ``RunStore.run``).
    """

    run_id: str
    target: str
    status: str
    started: float
    ended: float | None = None
    duration: float | None = None
    label: str | None = None
    target_tasks: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    cascade_version: str = ""
    host: str = ""
    pid: int = 0
    process_token: str | None = None
    heartbeat: float | None = None
    trace_id: str | None = None
    resumed_from: str | None = None
    error: str | None = None
    error_type: str | None = None
    checkpoints: str | None = None
    tasks: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``runs`` documents of ``cascade runs ... --output json``)."""
        data = asdict(self)
        data["target_tasks"] = list(self.target_tasks)
        data["started_at"] = iso_time(self.started)
        data["ended_at"] = iso_time(self.ended) if self.ended is not None else None
        del data["process_token"]
        return data


class RecordedAttempt(NamedTuple):
    """One attempt of one task (or one mapped item: ``task_id`` ``"name-3[2]"``), or a task
    that did not run (``status="Skipped"`` with ``reason``: ``CacheHit``, ``Checkpoint``,
    ``ConditionFalse``, ``UpstreamSkipped``, ``UpstreamFailed``; ``upstream`` names the failed
    input). ``parent_task_id`` names the task whose returned graph added it. Times are
    wall-clock seconds. (A named tuple: a recorder makes one per attempt, so it is cheap.)"""

    task_id: str
    task_name: str
    status: str
    attempt: int = 1
    started: float = 0.0
    ended: float = 0.0
    duration: float = 0.0
    executor: str = ""
    parent_task_id: str | None = None
    error: str | None = None
    error_type: str | None = None
    will_retry: bool = False
    fell_back: bool = False
    reason: str | None = None
    upstream: str | None = None
    retry_delay: float | None = None
    #: The failure's traceback from the task's own code on (``TRACEBACK_LIMIT``), for failed
    #: attempts of runs recorded with this version on.
    traceback: str | None = None
    #: What the attempt logged through ``logging`` (see ``LogLine``).
    logs: tuple[LogLine, ...] = ()
    #: Why the task ran in a run that resumed another (or missed its cache): ``why_ran``.
    why_ran: str | None = None
    #: The call's run name (``@cs.task(run_name="fetch-{page}")``), if its task has one.
    call_name: str | None = None
    #: When the attempt began to wait for a pool, a rate or a concurrency limit before it
    #: started (wall-clock seconds), and what for (``"pool 'openai'"``); ``None``: it did not.
    waited_since: float | None = None
    waited_for: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["logs"] = [line.to_dict() for line in self.logs]
        return data


class LogLine(NamedTuple):
    """One log record a task emitted while an attempt ran: when (wall-clock seconds), its
    level name, its logger's name and its message (formatted, cut to ``LOG_MESSAGE_LIMIT``
    characters)."""

    time: float
    level: str
    logger: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "at": iso_time(self.time),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }


class AttemptDetail(NamedTuple):
    """What a recorder keeps of one attempt beside its row: its traceback (a failure) or the
    log lines it emitted. Either may come alone, and logs may come in several parts."""

    task_id: str
    attempt: int
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()


#: The kinds of ``RecordBatch.notes``: why a task ran in this run, and why its result was not
#: checkpointed.
NOTE_RAN, NOTE_UNSAVED = "ran", "unsaved"
#: The kind of the task notes that hold a call's run name.
NOTE_NAME = "name"
#: The kind of the task notes that hold when a call waited at a gate, and for what (JSON).
NOTE_WAITED = "waited"


class GraphNode(NamedTuple):
    """A node of the graph a run started with: its task id (a param's is ``param:name``), its
    name, its ``kind`` (``"task"``, ``"map"``, ``"stream"`` for a generator task's call, or
    ``"param"``) and the ids of the nodes it waits for."""

    task_id: str
    task_name: str
    kind: str = "task"
    deps: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphSnapshot:
    """The graph a run started with, column by column (a recorder takes it without a Python
    step per node): task ids, names, kinds (``"task"``, ``"map"``, ``"stream"``, ``"param"``)
    and, per node, the positions of the nodes it waits for."""

    ids: Sequence[str]
    names: Sequence[str]
    kinds: Sequence[str]
    deps: Sequence[Sequence[int]]

    def nodes(self) -> list[GraphNode]:
        ids = self.ids
        return [
            GraphNode(task_id, name, kind, tuple(ids[d] for d in deps))
            for task_id, name, kind, deps in zip(
                ids, self.names, self.kinds, self.deps, strict=True
            )
        ]

    def to_plain(self) -> dict[str, Any]:
        return {"ids": self.ids, "names": self.names, "kinds": self.kinds, "deps": self.deps}

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> GraphSnapshot:
        return cls(data["ids"], data["names"], data["kinds"], data["deps"])


class Checkpoint(NamedTuple):
    """A checkpointed result: the task that made it, its input-hash ``key`` and the cache
    store ``entry`` that holds it."""

    task_id: str
    key: str
    entry: str


class CheckpointColumns(NamedTuple):
    """New checkpoints held by one cache store ``entry``, as columns (an item per checkpoint
    in each): how a recorder hands a wide run's checkpoints to its store without an object
    per checkpoint. ``rows`` gives them as ``Checkpoint``s."""

    entry: str
    task_ids: Sequence[str]
    keys: Sequence[str]

    def rows(self) -> list[Checkpoint]:
        """One ``Checkpoint`` each, in order."""
        return [
            Checkpoint(task_id, key, self.entry)
            for task_id, key in zip(self.task_ids, self.keys, strict=True)
        ]


@dataclass(frozen=True)
class RunEnd:
    """How a run ended (``RunFinished``)."""

    status: str
    ended: float
    duration: float
    error: str | None = None
    error_type: str | None = None


class SucceededColumns(NamedTuple):
    """Succeeded attempts as columns, one sequence per field with an item per attempt: how a
    recorder hands a wide run's successes to its store without an object per attempt (they
    arrive so from ``cascade.events.TasksSucceeded``). ``rows`` gives them as attempts."""

    task_ids: Sequence[str]
    task_names: Sequence[str]
    parent_task_ids: Sequence[str | None]
    attempt_numbers: Sequence[int]
    start_times: Sequence[float]
    end_times: Sequence[float]
    executors: Sequence[str]

    def rows(self) -> list[RecordedAttempt]:
        """One ``RecordedAttempt`` each, in order."""
        return [
            RecordedAttempt(
                task_id,
                name,
                SUCCEEDED,
                number,
                start,
                end,
                max(end - start, 0.0),
                executor,
                parent,
            )
            for task_id, name, parent, number, start, end, executor in zip(*self, strict=True)
        ]


@dataclass
class RecordBatch:
    """What one write of a recorder holds, written in one transaction: the run itself on the
    first write, its graph, attempts and checkpoints as they come, the retry delays (task id,
    failed attempt, delay), the run's task counts so far (by each task's last status), a
    heartbeat, and its end. ``seq`` numbers a run's batches from 1.

    Attempts are in two parts: ``attempts``, one ``RecordedAttempt`` each (failures, skips,
    cancellations), and ``successes``, succeeded attempts as columns. A success is a task's
    last attempt, so reading ``attempts`` before ``successes`` keeps each task's attempts in
    order. A store that keeps rows reads both through ``all_attempts``; the SQLite store
    keeps the columns as they are. Checkpoints are in two parts the same way:
    ``checkpoints``, one ``Checkpoint`` each (those a resumed run's values refer to), and
    ``checkpoint_columns``, the new ones, as columns per entry; ``all_checkpoints`` gives
    both as rows."""

    run_id: str
    seq: int = 0
    start: RecordedRun | None = None
    graph: GraphSnapshot | None = None
    attempts: list[RecordedAttempt] = field(default_factory=list)
    successes: list[SucceededColumns] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoint_columns: list[CheckpointColumns] = field(default_factory=list)
    retry_delays: list[tuple[str, int, float]] = field(default_factory=list)
    details: list[AttemptDetail] = field(default_factory=list)
    #: (task id, kind, text): ``NOTE_RAN`` (why it ran), ``NOTE_UNSAVED`` (why its result was
    #: not checkpointed).
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    #: The bytes each new checkpoint entry of the batch holds.
    entry_sizes: dict[str, int] = field(default_factory=dict)
    tasks: Mapping[str, int] | None = None
    heartbeat: float | None = None
    end: RunEnd | None = None

    def all_attempts(self) -> list[RecordedAttempt]:
        """Every attempt of the batch as a ``RecordedAttempt``: ``attempts``, then
        ``successes``."""
        found = list(self.attempts)
        for columns in self.successes:
            found.extend(columns.rows())
        return found

    def all_checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint of the batch as a ``Checkpoint``: ``checkpoints``, then
        ``checkpoint_columns``."""
        found = list(self.checkpoints)
        for columns in self.checkpoint_columns:
            found.extend(columns.rows())
        return found

    def __bool__(self) -> bool:
        return bool(
            self.start is not None
            or self.graph is not None
            or self.attempts
            or self.successes
            or self.checkpoints
            or self.checkpoint_columns
            or self.retry_delays
            or self.details
            or self.notes
            or self.heartbeat is not None
            or self.end is not None
        )


@runtime_checkable
class RunStore(Protocol):
    """Where run records live. Cascade registers ``"sqlite"`` (``SQLiteRunStore``); a plugin
    adds others through ``cascade_register_run_stores``.

    ``write`` applies one ``RecordBatch`` atomically; it is called from one recorder thread
    per run, and several processes may write into one store at once. ``runs`` lists runs
    newest first (filtered by ``target`` matching the target or the label, ``status``,
    ``since`` and ``before`` as wall-clock seconds, at most ``limit``); ``run`` finds one by
    id or unique id prefix (``None`` if there is none; ``RecordError`` if the prefix is
    ambiguous). ``delete`` removes runs and returns the checkpoint entries no remaining run
    refers to, as ``(checkpoints location, entry)``, for the caller to remove from the
    checkpoint store. Reads report a ``Running`` record whose process is gone as ``Crashed``
    (``effective_status``). ``checkpoint_store(location)`` is the cache store holding the
    checkpoints a run recorded at ``location`` (``None``: where new runs checkpoint, which
    ``checkpoint_location()`` names).
    """

    location: str
    """Where the store is (a path or an address), as ``cascade runs`` shows it."""

    def write(self, batch: RecordBatch) -> None:
        """Apply one batch of records atomically."""
        ...

    def runs(
        self,
        *,
        target: str | None = None,
        status: str | None = None,
        since: float | None = None,
        before: float | None = None,
        limit: int | None = None,
    ) -> list[RecordedRun]:
        """The runs, newest first, filtered as the arguments say."""
        ...

    def run(self, run_id: str) -> RecordedRun | None:
        """One run by id or unique id prefix; ``None`` if there is none."""
        ...

    def attempts(self, run_id: str) -> list[RecordedAttempt]:
        """Every task attempt of a run, in the order they were recorded."""
        ...

    def graph(self, run_id: str) -> list[GraphNode]:
        """The nodes of a run's graph, as recorded."""
        ...

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        """The checkpoints a run saved."""
        ...

    def delete(self, run_ids: Sequence[str]) -> list[tuple[str | None, str]]:
        """Remove runs; the checkpoint entries no remaining run refers to."""
        ...

    def checkpoint_store(self, location: str | None = None) -> CacheStore:
        """The cache store of the checkpoints recorded at ``location``."""
        ...

    def checkpoint_location(self) -> str:
        """Where new runs save their checkpoints."""
        ...

    def close(self) -> None:
        """Release the store's connections; the store is not used afterwards."""
        ...


# -- values -----------------------------------------------------------------------------------


def param_record(value: Any) -> dict[str, Any]:
    """``{"value": value}`` when it serializes as JSON (strictly: no NaN), else its type and
    ``repr`` (cut to 200 characters)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        return {"value": value}
    kind = type(value)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the run
        text = f"<unrepresentable: {type(exc).__name__}>"
    if len(text) > 200:
        text = text[:197] + "..."
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "repr": text}


def iso_time(seconds: float) -> str:
    """Wall-clock seconds as local ISO 8601 text with its UTC offset, to the millisecond."""
    if not math.isfinite(seconds):
        return ""
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    millis = int((seconds % 1) * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    return f"{stamp}.{millis:03d}{offset[:3]}:{offset[3:]}"


_label: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cascade_record_label", default=None
)


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """Runs recorded inside the block carry ``label``: how they were asked for (``cascade
    run`` labels its runs with its TARGET argument), which ``cascade runs list --target``
    also matches."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def current_label() -> str | None:
    """The label of runs recorded here and now (see ``labelled``)."""
    return _label.get()


# -- is the recording process still there? ----------------------------------------------------

_HOST: str | None = None


def this_host() -> str:
    global _HOST
    if _HOST is None:
        _HOST = socket.gethostname()
    return _HOST


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc, or None without one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def process_token(pid: int | None = None) -> str | None:
    """What tells this process apart from a later one given the same pid: its start time on
    Linux, ``None`` elsewhere."""
    stat = _proc_stat(os.getpid() if pid is None else pid)
    return stat[1] if stat is not None else None


def process_alive(pid: int, token: str | None) -> bool:
    """Whether process ``pid`` of this host still runs (and is the one that wrote ``token``)."""
    if pid <= 0:
        return False
    if token is not None and os.path.isdir("/proc/self"):
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[1] == token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError), or no way to tell
        return True
    return True


def effective_status(run: RecordedRun, now: float | None = None) -> str:
    """The run's status as a reader should see it: a ``Running`` record whose process is gone
    (this host: the pid no longer runs; another host: no heartbeat for a minute) is
    ``Crashed``."""
    if run.status != RUNNING:
        return run.status
    if run.host == this_host():
        return RUNNING if process_alive(run.pid, run.process_token) else CRASHED
    last = run.heartbeat if run.heartbeat is not None else run.started
    now = time.time() if now is None else now
    return CRASHED if now - last > STALE_AFTER_SECONDS else RUNNING


__all__ = [
    "CANCELLED",
    "CHECKPOINT",
    "CRASHED",
    "FAILED",
    "HEARTBEAT_SECONDS",
    "RUNNING",
    "RUN_STATUSES",
    "SKIPPED",
    "STALE_AFTER_SECONDS",
    "SUCCEEDED",
    "LOG_MESSAGE_LIMIT",
    "NOTE_NAME",
    "NOTE_RAN",
    "NOTE_UNSAVED",
    "NOTE_WAITED",
    "TRACEBACK_LIMIT",
    "AttemptDetail",
    "Checkpoint",
    "CheckpointColumns",
    "GraphNode",
    "LogLine",
    "GraphSnapshot",
    "RecordBatch",
    "RecordError",
    "RecordWarning",
    "RecordedAttempt",
    "RecordedRun",
    "RunEnd",
    "RunStore",
    "SucceededColumns",
    "current_label",
    "effective_status",
    "iso_time",
    "labelled",
    "param_record",
    "process_alive",
    "process_token",
    "this_host",
]
