"""The built-in run store: one SQLite database (standard library ``sqlite3``) in WAL mode, at
``.cascade/runs.sqlite3`` under the working directory or ``$CASCADE_HOME/runs.sqlite3``.

The schema carries a version (``PRAGMA user_version``) and is brought up to date by the
``MIGRATIONS`` below when a store is first opened; a database written by a newer Cascade is
refused with a ``RecordError`` rather than changed. Every write is one ``BEGIN IMMEDIATE``
transaction, and SQLite waits up to ``BUSY_TIMEOUT`` seconds for another writer, so several
processes can record into one database at once without losing rows. Checkpointed results are
not in the database: they are entries of a ``DirectoryStore`` (``$CASCADE_CACHE_DIR``, else
``cache`` beside the database), whose directory each run records.

Layout: ``runs`` has one row per run (with its task counts, kept up to date by the recorder);
a run's attempts are written a batch at a time, one row of ``attempt_batches`` per batch (a
wide run costs one row per batch, not one per attempt) holding the batch's attempts as a
pickle of plain tuples, which is read back with an unpickler that loads no class at all (a
tampered database cannot make it run code); ``retries`` holds retry delays, ``graphs`` the
graph each run started with (pickled the same way), and ``checkpoint_entries`` one row per
checkpoint entry with the input-hash keys it holds (JSON).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import operator
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cascade.caching.store import ENV_CACHE_DIR, CacheStore, DirectoryStore
from cascade.records.model import (
    CRASHED,
    NOTE_NAME,
    NOTE_RAN,
    NOTE_WAITED,
    RUNNING,
    Checkpoint,
    GraphNode,
    GraphSnapshot,
    LogLine,
    RecordBatch,
    RecordedAttempt,
    RecordedRun,
    RecordError,
    SucceededColumns,
    effective_status,
)

logger = logging.getLogger("cascade.records")

ENV_HOME = "CASCADE_HOME"
"""Environment variable naming the directory of the run store (default: ``.cascade`` here)."""
DATABASE_NAME = "runs.sqlite3"
#: Seconds a write waits for another process's transaction before it fails.
BUSY_TIMEOUT = 30.0

#: (version, SQL): applied in order to bring a database up to ``SCHEMA_VERSION``.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            target TEXT NOT NULL,
            label TEXT,
            target_tasks TEXT NOT NULL DEFAULT '[]',
            params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            duration REAL,
            cascade_version TEXT NOT NULL DEFAULT '',
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER NOT NULL DEFAULT 0,
            process_token TEXT,
            heartbeat REAL,
            trace_id TEXT,
            resumed_from TEXT,
            error TEXT,
            error_type TEXT,
            checkpoints TEXT,
            tasks TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX runs_by_start ON runs (started);
        CREATE INDEX runs_by_target ON runs (target, started);
        CREATE TABLE attempt_batches (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            attempts BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE retries (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            delay REAL NOT NULL,
            PRIMARY KEY (run_id, task_id, attempt)
        ) WITHOUT ROWID;
        CREATE TABLE graphs (
            run_id TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
            nodes BLOB NOT NULL
        );
        CREATE TABLE checkpoint_entries (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            entry TEXT NOT NULL,
            keys TEXT NOT NULL,
            PRIMARY KEY (run_id, entry)
        ) WITHOUT ROWID;
        CREATE INDEX checkpoint_entries_by_entry ON checkpoint_entries (entry);
        """,
    ),
    (
        2,
        # `cascade runs list --status Failed` reads the latest runs of one status.
        "CREATE INDEX runs_by_status ON runs (status, started);",
    ),
    (
        3,
        # Debugging a run: each failed attempt's traceback, what attempts logged, and notes
        # per task (why it ran, why its result was not checkpointed); the bytes each
        # checkpoint entry holds, for `cascade runs list` and retention.
        """
        CREATE TABLE attempt_tracebacks (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            traceback TEXT NOT NULL,
            PRIMARY KEY (run_id, task_id, attempt)
        ) WITHOUT ROWID;
        CREATE TABLE attempt_logs (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            time REAL NOT NULL,
            level TEXT NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX attempt_logs_by_task ON attempt_logs (run_id, task_id, attempt);
        CREATE TABLE task_notes (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            note TEXT NOT NULL,
            PRIMARY KEY (run_id, task_id, kind)
        ) WITHOUT ROWID;
        ALTER TABLE checkpoint_entries ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_RUN_COLUMNS = (
    "run_id, target, label, target_tasks, params, status, started, ended, duration, "
    "cascade_version, host, pid, process_token, heartbeat, trace_id, resumed_from, error, "
    "error_type, checkpoints, tasks"
)
#: The fields of a ``RecordedAttempt`` a batch stores: those before ``retry_delay``, which
#: lives in ``retries`` (tracebacks, logs and notes have tables of their own).
_STORED_COUNT = RecordedAttempt._fields.index("retry_delay")
_STORED = operator.itemgetter(*range(_STORED_COUNT))
#: A JSON string (``json.dumps`` of a str, in C), and a ``[key,task_id]`` pair of two:
#: how ``checkpoint_entries.keys`` holds an entry's keys.
_JSON_TEXT = json.encoder.encode_basestring_ascii
_KEY_JSON = "[{},{}]".format


def _key_json(key: str, task_id: str) -> str:
    return _KEY_JSON(_JSON_TEXT(key), _JSON_TEXT(task_id))


# One connection per database file per process, shared by every store object of that file (a
# recorded run then costs no connection setup, and no WAL checkpoint when it ends), each used
# under its file's lock. Reopened in a forked child, or when the file was replaced.
_registry_lock = threading.Lock()
_locks: dict[str, threading.RLock] = {}
_connections: dict[str, tuple[int, tuple[int, int], sqlite3.Connection]] = {}


def _lock_for(location: str) -> threading.RLock:
    with _registry_lock:
        lock = _locks.get(location)
        if lock is None:
            lock = _locks[location] = threading.RLock()
        return lock


def default_home() -> Path:
    """``$CASCADE_HOME`` if set, else ``.cascade`` under the working directory (absolute)."""
    configured = os.environ.get(ENV_HOME, "").strip()
    path = Path(configured).expanduser() if configured else Path(".cascade")
    return Path(os.path.abspath(path))


def default_database() -> Path:
    """Where ``cascade run`` and ``record=True`` record: ``runs.sqlite3`` in ``default_home``."""
    return default_home() / DATABASE_NAME


def default_checkpoint_dir(home: Path | None = None) -> Path:
    """``$CASCADE_CACHE_DIR`` if set (the cache's own directory), else ``cache`` in the run
    store's home, which without ``$CASCADE_HOME`` is the default cache directory."""
    configured = os.environ.get(ENV_CACHE_DIR, "").strip()
    if configured:
        return Path(os.path.abspath(Path(configured).expanduser()))
    return (home if home is not None else default_home()) / "cache"


class SQLiteRunStore:
    """Run records in one SQLite file (see the module docstring).

    ``path`` defaults to ``default_database()``; ``checkpoint_dir`` (where new runs' results
    are checkpointed) to ``default_checkpoint_dir`` beside it. Nothing is created until the
    first write; reading a database that does not exist finds no runs. Safe to share between
    threads: every store of one file in a process uses one connection, under one lock, kept
    open until ``close()`` or the end of the process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if path is None:
            self.path = default_database()
        else:
            self.path = Path(os.path.abspath(Path(path).expanduser()))
        if checkpoint_dir is None:
            self.checkpoint_dir = default_checkpoint_dir(self.path.parent)
        else:
            self.checkpoint_dir = Path(os.path.abspath(Path(checkpoint_dir).expanduser()))
        self.location = str(self.path)
        self._lock = _lock_for(self.location)
        self._checkpoint_stores: dict[str, DirectoryStore] = {}

    def __repr__(self) -> str:
        return f"SQLiteRunStore({self.location!r})"

    # -- the connection ----------------------------------------------------------------------

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; ``None`` when the database does not exist and ``create`` is
        false (a read of a store nothing was recorded in). A file this process may not write
        (read-only media, a read-only copy) is opened read-only for reading, without
        switching its journal mode. Any failure to open is a ``RecordError`` naming the file
        (see ``store_error``)."""
        shared = _connections.get(self.location)
        try:
            identity = os.stat(self.location)
        except OSError:
            identity = None
        if shared is not None:
            pid, opened, known = shared
            if pid == os.getpid() and identity is not None and opened == _inode(identity):
                return known
            del _connections[self.location]  # forked, or the file was removed: start again
            if pid == os.getpid():
                known.close()
        if not create and identity is None:
            return None
        if create:
            self._make_directory()
        elif not _writable(self.path):
            return self._open_read_only()
        conn = None
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":  # pragma: no cover - odd hosts
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, self.location, "open") from exc
            raise
        assert conn is not None
        _connections[self.location] = (os.getpid(), _inode(os.stat(self.location)), conn)
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """The database opened read-only (``mode=ro``): nothing is created or changed, not
        even the journal mode. On a read-only filesystem SQLite cannot make the WAL index
        beside the file, so there the file is read as it is (``immutable``)."""
        uri = self.path.as_uri()
        conn = None
        try:
            try:
                conn = sqlite3.connect(
                    f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.OperationalError:
                if conn is not None:
                    conn.close()
                conn = sqlite3.connect(
                    f"{uri}?mode=ro&immutable=1",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                self._migrate(conn)  # refuses it, saying why
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, self.location, "open") from exc
            raise
        _connections[self.location] = (os.getpid(), _inode(os.stat(self.location)), conn)
        return conn

    def _make_directory(self) -> None:
        folder = self.path.parent
        if folder.is_dir():
            return
        folder.mkdir(parents=True, exist_ok=True)
        try:  # a new folder of Cascade's own: keep it out of version control
            (folder / ".gitignore").write_text("# Created by Cascade (run records).\n*\n")
        except OSError:
            pass

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"the run store {self.location} has schema version {version}, written by a "
                f"newer Cascade; this one knows versions up to {SCHEMA_VERSION}. Upgrade "
                "cascade-core, or set CASCADE_HOME to record elsewhere."
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process?
            for number, script in MIGRATIONS:
                if number > version:
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise

    def schema_version(self) -> int:
        """The schema version of the database (0 when it does not exist yet)."""
        with self._lock:
            conn = self._connection(create=False)
            return 0 if conn is None else int(conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close this process's connection to the file (a later use opens it again)."""
        with self._lock:
            shared = _connections.pop(self.location, None)
            if shared is not None and shared[0] == os.getpid():
                shared[2].close()

    # -- writing -----------------------------------------------------------------------------

    def write(self, batch: RecordBatch) -> None:
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._write(conn, batch)
                    conn.execute("COMMIT")
                except BaseException:
                    _roll_back(conn)
                    raise
            except sqlite3.Error as exc:
                raise store_error(exc, self.location, "write to") from exc

    def _write(self, conn: sqlite3.Connection, batch: RecordBatch) -> None:
        run_id = batch.run_id
        start = batch.start
        if start is not None:
            conn.execute(
                f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    start.target,
                    start.label,
                    json.dumps(list(start.target_tasks)),
                    json.dumps(dict(start.params)),
                    start.status,
                    start.started,
                    start.ended,
                    start.duration,
                    start.cascade_version,
                    start.host,
                    start.pid,
                    start.process_token,
                    start.heartbeat,
                    start.trace_id,
                    start.resumed_from,
                    start.error,
                    start.error_type,
                    start.checkpoints,
                    json.dumps(dict(start.tasks)),
                ),
            )
        if batch.graph is not None:
            conn.execute(
                "INSERT OR REPLACE INTO graphs (run_id, nodes) VALUES (?, ?)",
                (run_id, pickle.dumps(batch.graph.to_plain(), protocol=4)),
            )
        if batch.attempts or batch.successes:
            # Attempts are named tuples: stored as plain tuples in their fields' order, without
            # retry_delay (delays come as retry_delays); successes stay columns (a tuple of
            # plain tuples each), as the recorder got them.
            rows = list(map(tuple, map(_STORED, batch.attempts)))
            successes = [tuple(columns) for columns in batch.successes]
            conn.execute(
                "INSERT OR REPLACE INTO attempt_batches (run_id, seq, attempts) VALUES (?, ?, ?)",
                (run_id, batch.seq, pickle.dumps((rows, successes), protocol=4)),
            )
        if batch.retry_delays:
            conn.executemany(
                "INSERT OR REPLACE INTO retries (run_id, task_id, attempt, delay) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, *retry) for retry in batch.retry_delays],
            )
        if batch.checkpoints or batch.checkpoint_columns:
            by_entry: dict[str, list[str]] = {}  # entry -> its keys, JSON text each
            for checkpoint in batch.checkpoints:
                by_entry.setdefault(checkpoint.entry, []).append(
                    _key_json(checkpoint.key, checkpoint.task_id)
                )
            for columns in batch.checkpoint_columns:
                # Encoded in C, without an object per checkpoint: a batch holds as many as
                # the run had successes since the last write.
                by_entry.setdefault(columns.entry, []).extend(
                    map(_KEY_JSON, map(_JSON_TEXT, columns.keys), map(_JSON_TEXT, columns.task_ids))
                )
            for entry, keys in by_entry.items():
                known = conn.execute(
                    "SELECT keys FROM checkpoint_entries WHERE run_id = ? AND entry = ?",
                    (run_id, entry),
                ).fetchone()
                text = ",".join(keys)
                if known is not None and known[0] != "[]":
                    text = f"{known[0][1:-1]},{text}"
                conn.execute(
                    "INSERT OR REPLACE INTO checkpoint_entries (run_id, entry, keys) "
                    "VALUES (?, ?, ?)",
                    (run_id, entry, f"[{text}]"),
                )
        if batch.details:
            conn.executemany(
                "INSERT OR REPLACE INTO attempt_tracebacks (run_id, task_id, attempt, traceback) "
                "VALUES (?, ?, ?, ?)",
                [
                    (run_id, d.task_id, d.attempt, d.traceback)
                    for d in batch.details
                    if d.traceback is not None
                ],
            )
            conn.executemany(
                "INSERT INTO attempt_logs (run_id, task_id, attempt, time, level, logger, "
                "message) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, d.task_id, d.attempt, *line) for d in batch.details for line in d.logs],
            )
        if batch.notes:
            conn.executemany(
                "INSERT OR REPLACE INTO task_notes (run_id, task_id, kind, note) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, *note) for note in batch.notes],
            )
        if batch.entry_sizes:
            conn.executemany(
                "UPDATE checkpoint_entries SET size = ? WHERE run_id = ? AND entry = ?",
                [(size, run_id, entry) for entry, size in batch.entry_sizes.items()],
            )
        if batch.tasks is not None:
            conn.execute(
                "UPDATE runs SET tasks = ? WHERE run_id = ?",
                (json.dumps(dict(batch.tasks)), run_id),
            )
        if batch.heartbeat is not None:
            conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ?", (batch.heartbeat, run_id)
            )
        end = batch.end
        if end is not None:
            conn.execute(
                "UPDATE runs SET status = ?, ended = ?, duration = ?, error = ?, error_type = ?, "
                "heartbeat = ? WHERE run_id = ?",
                (end.status, end.ended, end.duration, end.error, end.error_type, end.ended, run_id),
            )

    # -- reading -----------------------------------------------------------------------------

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection(create=False)
            if conn is None:
                return []
            try:
                return conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise store_error(exc, self.location, "read") from exc

    def _run_from(self, row: tuple[Any, ...], now: float) -> RecordedRun:
        run = RecordedRun(
            run_id=row[0],
            target=row[1],
            label=row[2],
            target_tasks=tuple(json.loads(row[3] or "[]")),
            params=json.loads(row[4] or "{}"),
            status=row[5],
            started=row[6],
            ended=row[7],
            duration=row[8],
            cascade_version=row[9],
            host=row[10],
            pid=row[11],
            process_token=row[12],
            heartbeat=row[13],
            trace_id=row[14],
            resumed_from=row[15],
            error=row[16],
            error_type=row[17],
            checkpoints=row[18],
            tasks=json.loads(row[19] or "{}"),
        )
        status = effective_status(run, now)
        return run if status == run.status else dataclasses.replace(run, status=status)

    def runs(
        self,
        *,
        target: str | None = None,
        status: str | None = None,
        since: float | None = None,
        before: float | None = None,
        limit: int | None = None,
    ) -> list[RecordedRun]:
        where: list[str] = []
        args: list[Any] = []
        if target is not None:
            where.append("(target = ? OR label = ?)")
            args += [target, target]
        if status is not None:
            where.append("status = ?")
            args.append(RUNNING if status == CRASHED else status)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if before is not None:
            where.append("started < ?")
            args.append(before)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, rowid DESC"
        derived = status in (RUNNING, CRASHED)
        if limit is not None and not derived:
            sql += f" LIMIT {int(limit)}"
        now = time.time()
        found = [self._run_from(row, now) for row in self._read(sql, args)]
        if derived:
            found = [run for run in found if run.status == status]
            if limit is not None:
                found = found[:limit]
        return found

    def run(self, run_id: str) -> RecordedRun | None:
        rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows and run_id:
            pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._read(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id LIKE ? ESCAPE '\\' "
                "ORDER BY started DESC LIMIT 11",
                (pattern + "%",),
            )
            if len(rows) > 1:
                shown = ", ".join(row[0][:12] for row in rows[:10])
                raise RecordError(
                    f"run id '{run_id}' is ambiguous in {self.location}: it starts {len(rows)}"
                    f"{'+' if len(rows) > 10 else ''} runs ({shown}); give more of it"
                )
        return self._run_from(rows[0], time.time()) if rows else None

    def attempts(self, run_id: str) -> list[RecordedAttempt]:
        found: list[RecordedAttempt] = []
        for rows, successes in self.attempt_batches(run_id):
            found.extend(rows)
            for columns in successes:
                found.extend(columns.rows())
        return self.with_details(run_id, found)

    def attempt_batches(
        self, run_id: str
    ) -> list[tuple[list[RecordedAttempt], list[SucceededColumns]]]:
        """A run's attempts as they were written, batch by batch: each batch's failures,
        skips and cancellations as ``RecordedAttempt`` rows (with their retry delays, without
        tracebacks, logs or notes: ``with_details`` adds those), then its successes as
        columns. Reading a very wide run so makes no object per succeeded call
        (``cascade.records.table``)."""
        batches = self._read(
            "SELECT attempts FROM attempt_batches WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        delays = {
            (task_id, attempt): delay
            for task_id, attempt, delay in self._read(
                "SELECT task_id, attempt, delay FROM retries WHERE run_id = ?", (run_id,)
            )
        }
        make = RecordedAttempt._make
        found: list[tuple[list[RecordedAttempt], list[SucceededColumns]]] = []
        for (data,) in batches:
            try:
                stored = _plain_loads(data)
                # (rows, success columns); a batch an earlier Cascade wrote is a list of
                # rows.
                rows, successes = (stored, []) if isinstance(stored, list) else stored
            except Exception as exc:
                raise RecordError(
                    f"the attempts of run {run_id} in {self.location} are damaged: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            found.append(
                (
                    [
                        make(
                            (
                                *row[:_STORED_COUNT],
                                delays.get((row[0], row[3])) if delays else None,
                                None,
                                (),
                                None,
                                None,
                                None,
                                None,
                            )
                        )
                        for row in rows
                    ],
                    [SucceededColumns(*columns) for columns in successes],
                )
            )
        return found

    def with_details(self, run_id: str, found: list[RecordedAttempt]) -> list[RecordedAttempt]:
        """``found`` (attempts of run ``run_id``, in order) with their tracebacks, logs, why
        their task ran, run names and waits (tables a store of schema 3 on has; few rows in
        a run, so attempts without any cost nothing)."""
        if self.schema_version() < 3:
            return found
        tracebacks = {
            (task_id, attempt): text
            for task_id, attempt, text in self._read(
                "SELECT task_id, attempt, traceback FROM attempt_tracebacks WHERE run_id = ?",
                (run_id,),
            )
        }
        logs: dict[tuple[str, int], list[LogLine]] = {}
        for task_id, attempt, *line in self._read(
            "SELECT task_id, attempt, time, level, logger, message FROM attempt_logs "
            "WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        ):
            logs.setdefault((task_id, attempt), []).append(LogLine(*line))
        ran: dict[str, str] = {}
        names: dict[str, str] = {}
        waits: dict[str, list[tuple[float, str]]] = {}
        for task_id, kind, note in self._read(
            "SELECT task_id, kind, note FROM task_notes WHERE run_id = ? AND kind IN (?, ?, ?)",
            (run_id, NOTE_RAN, NOTE_NAME, NOTE_WAITED),
        ):
            if kind == NOTE_WAITED:
                try:
                    waits[task_id] = [(float(t), str(g)) for t, g in json.loads(note)]
                except (ValueError, TypeError):
                    pass  # a damaged note: the attempt is shown without its wait
            else:
                (ran if kind == NOTE_RAN else names)[task_id] = note
        if not tracebacks and not logs and not ran and not names and not waits:
            return found
        previous_end: dict[str, float] = {}
        for index, attempt in enumerate(found):
            key = (attempt.task_id, attempt.attempt)
            task_id = attempt.task_id
            waited = _waited(waits.get(task_id), previous_end.get(task_id), attempt)
            previous_end[task_id] = attempt.ended
            if key in tracebacks or key in logs or task_id in ran or task_id in names or waited:
                found[index] = attempt._replace(
                    traceback=tracebacks.get(key),
                    logs=tuple(logs.get(key, ())),
                    why_ran=ran.get(task_id),
                    call_name=names.get(task_id),
                    waited_since=waited[0] if waited else None,
                    waited_for=waited[1] if waited else None,
                )
        return found

    def notes(self, run_id: str, kind: str) -> dict[str, str]:
        """The notes of one kind (``NOTE_RAN``, ``NOTE_UNSAVED``) of a run's tasks, by task
        id."""
        if self.schema_version() < 3:
            return {}
        return dict(
            self._read(
                "SELECT task_id, note FROM task_notes WHERE run_id = ? AND kind = ?",
                (run_id, kind),
            )
        )

    def checkpoint_bytes(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The bytes of checkpoints each run made (entries it only reuses are not counted)."""
        if not run_ids or self.schema_version() < 3:
            return {}
        marks = ", ".join("?" * len(run_ids))
        return {
            run_id: int(size or 0)
            for run_id, size in self._read(
                "SELECT run_id, sum(size) FROM checkpoint_entries WHERE run_id IN "
                f"({marks}) AND entry LIKE 'cascade-checkpoint/' || run_id || '/%' "
                "GROUP BY run_id",
                list(run_ids),
            )
        }

    def graph(self, run_id: str) -> list[GraphNode]:
        rows = self._read("SELECT nodes FROM graphs WHERE run_id = ?", (run_id,))
        if not rows:
            return []
        try:
            return GraphSnapshot.from_plain(_plain_loads(rows[0][0])).nodes()
        except Exception as exc:  # a damaged row: the rest of the record is still there
            logger.warning("the graph of run %s in %s is unreadable: %s", run_id, self, exc)
            return []

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        rows = self._read("SELECT entry, keys FROM checkpoint_entries WHERE run_id = ?", (run_id,))
        return [
            Checkpoint(task_id, key, entry)
            for entry, keys in rows
            for key, task_id in json.loads(keys)
        ]

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, run_ids: Sequence[str]) -> list[tuple[str | None, str]]:
        if not run_ids:
            return []
        with self._lock:
            conn = self._connection(create=False)
            if conn is None:
                return []
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise store_error(exc, self.location, "delete from") from exc
            try:
                entries: dict[str, str | None] = {}
                for run_id in run_ids:
                    for entry, where in conn.execute(
                        "SELECT c.entry, r.checkpoints FROM checkpoint_entries c JOIN runs r "
                        "ON r.run_id = c.run_id WHERE c.run_id = ?",
                        (run_id,),
                    ):
                        entries[entry] = where
                    conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                orphans = [
                    (where, entry)
                    for entry, where in entries.items()
                    if conn.execute(
                        "SELECT 1 FROM checkpoint_entries WHERE entry = ? LIMIT 1", (entry,)
                    ).fetchone()
                    is None
                ]
                conn.execute("COMMIT")
            except BaseException as exc:
                _roll_back(conn)
                if isinstance(exc, sqlite3.Error):
                    raise store_error(exc, self.location, "delete from") from exc
                raise
        return orphans

    def drop_checkpoints(
        self, target: str, keep: Sequence[str], mark: str
    ) -> list[tuple[str | None, str]]:
        """Forget the checkpoints of ``target``'s runs other than ``keep`` (marking each such
        run with the note ``mark``), and return the entries no remaining run refers to, as
        ``delete`` does, for the caller to remove from the checkpoint store."""
        with self._lock:
            conn = self._connection(create=False)
            if conn is None or self.schema_version() < 3:
                return []
            marks = ", ".join("?" * len(keep))
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rows = conn.execute(
                        "SELECT c.run_id, c.entry, r.checkpoints FROM checkpoint_entries c "
                        "JOIN runs r ON r.run_id = c.run_id WHERE (r.target = ? OR r.label = ?) "
                        f"AND r.status != 'Running' AND c.run_id NOT IN ({marks})",
                        (target, target, *keep),
                    ).fetchall()
                    runs = sorted({run_id for run_id, _, _ in rows})
                    for run_id in runs:
                        conn.execute("DELETE FROM checkpoint_entries WHERE run_id = ?", (run_id,))
                        conn.execute(
                            "INSERT OR REPLACE INTO task_notes (run_id, task_id, kind, note) "
                            "VALUES (?, '*', ?, ?)",
                            (run_id, mark, str(time.time())),
                        )
                    orphans = [
                        (where, entry)
                        for entry, where in {entry: where for _, entry, where in rows}.items()
                        if conn.execute(
                            "SELECT 1 FROM checkpoint_entries WHERE entry = ? LIMIT 1", (entry,)
                        ).fetchone()
                        is None
                    ]
                    conn.execute("COMMIT")
                except BaseException:
                    _roll_back(conn)
                    raise
            except sqlite3.Error as exc:
                raise store_error(exc, self.location, "tidy") from exc
        return orphans

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_store(self, location: str | None = None) -> CacheStore:
        """The cache store holding checkpoints at ``location`` (a run's ``checkpoints``), or
        where new runs checkpoint (``checkpoint_dir``)."""
        where = location or str(self.checkpoint_dir)
        store = self._checkpoint_stores.get(where)
        if store is None and location is None:
            try:  # the store's folder first (with its .gitignore), whoever writes first
                self._make_directory()
            except OSError:
                pass  # the first write says what is wrong, naming the path
        if store is None:
            store = self._checkpoint_stores[where] = DirectoryStore(where)
        return store

    def checkpoint_location(self) -> str:
        """What a new run records as its ``checkpoints``."""
        return str(self.checkpoint_dir)


class _PlainUnpickler(pickle.Unpickler):
    """Loads tuples, lists, dicts, strings, numbers, booleans and None, and refuses every class
    or function a pickle names (what would let a tampered pickle run code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"attempt rows hold plain values only, not {module}.{name}")


def _waited(
    waits: list[tuple[float, str]] | None, after: float | None, attempt: RecordedAttempt
) -> tuple[float, str] | None:
    """When ``attempt`` began to wait before it started (the first wait after the task's
    previous attempt ended), and the gates it waited for."""
    if not waits or attempt.status == "Skipped":
        return None
    mine = [(t, g) for t, g in waits if t <= attempt.started and (after is None or t >= after)]
    if not mine:
        return None
    return mine[0][0], ", ".join(dict.fromkeys(g for _, g in mine))


def _writable(path: Path) -> bool:
    """Whether this process may write the database and make its journal files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not ended it already (it does on a full
    disk or an I/O error: a ROLLBACK then fails and would hide the real error)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error that got us here is the one to report


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or the SQLite error behind a ``RecordError``) says another process
    holds the database locked: worth trying again later."""
    cause = exc.__cause__ if isinstance(exc, RecordError) else exc
    return isinstance(cause, sqlite3.OperationalError) and (
        "locked" in str(cause) or "busy" in str(cause)
    )


def store_error(exc: sqlite3.Error, location: str, doing: str) -> RecordError:
    """A ``RecordError`` for an SQLite failure: it names the file and says what to do."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code == "SQLITE_FULL" or "disk is full" in text or "disk or database is full" in text:
        advice = (
            "the disk is full: free some space there (`cascade runs prune`), or set "
            f"{ENV_HOME} to keep run records on another disk"
        )
    elif code == "SQLITE_NOTADB" or "not a database" in text or "malformed" in text:
        advice = (
            "the file is damaged or is not a run store: move it aside (Cascade starts a new "
            f"one there), or set {ENV_HOME} to keep run records elsewhere"
        )
    elif code == "SQLITE_READONLY" or "readonly" in text or "read-only" in text:
        advice = (
            f"it is read-only here: set {ENV_HOME} to a writable folder to record runs, or "
            "read it with `cascade runs --db PATH`"
        )
    elif "locked" in text or "busy" in text:
        advice = f"another process held it locked for {BUSY_TIMEOUT:g} seconds"
    elif "unable to open" in text:
        advice = (
            "the file or its folder cannot be opened: check that the folder exists and that "
            f"you may read it, or set {ENV_HOME} to keep run records elsewhere"
        )
    else:
        advice = f"set {ENV_HOME} to keep run records elsewhere if this persists"
    return RecordError(
        f"cannot {doing} the run store {location}: {type(exc).__name__}: {text}; {advice}"
    )


def _plain_loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


def _inode(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


__all__ = [
    "BUSY_TIMEOUT",
    "DATABASE_NAME",
    "ENV_HOME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteRunStore",
    "default_checkpoint_dir",
    "default_database",
    "default_home",
    "is_busy",
    "store_error",
]
