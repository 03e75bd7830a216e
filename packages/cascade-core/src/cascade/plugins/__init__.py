"""Cascade's plugin system: pluggy hooks (``hookspecs``), discovery through the ``cascade``
entry-point group, and the built-ins registered through the same hooks."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("cascade")

from cascade.plugins.manager import (  # noqa: E402 - hookimpl must exist before builtins import
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
