"""Every shell and Python snippet of the READMEs and ``docs/**/*.md`` (the site) runs.

Each fenced block is one test, named ``file:line``:

- ```` ```python ````: the Python blocks of one file run in order in one namespace, as one
  reader would type them into one session, named ``__main__``, in a fresh interpreter per file.
- ```` ```bash ```` / ``sh`` / ``shell``: the block is one bash script, run with ``set -e``.
- ```` ```console ````: lines starting with ``$ `` are commands, each run on its own; the lines
  after one are its sample output. A command whose sample output shows an error (a line that
  starts with ``Error:``) must fail and print that line; any other command must exit 0.
- Any other block (``text``, ``json``, ``toml``, ``mermaid``, no language) is not run.
- A block with a file name, ```` ```python title="flow.py" ```` (how the site shows a file
  to save), is that file: it is written into the page's scratch folder before anything of the
  page runs, for the page's commands to use (``cascade run flow.py:report``), and is not run
  in the page's namespace; a Python file must compile.

Commands run in a scratch folder, one per Markdown file, that holds links to the repository's
top-level folders, so ``examples/etl_pipeline.py`` works and what the commands write stays out
of the repository; ``python``, ``cascade`` and the other scripts are this interpreter's.

Not run, by rule:

- ``pip install ...``: it would change the environment the tests run in, and
  tests/packaging/test_dist.py installs for real. Each one is checked instead: naming one of our
  distributions (``cascade-core`` and its siblings) it must pin the exact release with ``==`` and
  say ``--find-links``, or name a local folder or file; a bare ``cascade-core`` would install the
  unrelated project of that name on PyPI.
- ``python benchmarks/...``: benchmarks measure this machine's speed (``python dev.py bench``
  runs them).

Not run, by choice: put ``<!-- no-run: why -->`` on the line before the fence (the reason is
required). Use it sparingly: for a command that needs a server, a long time, or that is the
test command itself.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"cascade-core", "cascade-otel", "cascade-cli", "cascade-dask", "cascade-ui"}
SHELL = {"bash", "sh", "shell", "console"}
NO_RUN = re.compile(r"<!--\s*no-run\b:?(.*?)-->", re.S)
TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')

pytestmark = pytest.mark.timeout(600)


def markdown_files() -> list[Path]:
    files = [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        *sorted(ROOT.glob("packages/*/README.md")),
        ROOT / "tests/plugins/cascade-example-plugin/README.md",
        *sorted(ROOT.glob("docs/**/*.md")),
    ]
    return [f for f in files if f.exists()]


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    no_run: str | None  # the reason given in <!-- no-run: ... -->, or None
    title: str | None = None  # title="flow.py": the block is that file

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


def extract(path: Path) -> list[Snippet]:
    """The fenced code blocks of a Markdown file (indented blocks inside lists included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = (match["info"].strip().split() or [""])[0].lower()
        title = TITLE.search(match["info"])
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence)}[ \t]*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = NO_RUN.search(before)
        no_run = marker.group(1).strip() if marker else None
        code = "\n".join(body) + "\n"
        name = title["title"] if title else None
        snippets.append(Snippet(path, start + 1, language, code, no_run, name))
    return snippets


def all_snippets() -> list[Snippet]:
    return [s for f in markdown_files() for s in extract(f) if s.language in SHELL | {"python"}]


SNIPPETS = all_snippets()


# ------------------------------------------------------------------------------ shell


def logical_lines(script: str) -> list[str]:
    """Lines of a shell script with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return command.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the command
    return words


def pip_install_args(command: str) -> list[str] | None:
    """The arguments after ``pip install`` (also ``python -m pip install``), or None."""
    words = _words(command)
    if words[:1] and re.fullmatch(r"python[\d.]*", words[0]) and words[1:3] == ["-m", "pip"]:
        words = words[2:]
    if len(words) >= 2 and re.fullmatch(r"pip[\d.]*", words[0]) and words[1] == "install":
        return words[2:]
    return None


def pip_problems(args: list[str]) -> list[str]:
    """What is wrong with an install command, for a user who must get our packages."""
    takes_value = {"-f", "--find-links", "-i", "--index-url", "--extra-index-url", "-c", "-r"}
    takes_value |= {"--constraint", "--requirement", "-t", "--target", "--python", "--prefix"}
    has_find_links = any(a in ("-f", "--find-links") or a.startswith("--find-links=") for a in args)
    problems = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in takes_value:
            skip = True
            continue
        if arg.startswith("-"):
            continue  # -e / --editable take a path: that is a local folder anyway
        if arg.startswith((".", "/", "~")) or "/" in arg or arg.endswith((".whl", ".tar.gz")):
            continue  # a local folder or file
        name = re.match(r"[A-Za-z0-9._-]+", arg)
        if not name or name.group(0).lower().replace("_", "-") not in OURS:
            continue
        pinned = re.search(r"==\s*[\w.]+", arg)
        if not pinned or not has_find_links:
            problems.append(
                f"`{arg}`: without --find-links and an exact ==version this installs the "
                "unrelated package of that name from PyPI"
            )
    return problems


def not_run_by_rule(command: str) -> str | None:
    words = _words(command)
    if pip_install_args(command) is not None:
        return "install commands are checked, not run"
    if (
        len(words) >= 2
        and re.fullmatch(r"python[\d.]*", words[0])
        and words[1].startswith("benchmarks/")
    ):
        return "benchmarks measure the machine's speed"
    return None


_SCRATCH = Path(tempfile.mkdtemp(prefix="cascade-snippets-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


@functools.cache
def scratch(markdown: Path) -> Path:
    """A folder for one Markdown file's commands, with the repository's folders linked in."""
    folder = _SCRATCH / markdown.relative_to(ROOT).as_posix().replace("/", "-")
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name.startswith(".") or entry.name in ("dist", "build"):
            continue
        (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for snippet in extract(markdown):
        if snippet.title is not None:
            (folder / snippet.title).parent.mkdir(parents=True, exist_ok=True)
            (folder / snippet.title).write_text(snippet.code, encoding="utf-8")
    return folder


def shell_env(folder: Path) -> dict[str, str]:
    drop = {"CASCADE_CACHE_DIR", "FORCE_COLOR", "COLUMNS", "LINES", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = sys.prefix
    env["WAREHOUSE_DB"] = str(folder / "warehouse.sqlite3")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _bash(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=folder,
        env=shell_env(folder),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def console_commands(code: str) -> list[tuple[str, list[str]]]:
    """(command, sample output lines) for each ``$ `` line of a console block."""
    commands: list[tuple[str, list[str]]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            if commands:
                commands[-1][1].append(line)
            continue
        command = line[2:]
        while command.rstrip().endswith("\\") and i < len(lines):
            command = command.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
        commands.append((command, []))
    return commands


def run_shell(snippet: Snippet) -> None:
    folder = scratch(snippet.path)
    failures = []
    if snippet.language == "console":
        steps = console_commands(snippet.code)
    else:
        steps = [(line, []) for line in logical_lines(snippet.code)]
    script = []
    for command, sample in steps:
        args = pip_install_args(command)
        if args is not None:
            failures += [f"$ {command}\n  {p}" for p in pip_problems(args)]
        if not_run_by_rule(command):
            continue
        if snippet.language != "console":
            script.append(command)
            continue
        result = _bash(command, folder)
        output = result.stdout + result.stderr
        errors = [ln.strip() for ln in sample if ln.startswith("Error:")]
        if errors:
            shown = " ".join(output.split())
            missing = [e for e in errors if " ".join(e.split()) not in shown]
            if result.returncode == 0 or missing:
                failures.append(
                    f"$ {command}\n  the page shows it failing with {errors[0]!r}; it exited "
                    f"{result.returncode} with:\n{output}"
                )
        elif result.returncode != 0:
            failures.append(f"$ {command}\n  exited {result.returncode}:\n{output}")
    if script and any(line.strip() and not line.lstrip().startswith("#") for line in script):
        result = _bash("\n".join(script), folder)
        if result.returncode != 0:
            failures.append(
                f"the script exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
    if failures:
        pytest.fail(f"{snippet.name}:\n" + "\n".join(failures), pytrace=False)


# ------------------------------------------------------------------------------ python

HARNESS = """\
import json, sys, traceback

def main():
    blocks = json.load(open(sys.argv[1], encoding="utf-8"))
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    results = {}
    for block in blocks:
        print(f"--- {block['name']}", flush=True)
        try:
            exec(compile(block["code"], block["name"], "exec"), namespace)
            results[block["name"]] = None
        except BaseException:
            results[block["name"]] = traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.flush()
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(results, handle)

if __name__ == "__main__":
    main()
"""


@functools.cache
def python_results(markdown: Path) -> tuple[dict[str, str | None], str]:
    """Run the runnable Python blocks of one file in one interpreter: {name: traceback}."""
    blocks = [
        {"name": s.name, "code": s.code}
        for s in SNIPPETS
        if s.path == markdown and s.language == "python" and s.no_run is None and not s.title
    ]
    folder = scratch(markdown)
    (folder / ".snippets.json").write_text(json.dumps(blocks), encoding="utf-8")
    (folder / ".harness.py").write_text(HARNESS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, ".harness.py", ".snippets.json", ".results.json"],
        cwd=folder,
        env=shell_env(folder),
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    output = result.stdout + result.stderr
    results_file = folder / ".results.json"
    if not results_file.exists():
        return {b["name"]: f"the interpreter exited {result.returncode}" for b in blocks}, output
    return json.loads(results_file.read_text(encoding="utf-8")), output


def run_python(snippet: Snippet) -> None:
    results, output = python_results(snippet.path)
    error = results.get(snippet.name, "not run")
    if error is not None:
        after = output.split(f"--- {snippet.name}\n", 1)[-1]
        section = re.split(r"^--- ", after, maxsplit=1, flags=re.M)[0]
        pytest.fail(f"{snippet.name}:\n{error}\noutput of the block:\n{section}", pytrace=False)


# ------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.name)
def test_snippet_runs(snippet: Snippet) -> None:
    if snippet.no_run is not None:
        if snippet.language in SHELL:
            problems = [
                f"$ {line}\n  {p}"
                for line in logical_lines(snippet.code)
                if (args := pip_install_args(line.removeprefix("$ "))) is not None
                for p in pip_problems(args)
            ]
            if problems:
                message = f"{snippet.name} (not run, but checked):\n" + "\n".join(problems)
                pytest.fail(message, pytrace=False)
        if not snippet.no_run:
            pytest.fail(f"{snippet.name}: <!-- no-run --> needs a reason: <!-- no-run: why -->")
        pytest.skip(f"no-run: {snippet.no_run}")
    if snippet.title is not None:
        scratch(snippet.path)  # writes the file
        if snippet.language == "python":
            compile(snippet.code, snippet.name, "exec")
        return
    if snippet.language == "python":
        run_python(snippet)
    else:
        run_shell(snippet)


def test_snippets_are_found() -> None:
    """The extractor sees the snippets it should (a broken fence regex would skip them all)."""
    names = {s.name for s in SNIPPETS}
    assert any(n.startswith("README.md:") for n in names)
    assert any(n.startswith("packages/cascade-cli/README.md:") for n in names)
    assert sum(n.startswith("docs/") for n in names) >= 10
    assert any(n.startswith("docs/tutorials/") for n in names)
    assert any(n.startswith("docs/getting-started/") for n in names)


def test_install_check_catches_the_unpinned_commands() -> None:
    assert pip_problems(["cascade-core"])
    assert pip_problems(["cascade-core[cli]"])
    assert pip_problems(["cascade-core[otel,cli,dask]==0.1.0"])  # no --find-links
    assert pip_problems(["--find-links", "dist", "cascade-cli"])
    assert not pip_problems(["--find-links", "dist", "cascade-core[otel,cli,dask]==0.1.0"])
    assert not pip_problems(["./packages/cascade-core", "./packages/cascade-cli"])
    assert not pip_problems(["-e", "tests/plugins/cascade-example-plugin"])
    assert not pip_problems(["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"])
    assert pip_install_args('pip install "cascade-core[cli]"') == ["cascade-core[cli]"]
    assert pip_install_args("python -m pip install x") == ["x"]
    assert pip_install_args("cascade plugins") is None
