"""Server hooks of ``panel serve explorer`` (and ``morpho serve``): Bokeh runs ``on_server_loaded`` once, when
the server starts, for a directory app.

The first visitor's page is built by running ``main.py``, which imports the explorer and pandas: about 0.5 s
of a cold process, spent while that visitor waits. The hook starts those imports in a thread as soon as the
server starts, so a visitor who opens the page a moment later finds them done; one who comes at once waits
for the thread's import (Python's import lock) rather than doing it twice. ``main.py`` holds no import lock
while it runs (Panel executes it as a script), so the two cannot deadlock.

It also sets the server's cyclic garbage collector for a process that holds many sessions: see
:func:`settle_heap`.
"""
from __future__ import annotations

import gc
import threading

from explorer.warmup import prefetch

__all__ = ["on_server_loaded", "settle_heap", "GC_THRESHOLD0"]

#: Allocations between two collections of the youngest generation in the server (CPython's default: 700).
GC_THRESHOLD0 = 10_000


def on_server_loaded(server_context) -> None:
    """Import the modules the first page needs (``explorer.app`` and what it imports) in a daemon thread,
    then settle the heap (:func:`settle_heap`)."""
    imported = prefetch("explorer.app")
    threading.Thread(target=settle_heap, args=(imported,), name="morpho-settle-heap", daemon=True).start()


def settle_heap(imported: threading.Thread | None = None) -> None:
    """Make the server's garbage collections short (after the thread ``imported`` has finished).

    A collection holds the GIL while it walks the objects of its generations, and the event loop waits with
    it. With Python's defaults a server holding 20 sessions (about 660,000 container objects) made full
    collections of 0.3-0.5 s each as its sessions were built and used (up to 1 s in bench_class.py's busy
    phase, ten of them 4.6 s in all). Two changes, measured by ``python benchmarks/gc_pauses.py``:

    - the objects alive once the modules are imported (panel, bokeh, pandas, the explorer: about 166,000,
      never garbage) are frozen out of every later collection (``gc.freeze``): a full collection walks
      only the sessions' objects, about a quarter shorter;
    - the youngest generation is collected every :data:`GC_THRESHOLD0` allocations instead of 700: a page
      turn's or a patch's short-lived objects die before they are collected, fewer survivors are promoted,
      and the oldest generation then grows too slowly to trigger full collections while sessions work.

    What remains is the full collection Panel runs 5 s after sessions close (``gc.collect()``, any
    settings), about 0.3 s with 20 sessions. Not in notebooks: only the server's start calls this.
    """
    if imported is not None:
        imported.join()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, *gc.get_threshold()[1:])
