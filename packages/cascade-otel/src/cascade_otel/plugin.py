"""The ``otel`` plugin (entry point group ``cascade``): traces every new engine.

It costs nothing while no SDK is configured (``instrument`` attaches nothing to a no-op
provider) and is switched off by ``CASCADE_OTEL_DISABLED=1`` (or, like any plugin, by
``CASCADE_PLUGINS_BLOCK=otel``).
"""

from __future__ import annotations

from cascade import Engine, hookimpl
from cascade_otel import instrument, is_disabled


@hookimpl
def cascade_engine_created(engine: Engine) -> None:
    """Instrument ``engine`` against the global tracer provider."""
    if is_disabled():
        return
    instrument(engine)
