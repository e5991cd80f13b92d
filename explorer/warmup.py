"""Compile the measuring and perturbing kernels in the background, so the first page never waits for them.

On a fresh install numba's on-disk cache is empty and the first measurement compiles the kernels: tens of
seconds, up to two minutes on a loaded machine. ``core`` compiles nothing at import, so the explorer
starts at once (the bundled sample's metrics come from its CSV) and this module compiles the kernels
in a *child process* -- compiling is Python work holding the GIL, which would stall every session of
the server for as long -- that fills the on-disk cache; the server process then loads them from it
(about a second, in a thread). Meanwhile:

- :func:`engine` is ``"reference"``: the inspector's overlays of one digit use the plain reference path
  (the same numbers, ~20 ms a digit, no compile);
- :class:`WarmupNote` shows a note in every open page until the kernels are ready.

:func:`start` is idempotent (one warm-up per server process) and does nothing with ``NUMBA_DISABLE_JIT=1``.
"""
from __future__ import annotations

import atexit
import importlib
import os
import subprocess
import sys
import threading
import time

import panel as pn

__all__ = ["start", "go", "ready", "engine", "status", "prefetch", "prefetch_measuring", "WarmupNote"]

#: The child's program: every kernel the explorer uses, in both modes, into numba's on-disk cache.
_CHILD = "from core import measure, perturb; measure.warm_up(); perturb.warm_up()"

_lock = threading.Lock()
_thread: threading.Thread | None = None
_timer: threading.Timer | None = None
_ready = threading.Event()
_go = threading.Event()
_state = {"status": "not started", "seconds": None, "error": None}


def _run(wait: float) -> None:
    _go.wait(wait)  # the first page is served before the compiler takes a core
    t0 = time.perf_counter()
    try:
        _state["status"] = "compiling"
        # the child inherits the environment (NUMBA_CACHE_DIR, PYTHONPATH): it fills the cache this
        # process reads; its output goes to the server's log only when it fails
        child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        atexit.register(_stop, child)  # a stopped server leaves no compiler running for a minute behind it
        output, _ = child.communicate()
        atexit.unregister(_stop)
        if child.returncode != 0:
            raise RuntimeError(f"the kernel compile process exited with {child.returncode}: {output[-2000:]}")
        _state["status"] = "loading"
        from core import measure, perturb

        measure.warm_up()  # from the cache now: about a second
        perturb.warm_up()
        _state.update(status="ready", seconds=time.perf_counter() - t0)
        from explorer import jobs

        jobs.use_worker_processes()  # they load the kernels from the cache just filled
    except Exception as e:  # measuring still works: the first call compiles, as without this module
        _state.update(status="failed", error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
        print(f"explorer.warmup: {_state['error']}", file=sys.stderr, flush=True)
    finally:
        _ready.set()


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()


def start(wait: float = 0.0) -> None:
    """Start the background warm-up once per process (later calls do nothing).

    The compiler starts after ``wait`` seconds, or at once when :func:`go` is called (e.g. when the first
    page is on screen); until the kernels are ready, :func:`engine` is ``"reference"``.
    """
    global _thread
    with _lock:
        if _thread is not None:
            return
        if os.environ.get("NUMBA_DISABLE_JIT") == "1":  # nothing to compile
            _state["status"] = "ready"
            _ready.set()
            _thread = threading.current_thread()
            return
        _state["status"] = "waiting"
        _thread = threading.Thread(target=_run, args=(wait,), name="morpho-warmup", daemon=True)
        _thread.start()


def go(delay: float = 0.0) -> None:
    """Start compiling in ``delay`` seconds (a warm-up started with a longer ``wait`` stops waiting then).

    The explorer calls it when its first page has loaded, with a few seconds' delay: the compiler takes a
    whole core, which the first page's drawing and first clicks need more on a two-core machine.
    """
    global _timer
    if delay <= 0:
        _go.set()
        return
    with _lock:  # every session's first page calls this: one timer per process
        if _go.is_set() or _timer is not None:
            return
        _timer = threading.Timer(delay, _go.set)
        _timer.daemon = True
        _timer.start()


_prefetched: dict[str, threading.Thread] = {}


def prefetch(module: str) -> threading.Thread:
    """Import ``module`` in a daemon thread named ``morpho-prefetch-<module>``, once per process.

    Returns that thread (the same one on every later call). The server's start imports the first page's
    modules this way (:mod:`explorer.app_hooks`), and the inspector the measuring modules
    (:func:`prefetch_measuring`). A caller that imports the module meanwhile waits for the thread's import
    (Python's import lock) rather than doing it twice.
    """
    with _lock:
        thread = _prefetched.get(module)
        if thread is None:
            thread = _prefetched[module] = threading.Thread(
                target=importlib.import_module, args=(module,), name=f"morpho-prefetch-{module}", daemon=True)
            thread.start()
        return thread


def prefetch_measuring() -> threading.Thread:
    """Import the measuring modules (scipy, the morphology) in a thread, once per process.

    The explorer calls it when its first page has been built: the browser then spends most of a second
    loading the page's scripts, a gap in which the server is idle and this import (about 0.3 s) costs
    nobody anything; the inspector's overlays, measured once the page is on screen, then find it done.
    """
    return prefetch("core.measure")


def ready() -> bool:
    """Whether the kernels are compiled and loaded (or the warm-up gave up: then calls compile lazily)."""
    return _ready.is_set()


def status() -> dict:
    """``{"status": "not started" | "waiting" | "compiling" | "loading" | "ready" | "failed", "seconds", "error"}``."""
    return dict(_state)


def engine() -> str:
    """The measuring engine for one interactive digit: ``"fast"`` once the kernels are loaded (or when no
    warm-up runs: scripts, notebooks), ``"reference"`` while they compile -- the same numbers, no wait."""
    return "reference" if _thread is not None and not _ready.is_set() else "fast"


class WarmupNote(pn.viewable.Viewer):
    """A note shown while the kernels compile; it hides itself when they are ready.

    Each session polls the process-wide flag once a second (no thread touches the session's document).
    """

    def __init__(self, **params):
        super().__init__(**params)
        self._pane = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["explorer-warmup"],
                                   sizing_mode="stretch_width", margin=(0, 10))
        self._poll = None
        self._update()
        if not ready() and _state["status"] != "not started" and pn.state.curdoc is not None \
                and pn.state.curdoc.session_context is not None:
            self._poll = pn.state.add_periodic_callback(self._update, period=1000)

    def _update(self) -> None:
        if ready() or _state["status"] == "not started":  # no warm-up in this process (script, notebook)
            self._pane.visible = False
            if ready() and self._poll is not None:
                self._poll.stop()
                self._poll = None
            return
        self._pane.object = ("**Preparing the measuring kernels** (a few seconds; on the first start of an installation about a "
                             "minute). Browsing works now; measuring, perturbing and comparing start when "
                             "they are ready.")
        self._pane.visible = True

    def __panel__(self):
        return self._pane
