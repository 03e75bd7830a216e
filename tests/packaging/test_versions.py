"""One version for the whole workspace: every package, every pin between them, every extra.

The version lives in ``VERSION`` at the repository root; ``python dev.py bump NEW`` writes it
there and wherever it is repeated. These tests read the files on their own (TOML, not dev.py's
regular expressions) and fail on any disagreement, naming the file and what it says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ["cascade-core", "cascade-otel", "cascade-cli", "cascade-dask", "cascade-ui"]
SIBLINGS = {
    "otel": "cascade-otel",
    "cli": "cascade-cli",
    "dask": "cascade-dask",
    "ui": "cascade-ui",
}
EXAMPLE_PLUGIN = "tests/plugins/cascade-example-plugin"
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

sys.path.insert(0, str(ROOT))
import dev  # noqa: E402  (dev.py at the repository root: the bump under test)


def _pyproject(root: Path, package_dir: str) -> dict:
    return tomllib.loads((root / package_dir / "pyproject.toml").read_text())


def _version_py(path: Path) -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', path.read_text(), re.M)
    assert match, f'{path}: no `__version__ = "..."` line'
    return match.group(1)


def disagreements(root: Path) -> list[str]:
    """Every place whose version is not the one in VERSION, as readable lines."""
    version = (root / "VERSION").read_text().strip()
    problems = []
    for name in RELEASED:
        package_dir = f"packages/{name}"
        project = _pyproject(root, package_dir)
        version_path = project["tool"]["hatch"]["version"]["path"]
        found = _version_py(root / package_dir / version_path)
        if found != version:
            problems.append(f"{package_dir}/{version_path}: {found}")
        if "version" in project["project"] or project["project"].get("dynamic") != ["version"]:
            problems.append(f"{package_dir}/pyproject.toml: the version must come from _version.py")
    dependents = [*(f"packages/{n}" for n in RELEASED), EXAMPLE_PLUGIN]
    for package_dir in dependents:
        project = _pyproject(root, package_dir)["project"]
        requirements = [("dependencies", r) for r in project.get("dependencies", [])]
        for extra, reqs in project.get("optional-dependencies", {}).items():
            requirements += [(f"extra {extra!r}", r) for r in reqs]
        for where, text in requirements:
            req = Requirement(text)
            if req.name in RELEASED and str(req.specifier) != f"=={version}":
                problems.append(f"{package_dir}/pyproject.toml {where}: {text}")
    for path in dev.version_files(root)["pins"]:
        if path.suffix == ".md" and path.exists():
            for match in dev.PIN_RE.finditer(path.read_text()):
                if match.group(3) != version:
                    problems.append(f"{path.relative_to(root)}: {match.group(0)}")
    return problems


def test_every_package_pin_and_extra_has_the_workspace_version():
    assert (ROOT / "VERSION").read_text().strip() == dev.read_version()
    assert disagreements(ROOT) == []


def test_the_installed_packages_report_the_workspace_version():
    """The editable installs of the test environment are the workspace itself."""
    import cascade
    import cascade_cli
    import cascade_dask
    import cascade_otel
    import cascade_ui

    version = dev.read_version()
    versions = {
        m.__name__: m.__version__
        for m in (cascade, cascade_cli, cascade_dask, cascade_otel, cascade_ui)
    }
    assert versions == dict.fromkeys(versions, version)


def test_core_extras_name_every_sibling_at_the_same_release():
    version = dev.read_version()
    extras = _pyproject(ROOT, "packages/cascade-core")["project"]["optional-dependencies"]
    for extra, sibling in SIBLINGS.items():
        assert extras[extra] == [f"{sibling}=={version}"], extra
    assert sorted(extras["all"]) == sorted(f"{s}=={version}" for s in SIBLINGS.values())


def test_each_sibling_depends_on_exactly_this_core():
    version = dev.read_version()
    for package_dir in [*(f"packages/{n}" for n in RELEASED[1:]), EXAMPLE_PLUGIN]:
        deps = [Requirement(r) for r in _pyproject(ROOT, package_dir)["project"]["dependencies"]]
        core = [str(r) for r in deps if r.name == "cascade-core"]
        assert core == [f"cascade-core=={version}"], package_dir


def _copy_version_files(destination: Path) -> None:
    for rel in ["VERSION", "README.md", "CONTRIBUTING.md"]:
        if (ROOT / rel).exists():
            shutil.copy(ROOT / rel, destination / rel)
    for pattern in [
        "packages/*/pyproject.toml",
        "packages/*/README.md",
        "packages/*/src/*/_version.py",
        f"{EXAMPLE_PLUGIN}/pyproject.toml",
        "docs/**/*.md",
    ]:
        for source in ROOT.glob(pattern):
            target = destination / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)


def test_bump_rewrites_every_copy_and_a_stray_pin_is_caught(tmp_path):
    _copy_version_files(tmp_path)
    changed = dev.bump_version("7.8.9", root=tmp_path)
    assert tmp_path / "VERSION" in changed
    assert (tmp_path / "VERSION").read_text().strip() == "7.8.9"
    assert disagreements(tmp_path) == []
    for name in RELEASED:
        project = _pyproject(tmp_path, f"packages/{name}")
        path = tmp_path / f"packages/{name}" / project["tool"]["hatch"]["version"]["path"]
        assert _version_py(path) == "7.8.9"
    core = _pyproject(tmp_path, "packages/cascade-core")["project"]
    assert core["optional-dependencies"]["cli"] == ["cascade-cli==7.8.9"]
    # One pin left behind (as a hand edit would) is reported with its file.
    otel = tmp_path / "packages/cascade-otel/pyproject.toml"
    otel.write_text(otel.read_text().replace("cascade-core==7.8.9", "cascade-core==7.8.8"))
    assert disagreements(tmp_path) == [
        "packages/cascade-otel/pyproject.toml dependencies: cascade-core==7.8.8"
    ]


def test_bump_refuses_a_version_that_is_not_one(tmp_path):
    _copy_version_files(tmp_path)
    with pytest.raises(ValueError, match="not a version"):
        dev.bump_version("next", root=tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), "bump", "latest"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "not a version" in result.stderr


def test_package_metadata_is_complete_and_the_same_everywhere():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    urls = None
    for name in RELEASED:
        project = _pyproject(ROOT, f"packages/{name}")["project"]
        assert project["name"] == name
        assert project["license"] == "MIT", name
        assert project["license-files"] == ["LICENSE"], name
        assert (ROOT / f"packages/{name}/LICENSE").read_text() == license_text, name
        assert project["requires-python"] == ">=3.10", name
        assert project["readme"] == "README.md", name
        for python in PYTHONS:
            assert f"Programming Language :: Python :: {python}" in project["classifiers"], name
        assert {"Homepage", "Source", "Documentation", "Changelog"} <= set(project["urls"]), name
        urls = urls or project["urls"]
        assert project["urls"] == urls, f"{name}: project URLs differ from cascade-core's"
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"py{PYTHONS[0].replace('.', '')}" == root["tool"]["ruff"]["target-version"]
    assert root["tool"]["mypy"]["python_version"] == PYTHONS[0]
    assert [f"{a}.{b}" for a, b in dev.SUPPORTED_PYTHONS] == PYTHONS
