"""What a comparison can see: bootstrap intervals of W1/sd and the smallest shift detected at given sizes.

:func:`w1_sd_interval` gives a percentile-bootstrap interval of the Wasserstein-1 distance in
reference standard deviations; :func:`resolution` finds, by simulation on the reference data, the
smallest shift of one metric (in its standard deviations) that a two-sided Kolmogorov-Smirnov test
at ``alpha`` detects with the given power at the given sizes. Both are seeded; the resolution is
cached per (reference column, sizes, alpha, power, seed), so the app and repeated reports pay once.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ._common import ContentCache, content_key

__all__ = ["w1_sd_interval", "resolution", "ks_critical", "POWER", "SHIFT_MAX_SD"]

#: Power at which the resolution is read.
POWER = 0.8
#: Largest shift searched (reference standard deviations); beyond, the resolution is inf.
SHIFT_MAX_SD = 4.0
#: Simulated comparisons per shift.
REPLICATES = 100
#: Grid points of the quantile functions in the bootstrap W1.
_GRID = 2048
#: Grid points of the ECDFs in the resolution's KS statistics (over the range of the shifted data).
_KS_GRID = 4096


def _w1_quantile(a_sorted: np.ndarray, b_sorted: np.ndarray) -> np.ndarray:
    """W1 of rows of two sorted (B, n), (B, m) arrays: mean |Qa - Qb| on a midpoint grid of (0, 1)."""
    u = (np.arange(_GRID) + 0.5) / _GRID
    ia = np.minimum((u * a_sorted.shape[1]).astype(np.int64), a_sorted.shape[1] - 1)
    ib = np.minimum((u * b_sorted.shape[1]).astype(np.int64), b_sorted.shape[1] - 1)
    return np.abs(a_sorted[:, ia] - b_sorted[:, ib]).mean(1)


def w1_sd_interval(sample: np.ndarray, reference: np.ndarray, *, n_bootstrap: int = 200,
                   confidence: float = 0.95, rng=None) -> tuple[float, float]:
    """Bootstrap interval of W1 / sd(reference) (both sides resampled).

    W1 is biased upwards under resampling (a resample of the same data is at W1 > 0 from it), so the
    percentile interval is moved by the bootstrap's own bias: ``[w - (median - q_low), w + (q_high -
    median)]`` with ``w`` the estimate on the data and ``q`` the bootstrap quantiles, clipped at 0.
    It always contains ``w``.

    Parameters
    ----------
    sample, reference : array_like, shape (N,), (M,)
        Finite values of one metric.
    n_bootstrap : int
        Resamples.
    confidence : float
        Level of the interval.
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    (low, high) : tuple of float
        In reference standard deviations; NaN when a side has fewer than 2 values or no spread.
    """
    s = np.asarray(sample, np.float64)
    r = np.asarray(reference, np.float64)
    if len(s) < 2 or len(r) < 2 or n_bootstrap < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(rng)
    w = np.empty(n_bootstrap)
    step = max(1, 4_000_000 // (len(s) + len(r)))     # resamples per block: memory bounded (~64 MB)
    for a in range(0, n_bootstrap, step):
        k = min(step, n_bootstrap - a)
        bs = np.sort(s[rng.integers(0, len(s), (k, len(s)))], axis=1)
        br = np.sort(r[rng.integers(0, len(r), (k, len(r)))], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            w[a:a + k] = _w1_quantile(bs, br) / br.std(1, ddof=1)
    w = w[np.isfinite(w)]
    if len(w) == 0:
        return math.nan, math.nan
    q = (1 - confidence) / 2
    lo, med, hi = np.quantile(w, [q, 0.5, 1 - q])
    est = stats.wasserstein_distance(s, r) / r.std(ddof=1)
    if not np.isfinite(est):
        return math.nan, math.nan
    return float(max(est - (med - lo), 0.0)), float(max(est + (hi - med), 0.0))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Asymptotic critical value of the two-sided two-sample KS statistic at level ``alpha``."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


def _ecdf_rows(sorted_rows: np.ndarray, at: np.ndarray, offset: float) -> np.ndarray:
    """F(t) = #(values <= t) / n per row of (R, n) sorted values at (R, k) points, one searchsorted."""
    R, n = sorted_rows.shape
    shift = (np.arange(R) * offset)[:, None]
    flat = (sorted_rows + shift).ravel()
    pos = np.searchsorted(flat, (at + shift).ravel(), side="right").reshape(at.shape)
    return (pos - np.arange(R)[:, None] * n) / n


#: Resolutions already simulated, per (reference column's content, sizes, alpha, power, seed, replicates).
_RESOLUTIONS = ContentCache(size=256)


def _simulated_resolution(ref: np.ndarray, n: int, m: int, alpha: float, power: float, seed: int,
                          replicates: int) -> float:
    """The resolution (reference sd) of one finite float64 column, by simulation: see :func:`resolution`."""
    sd = ref.std(ddof=1)
    rng = np.random.default_rng(seed)
    z = (ref - ref.mean()) / sd     # in sd units: the shift is then a plain number
    x0 = np.sort(z[rng.integers(0, len(z), (replicates, n))], axis=1)
    y = np.sort(z[rng.integers(0, len(z), (replicates, m))], axis=1)
    # ECDFs on a uniform grid of step h; a shift by k steps is then a slice (exact on the grid)
    h = (float(z.max() - z.min()) + SHIFT_MAX_SD) / (_KS_GRID - 1)
    grid = z.min() + h * np.arange(_KS_GRID)
    offset = float(grid[-1] - grid[0]) + 1.0
    fx0 = _ecdf_rows(x0, np.broadcast_to(grid, (replicates, _KS_GRID)), offset)
    fy = _ecdf_rows(y, np.broadcast_to(grid, (replicates, _KS_GRID)), offset)
    crit = ks_critical(n, m, alpha)

    def pw(k):
        fx = np.zeros_like(fx0)
        fx[:, k:] = fx0[:, :_KS_GRID - k]
        return float((np.abs(fx - fy).max(1) > crit).mean())

    kmax = int(SHIFT_MAX_SD / h)
    if pw(kmax) < power:
        return math.inf
    if pw(0) >= power:
        return 0.0
    lo, hi = 0, kmax
    while hi - lo > 1:       # bisection on a monotone power curve (common random numbers)
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi * h


def resolution(reference_metrics: pd.DataFrame, n_samples: int, n_reference: int, *, metrics=None,
               alpha: float = 0.01, power: float = POWER, seed: int = 0,
               replicates: int = REPLICATES) -> pd.DataFrame:
    """Smallest shift of each metric that a comparison at these sizes detects with ``power``.

    Simulation on the reference data: ``replicates`` times, ``n_samples`` and ``n_reference``
    digits are drawn (with replacement) from the reference, the first set is shifted by ``d``
    reference standard deviations in one metric, and a two-sided two-sample Kolmogorov-Smirnov test
    at ``alpha`` (asymptotic critical value) is run; the resolution is the smallest ``d`` rejected
    in a share ``power`` of the replicates (bisection over a grid of ~0.004 sd, common random numbers).
    Cached.

    Parameters
    ----------
    reference_metrics : pandas.DataFrame
        The reference table.
    n_samples, n_reference : int
        Sizes of the comparison (finite values per metric).
    metrics : sequence of str, optional
        Columns (all numeric columns by default).
    alpha, power : float
    seed : int
    replicates : int

    Returns
    -------
    pandas.DataFrame
        ``metric``, ``resolution_sd`` (inf if above :data:`SHIFT_MAX_SD`), ``resolution`` (in the
        metric's units), ``n_samples``, ``n_reference``, ``test``.
    """
    if n_samples < 2 or n_reference < 2:
        raise ValueError(f"n_samples and n_reference must be at least 2; got {n_samples}, {n_reference}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1); got alpha={alpha}, power={power}")
    metrics = list(metrics) if metrics is not None else list(reference_metrics.columns)
    rows = []
    for m in metrics:
        v = reference_metrics[m].to_numpy(np.float64)
        v = np.ascontiguousarray(v[np.isfinite(v)])
        sd = v.std(ddof=1) if len(v) > 1 else math.nan
        res = math.nan
        if len(v) > 1 and sd > 0:
            args = (int(n_samples), int(n_reference), float(alpha), float(power), int(seed), int(replicates))
            res = _RESOLUTIONS.get(content_key(v, *args), lambda: _simulated_resolution(v, *args))
        rows.append({"metric": m, "resolution_sd": res, "resolution": res * sd, "n_samples": int(n_samples),
                     "n_reference": int(n_reference),
                     "test": f"two-sided KS at {alpha:g}, {power:.0%} power, {replicates} simulations"})
    return pd.DataFrame(rows)
