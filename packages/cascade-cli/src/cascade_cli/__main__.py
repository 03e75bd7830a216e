"""``python -m cascade_cli``: the same as the ``cascade`` console script."""

from __future__ import annotations

from cascade_cli.main import main

if __name__ == "__main__":
    main()
