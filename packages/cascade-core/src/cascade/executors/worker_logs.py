"""Log records collected where a call runs (a worker process, a Dask worker), for a run that
captures what tasks log (``LogShipping``).

A call collects while ``begin_collecting``/``end_collecting`` bracket it: the records its
context emits (its thread, and the coroutines and threads started with a copy of its context)
at the run's level go to its ``Collector``, at most the run's limit, the rest counted. One
handler sits on the worker's root logger while at least one call there collects, and is
removed when the last one ends; if the root's level is above what a call collects, it is
lowered meanwhile, and the handlers already on the root get a filter that keeps what they
showed before, so the worker's own output does not change. Records of Cascade's own loggers
(``cascade.*``) are not a task's. ``log_line`` turns a record into the stored line, the same
way for records captured in the driver (``cascade.records.capture``).
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading

#: A shipped log line: (time, level name, logger name, message).
ShippedLine = tuple[float, str, str, str]


class Collector:
    """What one call logged so far (at ``level`` and above; at most ``limit`` lines)."""

    __slots__ = ("emitted", "level", "limit", "lines", "message_limit", "token")

    def __init__(self, level: int, limit: int, message_limit: int) -> None:
        self.level = level
        self.limit = limit
        self.message_limit = message_limit
        self.lines: list[ShippedLine] = []
        self.emitted = 0
        self.token: contextvars.Token[Collector | None] | None = None


_COLLECTING: contextvars.ContextVar[Collector | None] = contextvars.ContextVar(
    "cascade_worker_logs", default=None
)


def log_line(record: logging.LogRecord, message_limit: int) -> ShippedLine:
    """A log record as a stored line: its time, level, logger and message (formatted, cut to
    ``message_limit`` characters, with the exception's traceback if it has one). The same for
    records captured in the driver (``cascade.records.capture``) and in workers."""
    try:
        message = record.getMessage()
    except Exception as exc:  # a bad format string is the caller's bug, not ours
        message = f"{record.msg!r} (unformattable: {type(exc).__name__}: {exc})"
    if len(message) > message_limit:
        message = message[: message_limit - 3] + "..."
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        message += "\n" + cap_text(text, message_limit * 4)
    return (record.created, record.levelname, record.name, message)


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters: its first third and its last two thirds
    (a traceback's error is at the end), with a line saying how much was left out between."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    cut = len(text) - head - tail
    note = f"... ({cut} characters cut: the traceback is longer than {limit}) ..."
    return f"{text[:head]}\n{note}\n{text[-tail:]}"


def is_cascade_logger(name: str) -> bool:
    """Records of Cascade's own loggers are not a task's."""
    return name == "cascade" or name.startswith("cascade.")


class _WorkerLogHandler(logging.Handler):
    """On the root logger of a worker process while calls there collect logs: a record goes
    to the collector of the call whose context emits it, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        collector = _COLLECTING.get()
        if collector is None or record.levelno < collector.level:
            return
        if is_cascade_logger(record.name):
            return
        collector.emitted += 1
        if len(collector.lines) < collector.limit:
            collector.lines.append(log_line(record, collector.message_limit))


class _Threshold(logging.Filter):
    """Keeps what a handler of the worker showed before the root's level was lowered."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


class _Installed:
    """The handler's place on the worker's root logger, shared by the calls collecting now:
    the first installs it (lowering the root's level to what they collect, with filters that
    keep the worker's own handlers showing what they showed), the last removes it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handler = _WorkerLogHandler()
        self.levels: collections.Counter[int] = collections.Counter()
        self.saved_level: int | None = None
        self.filtered: list[tuple[logging.Handler, _Threshold]] = []

    def add(self, level: int) -> None:
        with self.lock:
            root = logging.getLogger()
            if not self.levels:
                root.addHandler(self.handler)
            self.levels[level] += 1
            lowest = min(self.levels)
            if root.level > lowest:  # NOTSET (0) on the root lets everything through already
                if self.saved_level is None:
                    self.saved_level = root.level
                    for handler in root.handlers:
                        if handler is not self.handler:
                            threshold = _Threshold(root.level)
                            handler.addFilter(threshold)
                            self.filtered.append((handler, threshold))
                root.setLevel(lowest)

    def remove(self, level: int) -> None:
        with self.lock:
            self.levels[level] -= 1
            if self.levels[level] <= 0:
                del self.levels[level]
            if self.levels:
                return
            root = logging.getLogger()
            root.removeHandler(self.handler)
            for handler, threshold in self.filtered:
                handler.removeFilter(threshold)
            self.filtered = []
            if self.saved_level is not None:
                root.setLevel(self.saved_level)
                self.saved_level = None


_INSTALLED = _Installed()


def begin_collecting(logs: tuple[int, int, int] | None) -> Collector | None:
    """Start collecting what the calling context logs: ``logs`` is ``(level, limit,
    message_limit)``; ``None`` collects nothing (and costs nothing)."""
    if logs is None:
        return None
    collector = Collector(*logs)
    _INSTALLED.add(collector.level)
    collector.token = _COLLECTING.set(collector)
    return collector


def end_collecting(collector: Collector) -> tuple[list[ShippedLine], int]:
    """Stop collecting: the lines kept, and how many records were emitted in all."""
    if collector.token is not None:
        _COLLECTING.reset(collector.token)
    _INSTALLED.remove(collector.level)
    return collector.lines, collector.emitted


__all__ = [
    "Collector",
    "ShippedLine",
    "begin_collecting",
    "cap_text",
    "end_collecting",
    "is_cascade_logger",
    "log_line",
]
