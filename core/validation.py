"""Parameter checks shared by the measurement and perturbation entry points.

Every check runs before any work and raises a ValueError naming the parameter, the value given and the valid
range, so that nonsense (``inf``, ``nan``, a negative size, a size that would take minutes or gigabytes) is
refused at once instead of producing a blank image or running out of memory. The caps are the library's own
documented limits (docs/upstream.md, "Parameters the library refuses").
"""
from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_integer"]


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(name: str, value, low: float, high: float, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    """`value` as a float, if it is a finite real number within the interval from `low` to `high`.

    Parameters
    ----------
    name : str
        The parameter's name, for the message (e.g. ``"Fracture(thickness)"``).
    value : real number
    low, high : float
        Bounds of the valid range.
    low_open, high_open : bool
        Exclude the bound itself.

    Raises
    ------
    ValueError
        Not a real number, NaN or infinite, or out of range; the message names `name`, `value` and the range.
    """
    interval = _interval(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number in {interval}, not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < low or number > high or (low_open and number == low) \
            or (high_open and number == high):
        raise ValueError(f"{name} must be a finite number in {interval}, not {value!r}")
    return number


def check_integer(name: str, value, low: int, high: int) -> int:
    """`value` as an int, if it is a whole number (int, numpy integer or integral float) in [low, high].

    Raises
    ------
    ValueError
        Not a whole number, or out of range; the message names `name`, `value` and the range.
    """
    message = f"{name} must be a whole number in [{low:,}, {high:,}], not {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(message)
        number = int(value)
    if number < low or number > high:
        raise ValueError(message)
    return number
