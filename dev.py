#!/usr/bin/env python3
"""One entry point for a fresh machine: ``python dev.py example`` and ``python dev.py test``.

It needs only Python >= 3.10 and pip. It creates ``.venv`` beside this file, installs every
workspace package editable (plus the example plugin under ``tests/`` and the ``test``
dependency group of the root ``pyproject.toml``), and then
runs what was asked. Installation is skipped when nothing it depends on has changed, so repeated
runs start at once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".cascade-install-stamp"

# Installed editable, in this order (cascade-core first: the others depend on it).
PACKAGES = [
    "packages/cascade-core",
    "packages/cascade-otel",
    "packages/cascade-cli",
    "packages/cascade-dask",
    "tests/plugins/cascade-example-plugin",
]
INSTALL_INPUTS = [
    "pyproject.toml",
    *(f"{p}/pyproject.toml" for p in PACKAGES),
]


def _run(*cmd: str | os.PathLike[str], check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def _install_fingerprint() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for rel in INSTALL_INPUTS:
        path = ROOT / rel
        if path.exists():
            digest.update(rel.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and install the workspace into it, once per change."""
    if sys.version_info < (3, 10):
        sys.exit(f"Cascade needs Python >= 3.10; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    editable = [arg for p in PACKAGES if (ROOT / p).exists() for arg in ("-e", p)]
    # The `test` dependency group of the root pyproject.toml (needs pip >= 25.1, upgraded above).
    _run(PYTHON, "-m", "pip", "install", "--quiet", *editable, "--group", "test")
    STAMP.write_text(fingerprint)


def install_graphviz() -> None:
    """`cascade graph --format svg` is tested against the real `dot`; install it where we can."""
    if _which("dot") or os.name == "nt":
        return
    if _which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "graphviz"],
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _which(name: str) -> str | None:
    from shutil import which

    return which(name)


def command_test(pytest_args: list[str]) -> int:
    ensure_environment()
    install_graphviz()
    tool = [str(PYTHON), "-m"]
    failed = []
    for name, cmd in (
        ("ruff check", ["ruff", "check", "."]),
        ("ruff format", ["ruff", "format", "--check", "."]),
        ("mypy", ["mypy"]),
    ):
        if _run(*tool, *cmd, check=False) != 0:
            failed.append(name)
    code = _run(*tool, "pytest", *pytest_args, check=False)
    if code == 5:
        print("pytest collected no tests", file=sys.stderr)
        code = 1
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return code or 1
    return code


def command_example(args: list[str]) -> int:
    ensure_environment()
    return _run(PYTHON, "examples/etl_pipeline.py", *args, check=False)


def command_bench(args: list[str]) -> int:
    """Core benchmarks (benchmarks/run.py), then every package's (benchmarks/bench_*.py)."""
    ensure_environment()
    scripts = [
        "benchmarks/run.py",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("bench_*.py")),
    ]
    failures = 0
    for script in scripts:
        print(f"\n## {script}\n", flush=True)
        failures += _run(PYTHON, script, *args, check=False) != 0
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    commands = {"test": command_test, "example": command_example, "bench": command_bench}
    if not argv or argv[0] not in commands:
        print(f"usage: python dev.py {{{'|'.join(commands)}}} [args...]", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
