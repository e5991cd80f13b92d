"""Numbers the server reads from its environment, each when it is used (never at import), with clear errors.

- ``MORPHO_MAX_UPLOAD_MB`` (default 50): the largest upload, in MB -- :mod:`explorer.limits`;
- ``MORPHO_MAX_UPLOAD_DIGITS`` (default 100,000): the most digits in one upload or typed path --
  :mod:`explorer.limits`;
- ``MORPHO_JOB_THREADS`` (default: the number of cores, at most 4): the worker threads of the server-wide
  pool -- :mod:`explorer.jobs`;
- ``MORPHO_JOB_NICE`` (default 19, 0..19): how many nice levels below the event loop the pool's threads and
  worker processes run -- :mod:`explorer.jobs`;
- ``MORPHO_JOB_PROCESSES`` (default: as many as the threads; 0 = none): the worker processes that measure
  and perturb the digit chunks once the kernels are compiled -- :mod:`explorer.jobs`.

Each is parsed by :func:`env_number`; a variable holding anything but an allowed number raises a ``ValueError``
that names the variable, its text and what was expected.
"""
from __future__ import annotations

import math
import os

__all__ = ["env_number"]


def env_number(name: str, default: float, *, integer: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> float:
    """The number in environment variable ``name`` (``default`` when unset or blank), read on each call.

    Without ``minimum`` the number must be positive; with it, at least ``minimum``; with ``maximum``, at most
    that. ``integer`` asks for a whole number.

    Raises
    ------
    ValueError
        The variable holds something else; the message names the variable, its text and what was expected.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    whole = "whole " if integer else ""
    if minimum is None:
        expected = f"a positive {whole}number"
    elif maximum is None:
        expected = f"a {whole}number >= {minimum:g}"
    else:
        expected = f"a {whole}number in {minimum:g}..{maximum:g}"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r}: expected {expected}") from None
    low_ok = value > 0 if minimum is None else value >= minimum
    if not math.isfinite(value) or not low_ok or (maximum is not None and value > maximum):
        raise ValueError(f"environment variable {name}={text!r}: expected {expected}")
    return value
