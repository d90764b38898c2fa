"""Garbage-collector settings for long-running processes (the server, issuing processes).

CPython's cycle collector walks every tracked object of a generation each time it runs. A server has a large heap
that lives as long as the process (modules, SQLAlchemy metadata, pkilint's validator trees, FastAPI routes), and
issuance allocates fast (pkilint builds a node tree per certificate), so the default settings spend a tenth or more
of a certificate's lint time re-scanning objects that will never be garbage. :func:`settle` — called once the
process is set up — moves everything alive into the permanent generation (``gc.freeze``, as pre-forking servers do)
and collects the young generation less often. Cycles are still collected; nothing is disabled.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    """Collect once, freeze what survived, and make young collections rarer."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
