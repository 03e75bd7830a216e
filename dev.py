#!/usr/bin/env python3
"""One entry point for a fresh machine: ``python dev.py test``, ``example``, ``dist``, ``bump``,
``docs``.

It needs only Python >= 3.10 and pip. It creates ``.venv`` beside this file with the Python that
runs it, installs every workspace package editable (plus the example plugin under ``tests/`` and
the ``test`` dependency group of the root ``pyproject.toml``), and then runs what was asked.
Installation is skipped when nothing it depends on has changed, so repeated runs start at once.

``test`` runs every check of ``CHECKS`` below with that Python, then pytest again with the
lowest and the highest other CPython from 3.10 to 3.13 found on the machine, each in its own
``.venv-3.X``. ``check`` runs the same list with the current interpreter and installs nothing:
it is what ``hatch run test`` calls, so the list of checks is written once, here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
WINDOWS = os.name == "nt"
STAMP_NAME = ".cascade-install-stamp"

# The released distributions, in dependency order (cascade-core first: the others pin it).
RELEASED = ["cascade-core", "cascade-otel", "cascade-cli", "cascade-dask", "cascade-ui"]
# Installed editable, in this order; the example plugin is a test fixture, never released.
PACKAGES = [*(f"packages/{name}" for name in RELEASED), "tests/plugins/cascade-example-plugin"]
INSTALL_INPUTS = ["pyproject.toml", *(f"{p}/pyproject.toml" for p in PACKAGES)]

# The one version of the workspace. `python dev.py bump NEW` writes it here and everywhere it
# is repeated: each package's _version.py (which hatchling reads), every `cascade-*==` pin
# between the packages and in the docs. tests/packaging/test_versions.py fails on a mismatch.
VERSION_FILE = ROOT / "VERSION"

# The checks, in order: (name, command). "python -m X" runs X from the environment's Python;
# a bare name is a console script next to that Python. `test` and `check` both run this list.
CHECKS: list[tuple[str, list[str]]] = [
    ("ruff check", ["-m", "ruff", "check", "."]),
    ("ruff format", ["-m", "ruff", "format", "--check", "."]),
    ("mypy", ["-m", "mypy"]),
    ("lint-imports", ["lint-imports"]),  # import-linter; contracts in [tool.importlinter]
    ("docs", ["-m", "mkdocs", "build", "--strict", "--quiet"]),  # the site, into site/
    ("pytest", ["-m", "pytest"]),
]
CHECK_NAMES = [name for name, _ in CHECKS]

# CPython versions the suite supports; `test` looks for each of them on the machine.
SUPPORTED_PYTHONS = [(3, 10), (3, 11), (3, 12), (3, 13)]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bin(env: Path) -> Path:
    return env / ("Scripts" if WINDOWS else "bin")


def _python_in(env: Path) -> Path:
    return _bin(env) / ("python.exe" if WINDOWS else "python")


def _run(*cmd: str | os.PathLike[str], check: bool = True) -> int:
    _say("+ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


# --------------------------------------------------------------------------- environments


def _install_fingerprint(interpreter_version: str) -> str:
    """What the installation depends on: every package's pyproject.toml, and of the root one
    only its [dependency-groups] (tool settings there change often and install nothing)."""
    digest = hashlib.sha256(interpreter_version.encode())
    for rel in INSTALL_INPUTS:
        path = ROOT / rel
        if path.exists():
            data = path.read_bytes()
            if rel == "pyproject.toml":
                groups = re.search(rb"(?ms)^\[dependency-groups\]$.*?(?=^\[)", data + b"\n[")
                data = groups.group(0) if groups else data
            digest.update(rel.encode())
            digest.update(data)
    return digest.hexdigest()


def ensure_environment(
    env: Path = VENV, base_python: str | None = None, version: str | None = None
) -> Path:
    """Create ``env`` with ``base_python`` (default: this interpreter) and install the
    workspace into it, once per change of the install inputs. Returns the env's Python."""
    if sys.version_info < (3, 10):
        sys.exit(f"Cascade needs Python >= 3.10; this is {sys.version.split()[0]}")
    python = _python_in(env)
    version = version or sys.version.split()[0]
    label = f"{env.name} (Python {version})"
    if not python.exists():
        _say(f"creating {label}")
        if base_python is None:
            venv.EnvBuilder(with_pip=True, clear=True).create(env)
        else:
            subprocess.run([base_python, "-m", "venv", "--clear", str(env)], check=True)
    stamp = env / STAMP_NAME
    fingerprint = _install_fingerprint(version)
    if stamp.exists() and stamp.read_text() == fingerprint:
        return python
    started = time.monotonic()
    _say(f"{label}: upgrading pip (the `test` dependency group needs pip >= 25.1)")
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _say(f"{label}: installing the workspace packages (editable) and the `test` group")
    editable = [arg for p in PACKAGES if (ROOT / p).exists() for arg in ("-e", p)]
    # No --quiet: on a fresh machine this takes a minute or two; pip's progress shows it.
    _run(python, "-m", "pip", "install", *editable, "--group", "test")
    stamp.write_text(fingerprint)
    _say(f"{label}: ready ({time.monotonic() - started:.0f} s)")
    return python


def install_graphviz() -> None:
    """`cascade graph --format svg` is tested against the real `dot`; install it where we can."""
    if shutil.which("dot") or WINDOWS:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        _say("installing Graphviz (`dot`) with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "graphviz"],
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def install_chromium() -> None:
    """The run report (`cascade runs report`) is tested in headless Chromium (Debian's
    `chromium` package, at /usr/bin/chromium); install it where we can, as for Graphviz."""
    if os.path.exists("/usr/bin/chromium") or WINDOWS:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        _say("installing Chromium (headless, for the run report's test) with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


# --------------------------------------------------------------------------- other Pythons


def _probe(command: Sequence[str]) -> tuple[tuple[int, int], str, str] | None:
    """((major, minor), full version, executable) of a CPython, or None if it is not one."""
    code = (
        "import sys; print(sys.implementation.name, sys.version_info[0], sys.version_info[1], "
        "sys.version.split()[0], sys.executable, int(hasattr(sys, '_is_gil_enabled')"
        " and not sys._is_gil_enabled()))"
    )
    try:
        out = subprocess.run(
            [*command, "-c", code], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) != 6 or out[0] != "cpython" or out[5] != "0":
        return None
    return (int(out[1]), int(out[2])), out[3], out[4]


def find_pythons() -> dict[tuple[int, int], tuple[str, str]]:
    """Every supported CPython on the machine: {(3, X): (executable, full version)}.

    Looks for ``python3.X`` on PATH, in pyenv's versions folder ($PYENV_ROOT or ~/.pyenv) and,
    on Windows, through the ``py`` launcher. The first one that really runs wins."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: dict[tuple[int, int], tuple[str, str]] = {}
    for major, minor in SUPPORTED_PYTHONS:
        candidates: list[list[str]] = []
        name = f"python{major}.{minor}"
        if on_path := shutil.which(name):
            candidates.append([on_path])
        if pyenv.is_dir():

            def patch(p: Path) -> tuple[int, ...]:
                return tuple(int(x) for x in re.findall(r"\d+", p.name))

            dirs = sorted(pyenv.glob(f"{major}.{minor}.*"), key=patch, reverse=True)
            candidates += [[str(d / "bin" / name)] for d in dirs if re.fullmatch(r"[\d.]+", d.name)]
        for folder in ("/usr/local/bin", "/usr/bin"):
            candidates.append([f"{folder}/{name}"])
        if WINDOWS and shutil.which("py"):
            candidates.append(["py", f"-{major}.{minor}"])
        for command in candidates:
            if not WINDOWS and command[0] != "py" and not os.path.exists(command[0]):
                continue
            probed = _probe(command)
            if probed and probed[0] == (major, minor):
                found[(major, minor)] = (probed[2], probed[1])
                break
    return found


def select_pythons(spec: str) -> list[tuple[tuple[int, int], str, str]]:
    """The other Pythons to run pytest with: (version, executable, full version).

    ``spec``: ``ends`` (default: the lowest and the highest found, besides this one), ``all``,
    ``none``, or a comma-separated list such as ``3.10,3.12``."""
    if spec == "none":
        return []
    here = sys.version_info[:2]
    found = find_pythons()
    others = sorted(v for v in found if v != here)
    if spec == "all":
        chosen = others
    elif spec == "ends":
        chosen = sorted({others[0], others[-1]}) if others else []
    else:
        wanted = {tuple(int(x) for x in item.split(".")) for item in spec.split(",") if item}
        missing = sorted(f"{a}.{b}" for a, b in wanted if (a, b) not in found and (a, b) != here)
        if missing:
            _say(f"warning: Python {', '.join(missing)} not found on this machine")
        chosen = sorted(v for v in others if v in wanted)
    names = ", ".join(f"{a}.{b} ({found[(a, b)][0]})" for a, b in sorted(found)) or "none"
    _say(f"CPython found: {names}; this one: {here[0]}.{here[1]}")
    skipped = [f"{a}.{b}" for a, b in others if (a, b) not in chosen]
    if skipped:
        _say(f"not run with {', '.join(skipped)} (`--pythons all` runs every one)")
    return [(v, *found[v]) for v in chosen]


# --------------------------------------------------------------------------- checks


@dataclass
class Result:
    label: str  # which Python: "Python 3.10.13 (.venv-3.10)"
    name: str  # which check
    code: int
    seconds: float
    summary: str = ""  # pytest's closing line

    def count(self, word: str) -> int:
        return sum(int(n) for n in re.findall(rf"(\d+) {word}", self.summary))

    def line(self) -> str:
        mark = "ok" if self.code == 0 else f"FAILED (exit {self.code})"
        extra = f" {self.summary}" if self.summary else ""
        return f"  {self.label:<34} {self.name:<13} {mark}{extra} [{self.seconds:.0f} s]"


_PYTEST_SUMMARY = re.compile(r"=+ (.*\bin [\d.]+s.*?) =+\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _check_command(python: Path | str, name: str, pytest_args: Sequence[str]) -> list[str]:
    command = dict(CHECKS)[name]
    if command[0] == "-m":
        argv = [str(python), *command]
    else:  # a console script installed beside the interpreter
        script = Path(python).parent / (command[0] + (".exe" if WINDOWS else ""))
        argv = [str(script), *command[1:]]
    if name == "pytest":
        argv += list(pytest_args)
    return argv


def run_checks(
    python: Path | str,
    names: Sequence[str],
    pytest_args: Sequence[str],
    label: str,
    out: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> list[Result]:
    """Run the named checks with ``python``. Output streams to this process's stdout, or is
    collected in ``out`` (for runs that go on in the background)."""
    results = []
    for name in names:
        argv = _check_command(python, name, pytest_args)
        header = f"\n== {label}: {name}\n+ {' '.join(argv)}"
        if out is None:
            print(header, flush=True)
        else:
            out.append(header + "\n")
        started = time.monotonic()
        summary = ""
        try:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                bufsize=1,
                text=True,
                errors="replace",
            )
        except OSError as error:
            message = f"cannot run {argv[0]}: {error}\n"
            print(message, end="", flush=True) if out is None else out.append(message)
            results.append(Result(label, name, 127, time.monotonic() - started))
            continue
        assert proc.stdout is not None
        for text_line in proc.stdout:
            if out is None:
                sys.stdout.write(text_line)
                sys.stdout.flush()
            else:
                out.append(text_line)
            if name == "pytest" and (match := _PYTEST_SUMMARY.search(_ANSI.sub("", text_line))):
                summary = match.group(1)
        code = proc.wait()
        if name == "pytest" and code == 5:
            note = "pytest collected no tests: that is a failure here\n"
            print(note, end="", flush=True) if out is None else out.append(note)
            code = 1
        results.append(Result(label, name, code, time.monotonic() - started, summary))
    return results


def _split_test_args(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """dev.py's own options (``--pythons X``, ``--jobs N``, ``--only a,b``) before the rest,
    which goes to pytest."""
    options: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].split("=")[0] in ("--pythons", "--jobs", "--only"):
        key, eq, value = rest.pop(0).partition("=")
        if not eq:
            if not rest:
                sys.exit(f"{key} needs a value")
            value = rest.pop(0)
        options[key[2:]] = value
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return options, rest


def _chosen_checks(options: dict[str, str]) -> list[str]:
    if "only" not in options:
        return CHECK_NAMES
    names = [n.strip() for n in options["only"].split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        sys.exit(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECK_NAMES)}")
    return names


def _label(env: Path, version: str) -> str:
    return f"Python {version} ({env.name})"


def _summarise(results: list[Result], started: float) -> int:
    print("\n== summary: every check, and the Python it ran with", flush=True)
    for result in results:
        print(result.line())
    failed = [f"{r.name} on {r.label}" for r in results if r.code != 0]
    total = time.monotonic() - started
    if failed:
        print(f"FAILED: {'; '.join(failed)} ({total:.0f} s)", flush=True)
    else:
        print(f"every check passed ({total:.0f} s)", flush=True)
    runs = [r for r in results if r.name == "pytest"]
    if runs:  # the closing line: the tests of every pytest run, added up
        passed = sum(r.count("passed") for r in runs)
        failures = sum(r.count("failed") + r.count("errors?") for r in runs)
        skipped = sum(r.count("skipped") for r in runs)
        print(f"tests: {passed} passed, {failures} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def command_test(args: list[str]) -> int:
    """Set up the environments, then run the checks with this Python and pytest with the
    others. Options: ``--pythons ends|all|none|3.10,...`` (or $CASCADE_TEST_PYTHONS),
    ``--jobs N`` (pytest runs at once, default 2, or $CASCADE_TEST_JOBS), ``--only a,b``
    (checks to run with this Python). Anything else is passed to pytest."""
    started = time.monotonic()
    options, pytest_args = _split_test_args(args)
    spec = options.get("pythons", os.environ.get("CASCADE_TEST_PYTHONS", "ends"))
    jobs = max(1, int(options.get("jobs", os.environ.get("CASCADE_TEST_JOBS", "2"))))
    names = _chosen_checks(options)
    python = ensure_environment()
    install_graphviz()
    install_chromium()
    others = []
    for (major, minor), executable, version in select_pythons(
        spec if "pytest" in names else "none"
    ):
        env = ROOT / f".venv-{major}.{minor}"
        others.append((env, ensure_environment(env, executable, version), version))
    here = sys.version.split()[0]
    plan = [f"{_label(VENV, here)}: {', '.join(names)}"]
    plan += [f"{_label(env, version)}: pytest" for env, _, version in others]
    print("\n== plan\n  " + "\n  ".join(plan), flush=True)

    results: list[Result] = []
    # The packaging test builds wheels and installs them in a new environment: once is enough.
    other_env = {"CASCADE_TEST_DIST": "0"}
    background: list[tuple[str, threading.Thread, list[str], list[Result]]] = []
    slots = threading.Semaphore(max(0, jobs - 1))
    lint = [n for n in names if n != "pytest"]
    results += run_checks(python, lint, pytest_args, _label(VENV, here))

    def in_background(py: Path, label: str, out: list[str], res: list[Result]) -> None:
        with slots:
            res += run_checks(py, ["pytest"], pytest_args, label, out=out, env=other_env)

    if jobs > 1:
        for env, py, version in others:
            label = _label(env, version)
            out: list[str] = []
            res: list[Result] = []
            thread = threading.Thread(target=in_background, args=(py, label, out, res))
            thread.start()
            background.append((label, thread, out, res))
        if background:
            print(
                f"\n(pytest with {' and '.join(b[0] for b in background)}: in the background, "
                f"at most {jobs} pytest runs at once; the output of each follows when it ends)",
                flush=True,
            )
    if "pytest" in names:
        results += run_checks(python, ["pytest"], pytest_args, _label(VENV, here))
    for label, thread, out, res in background:
        thread.join()
        print(f"\n######## output of the pytest run with {label}", flush=True)
        sys.stdout.write("".join(out))
        print(f"######## end of the pytest run with {label}", flush=True)
        results += res
    if jobs == 1:
        for env, py, version in others:
            results += run_checks(py, ["pytest"], pytest_args, _label(env, version), env=other_env)
    return _summarise(results, started)


def command_check(args: list[str]) -> int:
    """The checks with the current interpreter, installing nothing (``hatch run test`` uses
    this). ``--only a,b`` picks checks; anything else goes to pytest."""
    started = time.monotonic()
    options, pytest_args = _split_test_args(args)
    label = f"Python {sys.version.split()[0]} ({Path(sys.prefix).name})"
    return _summarise(
        run_checks(sys.executable, _chosen_checks(options), pytest_args, label), started
    )


# --------------------------------------------------------------------------- dist


def build_dists(python: Path | str, outdir: Path) -> list[Path]:
    """Build an sdist of every released package and a wheel from that sdist (which proves the
    sdist is complete) into ``outdir``, with ``build`` and ``hatchling`` from ``python``'s
    environment (no isolated build environments: nothing to download)."""
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for name in RELEASED:
        stem = name.replace("-", "_")
        for old in [*outdir.glob(f"{stem}-*.whl"), *outdir.glob(f"{stem}-*.tar.gz")]:
            old.unlink()
    for name in RELEASED:
        subprocess.run(
            [str(python), "-m", "build", "--no-isolation", "--outdir", str(outdir), name],
            check=True,
            cwd=ROOT / "packages",
        )
    built = sorted(
        p for name in RELEASED for p in outdir.glob(f"{name.replace('-', '_')}-*") if p.is_file()
    )
    return built


def command_dist(args: list[str]) -> int:
    """``python dev.py dist [--outdir DIR]``: sdists and wheels of every package, in dist/."""
    outdir = ROOT / "dist"
    if args[:1] == ["--outdir"] and len(args) == 2:
        outdir = Path(args[1]).resolve()
    elif args:
        _say("usage: python dev.py dist [--outdir DIR]")
        return 2
    python = ensure_environment()
    built = build_dists(python, outdir)
    version = read_version()
    print(f"\nbuilt in {outdir}:")
    for path in built:
        print(f"  {path.name}")
    print(
        "\ninstall (our packages from there, everything else from PyPI):\n"
        f'  pip install --find-links {os.path.relpath(outdir)} "cascade-core[otel,cli,dask]=='
        f'{version}"'
    )
    return 0


# --------------------------------------------------------------------------- versions

_VERSION_RE = re.compile(r"\d+(\.\d+){1,2}((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")
_NAMES = "|".join(re.escape(n) for n in RELEASED)
# A pin of one of our distributions, with or without extras: cascade-core[cli]==0.1.0.
PIN_RE = re.compile(rf"\b({_NAMES})(\[[\w,\s-]*\])?==(\d(?:[\w.+!-]*\w)?)")


def read_version(root: Path = ROOT) -> str:
    return (root / "VERSION").read_text().strip()


def version_files(root: Path = ROOT) -> dict[str, list[Path]]:
    """Where the version is repeated: ``_version.py`` files, and files holding pins."""
    return {
        "version": sorted(root.glob("packages/*/src/*/_version.py")),
        "pins": sorted(
            [
                *root.glob("packages/*/pyproject.toml"),
                root / "tests/plugins/cascade-example-plugin/pyproject.toml",
                *root.glob("packages/*/README.md"),
                root / "README.md",
                root / "CONTRIBUTING.md",
                *root.glob("docs/**/*.md"),
            ]
        ),
    }


def bump_version(new: str, root: Path = ROOT) -> list[Path]:
    """Write ``new`` to VERSION, every package's ``_version.py`` and every ``cascade-*==`` pin.
    Returns the files changed."""
    if not _VERSION_RE.fullmatch(new):
        raise ValueError(f"{new!r} is not a version such as 0.2.0 or 1.0.0rc1")
    changed = []
    files = version_files(root)
    for path in files["version"]:
        text = path.read_text()
        updated = re.sub(
            r'^__version__ = "[^"]*"', f'__version__ = "{new}"', text, count=1, flags=re.M
        )
        if updated != text:
            path.write_text(updated)
            changed.append(path)
    for path in files["pins"]:
        if not path.exists():
            continue
        text = path.read_text()
        updated = PIN_RE.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}=={new}", text)
        if updated != text:
            path.write_text(updated)
            changed.append(path)
    version_file = root / "VERSION"
    if not version_file.exists() or version_file.read_text().strip() != new:
        version_file.write_text(new + "\n")
        changed.append(version_file)
    return changed


# Names of ours that unrelated projects on PyPI also use: a release must have a version none of
# them has, or pip may install theirs instead of ours from `--find-links dist`.
FOREIGN_NAMES = ["cascade-core", "cascade-ui"]


def _foreign_versions(name: str = "cascade-core") -> list[str] | None:
    """Versions of the unrelated project ``name`` on PyPI (None when pip cannot tell)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", name],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Available versions: (.*)", out)
    return [v.strip() for v in match.group(1).split(",")] if match else None


def command_bump(args: list[str]) -> int:
    """``python dev.py bump NEW [--force]``: one version for every package, extra and pin."""
    force = "--force" in args
    rest = [a for a in args if a != "--force"]
    if len(rest) != 1:
        _say("usage: python dev.py bump NEW_VERSION [--force]")
        return 2
    new = rest[0]
    if not _VERSION_RE.fullmatch(new):
        _say(f"{new!r} is not a version such as 0.2.0 or 1.0.0rc1")
        return 2
    for name in FOREIGN_NAMES:
        foreign = _foreign_versions(name)
        if foreign is None:
            _say(f"could not ask PyPI which versions the unrelated {name} has; not checked")
        elif new in foreign and not force:
            _say(
                f"PyPI's unrelated {name} has a release {new}: with the same version pip could "
                "take it instead of ours. Choose another version (or pass --force)."
            )
            return 1
    old = read_version()
    changed = bump_version(new)
    for path in changed:
        print(f"  {path.relative_to(ROOT)}")
    print(f"version {old} -> {new} in {len(changed)} files; add the release to CHANGELOG.md")
    return 0


# --------------------------------------------------------------------------- the rest


def command_example(args: list[str]) -> int:
    """Run examples/etl_pipeline.py (CSV files to SQLite) in .venv."""
    python = ensure_environment()
    return _run(python, "examples/etl_pipeline.py", *args, check=False)


def command_bench(args: list[str]) -> int:
    """Every benchmark: benchmarks/run.py (the core), then benchmarks/bench_*.py."""
    python = ensure_environment()
    scripts = [
        "benchmarks/run.py",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("bench_*.py")),
    ]
    failures = 0
    for script in scripts:
        print(f"\n## {script}\n", flush=True)
        failures += _run(python, script, *args, check=False) != 0
    return 1 if failures else 0


def command_docs(args: list[str]) -> int:
    """Build the documentation site into site/ with ``mkdocs build --strict`` (the "docs"
    check), or with ``--serve`` serve it on 127.0.0.1, rebuilding as the pages change. Other
    arguments go to mkdocs (``--serve --dev-addr 127.0.0.1:8001``)."""
    python = ensure_environment()
    if "--serve" in args:
        rest = [a for a in args if a != "--serve"]
        chosen = any(a.startswith("--dev-addr") or a == "-a" for a in rest)
        address = [] if chosen else ["--dev-addr", "127.0.0.1:8000"]
        return _run(python, "-m", "mkdocs", "serve", "--strict", *address, *rest, check=False)
    code = _run(python, "-m", "mkdocs", "build", "--strict", *args, check=False)
    if code == 0:
        _say(f"built {ROOT / 'site'}; `python dev.py docs --serve` serves it on 127.0.0.1")
    return code


COMMANDS = {
    "test": command_test,
    "check": command_check,
    "example": command_example,
    "bench": command_bench,
    "docs": command_docs,
    "dist": command_dist,
    "bump": command_bump,
}


USAGE = """usage: python dev.py COMMAND [args...]

  test [--pythons ends|all|none|3.10,...] [--jobs N] [--only CHECKS] [PYTEST ARGS]
          set up .venv (and .venv-3.X), run ruff, ruff format, mypy, lint-imports, the docs
          build and pytest with this Python, then pytest with the lowest and highest other
          CPython 3.10-3.13
  check [--only CHECKS] [PYTEST ARGS]
          the same checks with the current interpreter, installing nothing (Hatch uses it)
  dist [--outdir DIR]
          build the sdist and wheel of every package into dist/
  bump NEW_VERSION [--force]
          set the one version of the workspace: every package, extra and pin
  example [ARGS]
          run examples/etl_pipeline.py (CSV files to SQLite)
  bench [ARGS]
          run every benchmark: benchmarks/run.py, then benchmarks/bench_*.py
  docs [--serve] [MKDOCS ARGS]
          build the documentation site into site/ (strict), or serve it on 127.0.0.1:8000
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        _say(USAGE)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
