"""The plugin system as a third party uses it.

``tests/plugins/cascade-example-plugin`` is a real distribution (installed editable by
``python dev.py test``) whose ``cascade`` entry point Cascade must find in installed metadata.
Broken plugins are real ``*.dist-info`` directories written to a temporary directory that a
subprocess puts on ``sys.path``: ``importlib.metadata`` discovers them exactly as it would
discover an installed wheel. Anything that depends on environment variables runs in a
subprocess, because the plugin manager is built once per process.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from core_helpers import add, total

import cascade as cs
from cascade.events import Event, RunFinished, RunStarted, TaskExecutionFinished
from cascade.executors.local import LocalExecutor
from cascade.plugins import (
    CascadePluginWarning,
    PluginError,
    PluginManager,
    list_plugins,
    reset_plugin_manager,
)

ROOT = Path(__file__).resolve().parents[3]
HOOKSPECS = ROOT / "packages/cascade-core/src/cascade/hookspec.py"
CLI_HOOKSPECS = ROOT / "packages/cascade-cli/src/cascade_cli/hookspecs.py"
DOCS = ROOT / "docs/plugins.md"
BUILTIN_EXECUTORS = "local, processes, threads"
CONTROL_VARS = (
    "CASCADE_DISABLE_PLUGIN_AUTOLOAD",
    "CASCADE_PLUGINS_BLOCK",
    "CASCADE_EXAMPLE_RECORD",
)

pytestmark = pytest.mark.timeout(60)


# -- helpers ---------------------------------------------------------------------------------


def run_python(
    code: str, *, env: dict[str, str] | None = None, path: Path | None = None
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (this venv) and return the JSON it prints last."""
    child_env = {k: v for k, v in os.environ.items() if k not in CONTROL_VARS}
    child_env.pop("PYTHONPATH", None)
    if path is not None:
        child_env["PYTHONPATH"] = str(path)
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path or ROOT,
    )
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def write_distribution(
    site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Write what installing a wheel leaves behind: modules plus a ``.dist-info`` with
    ``METADATA`` and ``entry_points.txt``."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[cascade]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def example_module() -> Any:
    import cascade_example_plugin.plugin as example

    return example


@pytest.fixture(autouse=True)
def _clean_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONTROL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def example_only() -> Iterator[PluginManager]:
    """The process-wide manager, loaded from installed metadata, with every installed plugin
    but the example blocked (so other packages' plugins cannot change what we measure)."""
    others = {ep.name for ep in metadata.entry_points(group="cascade")} - {"example"}
    manager = PluginManager(block=others)
    reset_plugin_manager(manager)
    example_module().calls.clear()
    example_module().recorded.clear()
    yield manager
    reset_plugin_manager(None)


@cs.task
async def add_async(a: int, b: int) -> int:
    return a + b


# -- discovery -------------------------------------------------------------------------------


def test_import_cascade_loads_no_plugin() -> None:
    seen = run_python(
        """
        import json, sys
        import cascade
        import cascade.plugins.manager as manager
        before = {
            "manager_built": manager._manager is not None,
            "builtin": "cascade.builtin" in sys.modules,
            "example": "cascade_example_plugin.plugin" in sys.modules,
            "metadata": "importlib.metadata" in sys.modules,
        }
        names = [info.name for info in cascade.plugins.list_plugins()]
        after = {
            "manager_built": manager._manager is not None,
            "example": "cascade_example_plugin.plugin" in sys.modules,
        }
        print(json.dumps({"before": before, "after": after, "names": names}))
        """
    )
    assert seen["before"] == {
        "manager_built": False,
        "builtin": False,
        "example": False,
        "metadata": False,  # entry points were not even scanned
    }
    assert seen["after"] == {"manager_built": True, "example": True}
    assert "example" in seen["names"]


def test_example_plugin_is_discovered_from_installed_metadata() -> None:
    dist = metadata.distribution("cascade-example-plugin")
    (entry_point,) = [ep for ep in dist.entry_points if ep.group == "cascade"]
    assert (entry_point.name, entry_point.value) == ("example", "cascade_example_plugin.plugin")

    seen = run_python(
        """
        import json, dataclasses
        import cascade
        print(json.dumps([dataclasses.asdict(i) for i in cascade.plugins.list_plugins()]))
        """
    )
    plugins = {p["name"]: p for p in seen}  # type: ignore[attr-defined]
    assert plugins["example"] == {
        "name": "example",
        "distribution": "cascade-example-plugin",
        "version": "0.1.0",
        "hooks": [
            "cascade_engine_created",
            "cascade_register_commands",
            "cascade_register_executors",
            "cascade_register_resources",
        ],
        "entry_point": "example = cascade_example_plugin.plugin",
    }
    assert next(iter(plugins)) == "cascade.builtin", "built-ins are registered first"


def test_builtins_are_registered_through_the_hooks() -> None:
    manager = PluginManager(load_entrypoints=False)
    (builtin,) = manager.plugin_info()
    assert builtin.name == "cascade.builtin"
    assert builtin.distribution == "cascade-core"
    assert builtin.version == cs.__version__
    assert builtin.entry_point is None
    assert set(builtin.hooks) >= {
        "cascade_register_executors",
        "cascade_register_cache_stores",
        "cascade_engine_created",
    }
    owners = {name: owner for name, (_, owner) in manager.executors().items()}
    assert owners == {
        "local": "cascade.builtin",
        "threads": "cascade.builtin",
        "processes": "cascade.builtin",
    }


def test_list_plugins_reports_the_process_wide_manager(example_only: PluginManager) -> None:
    infos = {info.name: info for info in list_plugins()}
    assert set(infos) == {"cascade.builtin", "example"}
    example = infos["example"]
    assert (example.distribution, example.version) == ("cascade-example-plugin", "0.1.0")
    assert "cascade_register_executors" in example.hooks


# -- what the example plugin contributes --------------------------------------------------------


def test_example_executor_runs_tasks(example_only: PluginManager) -> None:
    example = example_module()
    bus = cs.MessageBus()
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionFinished, finished.append)

    graph = total([add(add(1, 2), 3), add_async(10, 20)])
    assert cs.run(graph, executor="example-inline", log_level=None, bus=bus) == 36

    assert example.calls == {"add": 2, "add_async": 1, "total": 1}
    assert {event.executor for event in finished} == {"example-inline"}
    assert all(event.status == "Succeeded" for event in finished)


def test_a_task_can_choose_the_plugin_executor(example_only: PluginManager) -> None:
    example = example_module()
    on_loop = threading.get_ident()

    @cs.task(executor="example-inline")
    def where() -> bool:
        return threading.get_ident() == on_loop

    @cs.task
    def elsewhere() -> bool:
        return threading.get_ident() == on_loop

    assert cs.run([where(), elsewhere()], log_level=None) == [True, False]
    assert example.calls == {"where": 1}


def test_example_subscriber_sees_events_when_recording(
    example_only: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = example_module()
    monkeypatch.setenv("CASCADE_EXAMPLE_RECORD", "1")
    assert cs.run(add(1, 2), log_level=None) == 3

    kinds = [type(event).__name__ for event in example.recorded]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert {"TaskExecutionStarted", "TaskExecutionFinished"} <= set(kinds)
    assert isinstance(example.recorded[0], RunStarted)
    finished = example.recorded[-1]
    assert isinstance(finished, RunFinished) and finished.status == "Succeeded"
    assert len({event.run_id for event in example.recorded}) == 1


def test_example_subscriber_costs_nothing_when_not_recording(
    example_only: PluginManager,
) -> None:
    engine = cs.Engine(log_level=None)
    assert not engine.bus.wants(Event), "an engine nobody records must have no subscriber"
    assert cs.run(add(1, 2), log_level=None) == 3
    assert example_module().recorded == []


def test_plugin_resource_is_injectable(example_only: PluginManager) -> None:
    @cs.task
    def greet(name: str, greeting: str = cs.inject("example_greeting")) -> str:
        return f"{greeting}, {name}"

    assert cs.run(greet("world"), log_level=None) == "hello, world"
    engine = cs.Engine(log_level=None)
    provider = engine.get_resource_provider("example_greeting")
    assert provider is not None and provider.scope == "run"


def test_example_command_adds_to_a_click_group() -> None:
    click = pytest.importorskip("click")
    from click.testing import CliRunner

    @click.group()
    def cli() -> None:
        pass

    example_module().cascade_register_commands(cli)
    outcome = CliRunner().invoke(cli, ["example-hello"])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output == "hello from the example plugin\n"


def test_the_example_plugin_through_the_cascade_cli(tmp_path: Path) -> None:
    pytest.importorskip("cascade_cli")
    script = Path(sys.executable).parent / ("cascade.exe" if os.name == "nt" else "cascade")
    env = {k: v for k, v in os.environ.items() if k not in CONTROL_VARS}

    def cascade(*args: str) -> str:
        proc = subprocess.run(
            [str(script), *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert cascade("example-hello").strip() == "hello from the example plugin"
    listing = cascade("plugins")
    assert "example" in listing and "cascade-example-plugin" in listing

    flow = tmp_path / "flow.py"
    flow.write_text(
        "import cascade as cs\n\n"
        "@cs.task\n"
        "def add(a, b):\n"
        "    return a + b\n\n"
        "total = add(add(1, 2), 4)\n"
    )
    report = json.loads(
        cascade("run", f"{flow}:total", "--executor", "example-inline", "--output", "json")
    )
    assert report["result"] == 7
    assert {task["executor"] for task in report["tasks"]} == {"example-inline"}


# -- controls --------------------------------------------------------------------------------


def test_load_entrypoints_false_registers_only_what_the_test_asks_for() -> None:
    manager = PluginManager(load_entrypoints=False)
    assert [info.name for info in manager.plugin_info()] == ["cascade.builtin"]
    with pytest.raises(PluginError, match="unknown executor 'example-inline'"):
        manager.create_executor("example-inline")

    manager.register(example_module(), "example")
    assert "example-inline" in manager.executors()
    engine = cs.Engine(plugin_manager=manager, executor="example-inline", log_level=None)
    assert asyncio.run(engine.run(add(2, 3))) == 5


def test_block_argument_skips_a_plugin() -> None:
    manager = PluginManager(block=["example"])
    assert "example" not in {info.name for info in manager.plugin_info()}
    assert "example-inline" not in manager.executors()


def test_block_env_skips_named_plugins() -> None:
    seen = run_python(
        """
        import json, sys
        import cascade as cs
        names = [info.name for info in cs.plugins.list_plugins()]
        try:
            cs.Engine().resolve_executor("example-inline")
            error = None
        except cs.plugins.PluginError as exc:
            error = str(exc)
        print(json.dumps({"names": names, "error": error,
                          "imported": "cascade_example_plugin.plugin" in sys.modules}))
        """,
        env={"CASCADE_PLUGINS_BLOCK": " something-else , example"},
    )
    assert "example" not in seen["names"] and "cascade.builtin" in seen["names"]
    assert seen["imported"] is False, "a blocked plugin is never imported"
    assert "unknown executor 'example-inline'" in seen["error"]


def test_autoload_off_loads_only_builtins() -> None:
    seen = run_python(
        """
        import json, sys
        import cascade as cs

        @cs.task
        def add(a, b):
            return a + b

        result = cs.run(add(1, 2), log_level=None)
        try:
            cs.run(add(1, 2), executor="example-inline", log_level=None)
            error = None
        except cs.plugins.PluginError as exc:
            error = str(exc)
        print(json.dumps({
            "names": [info.name for info in cs.plugins.list_plugins()],
            "result": result,
            "error": error,
            "imported": "cascade_example_plugin.plugin" in sys.modules,
        }))
        """,
        env={"CASCADE_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert seen["names"] == ["cascade.builtin"]
    assert seen["result"] == 3
    assert seen["imported"] is False
    assert f"available executors: {BUILTIN_EXECUTORS} " in seen["error"]


def test_unknown_executor_lists_the_available_names(example_only: PluginManager) -> None:
    with pytest.raises(PluginError) as caught:
        cs.run(add(1, 2), executor="no-such-executor", log_level=None)
    message = str(caught.value)
    assert "unknown executor 'no-such-executor'" in message
    assert "available executors: example-inline, local, processes, threads" in message


def test_unknown_task_executor_is_reported_before_anything_runs(
    example_only: PluginManager,
) -> None:
    ran: list[str] = []

    @cs.task
    def first() -> int:
        ran.append("first")
        return 1

    @cs.task(executor="gpu-cluster")
    def second(x: int) -> int:
        return x

    with pytest.raises(PluginError, match=r"unknown executor 'gpu-cluster'.*example-inline"):
        cs.run(second(first()), log_level=None)
    assert ran == []


# -- conflicts and broken plugins ------------------------------------------------------------


class _Registers:
    def __init__(self, *names: str) -> None:
        self.names = names

    @cs.hookimpl
    def cascade_register_executors(self, register: Any) -> None:
        for name in self.names:
            register(name, LocalExecutor)


def test_two_plugins_registering_one_executor_name_is_an_error_naming_both() -> None:
    manager = PluginManager(load_entrypoints=False)
    manager.register(_Registers("gpu"), "acme-gpu")
    manager.register(_Registers("gpu", "tpu"), "other-gpu")
    with pytest.raises(PluginError) as caught:
        manager.executors()
    message = str(caught.value)
    assert "executor 'gpu' is registered by two plugins" in message
    assert "'acme-gpu'" in message and "'other-gpu'" in message
    assert "CASCADE_PLUGINS_BLOCK" in message


def test_a_plugin_may_not_take_a_builtin_name() -> None:
    manager = PluginManager(load_entrypoints=False)
    manager.register(_Registers("threads"), "sneaky")
    with pytest.raises(PluginError, match="executor 'threads' is registered by two plugins") as e:
        manager.create_executor("threads")
    assert "'cascade.builtin'" in str(e.value) and "'sneaky'" in str(e.value)


def test_installed_plugins_colliding_are_named(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "cascade-copycat",
        {"copycat": "cascade_copycat"},
        {
            "cascade_copycat": """
            import cascade
            from cascade_example_plugin.plugin import InlineExecutor

            @cascade.hookimpl
            def cascade_register_executors(register):
                register("example-inline", InlineExecutor)
            """
        },
    )
    seen = run_python(
        """
        import json
        import cascade as cs
        try:
            cs.plugins.get_plugin_manager().executors()
            error = None
        except cs.plugins.PluginError as exc:
            error = str(exc)
        print(json.dumps({"error": error}))
        """,
        path=tmp_path,
    )
    assert re.search(
        r"'example-inline' is registered by two plugins: '\w+' and '\w+'", seen["error"]
    )
    assert "'example'" in seen["error"] and "'copycat'" in seen["error"]


def test_broken_plugins_warn_and_cascade_keeps_working(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "cascade-broken",
        {
            "broken-import": "cascade_broken_import",
            "broken-hook": "cascade_broken_hook",
            "bad-signature": "cascade_bad_signature",
        },
        {
            "cascade_bad_signature": """
            import cascade

            @cascade.hookimpl
            def cascade_register_executors(registry):  # the spec's argument is `register`
                registry("never", object)
            """,
            "cascade_broken_import": """
            import cascade_dependency_that_is_not_installed
            """,
            "cascade_broken_hook": """
            import cascade

            @cascade.hookimpl
            def cascade_register_executors(register):
                raise RuntimeError("cannot reach the GPU cluster")

            @cascade.hookimpl
            def cascade_register_resources(register):
                raise RuntimeError("no resources today")

            @cascade.hookimpl
            def cascade_engine_created(engine):
                raise RuntimeError("engine hook exploded")
            """,
        },
    )
    seen = run_python(
        """
        import json, warnings
        import cascade as cs

        @cs.task
        def add(a, b):
            return a + b

        @cs.task
        def greet(greeting=cs.inject("example_greeting")):
            return greeting

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [
                cs.run(add(1, 2), log_level=None),
                cs.run(add(3, 4), executor="example-inline", log_level=None),
                cs.run(greet(), log_level=None),
            ]
        names = [info.name for info in cs.plugins.list_plugins()]
        print(json.dumps({
            "results": results,
            "names": names,
            "warnings": [
                str(w.message) for w in caught
                if issubclass(w.category, cs.plugins.CascadePluginWarning)
            ],
        }))
        """,
        path=tmp_path,
    )
    assert seen["results"] == [3, 7, "hello"]
    assert "broken-import" not in seen["names"]
    assert "broken-hook" in seen["names"] and "example" in seen["names"]

    messages = seen["warnings"]
    load = [m for m in messages if "'broken-import'" in m]
    assert len(load) == 1
    assert "entry point 'broken-import = cascade_broken_import'" in load[0]
    assert "cascade-broken" in load[0]
    assert "ModuleNotFoundError" in load[0]
    assert "cascade_dependency_that_is_not_installed" in load[0]

    assert "bad-signature" not in seen["names"]
    (signature,) = [m for m in messages if "'bad-signature'" in m]
    assert "entry point 'bad-signature = cascade_bad_signature'" in signature
    assert "failed to register" in signature and "registry" in signature

    hook = [m for m in messages if "'broken-hook'" in m]
    for hook_name, error in [
        ("cascade_register_executors", "cannot reach the GPU cluster"),
        ("cascade_register_resources", "no resources today"),
        ("cascade_engine_created", "engine hook exploded"),
    ]:
        raised = [m for m in hook if hook_name in m]
        assert raised, f"no warning for {hook_name}: {messages}"
        assert "entry point 'broken-hook = cascade_broken_hook'" in raised[0]
        assert error in raised[0]
    assert len([m for m in hook if "cascade_engine_created" in m]) == 3, "one per engine"


def test_a_raising_hook_warns_in_process_and_the_run_goes_on() -> None:
    class Exploding:
        @cs.hookimpl
        def cascade_engine_created(self, engine: Any) -> None:
            raise ValueError("boom")

    manager = PluginManager(load_entrypoints=False)
    manager.register(Exploding(), "exploding")
    with pytest.warns(CascadePluginWarning, match="'exploding' raised in cascade_engine_created"):
        engine = cs.Engine(plugin_manager=manager, log_level=None)
    assert asyncio.run(engine.run(add(1, 1))) == 2


def test_a_resource_that_is_not_a_generator_is_left_out_with_a_warning() -> None:
    class BadResource:
        @cs.hookimpl
        def cascade_register_resources(self, register: Any) -> None:
            register(lambda: "not a generator")

    manager = PluginManager(load_entrypoints=False)
    manager.register(BadResource(), "bad-resource")
    manager.register(example_module(), "example")
    refused = "'bad-resource' registered something that is not a resource"
    with pytest.warns(CascadePluginWarning, match=refused):
        engine = cs.Engine(plugin_manager=manager, log_level=None)
    assert engine.get_resource_provider("example_greeting") is not None


# -- documentation ---------------------------------------------------------------------------


def _hookspecs() -> list[ast.FunctionDef]:
    """Every ``cascade_*`` hook spec: core's, plus the CLI's when that package is present."""
    specs = []
    for path in (HOOKSPECS, CLI_HOOKSPECS):
        if path == CLI_HOOKSPECS and not path.exists():
            continue
        specs += [
            node
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cascade_")
        ]
    return specs


def test_every_hookspec_has_a_docstring() -> None:
    specs = _hookspecs()
    assert {spec.name for spec in specs} >= {
        "cascade_register_executors",
        "cascade_register_resources",
        "cascade_register_cache_stores",
        "cascade_engine_created",
    }
    for spec in specs:
        doc = ast.get_docstring(spec)
        assert doc and len(doc) > 40, f"hook spec {spec.name} needs a docstring saying when and why"


def test_every_hookspec_is_documented_in_docs_plugins() -> None:
    headings = [line for line in DOCS.read_text().splitlines() if line.startswith("#")]
    documented = {name for line in headings for name in re.findall(r"`(cascade_\w+)`", line)}
    missing = [spec.name for spec in _hookspecs() if spec.name not in documented]
    assert not missing, f"docs/plugins.md has no heading for hook(s): {', '.join(missing)}"
    assert "cascade_register_commands" in documented, "the CLI's hook is documented too"


def _python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``## `` section of docs/plugins.md, in order."""
    text = DOCS.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], re.S)


def test_the_tutorials_in_docs_plugins_work(tmp_path: Path) -> None:
    executor, try_it, register, use, executor_test = _python_blocks("Tutorial: an executor plugin")
    subscriber, attach, subscriber_test = _python_blocks("Tutorial: a subscriber plugin")
    for package, source in [
        ("cascade_inline", executor + "\n\n" + register),
        ("cascade_slowlog", subscriber + "\n\n" + attach),
    ]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "plugin.py").write_text(source)
    (tmp_path / "test_inline.py").write_text(executor_test)
    (tmp_path / "test_slowlog.py").write_text(subscriber_test)
    (tmp_path / "use.py").write_text(
        "import cascade_inline.plugin\n"
        "from cascade.plugins import PluginManager, reset_plugin_manager\n"
        "manager = PluginManager(load_entrypoints=False)\n"
        "manager.register(cascade_inline.plugin, 'inline')\n"
        "reset_plugin_manager(manager)\n"
        f"{use}\n"
        "import json\n"
        "print(json.dumps({'result': cs.run(tiny(add(1, 2)), log_level=None)}))\n"
    )
    assert run_python((tmp_path / "use.py").read_text(), path=tmp_path) == {"result": 6}
    # The executor tried before packaging: a run opens it once and submits through its handle.
    tried = (
        "from cascade_inline.plugin import InlineExecutor\n"
        f"{try_it}\n"
        "import json\n"
        "print(json.dumps({'finished': list(inline.finished.values())}))\n"
    )
    assert run_python(tried, path=tmp_path) == {"finished": [2]}

    env = {k: v for k, v in os.environ.items() if k not in CONTROL_VARS}
    env["PYTHONPATH"] = str(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
