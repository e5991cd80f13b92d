"""Shared names and helpers of :mod:`core.analysis`: the metric sets, p-value formatting, table input."""
from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
import pandas as pd

#: The six morphometrics of :mod:`core.measure` (duplicated here so that this package imports
#: without the measurement code).
METRICS = ("area", "length", "thickness", "slant", "width", "height")

#: The ONE metric set of the model diagnostics (MMD test, MIG, partial correlations, traversal
#: effects), used alike by the API, the app and the CLI. It is the paper's set (Castro et al. 2019,
#: section 4.1 and Fig. 6): area is left out because it is largely determined by length x thickness,
#: so including it double-counts stroke changes and, in MIG, gives thickness/length a second factor
#: that shares their information (on the bundled sample's metrics as codes, MIG over six metrics is
#: lower than over these five: see docs/diagnostics.md).
DIAGNOSTIC_METRICS = ("length", "thickness", "slant", "width", "height")

#: Former name of :data:`DIAGNOSTIC_METRICS` (the columns of the MMD test).
MMD_COLUMNS = DIAGNOSTIC_METRICS

#: Significance level of the verdicts.
ALPHA = 0.01


def format_p(p, *, resolution: Optional[float] = None) -> str:
    """A p-value as people read it: ``'p = 0.51'``, ``'p = 4.6e-6'``, ``'p < 1e-300'``.

    Parameters
    ----------
    p : float
        The p-value (NaN: not computed).
    resolution : float, optional
        Smallest p-value the test can give (``1 / (permutations + 1)`` for a permutation test). A p
        at the resolution is written ``'p ≤ 1e-4'``: the true p may be anywhere below it.

    Returns
    -------
    str
        Two significant digits; ``'p < 1e-300'`` below double precision's useful range (a
        normal tail probability of 0.0 or 4.9e-324 means "smaller than anything printable", not
        that number); ``'p = n/a'`` for NaN.
    """
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"format_p needs a number; got {p!r}") from None
    if math.isnan(p):
        return "p = n/a"
    if p < 0 or p > 1 + 1e-9:
        raise ValueError(f"a p-value lies in [0, 1]; got {p}")
    if resolution is not None and p <= resolution * (1 + 1e-9):
        return f"p ≤ {_short(resolution)}"
    if p < 1e-300:
        return "p < 1e-300"
    if p >= 0.001:
        return f"p = {p:.2g}" if p < 0.995 else "p = 1"
    return f"p = {_short(p)}"


def format_p_cell(p, *, resolution: Optional[float] = None) -> str:
    """:func:`format_p` for a table cell: ``'0.51'``, ``'4.6e-6'``, ``'< 1e-300'``, ``'≤ 1e-4'``."""
    text = format_p(p, resolution=resolution)
    return text[4:] if text.startswith("p = ") else text[2:]


def _short(v: float) -> str:
    """2 significant digits in scientific notation without padding: 4.6e-6, 1e-4, 0.001 -> 1e-3."""
    mant, exp = f"{v:.1e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def as_table(x, columns=None, name="x") -> tuple[np.ndarray, tuple]:
    """(N, D) float64 array and column names from a DataFrame or array_like."""
    if isinstance(x, pd.DataFrame):
        if columns is not None:
            missing = [c for c in columns if c not in x.columns]
            if missing:
                raise ValueError(f"{name} has no column(s) {missing}; it has {list(x.columns)}")
            x = x[list(columns)]
        names = tuple(str(c) for c in x.columns)
        try:
            arr = x.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: columns must be numeric ({e})") from None
    else:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        names = tuple(columns) if columns is not None else tuple(f"x{i}" for i in range(arr.shape[-1]))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a table of shape (N, D); got shape {arr.shape}")
    return arr, names


def drop_nonfinite(arr: np.ndarray, name: str, *, warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``arr`` with only finite values, and the boolean mask of kept rows."""
    ok = np.isfinite(arr).all(axis=1)
    if not ok.all():
        if warn:
            warnings.warn(f"{name}: ignoring {int((~ok).sum())} of {len(arr)} rows with NaN/inf "
                          f"(digits that could not be measured)", RuntimeWarning, stacklevel=4)
        arr = arr[ok]
    return arr, ok


def names_of(x, prefix: str) -> list:
    if isinstance(x, pd.DataFrame):
        return [str(c) for c in x.columns]
    return [f"{prefix}{i}" for i in range(np.shape(x)[1] if np.ndim(x) == 2 else 1)]


def diagnostic_columns(table, metrics: Optional[Sequence[str]]):
    """Restrict a metrics DataFrame to ``metrics`` when it has them all (other inputs unchanged)."""
    if metrics is not None and isinstance(table, pd.DataFrame) and all(m in table.columns for m in metrics):
        return table[list(metrics)]
    return table


def json_safe(obj):
    """Recursively turn numpy/pandas values into JSON-serialisable Python ones (NaN/inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, pd.DataFrame):
        return [json_safe(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)


def content_key(*parts) -> str:
    """A digest of arrays (their dtype, shape and bytes) and plain values: equal contents, equal keys.

    For caches keyed by what a reference holds rather than by the object that holds it: the app opens the
    same data in many sessions, and a researcher compares many models' samples against one dataset.
    Hashing 70,000 digits (55 MB) takes about a tenth of a second.
    """
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(repr(list(part.columns)).encode())
            part = part.to_numpy()
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.view(np.uint8).reshape(-1) if a.dtype != object else repr(a.tolist()).encode())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


class ContentCache:
    """A small least-recently-used cache of results computed from a reference, keyed by :func:`content_key`.

    Thread-safe (the app's pool threads share it); two threads missing the same key at once both compute
    it (the results are equal). Values are returned as stored: keep them immutable, or copy on the way out.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self._items: "OrderedDict[str, object]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], object]):
        """The value stored under ``key``, or ``compute()`` stored under it."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
