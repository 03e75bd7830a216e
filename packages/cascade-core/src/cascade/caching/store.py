"""Where cached results live: the store protocol, the default directory store, an in-memory
store, and the statistics both report.

Cached values are pickled, and loading a pickle can run code: only point a store at a directory
you trust (never one that other users can write to).

Stores are pluggable. A plugin implements ``cascade_register_cache_stores(register)`` and calls
``register(name, factory)``; ``cs.InputHashCache(store=name)`` then builds ``factory()``. The
built-ins are ``"directory"`` (a ``DirectoryStore`` at the default directory) and ``"memory"``
(one ``MemoryStore``, in ``cascade.caching.memory_store``, shared by the whole process).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import pickle
import re
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cascade.spec.cache_policy import CacheWarning

logger = logging.getLogger("cascade.caching")

ENV_CACHE_DIR = "CASCADE_CACHE_DIR"
"""Environment variable naming the default cache directory."""

KEY_PARTS_PREFIX = "cascade-key-parts/"
"""Keys under which ``InputHashCache`` keeps, per task, the parts of the key of its latest
result (to say why a later call missed). The built-in stores count none of them as entries
or in their hits and misses; ``clear`` removes them with their task's entries."""

_MAGIC = b"CASCADE-CACHE 1\n"
_SUFFIX = ".entry"
_PARTS_SUFFIX = ".parts"
_HEX_KEY = re.compile(r"[0-9a-f]{32,128}")
#: Entries are data, never executable: readable by others (a shared cache), written only by
#: their owner (the umask may take more away).
_ENTRY_MODE = 0o644


@dataclass(frozen=True)
class TaskCacheStats:
    """Entries stored for one task and their size on disk."""

    entries: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class CacheStats:
    """What a store holds, plus what it did in this process.

    ``entries``, ``bytes``, ``expired`` and ``tasks`` describe the stored entries (``expired``
    ones are still counted in ``entries`` until they are rewritten or cleared; ``tasks`` maps a
    task name to its entries). ``hits``, ``misses``, ``writes`` and ``errors`` (unreadable or
    corrupt entries, failed writes) count this process's calls on stores at the same location.
    ``directory`` is the store's directory, ``None`` for stores without one.
    """

    directory: str | None
    entries: int = 0
    bytes: int = 0
    expired: int = 0
    tasks: Mapping[str, TaskCacheStats] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``cascade cache info --output json``)."""
        data = asdict(self)
        data["tasks"] = {name: asdict(stats) for name, stats in sorted(self.tasks.items())}
        return data


@runtime_checkable
class CacheStore(Protocol):
    """A key-value store of pickled results, shared by the tasks of one or many runs.

    ``get`` returns ``(True, value)`` for a live entry (a stored ``None`` is found) and
    ``(False, None)`` otherwise, including for an expired, corrupt or unreadable entry, which it
    logs and never raises for. ``set`` stores ``value`` for ``ttl`` seconds (``None``: no
    expiry), recording the ``task`` name so ``clear(task=...)`` can find it; it raises if the
    value cannot be stored (for example, it cannot be pickled). ``delete`` returns whether an
    entry was removed; ``clear`` returns how many were.
    """

    def get(self, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for a live entry, else ``(False, None)``; never raises."""
        ...

    def set(
        self, key: str, value: Any, ttl: float | None = None, *, task: str | None = None
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: no expiry), noting
        the ``task`` that made it; raise if it cannot be stored."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the entry of ``key``; whether there was one."""
        ...

    def clear(self, task: str | None = None) -> int:
        """Remove every entry (of ``task`` only, if given); how many were removed."""
        ...

    def stats(self) -> CacheStats:
        """Entries, bytes and this process's hit, miss, write and error counts."""
        ...


# -- per-process counters, shared by store instances at one location -----------------------


class _Counters:
    __slots__ = ("errors", "hits", "misses", "writes")

    def __init__(self) -> None:
        self.hits = self.misses = self.writes = self.errors = 0


_counters: dict[str, _Counters] = {}
_counters_lock = threading.Lock()


def _counters_for(location: str) -> _Counters:
    with _counters_lock:
        counters = _counters.get(location)
        if counters is None:
            counters = _counters[location] = _Counters()
        return counters


# -- the directory store -----------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$CASCADE_CACHE_DIR`` if set, otherwise ``.cascade/cache`` under the current directory,
    as an absolute path."""
    configured = os.environ.get(ENV_CACHE_DIR, "").strip()
    path = Path(configured).expanduser() if configured else Path(".cascade") / "cache"
    return Path(os.path.abspath(path))


@dataclass(frozen=True)
class _Header:
    key: str
    task: str | None
    created: float
    expires: float | None
    size: int
    sha256: str


class _CorruptEntry(Exception):
    pass


def _parse_header(data: bytes) -> tuple[_Header, int]:
    """The header of an entry and where its payload starts."""
    if not data.startswith(_MAGIC):
        raise _CorruptEntry("it does not start with a Cascade cache header")
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise _CorruptEntry("its header is cut short")
    try:
        raw = json.loads(data[len(_MAGIC) : end])
        header = _Header(
            key=str(raw["key"]),
            task=raw["task"],
            created=float(raw["created"]),
            expires=None if raw["expires"] is None else float(raw["expires"]),
            size=int(raw["size"]),
            sha256=str(raw["sha256"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _CorruptEntry(f"its header is malformed ({exc})") from None
    return header, end + 1


def _read_all(file: str) -> bytes:
    """The whole file, with as few system calls as a small file needs (a rename-installed
    entry never changes, so its size is known up front)."""
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        if len(data) < size:
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


class DirectoryStore:
    """One file per entry under a directory, safe for concurrent runs and processes.

    An entry is written to a temporary file in the same directory and renamed over the final
    name, so readers see either the old entry or the new one, never a torn one, and concurrent
    writers of one key simply leave the last complete entry. Each file carries a header (task
    name, creation time, expiry, payload size and sha256) before the pickled value; a file whose
    header or checksum does not match (truncated, overwritten, from another program) is logged
    and treated as a miss, and the next successful run of the task rewrites it.

    ``path`` defaults to ``default_cache_dir()``; ``clock`` (seconds, like ``time.time``) decides
    expiry and is injectable for tests. Writes are not fsync'ed: after a power loss an entry may
    be missing or fail its checksum, which is again a miss.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(os.path.abspath(path)) if path is not None else default_cache_dir()
        self.clock = clock
        self._root = str(self.path)
        self._counters = _counters_for(self._root)
        self._made: set[str] = set()
        self._tmp_ids = itertools.count()
        self._checked = False

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.path)!r})"

    # -- layout ---------------------------------------------------------------------------

    def _file(self, key: str) -> str:
        # Plain strings rather than Path objects: this runs for every lookup.
        name = key if _HEX_KEY.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()
        suffix = _PARTS_SUFFIX if key.startswith(KEY_PARTS_PREFIX) else _SUFFIX
        return os.path.join(self._root, name[:2], name + suffix)

    def _entries(self, suffix: str = _SUFFIX) -> Iterator[Path]:
        try:
            shards = list(os.scandir(self.path))
        except FileNotFoundError:
            return
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                continue
            try:
                files = list(os.scandir(shard.path))
            except FileNotFoundError:
                continue
            for item in files:
                if (
                    item.name.endswith(suffix)
                    and not item.name.startswith(".")
                    and item.is_file(follow_symlinks=False)
                ):
                    yield Path(item.path)

    def _read_header(self, file: Path) -> tuple[_Header | None, int]:
        """The header of ``file`` (``None`` if unreadable or corrupt) and the file's size."""
        try:
            with open(file, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                head = handle.read(64 * 1024)
        except OSError:
            return None, 0
        try:
            return _parse_header(head)[0], size
        except _CorruptEntry:
            return None, size

    # -- the protocol ------------------------------------------------------------------------

    def _check_directory(self) -> None:
        """Warn, once per store, when the cache directory is writable by every user: anyone
        could then plant an entry that runs code when it is unpickled."""
        try:
            mode = os.stat(self._root).st_mode
        except OSError:
            return  # not there yet: checked again once it is made
        self._checked = True
        if os.name == "posix" and mode & stat.S_IWOTH:
            warnings.warn(
                f"the cache directory {self._root} is writable by every user on this machine: "
                "anyone could plant a cache entry there, and loading one runs code (entries "
                f"are pickles). Use a private directory, or `chmod o-w {self._root}`.",
                CacheWarning,
                stacklevel=3,
            )

    def get(self, key: str) -> tuple[bool, Any]:
        if not self._checked:
            self._check_directory()
        file = self._file(key)
        counters = self._counters if file.endswith(_SUFFIX) else _Counters()
        try:
            data = _read_all(file)
        except FileNotFoundError:
            counters.misses += 1
            return False, None
        except OSError as exc:
            return self._bad(file, f"it cannot be read ({type(exc).__name__}: {exc})")
        try:
            header, start = _parse_header(data)
            payload = memoryview(data)[start:]
            if len(payload) != header.size:
                raise _CorruptEntry(
                    f"it is truncated ({len(payload)} of {header.size} payload bytes)"
                    if len(payload) < header.size
                    else f"it has {len(payload) - header.size} unexpected trailing bytes"
                )
            if hashlib.sha256(payload).hexdigest() != header.sha256:
                raise _CorruptEntry("its checksum does not match its content")
        except _CorruptEntry as exc:
            return self._bad(file, str(exc))
        if header.expires is not None and header.expires <= self.clock():
            counters.misses += 1
            return False, None
        try:
            value = pickle.loads(payload)
        except Exception as exc:
            return self._bad(
                file,
                f"it cannot be unpickled ({type(exc).__name__}: {exc}); a class it needs may "
                "have moved",
                task=header.task,
            )
        counters.hits += 1
        return True, value

    def _bad(self, file: str, why: str, task: str | None = None) -> tuple[bool, Any]:
        self._counters.misses += 1
        self._counters.errors += 1
        owner = f" of task '{task}'" if task else ""
        logger.warning(
            "cache entry %s%s is treated as a miss because %s; the task runs and its result "
            "replaces the entry",
            file,
            owner,
            why,
        )
        return False, None

    def set(
        self, key: str, value: Any, ttl: float | None = None, *, task: str | None = None
    ) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        now = self.clock()
        header = json.dumps(
            {
                "key": key,
                "task": task,
                "created": now,
                "expires": None if ttl is None else now + ttl,
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            },
            separators=(",", ":"),
        ).encode()
        file = self._file(key)
        parts = (_MAGIC, header, b"\n", payload)
        try:
            try:
                self._write(file, parts)
            except FileNotFoundError:
                # The directory was removed under us (``rm -rf .cascade``): make it again, once.
                self._made.clear()
                self._write(file, parts)
        except BaseException:
            self._counters.errors += 1
            raise
        if file.endswith(_SUFFIX):
            self._counters.writes += 1

    def _write(self, file: str, parts: tuple[bytes, ...]) -> None:
        directory, name = os.path.split(file)
        if directory not in self._made:
            if not os.path.isdir(self._root):
                self._make_root()
            if not self._checked:
                self._check_directory()
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        tmp = os.path.join(
            directory,
            # Unique across threads, processes and machines sharing the directory.
            f".{name}.{os.getpid()}.{next(self._tmp_ids)}.{os.urandom(6).hex()}.tmp",
        )
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _ENTRY_MODE
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                for part in parts:
                    handle.write(part)
            os.replace(tmp, file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _make_root(self) -> None:
        """Create the directory, marked as a cache so backup tools and git leave it alone."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name, text in (
            (
                "CACHEDIR.TAG",
                "Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This directory holds Cascade's task cache; see docs/policies.md.\n",
            ),
            (".gitignore", "# Created by Cascade's task cache.\n*\n"),
        ):
            marker = self.path / name
            if not marker.exists():
                try:
                    marker.write_text(text)
                except OSError:
                    pass

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self._file(key))
        except FileNotFoundError:
            return False
        return True

    def clear(self, task: str | None = None) -> int:
        removed = 0
        for file in itertools.chain(self._entries(), self._entries(_PARTS_SUFFIX)):
            if task is not None:
                header, _ = self._read_header(file)
                if header is None or header.task != task:
                    continue
            try:
                file.unlink()
            except FileNotFoundError:
                continue
            if file.suffix == _SUFFIX:  # key parts go with their task's entries, uncounted
                removed += 1
        if task is None:
            self._remove_stale_temporaries()
        return removed

    def _remove_stale_temporaries(self, older_than: float = 3600.0) -> None:
        """Temporary files left by writers that died mid-write (live writers' are young)."""
        try:
            shards = [s.path for s in os.scandir(self.path) if s.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        cutoff = time.time() - older_than
        for shard in shards:
            try:
                items = list(os.scandir(shard))
            except FileNotFoundError:
                continue
            for item in items:
                if item.name.startswith(".") and item.name.endswith(".tmp"):
                    try:
                        if item.stat().st_mtime < cutoff:
                            os.unlink(item.path)
                    except OSError:
                        pass

    def stats(self) -> CacheStats:
        entries = total = expired = 0
        tasks: dict[str, list[int]] = {}
        now = self.clock()
        for file in self._entries():
            header, size = self._read_header(file)
            entries += 1
            total += size
            name = header.task if header is not None and header.task else "<unknown>"
            if header is None:
                name = "<corrupt>"
            per_task = tasks.setdefault(name, [0, 0])
            per_task[0] += 1
            per_task[1] += size
            if header is not None and header.expires is not None and header.expires <= now:
                expired += 1
        counters = self._counters
        return CacheStats(
            directory=self._root,
            entries=entries,
            bytes=total,
            expired=expired,
            tasks={name: TaskCacheStats(n, size) for name, (n, size) in sorted(tasks.items())},
            hits=counters.hits,
            misses=counters.misses,
            writes=counters.writes,
            errors=counters.errors,
        )


# -- choosing a store ----------------------------------------------------------------------

_default_stores: dict[tuple[str, str], DirectoryStore] = {}


def resolve_store(store: str | CacheStore | None, owner: str = "the cache") -> CacheStore:
    """The store meant by ``store``: ``None`` is the ``DirectoryStore`` at
    ``default_cache_dir()`` (looked up on every call, so a changed ``$CASCADE_CACHE_DIR`` or
    working directory is followed), a string is a store registered by that name through
    ``cascade_register_cache_stores``, and a store object is used as it is. ``owner`` names who
    asked, for error messages."""
    if store is None:
        configured = os.environ.get(ENV_CACHE_DIR, "")
        # Keyed on what decides the directory, so the common case builds no path.
        where = (configured, "" if configured.strip() else os.getcwd())
        found = _default_stores.get(where)
        if found is None:
            found = _default_stores[where] = DirectoryStore(default_cache_dir())
        return found
    if isinstance(store, str):
        from cascade.plugins import get_plugin_manager

        created = get_plugin_manager().create_cache_store(store)
        return check_store(created, f"{owner}: cache store '{store}'")
    return check_store(store, owner)


def check_store(store: Any, owner: str) -> CacheStore:
    """``store`` if it implements ``CacheStore``, else a ``TypeError`` naming ``owner``."""
    if not isinstance(store, CacheStore):
        raise TypeError(
            f"{owner}: store= takes a store name (such as 'directory') or an object with "
            f"get/set/delete/clear/stats methods (see cascade.caching.store.CacheStore), "
            f"got {store!r}"
        )
    return store


__all__ = [
    "ENV_CACHE_DIR",
    "KEY_PARTS_PREFIX",
    "CacheStats",
    "CacheStore",
    "DirectoryStore",
    "TaskCacheStats",
    "check_store",
    "default_cache_dir",
    "resolve_store",
]
