"""Imported once by the forkserver that starts measure_batch's worker processes: loads the kernels."""
from .measure import _warm_up

_warm_up()
