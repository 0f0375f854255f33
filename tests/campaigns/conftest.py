"""Campaign sizes: short in ``make test``, long under ``make soak`` (``OWNKEY_SOAK=1``).

Tests marked ``soak`` run only with ``-m soak`` (``make soak``); the unmarked campaign tests run
a reduced but still meaningful size in ``make test`` and print their counts.
"""

from __future__ import annotations

import os


def soak() -> bool:
    return os.environ.get("OWNKEY_SOAK") == "1"


def size(quick: int, long: int) -> int:
    """``quick`` in make test, ``long`` under make soak (overridable: OWNKEY_CAMPAIGN_SCALE)."""
    scale = float(os.environ.get("OWNKEY_CAMPAIGN_SCALE", "1"))
    return max(1, int((long if soak() else quick) * scale))
