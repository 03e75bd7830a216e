"""Loading plugins and asking them things.

One ``PluginManager`` per process is built lazily (``get_plugin_manager``), never at
``import cascade``. It registers Cascade's built-ins first, then the entry points of group
``cascade`` unless ``CASCADE_DISABLE_PLUGIN_AUTOLOAD=1``; names listed in
``CASCADE_PLUGINS_BLOCK`` (comma separated) are skipped. A plugin that fails to import or raises
in a hook is reported with a ``CascadePluginWarning`` naming it, and Cascade carries on without it.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from cascade import hookspec as hookspecs
from cascade._version import __version__
from cascade.spec.resource import make_resource_definition

GROUP = "cascade"
BUILTIN_NAME = "cascade.builtin"
BUILTIN_MODULE = "cascade.builtin"


class PluginError(RuntimeError):
    """Plugins conflict (two register one name) or a name is not registered."""


class CascadePluginWarning(UserWarning):
    """A plugin failed to load or raised in a hook and was left out."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``list_plugins()`` and ``cascade plugins`` report about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    entry_point: str | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def blocked_from_env() -> set[str]:
    """Plugin names listed in ``CASCADE_PLUGINS_BLOCK``."""
    raw = os.environ.get("CASCADE_PLUGINS_BLOCK", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginManager:
    """Cascade's view of its plugins: registries of executors, resources, cache stores and run
    stores, and the per-engine hook."""

    def __init__(self, load_entrypoints: bool = True, block: Iterable[str] = ()) -> None:
        self.pm = pluggy.PluginManager("cascade")
        self.pm.add_hookspecs(hookspecs)
        self.blocked = set(block) | blocked_from_env()
        self._info: dict[str, PluginInfo] = {}
        self._executors: dict[str, tuple[Callable[[], Any], str]] | None = None
        self._stores: dict[str, tuple[Callable[..., Any], str]] | None = None
        self._run_stores: dict[str, tuple[Callable[..., Any], str]] | None = None
        self._resources: dict[str, Any] | None = None
        self._lock = threading.RLock()
        # Loaded by name, as entry points are: the built-ins import the parts they register.
        builtin = importlib.import_module(BUILTIN_MODULE)
        self.register(builtin, BUILTIN_NAME, distribution="cascade-core", version=__version__)
        if load_entrypoints and not _env_flag("CASCADE_DISABLE_PLUGIN_AUTOLOAD"):
            self.load_entrypoints()

    # -- loading ---------------------------------------------------------------------------

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
        entry_point: str | None = None,
    ) -> None:
        """Register a plugin object or module under ``name`` (tests use this directly)."""
        if name in self.blocked:
            return
        with self._lock:
            self.pm.register(plugin, name=name)
            wrappers = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or ()  # type: ignore[attr-defined]
                for impl in caller.get_hookimpls()
                if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper)
            )
            if wrappers:
                # Cascade calls each plugin's implementation on its own (so one broken plugin
                # spoils nothing); a wrapper would silently never run, so it is refused.
                self.pm.unregister(plugin)
                warnings.warn(
                    f"Cascade plugin '{name}' implements {', '.join(wrappers)} as a hook "
                    "wrapper, which Cascade does not call; the plugin is left out. Implement "
                    "the hooks as plain functions (@cascade.hookimpl without wrapper=True).",
                    CascadePluginWarning,
                    stacklevel=2,
                )
                return
            hooks = sorted(
                impl.name
                for impl in self.pm.get_hookcallers(plugin) or ()  # type: ignore[attr-defined]
            )
            self._info[name] = PluginInfo(name, distribution, version, hooks, entry_point)
            self._executors = self._stores = self._resources = self._run_stores = None

    def load_entrypoints(self) -> None:
        """Load every entry point of group ``cascade`` not blocked or already loaded."""
        # Imported here, not at the top: importlib.metadata is a sizeable share of
        # ``import cascade`` and is only needed once the manager is built.
        from importlib import metadata

        for entry_point in metadata.entry_points(group=GROUP):
            name = entry_point.name
            if name in self.blocked or name in self._info:
                continue
            dist = getattr(entry_point, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            where = f"{name} = {entry_point.value}"
            stage = "load"
            try:
                plugin = entry_point.load()
                # Registering validates the hooks against their specs (a misspelled argument
                # raises here): that too leaves the plugin out, not Cascade.
                stage = "register"
                self.register(
                    plugin, name, distribution=dist_name, version=version, entry_point=where
                )
            except Exception as exc:
                if stage == "register" and self.pm.get_plugin(name) is plugin:
                    self.pm.unregister(name=name)
                warnings.warn(
                    f"Cascade plugin '{name}' (entry point '{where}' of "
                    f"{dist_name or 'an unknown distribution'}) failed to {stage} and is left "
                    f"out: {type(exc).__name__}: {exc}",
                    CascadePluginWarning,
                    stacklevel=2,
                )

    def add_hookspecs(self, module: ModuleType | type) -> None:
        """Add hook specs from another package (the CLI adds ``cascade_register_commands``)."""
        self.pm.add_hookspecs(module)

    def plugin_info(self) -> list[PluginInfo]:
        with self._lock:
            return list(self._info.values())

    # -- calling hooks, one plugin at a time so one broken plugin spoils nothing ----------

    def call_each(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook_name``; a raising one becomes a warning naming
        its plugin."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            self._current_plugin = impl.plugin_name
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                info = self._info.get(impl.plugin_name)
                where = f" (entry point '{info.entry_point}')" if info and info.entry_point else ""
                warnings.warn(
                    f"Cascade plugin '{impl.plugin_name}'{where} raised in {hook_name} and is "
                    f"skipped there: {type(exc).__name__}: {exc}",
                    CascadePluginWarning,
                    stacklevel=3,
                )

    def _collect(self, hook_name: str, kind: str) -> dict[str, tuple[Callable[..., Any], str]]:
        found: dict[str, tuple[Callable[..., Any], str]] = {}

        def register(name: str, factory: Callable[..., Any]) -> None:
            owner = self._current_plugin
            if not isinstance(name, str) or not name:
                self.refuse(f"registered a {kind} without a name ({name!r})")
                return
            if not callable(factory):
                self.refuse(f"registered {kind} '{name}' without a factory ({factory!r})")
                return
            if name in found and found[name][1] != owner:
                raise PluginError(
                    f"{kind} '{name}' is registered by two plugins: '{found[name][1]}' and "
                    f"'{owner}'; block one with CASCADE_PLUGINS_BLOCK"
                )
            found[name] = (factory, owner)

        self.call_each(hook_name, register=register)
        return found

    # -- registries --------------------------------------------------------------------------

    def executors(self) -> dict[str, tuple[Callable[[], Any], str]]:
        """Executor factories by name, with the plugin that registered each."""
        with self._lock:
            if self._executors is None:
                self._executors = self._collect("cascade_register_executors", "executor")
            return self._executors

    def create_executor(self, name: str) -> Any:
        """A new executor instance for ``name``; unknown names list the available ones."""
        registry = self.executors()
        if name not in registry:
            available = ", ".join(sorted(registry)) or "none"
            raise PluginError(
                f"unknown executor '{name}'; available executors: {available} "
                "(plugins add more, e.g. pip install 'cascade-core[dask]')"
            )
        return registry[name][0]()

    def cache_stores(self) -> dict[str, tuple[Callable[..., Any], str]]:
        """Cache store factories by name, with the plugin that registered each."""
        with self._lock:
            if self._stores is None:
                self._stores = self._collect("cascade_register_cache_stores", "cache store")
            return self._stores

    def create_cache_store(self, name: str, **options: Any) -> Any:
        registry = self.cache_stores()
        if name not in registry:
            available = ", ".join(sorted(registry)) or "none"
            raise PluginError(f"unknown cache store '{name}'; available stores: {available}")
        return registry[name][0](**options)

    def run_stores(self) -> dict[str, tuple[Callable[..., Any], str]]:
        """Run store factories by name, with the plugin that registered each."""
        with self._lock:
            if self._run_stores is None:
                self._run_stores = self._collect("cascade_register_run_stores", "run store")
            return self._run_stores

    def create_run_store(self, name: str, **options: Any) -> Any:
        registry = self.run_stores()
        if name not in registry:
            available = ", ".join(sorted(registry)) or "none"
            raise PluginError(f"unknown run store '{name}'; available run stores: {available}")
        return registry[name][0](**options)

    def resources(self) -> dict[str, Any]:
        """Resources contributed by plugins, by name."""
        with self._lock:
            if self._resources is None:
                collected: dict[str, Any] = {}

                def register(resource: Any) -> None:
                    # Validated here, inside the plugin's hook call, so a bad resource is
                    # reported as that plugin's fault and left out, and what the plugin
                    # registers after it still counts.
                    try:
                        definition = make_resource_definition(resource)
                    except (TypeError, ValueError) as exc:
                        self.refuse(f"registered something that is not a resource: {exc}")
                        return
                    collected[definition.name] = definition

                self.call_each("cascade_register_resources", register=register)
                self._resources = collected
            return dict(self._resources)

    def engine_created(self, engine: Any) -> None:
        self.call_each("cascade_engine_created", engine=engine)

    def refuse(self, what: str) -> None:
        """Warn that the plugin whose hook is running made one bad registration, which is
        left out; the rest of what it registers counts."""
        warnings.warn(
            f"Cascade plugin '{self._current_plugin}' {what}; that registration is left out",
            CascadePluginWarning,
            stacklevel=3,
        )

    @property
    def current_plugin(self) -> str:
        """The name of the plugin whose hook ``call_each`` is calling right now, for
        registries that refuse one registration with a warning naming the plugin."""
        return self._current_plugin

    _current_plugin: str = ""


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built (and entry points loaded) on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
    return _manager


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Replace the process-wide manager (``None``: rebuild on next use). For tests."""
    global _manager
    with _manager_lock:
        _manager = manager


def list_plugins() -> list[PluginInfo]:
    """Every loaded plugin: name, distribution, version and the hooks it implements."""
    return get_plugin_manager().plugin_info()
