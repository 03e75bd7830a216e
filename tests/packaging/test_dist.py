"""The released packages as a user gets them.

Builds the sdist and wheel of every package (as ``python dev.py dist`` does, into a temporary
folder), checks what is inside, installs ``cascade-core[otel,cli,dask,ui]`` from there into a new
virtual environment with the README's own command (third-party dependencies from the package
index, our packages only from the folder), and runs the installed ``cascade`` command and
imports there, away from the repository (``cascade-core[ui]`` goes into another environment,
with cascade-ui's README's command, where ``cascade ui`` serves a recorded run). This catches a
file missing from a wheel, a wrong entry point, a broken extra, or an install that picks up the
unrelated ``cascade-core`` on PyPI.

``python dev.py test`` runs this once, with its main Python (``CASCADE_TEST_DIST=0`` skips it in
the runs with the other Pythons).
"""

from __future__ import annotations

import email
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402

VERSION = dev.read_version()
RELEASED = dev.RELEASED
IMPORT_NAMES = {
    "cascade-core": "cascade",
    "cascade-otel": "cascade_otel",
    "cascade-cli": "cascade_cli",
    "cascade-dask": "cascade_dask",
    "cascade-ui": "cascade_ui",
}
# The install command of the README, with `dist` standing for the folder of wheels.
INSTALL = 'pip install --find-links dist "cascade-core[otel,cli,dask,ui]=={version}"'
# What it installs besides cascade-core (cascade-ui has its own environment, below).
INSTALLED_BY_README = ["cascade-core", "cascade-otel", "cascade-cli", "cascade-dask", "cascade-ui"]
# cascade-ui's README's command: the ui extra alone gives a working `cascade ui`.
INSTALL_UI = 'pip install --find-links dist "cascade-core[ui]=={version}"'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        os.environ.get("CASCADE_TEST_DIST") == "0",
        reason="CASCADE_TEST_DIST=0: the wheels are tested by the run with the main Python",
    ),
]

PIPELINE = """\
import cascade as cs

count = cs.Param("count", default=3, type=int)


@cs.task
def numbers(n: int) -> list[int]:
    return list(range(1, n + 1))


@cs.task
def square(x: int) -> int:
    return x * x


@cs.task
async def total(values: list[int]) -> int:
    return sum(values)


result = total(square.map(numbers(count)))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    dev.build_dists(sys.executable, folder)
    return folder


def _scripts(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def _pip(env: Path) -> list[str]:
    """This environment's pip, installing into ``env`` (which has no pip of its own)."""
    python = _scripts(env) / ("python.exe" if os.name == "nt" else "python")
    return [sys.executable, "-m", "pip", "--python", str(python)]


def _clean_env() -> dict[str, str]:
    """This process's environment without what would make the new one see the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("CASCADE_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("CASCADE_PLUGINS_BLOCK", None)
    return env


def _new_env(dist: Path, folder: Path, install: str) -> Path:
    """A brand-new virtual environment with what ``install`` (a README's command) installs."""
    env = folder / "venv"
    # No pip inside: this environment's pip installs into it (`pip --python`), which is faster.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    command = install.format(version=VERSION).split()
    command[command.index("dist")] = str(dist)
    args = [a.strip('"') for a in command[2:]]
    result = subprocess.run(
        [*_pip(env), "install", *args],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=dist.parent,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return env


@pytest.fixture(scope="module")
def user_env(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brand-new virtual environment with what the README's install command installs."""
    return _new_env(dist, tmp_path_factory.mktemp("user"), INSTALL)


@pytest.fixture(scope="module")
def ui_env(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brand-new virtual environment with what cascade-ui's README installs."""
    return _new_env(dist, tmp_path_factory.mktemp("ui"), INSTALL_UI)


def _run(env: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    program = argv[0]
    path = _scripts(env) / (program + (".exe" if os.name == "nt" else ""))
    result = subprocess.run(
        [str(path), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**_clean_env(), "CASCADE_CACHE_DIR": str(cwd / "cache")},
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr}"
    return result


def test_readme_gives_the_install_command_this_test_runs():
    readme = (ROOT / "README.md").read_text()
    assert INSTALL.format(version=VERSION) in readme
    for name in RELEASED:
        package_readme = (ROOT / "packages" / name / "README.md").read_text()
        assert "--find-links" in package_readme and f"=={VERSION}" in package_readme, name


def test_every_package_has_an_sdist_and_a_wheel(dist: Path):
    names = sorted(p.name for p in dist.iterdir())
    expected = sorted(
        f"{n.replace('-', '_')}-{VERSION}{suffix}"
        for n in RELEASED
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    assert names == expected


@pytest.mark.parametrize("name", RELEASED)
def test_wheel_has_the_license_metadata_and_pins(dist: Path, name: str):
    stem = name.replace("-", "_")
    project = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(dist / f"{stem}-{VERSION}-py3-none-any.whl") as wheel:
        files = set(wheel.namelist())
        info = f"{stem}-{VERSION}.dist-info"
        license_text = wheel.read(f"{info}/licenses/LICENSE").decode()
        metadata = email.message_from_string(wheel.read(f"{info}/METADATA").decode())
        package = IMPORT_NAMES[name]
        assert f"{package}/__init__.py" in files and f"{package}/py.typed" in files
        sources = {
            p.relative_to(ROOT / "packages" / name / "src").as_posix()
            for p in (ROOT / "packages" / name / "src" / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert sources <= files, f"missing from the wheel: {sorted(sources - files)}"
    assert license_text == (ROOT / "LICENSE").read_text()
    assert metadata["Name"] == name and metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / "packages" / name / "README.md").read_text()
    assert metadata.get_payload().strip() == readme.strip()
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert urls == project["urls"]
    ours = [r for r in metadata.get_all("Requires-Dist") or [] if r.startswith("cascade-")]
    if name == "cascade-core":
        assert sorted(ours) == sorted(
            f"{sibling}=={VERSION}; extra == '{extra}'"
            for extra, sibling in [
                ("all", "cascade-cli"),
                ("all", "cascade-dask"),
                ("all", "cascade-otel"),
                ("all", "cascade-ui"),
                ("cli", "cascade-cli"),
                ("dask", "cascade-dask"),
                ("otel", "cascade-otel"),
                ("ui", "cascade-ui"),
            ]
        )
    elif name == "cascade-ui":  # its command is added to cascade-cli's `cascade`
        assert sorted(ours) == [f"cascade-cli=={VERSION}", f"cascade-core=={VERSION}"]
    else:
        assert ours == [f"cascade-core=={VERSION}"]


@pytest.mark.parametrize("name", RELEASED)
def test_sdist_has_the_license_readme_and_sources(dist: Path, name: str):
    stem = name.replace("-", "_")
    with tarfile.open(dist / f"{stem}-{VERSION}.tar.gz") as sdist:
        files = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= files
    assert f"src/{IMPORT_NAMES[name]}/_version.py" in files


def test_directories_install_together_from_this_repository(tmp_path: Path):
    """The README's other way, `pip install ./packages/...` (resolved, not installed)."""
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-build-isolation"]
        + ["--quiet", "--report", str(report)]
        + [f"./packages/{name}" for name in RELEASED],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    install = json.loads(report.read_text())["install"]
    ours = {
        i["metadata"]["name"]: i["download_info"]["url"]
        for i in install
        if i["metadata"]["name"].startswith("cascade")
    }
    assert ours == {n: (ROOT / "packages" / n).as_uri() for n in RELEASED}


def test_installed_packages_are_ours_at_this_version(user_env: Path, tmp_path: Path):
    listing = subprocess.run(
        [*_pip(user_env), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {p["name"]: p["version"] for p in json.loads(listing)}
    ours = {name: v for name, v in installed.items() if name.startswith("cascade")}
    assert ours == dict.fromkeys(INSTALLED_BY_README, VERSION)
    probe = _run(
        user_env,
        "python",
        "-c",
        "import cascade, importlib.metadata as m; print(cascade.__file__); "
        "print(m.metadata('cascade-core')['Project-URL'])",
        cwd=tmp_path,
    ).stdout.splitlines()
    assert Path(probe[0]).is_relative_to(user_env), "cascade was not imported from the new env"
    source = tomllib.loads((ROOT / "packages/cascade-core/pyproject.toml").read_text())
    assert probe[1].split(", ", 1)[1] in source["project"]["urls"].values()


def test_cascade_version_in_the_new_environment(user_env: Path, tmp_path: Path):
    out = _run(user_env, "cascade", "--version", cwd=tmp_path).stdout.strip()
    assert re.fullmatch(
        rf"cascade {re.escape(VERSION)} \(cascade-core {re.escape(VERSION)}, "
        r"Python 3\.\d+\.\d+\S*\)",
        out,
    ), out


def test_cascade_plugins_in_the_new_environment(user_env: Path, tmp_path: Path):
    table = _run(user_env, "cascade", "plugins", cwd=tmp_path).stdout
    for distribution in ("cascade-core", "cascade-otel", "cascade-dask", "cascade-ui"):
        assert distribution in table
    plugins = json.loads(
        _run(user_env, "cascade", "plugins", "--output", "json", cwd=tmp_path).stdout
    )
    found = {p["name"]: (p["distribution"], p["version"]) for p in plugins}
    assert found == {
        "cascade.builtin": ("cascade-core", VERSION),
        "otel": ("cascade-otel", VERSION),
        "dask": ("cascade-dask", VERSION),
        "ui": ("cascade-ui", VERSION),
    }


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_cascade_run_in_the_new_environment(user_env: Path, tmp_path: Path, executor: str):
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    out = _run(
        user_env,
        "cascade",
        "run",
        "pipeline.py:result",
        "--param",
        "count=4",
        "--executor",
        executor,
        "--output",
        "json",
        cwd=tmp_path,
    ).stdout
    report = json.loads(out)
    assert (report["status"], report["result"]) == ("Succeeded", 1 + 4 + 9 + 16)
    assert report["cascade_version"] == VERSION
    text = _run(user_env, "cascade", "run", "pipeline.py:result", cwd=tmp_path).stdout
    assert "Succeeded" in text and "14" in text


def test_plugin_packages_import_in_the_new_environment(user_env: Path, tmp_path: Path):
    out = _run(
        user_env,
        "python",
        "-c",
        "import cascade_otel, cascade_dask\n"
        "print(cascade_otel.__version__, cascade_dask.__version__)",
        cwd=tmp_path,
    ).stdout.split()
    assert out == [VERSION, VERSION]


def test_the_ui_extra_gives_a_working_cascade_ui(ui_env: Path, tmp_path: Path):
    readme = (ROOT / "packages/cascade-ui/README.md").read_text()
    assert INSTALL_UI.format(version=VERSION) in readme
    summary = _run(
        ui_env,
        "python",
        "-c",
        "import importlib.metadata as m; print(m.metadata('cascade-ui')['Summary'])",
        cwd=tmp_path,
    ).stdout.strip()
    project = tomllib.loads((ROOT / "packages/cascade-ui/pyproject.toml").read_text())
    assert summary == project["project"]["description"], (
        f"pip installed PyPI's unrelated cascade-ui {VERSION} ({summary!r}) instead of ours "
        "from the wheels: release a version that project does not have (`python dev.py bump` "
        "refuses one it has)"
    )
    plugins = json.loads(
        _run(ui_env, "cascade", "plugins", "--output", "json", cwd=tmp_path).stdout
    )
    assert {p["name"]: (p["distribution"], p["version"]) for p in plugins}["ui"] == (
        "cascade-ui",
        VERSION,
    )
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    _run(ui_env, "cascade", "run", "pipeline.py:result", cwd=tmp_path)
    server = subprocess.Popen(
        [str(_scripts(ui_env) / "cascade"), "ui", "--port", "0"],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner + server.stderr.read() if server.stderr else banner
        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=60)
        connection.request("GET", "/api/runs")
        runs = json.loads(connection.getresponse().read())["runs"]
        connection.close()
        assert [r["status"] for r in runs] == ["Succeeded"]
        for asset in ("/", "/static/run.js", "/static/app.css"):
            connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=60)
            connection.request("GET", asset)
            assert connection.getresponse().status == 200, asset
            connection.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.communicate(timeout=60)
    assert server.returncode == 0
