"""Worker process pools that end with the process that started them.

Used where work holds the GIL or must not share it: the CLI's perturbing (Python and scipy code) and the
served explorer's background chunks (:mod:`explorer.jobs`, whose event loop must never wait for a worker's
GIL). Workers start from a *forkserver* (no inherited threads or locks; a task is an importable function
and picklable arguments) and end when their starter is gone (killed with SIGKILL, say), instead of
computing on for nobody.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool", "end_with_parent"]


def process_pool(workers: int, *, nice: int = 0, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor:
    """A forkserver pool of ``workers`` processes, each ``nice`` levels below this one (0..19).

    ``preload`` modules are imported once by the forkserver (when it starts, i.e. at this process's first
    forkserver pool), so workers forked from it start with them loaded. Workers end with this process
    (:func:`end_with_parent`).
    """
    ctx = multiprocessing.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload(list(preload))
    # Absolute, from this process's main thread: the forkserver inherits the nice value of whichever thread
    # starts it (a pool thread may already run niced), so "nice levels below" a relative os.nice would miss.
    priority = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + int(nice)) if nice > 0 else None
    return ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx, initializer=_start_worker,
                               initargs=(os.getpid(), priority))


def _start_worker(parent_pid: int, priority: int | None) -> None:
    end_with_parent(parent_pid)
    if priority is not None:
        with contextlib.suppress(OSError):  # not permitted here: the worker keeps the forkserver's priority
            os.setpriority(os.PRIO_PROCESS, 0, priority)


def end_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` is gone. Linux: the kernel sends SIGKILL when this worker's parent
    (the forkserver, which exits with its starter) dies; everywhere: a thread checks ``parent_pid`` every second."""
    import signal

    with contextlib.suppress(Exception):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG

    def watch():
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:
                pass

    threading.Thread(target=watch, name="morpho-orphan-guard", daemon=True).start()
