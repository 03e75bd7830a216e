"""An example third-party Cascade plugin: an executor, a subscriber, a resource and a command.

The hooks live in ``cascade_example_plugin.plugin``, the module named by this distribution's
``cascade`` entry point. This package module stays empty so that importing it costs nothing.
"""

from cascade_example_plugin._version import __version__

__all__ = ["__version__"]
