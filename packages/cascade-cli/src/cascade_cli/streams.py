"""Standard output and standard error when nobody may be reading them any more.

``cascade run ... | tee log`` or ``| head`` closes the pipe's reading end early (Ctrl-C kills
``tee`` along with ``cascade``); after that every write to the pipe fails with
``BrokenPipeError``. A closed output is not an error of the run: the run goes on (or is
cancelled, on Ctrl-C), its exit code is its own, and no traceback is printed.

- ``SafeStream`` wraps a text stream: a write or flush that fails because the reader went away
  points the file descriptor at ``/dev/null`` (so every other writer, task code, logging and
  the interpreter's flush at exit, writes there silently) and returns as if it had written.
- ``watch_closed_pipes`` notices a pipe closed by its reader even before anyone writes (a
  thread waits in ``poll`` for the error condition), so that a task's ``print`` does not fail
  either.
- ``finish`` flushes both streams at the end of the command, quietly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import threading
from typing import IO, Any

_GONE = (errno.EPIPE, errno.EBADF, errno.ECONNRESET, errno.EINVAL)
_silenced: set[int] = set()
_lock = threading.Lock()


def silence(fd: int) -> None:
    """Point ``fd`` at ``/dev/null`` (once): what is written there from now on is dropped."""
    with _lock:
        if fd in _silenced:
            return
        _silenced.add(fd)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
        finally:
            os.close(devnull)


def is_gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the stream's reader went away (or the stream was closed)."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, ValueError):  # "I/O operation on closed file"
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE


def _fd_of(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) else None


class SafeStream:
    """A text stream whose writes never raise because the reader went away."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.broken = False

    def _gone(self) -> None:
        self.broken = True
        fd = _fd_of(self.stream)
        if fd is not None:
            silence(fd)
        with contextlib.suppress(Exception):
            self.stream.flush()  # drops what the buffer held, now into /dev/null

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self.stream.write(text)
        except (OSError, ValueError) as exc:
            if not is_gone(exc):
                raise
            self._gone()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError) as exc:
            if not is_gone(exc):
                raise
            self._gone()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def write_line(stream: IO[str] | SafeStream | None, text: str) -> None:
    """``print(text, file=stream, flush=True)`` that never raises for a closed reader."""
    target = stream if stream is not None else sys.stderr
    if target is None:  # started with the descriptor closed: nowhere to write
        return
    try:
        target.write(text + "\n")
        target.flush()
    except (OSError, ValueError) as exc:
        if not is_gone(exc):
            raise
        fd = _fd_of(target)
        if fd is not None:
            silence(fd)


def _is_pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


_watching: set[int] = set()


def watch_closed_pipes(fds: tuple[int, ...] = (1, 2)) -> None:
    """Silence ``fds`` as soon as the pipe behind them loses its reader (POSIX; a thread
    blocked in ``poll`` waiting only for the error condition, so it costs nothing)."""
    import select

    if not hasattr(select, "poll"):
        return
    wanted = [fd for fd in fds if fd not in _watching and _is_pipe_or_socket(fd)]
    if not wanted:
        return
    _watching.update(wanted)
    # Watch a duplicate: the descriptor the pipe had, even if fd is pointed elsewhere later.
    watched = {os.dup(fd): fd for fd in wanted}
    poller = select.poll()
    for copy in watched:
        poller.register(copy, 0)  # no events asked for: only POLLERR / POLLHUP are reported

    def watch() -> None:
        remaining = dict(watched)
        while remaining:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            except OSError:
                return
            for copy, _ in events:
                fd = remaining.pop(copy, None)
                with contextlib.suppress(Exception):
                    poller.unregister(copy)
                with contextlib.suppress(OSError):
                    os.close(copy)
                if fd is not None:
                    silence(fd)

    threading.Thread(target=watch, name="cascade-closed-pipe-watch", daemon=True).start()


def finish() -> None:
    """Flush standard output and standard error at the end of the command; a reader that went
    away is not an error (nor is the interpreter's own flush at exit, after this)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError) as exc:
            if not is_gone(exc):
                raise
            fd = _fd_of(stream)
            if fd is not None:
                silence(fd)
            with contextlib.suppress(Exception):
                stream.flush()


__all__ = ["SafeStream", "finish", "is_gone", "silence", "watch_closed_pipes", "write_line"]
