"""Server hooks of ``panel serve explorer`` (and ``morpho serve``): Bokeh runs ``on_server_loaded`` once, when
the server starts, for a directory app.

The first visitor's page is built by running ``main.py``, which imports the explorer and pandas: about 0.5 s
of a cold process, spent while that visitor waits. The hook starts those imports in a thread as soon as the
server starts, so a visitor who opens the page a moment later finds them done; one who comes at once waits
for the thread's import (Python's import lock) rather than doing it twice. ``main.py`` holds no import lock
while it runs (Panel executes it as a script), so the two cannot deadlock.
"""
from __future__ import annotations

from explorer.warmup import prefetch

__all__ = ["on_server_loaded"]


def on_server_loaded(server_context) -> None:
    """Import the modules the first page needs (``explorer.app`` and what it imports) in a daemon thread."""
    prefetch("explorer.app")
