"""Preload module for process pools that run measurement tasks (e.g. ``core.cli``'s forkserver pool or a
user's ``multiprocessing.get_context("forkserver").set_forkserver_preload(["core._worker"])``): loads the
compiled kernels once in the server, so every worker it forks starts ready. ``measure_batch(workers=N)``
itself needs no processes (threads run the nogil kernels)."""
from .measure import _warm_up

_warm_up()
