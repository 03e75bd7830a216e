"""What else writes to the terminal while the live display is drawn there.

Tasks print, libraries log warnings to ``sys.stderr`` (their handlers were made before the
display started, so swapping ``sys.stderr`` would not reach them), and worker processes write to
the file descriptors they inherited. Any of these, written straight to the terminal, lands in the
middle of the display and is overwritten by the next frame.

``TerminalCapture`` points file descriptor 1 (and 2, when it is the same terminal) at a pipe for
as long as the display runs; a thread reads whole lines from it and hands them to ``on_line``,
which prints them above the display (as rich's ``Live`` does for ``print``). The display itself
writes to a duplicate of the terminal taken before, so it is the only thing drawing there.
POSIX only (it needs ``select`` on a pipe); elsewhere the display falls back to rich's own
redirection of ``sys.stdout``/``sys.stderr``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable


def _same_terminal(a: int, b: int) -> bool:
    try:
        return os.isatty(a) and os.isatty(b) and os.path.samestat(os.fstat(a), os.fstat(b))
    except OSError:
        return False


class TerminalCapture:
    """Lines written to fd 1 (and fd 2 when it is the same terminal) go to ``on_line``."""

    #: After ``stop``, how long to keep reading what is still in the pipe (worker processes
    #: that outlive the display may hold it open, so the end of the pipe cannot be awaited).
    DRAIN_SECONDS = 1.0

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line = on_line
        self._saved: dict[int, int] = {}
        self._read_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @staticmethod
    def available() -> bool:
        return os.name == "posix"

    def start(self) -> None:
        if self._thread is not None or not self.available():
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        fds = [1] + ([2] if _same_terminal(1, 2) else [])
        read_fd, write_fd = os.pipe()
        try:
            for fd in fds:
                self._saved[fd] = os.dup(fd)
                os.dup2(write_fd, fd)
        finally:
            os.close(write_fd)  # fds 1 (and 2) hold the pipe now
        self._read_fd = read_fd
        self._thread = threading.Thread(target=self._read, name="cascade-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Give the terminal its file descriptors back and print what is still in the pipe."""
        if self._thread is None:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, saved in self._saved.items():
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
            with contextlib.suppress(OSError):
                os.close(saved)
        self._saved.clear()
        self._stopping.set()
        self._thread.join()
        self._thread = None
        if self._read_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)
            self._read_fd = None

    def restore_now(self) -> None:
        """Put the terminal back at once, from anywhere (quitting without teardown)."""
        for fd, saved in list(self._saved.items()):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)

    def _read(self) -> None:
        import select

        fd = self._read_fd
        assert fd is not None
        pending = b""
        deadline: float | None = None
        while True:
            if self._stopping.is_set() and deadline is None:
                deadline = time.monotonic() + self.DRAIN_SECONDS
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
            except (OSError, ValueError):
                break
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break  # every writer closed it
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(line)
                if deadline is None or time.monotonic() < deadline:
                    continue
            if deadline is not None:
                break  # nothing more to read (or reading for too long): stop
        if pending:
            self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        with contextlib.suppress(Exception):
            self.on_line(text)


__all__ = ["TerminalCapture"]
