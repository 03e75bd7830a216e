"""Helpers for the command-line tests: they run the real installed ``cascade`` console script
in a subprocess, from this directory, on the small pipelines under ``pipelines/``.

Imported by the test modules beside it (pytest puts this directory on ``sys.path``)."""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PIPELINES = HERE / "pipelines"
SCRIPT = Path(sys.executable).with_name("cascade.exe" if os.name == "nt" else "cascade")
ESC = "\x1b"


def cascade_script() -> str:
    if not SCRIPT.exists():
        pytest.fail(
            f"the `cascade` console script is not installed beside {sys.executable}; "
            "run `python dev.py test` (or pip install -e packages/cascade-cli)"
        )
    return str(SCRIPT)


def base_env(**extra: str) -> dict[str, str]:
    """The test environment without variables that would change the output (colour forcing,
    a terminal width), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "COLUMNS", "LINES", "NO_COLOR")
    }
    env["PYTHONIOENCODING"] = "utf-8"
    # `cascade run` records every run: keep those records out of the source tree (a test of
    # recording gives its own CASCADE_HOME).
    env.setdefault("CASCADE_HOME", _scratch_home())
    env.update(extra)
    return env


@functools.cache
def _scratch_home() -> str:
    return tempfile.mkdtemp(prefix="cascade-test-home-")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cascade(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = HERE,
    timeout: float = 60,
) -> Result:
    done = subprocess.run(
        [cascade_script(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env if env is not None else base_env(),
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def distribution_installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def wait_for_marker(path: Path, *lines: str, timeout: float = 90) -> list[str]:
    """Wait until the marker file a pipeline writes holds every one of ``lines`` (tasks note
    when they start, so tests act at the right moment whatever the machine's speed)."""
    import time

    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = path.read_text().splitlines() if path.exists() else []
        if all(line in found for line in lines):
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {lines} in {path}: it holds {found}")


@dataclass
class Piped:
    """``cascade ... | consumer`` started as a shell would: both in one new process group (the
    terminal's foreground group, which Ctrl-C signals as a whole)."""

    cascade: subprocess.Popen[bytes]
    consumer: subprocess.Popen[bytes]
    stderr_file: Path | None

    def interrupt(self) -> None:
        import signal

        os.killpg(self.cascade.pid, signal.SIGINT)

    def wait(self, timeout: float = 90) -> tuple[int, str]:
        """The exit code of ``cascade`` and what it wrote to stderr (when not piped)."""
        code = self.cascade.wait(timeout=timeout)
        try:
            self.consumer.wait(timeout=timeout)
        finally:
            if self.consumer.stdout is not None:
                self.consumer.stdout.close()
        err = self.stderr_file.read_text(encoding="utf-8") if self.stderr_file else ""
        return code, err


def start_piped(
    args: list[str],
    consumer: list[str],
    tmp_path: Path,
    *,
    stderr_too: bool = False,
    env: dict[str, str] | None = None,
) -> Piped:
    """``cascade ARGS | CONSUMER`` (``2>&1 |`` with ``stderr_too``); otherwise cascade's
    stderr goes to a file the test reads."""
    read_end, write_end = os.pipe()
    stderr_file = None if stderr_too else tmp_path / "stderr.txt"
    with open(stderr_file or os.devnull, "wb") as err:
        cascade = subprocess.Popen(
            [cascade_script(), *args],
            stdout=write_end,
            stderr=write_end if stderr_too else err,
            stdin=subprocess.DEVNULL,
            cwd=HERE,
            env=env if env is not None else base_env(),
            preexec_fn=os.setpgrp,
        )
    group = cascade.pid
    consumer_process = subprocess.Popen(
        consumer,
        stdin=read_end,
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.setpgid(0, group),
    )
    os.close(read_end)
    os.close(write_end)
    return Piped(cascade, consumer_process, stderr_file)


ROWS, COLUMNS = 60, 120
FRAME = re.compile(r"━.* (\d+)/(\d+)(\+?) tasks \d+:\d\d:\d\d")


class Terminal:
    """``cascade ARGS`` in a pseudo-terminal (pexpect), drawn on an emulated screen (pyte), so
    tests read what a person would see; ``frames`` are the progress lines seen, in order."""

    def __init__(self, *args: str, rows: int = ROWS, columns: int = COLUMNS, **env: str) -> None:
        import pexpect
        import pyte

        self.pexpect = pexpect
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.frames: list[tuple[int, int, str]] = []
        self.ended = False
        self.child = pexpect.spawn(
            cascade_script(), list(args), cwd=str(HERE),
            env=base_env(TERM="xterm-256color", **env), dimensions=(rows, columns), timeout=60,
        )  # fmt: skip

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def pump(self, timeout: float = 0.05) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except self.pexpect.TIMEOUT:
            return
        except self.pexpect.EOF:
            self.ended = True
            return
        self.stream.feed(data)
        for found in FRAME.finditer(self.text()):
            frame = (int(found.group(1)), int(found.group(2)), found.group(3))
            if not self.frames or self.frames[-1] != frame:
                self.frames.append(frame)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.ended:
                break
            self.pump()
        raise AssertionError(f"{pattern!r} never appeared on the screen:\n{self.text()}")

    def finish(self) -> int:
        deadline = time.monotonic() + 60
        while not self.ended and time.monotonic() < deadline:
            self.pump()
        self.child.close()
        status: Any = self.child.exitstatus
        return int(status) if status is not None else -1


def png_colours(path: Path, wanted: int = 4) -> set[bytes]:
    """Distinct pixel colours of an 8-bit RGB(A) PNG, read row by row until ``wanted`` of them
    (at least one not grey) are found: enough to tell a rendered page from a blank one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    size = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * size
    previous = bytearray(stride)
    found: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - size] if i >= size else 0
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        found.update(bytes(line[i : i + 3]) for i in range(0, stride, size))
        coloured = any(len(set(c)) > 1 for c in found)
        if len(found) >= wanted and coloured:
            break
        previous = line
    return found
