"""Cascade's plugin manager (a public module): discovery through the ``cascade`` entry-point
group, the built-ins (``cascade.builtin``) loaded the same way, and the registries the hooks
fill. The hook specs are in ``cascade.hookspec``."""

from __future__ import annotations

from cascade.hookspec import hookimpl
from cascade.plugins.manager import (
    CascadePluginWarning,
    PluginError,
    PluginInfo,
    PluginManager,
    get_plugin_manager,
    list_plugins,
    reset_plugin_manager,
)

__all__ = [
    "CascadePluginWarning",
    "PluginError",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
    "reset_plugin_manager",
]
