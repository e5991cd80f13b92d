"""Kernel two-sample test on morphometric tables (Gretton et al., 2012; paper section 4.1).

:func:`mmd_test` is the project's test (:class:`MMDResult`). The original ``analysis.mmd`` functions
are here too, with their names, parameters and tuple results: :func:`mmd2`, :func:`test`,
:func:`asymptotic_linear_test`, :func:`bound_threshold_biased`, :func:`bound_threshold_unbiased`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from . import kernels
from ._common import DIAGNOSTIC_METRICS, as_table, drop_nonfinite, format_p, json_safe

__all__ = ["MMDResult", "bandwidth", "gaussian_kernel", "mmd_test", "QUADRATIC_MAX_N",
           "PERMUTATION_STAGES", "mmd2", "test", "asymptotic_linear_test", "bound_threshold_biased",
           "bound_threshold_unbiased"]

#: Largest sample size (per side) on which :func:`core.analysis.compare_report` runs the quadratic-time
#: test; bigger sides are randomly subsampled to it for that test. The verdict uses the quadratic
#: test when the smaller side has at most this many rows, the linear-time test on all rows beyond.
#: At 1,000 per side the kernel matrix (2,000², float32) takes 16 MB and 10,000 permutations about
#: 8·10^10 floating-point operations, a second or two on a laptop (benchmarks/bench_diagnostics.py).
#: Beyond 1,000 rows per side the linear-time test has more than 500 pairs.
QUADRATIC_MAX_N = 1000

#: Permutation counts of the adaptive permutation test (``n_permutations="auto"``): 999 first; when
#: that p-value is at most :data:`_CONTINUE_BELOW` (the decision at 1% is close, or p is small),
#: continue to 9,999 so that the p-value's resolution is 1e-4.
PERMUTATION_STAGES = (999, 9999)
_CONTINUE_BELOW = 0.02

#: Kernel matrices up to this many rows (both samples) are kept in memory (float32) and reused by
#: every permutation; beyond, blocks are recomputed for each batch of permutations.
_KERNEL_CACHE_N = 6000


@dataclass(frozen=True)
class MMDResult:
    """Result of :func:`mmd_test`.

    Attributes
    ----------
    mmd2 : float
        Estimate of the squared maximum mean discrepancy (dimensionless; the kernel is in [0, 1]).
    sem : float
        Standard error of ``mmd2``.
    p_value : float
        One-sided p-value of the null hypothesis "both samples come from the same distribution":
        asymptotic normal for the linear-time statistic, permutation ``(1 + #{perm >= obs}) /
        (1 + permutations)`` for the quadratic one (NaN if ``n_permutations=0``).
    z : float
        ``mmd2 / sem`` (the linear test's normalised statistic).
    linear : bool
        Whether the linear-time statistic was used (otherwise the unbiased quadratic-time one).
    n_x, n_y : int
        Number of (finite) observations of each sample that were used.
    bandwidth : numpy.ndarray, shape (D,)
        Per-dimension kernel bandwidth, in the units of each column.
    columns : tuple of str
        Names of the D compared columns.
    n_permutations : int
        Permutations used for the quadratic test's p-value (0 for the linear test).
    shuffle, sem_estimator, estimator : str
        ``'default'`` or ``'original'`` (see :func:`mmd_test`).
    """

    mmd2: float
    sem: float
    p_value: float
    z: float
    linear: bool
    n_x: int
    n_y: int
    bandwidth: np.ndarray = field(repr=False)
    columns: tuple = ()
    n_permutations: int = 0
    shuffle: str = "default"
    sem_estimator: str = "default"
    estimator: str = "default"

    @property
    def statistic(self) -> str:
        """Name of the estimator: ``'MMD²_l'`` (linear) or ``'MMD²_u'`` (unbiased quadratic)."""
        return "MMD²_l" if self.linear else "MMD²_u"

    @property
    def test_name(self) -> str:
        """``'linear-time'`` or ``'quadratic-time'``."""
        return "linear-time" if self.linear else "quadratic-time"

    @property
    def p_resolution(self) -> float:
        """Smallest p-value the test can give: ``1 / (permutations + 1)``; 0 for the asymptotic test."""
        return 0.0 if self.linear else (1.0 / (self.n_permutations + 1) if self.n_permutations else math.nan)

    @property
    def p_text(self) -> str:
        """The p-value formatted by :func:`core.analysis.format_p` (``'p ≤ 1e-4'`` at the resolution)."""
        return format_p(self.p_value, resolution=None if self.linear else self.p_resolution)

    def to_text(self) -> str:
        """One line: estimate ± standard error, z and p-value."""
        text = f"{self.statistic} = {self.mmd2:.6g} ± {self.sem:.3g}"
        if self.linear:
            text += f" (z = {self.z:.4g}, {self.p_text}; n = {self.n_x} vs {self.n_y})"
        else:
            text += (f" (z = {self.z:.4g}, permutation {self.p_text} with "
                     f"{self.n_permutations:,} permutations; n = {self.n_x} vs {self.n_y})")
        return text

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN -> None)."""
        return json_safe({
            "test": self.test_name, "statistic": self.statistic, "mmd2": self.mmd2, "sem": self.sem,
            "z": self.z, "p_value": self.p_value, "p_text": self.p_text,
            "p_resolution": self.p_resolution, "n_permutations": self.n_permutations,
            "n_x": self.n_x, "n_y": self.n_y, "columns": list(self.columns),
            "bandwidth": dict(zip(self.columns, np.asarray(self.bandwidth).tolist())),
            "shuffle": self.shuffle, "sem_estimator": self.sem_estimator, "estimator": self.estimator})

    def __str__(self) -> str:
        return self.to_text()


def bandwidth(*samples: np.ndarray, factor="scott") -> np.ndarray:
    """Per-dimension Gaussian-kernel bandwidth from one or more samples.

    Each sample contributes its per-column standard deviation (``ddof=1``) times a rule-of-thumb
    factor; several samples are combined as ``sqrt(sum(h_i**2))``, the bandwidth of the convolution
    of their Gaussian kernels (as in the paper's analysis, ``bandwidth(x, y, type='std')``).

    Parameters
    ----------
    *samples : array_like, shape (N_i, D)
        Observations; all must have the same D.
    factor : float or {'scott', 'silverman'}
        ``'scott'``: ``N**(-1/(D+4))``; ``'silverman'``: ``(N*(D+2)/4)**(-1/(D+4))``; or a number.

    Returns
    -------
    numpy.ndarray, shape (D,)
        Bandwidth per dimension, in the units of each column.
    """
    if not samples:
        raise ValueError("bandwidth needs at least one sample")
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    for k, s in enumerate(arrays):
        if s.ndim != 2:
            raise ValueError(f"bandwidth: sample {k} must have shape (N, D); got shape {s.shape}")
        if s.shape[0] < 2:
            raise ValueError(f"bandwidth needs at least 2 observations per sample; got {s.shape[0]}")
    h = np.asarray(kernels.bandwidth(*arrays, type="std", factor=factor), dtype=np.float64)
    if np.any(h <= 0):
        raise ValueError(f"bandwidth is zero for dimension(s) {np.flatnonzero(h <= 0).tolist()}: "
                         "those columns are constant in every sample")
    return h


def gaussian_kernel(x: np.ndarray, y: np.ndarray, scale) -> np.ndarray:
    """Gaussian (exponentiated quadratic) kernel ``exp(-|(x - y) / scale|² / 2)``.

    Parameters
    ----------
    x, y : array_like, shape (..., D)
        Broadcastable collections of points.
    scale : float or array_like, shape (D,)
        Bandwidth (per dimension).

    Returns
    -------
    numpy.ndarray
        Kernel values in (0, 1], of the broadcast shape of ``x`` and ``y`` without the last axis.
    """
    d = (np.asarray(x) - np.asarray(y)) / scale
    return np.exp(-0.5 * np.einsum("...i,...i->...", d, d))


def _kernel_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kernel matrix between rows of pre-scaled ``a`` (n, D) and ``b`` (m, D)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(sq, 0.0, out=sq)
    sq *= -0.5
    return np.exp(sq, out=sq)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def mmd_test(x, y, *, linear: bool = True, seed=None, columns: Optional[Sequence[str]] = None,
             scale=None, factor="scott", chunksize: int = 2048, n_permutations="auto",
             shuffle: str = "default", sem: str = "default", estimator: str = "default") -> MMDResult:
    """Kernel two-sample test between two morphometric tables (Gretton et al., 2012).

    Parameters
    ----------
    x, y : pandas.DataFrame or array_like, shape (N_x, D) and (N_y, D)
        The two samples, e.g. metrics of a model's samples and of the test data. Rows with NaN
        (unmeasurable digits) are dropped with a warning.
    linear : bool
        True (default, as the paper): linear-time statistic ``MMD²_l`` over ``m // 2`` disjoint pairs
        of both samples shuffled and cut to the same size ``m = min(N_x, N_y)``; its standard error
        and the asymptotic one-sided p-value ``1 - Φ(MMD²_l / sem)``.
        False: unbiased quadratic-time statistic ``MMD²_u`` on all observations, its delta-method
        standard error, and a permutation p-value. The kernel matrix is computed once (in
        ``chunksize`` blocks) and reused by every permutation (kept in memory as float32 up to 6,000
        rows in all, recomputed per batch of 1,000 permutations beyond).
    seed : int or numpy.random.Generator, optional
        Seed for the shuffling (linear statistic) and the permutations.
    columns : sequence of str, optional
        Columns of DataFrame inputs to compare. Default: :data:`DIAGNOSTIC_METRICS` when both inputs
        are DataFrames that have them (the paper's choice), otherwise all columns.
    scale : array_like, shape (D,), optional
        Kernel bandwidth per dimension. Default: :func:`bandwidth` of both samples (standard
        deviation with Scott's factor).
    factor : float or {'scott', 'silverman'}
        Bandwidth rule when ``scale`` is not given.
    chunksize : int
        Kernel block size for the quadratic statistic.
    n_permutations : int or 'auto'
        Permutations for the quadratic statistic's p-value (0: no p-value, NaN). ``'auto'``
        (default): 999, continued to 9,999 (resolution 1e-4) when the p-value after 999 is at most
        0.02. Ignored if linear.
    shuffle : {'default', 'original'}
        How the linear statistic shuffles the samples before pairing them. ``'default'``:
        ``numpy.random.default_rng(seed).permutation``. ``'original'``: as the original
        ``analysis/mmd.py``, ``numpy.random.RandomState(seed).permutation`` (numpy's global RNG when
        ``seed`` is None), which pairs different digits for the same seed (docs/diagnostics.md gives
        the size of the difference).
    sem : {'default', 'original'}
        Standard-error estimator. ``'default'``: linear, the sample standard deviation of the pair
        terms (``ddof=1``) over sqrt(pairs); quadratic, the delta-method standard error of the
        two-sample U-statistic. ``'original'``: as the original ``analysis/mmd.py``; linear,
        ``ddof=0``; quadratic, ``sqrt(2 var(H_ij) / (m² - m))`` over the pair terms ``H_ij`` (i ≠ j)
        of the first ``m = min(N_x, N_y)`` rows of both samples after shuffling them as ``shuffle``
        says. The p-values do not depend on this choice except through the linear test's z.
    estimator : {'default', 'original'}
        Quadratic statistic. ``'default'``: the unbiased ``MMD²_u`` of Gretton et al. (2012, eq. 3)
        on all rows of both samples. ``'original'``: as the original ``analysis/mmd.py``, both
        samples shuffled (``shuffle``) and cut to ``m = min(N_x, N_y)`` rows, and the mean of
        ``H_ij = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(y_i, x_j)`` over i ≠ j (which also
        drops the m cross terms k(x_i, y_i)). The permutation p-value is that of the default
        statistic on all rows either way. Ignored if linear.

    Returns
    -------
    MMDResult
        ``.mmd2``, ``.sem``, ``.p_value`` and details.
    """
    _check_choice("shuffle", shuffle, ("default", "original"))
    _check_choice("sem", sem, ("default", "original"))
    _check_choice("estimator", estimator, ("default", "original"))
    if columns is None and isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame):
        if all(c in x.columns and c in y.columns for c in DIAGNOSTIC_METRICS):
            columns = DIAGNOSTIC_METRICS
    xa, names = as_table(x, columns, "x")
    ya, _ = as_table(y, columns if columns is not None else
                     (list(x.columns) if isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame)
                      else None), "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x and y must have the same number of columns; got {xa.shape[1]} and "
                         f"{ya.shape[1]}")
    xa, _ = drop_nonfinite(xa, "x")
    ya, _ = drop_nonfinite(ya, "y")
    h = bandwidth(xa, ya, factor=factor) if scale is None else np.broadcast_to(
        np.asarray(scale, dtype=np.float64), (xa.shape[1],)).copy()
    if shuffle == "original":
        if isinstance(seed, np.random.Generator):
            raise ValueError("shuffle='original' draws from numpy.random.RandomState(seed) as the "
                             "original code did: give an int seed or None, not a Generator")
        legacy = np.random if seed is None else np.random.RandomState(seed)
        shuffler = legacy.permutation
    else:
        shuffler = None
    rng = np.random.default_rng(seed)
    if shuffler is None:
        shuffler = lambda a: a[rng.permutation(len(a))]  # noqa: E731
    if linear:
        return _mmd_linear(xa / h, ya / h, shuffler, h, names, shuffle, sem)
    if isinstance(n_permutations, str):
        if n_permutations != "auto":
            raise ValueError(f"n_permutations must be an int or 'auto'; got {n_permutations!r}")
        stages = PERMUTATION_STAGES
    else:
        if int(n_permutations) < 0:
            raise ValueError(f"n_permutations must be >= 0; got {n_permutations}")
        stages = (int(n_permutations),)
    return _mmd_quadratic(xa / h, ya / h, rng, shuffler, h, names, int(chunksize), stages, shuffle, sem,
                          estimator)


def _mmd_linear(x, y, shuffler, h, names, shuffle, sem_mode) -> MMDResult:
    m = min(len(x), len(y))
    if m < 4:
        raise ValueError(f"the linear-time MMD needs at least 4 observations per sample; got "
                         f"{len(x)} and {len(y)}")
    nx, ny = len(x), len(y)
    x = shuffler(x)[:m]
    y = shuffler(y)[:m]
    half = m // 2
    x1, x2 = x[0:2 * half:2], x[1:2 * half:2]
    y1, y2 = y[0:2 * half:2], y[1:2 * half:2]
    k = lambda a, b: np.exp(-0.5 * ((a - b) ** 2).sum(1))  # noqa: E731  (inputs pre-scaled)
    hvals = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    mean = float(hvals.mean())
    sem = float(hvals.std(ddof=0 if sem_mode == "original" else 1) / math.sqrt(half))
    if sem > 0:
        z = mean / sem
        p = float(stats.norm.sf(z))
    else:  # identical pairs: no evidence either way
        z, p = 0.0, 1.0
    return MMDResult(mean, sem, p, float(z), True, nx, ny, h, tuple(names), 0, shuffle, sem_mode)


def _stat(Sxx, Syy, Sxy, m, n):
    return Sxx / (m * (m - 1)) + Syy / (n * (n - 1)) - 2.0 * Sxy / (m * n)


def _mmd_quadratic(x, y, rng, shuffler, h, names, chunksize, stages, shuffle, sem_mode,
                   estimator="default") -> MMDResult:
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the quadratic MMD needs at least 2 observations per sample; got {m}, {n}")
    if chunksize < 1:
        raise ValueError(f"chunksize must be positive; got {chunksize}")
    z = np.concatenate([x, y])
    N = m + n
    cs = chunksize
    want_perm = stages[-1] > 0
    # Cached: the strictly lower triangle of K0 (float32, Fortran order for BLAS trmm), since
    # u'K0u = 2 u'Lu and a triangular product costs half a full one.
    cache = np.zeros((N, N), np.float32, order="F") if (want_perm and N <= _KERNEL_CACHE_N) else None
    R = np.zeros(N)    # row sums of K0 (kernel without its diagonal)
    kx = np.zeros(N)   # sums over the x columns of K0
    for i in range(0, N, cs):
        zi = z[i:i + cs]
        for j in range(0, N, cs):
            block = _kernel_block(zi, z[j:j + cs])
            if i == j:
                np.fill_diagonal(block, 0.0)
            R[i:i + cs] += block.sum(1)
            if j < m:
                kx[i:i + cs] += block[:, :m - j].sum(1)
            if cache is not None and j <= i:
                cache[i:i + cs, j:j + cs] = block if j < i else np.tril(block, -1)
    T = R.sum()
    r = R[:m].sum()
    Sxx = kx[:m].sum()
    mmd2 = float(_stat(Sxx, T - 2.0 * r + Sxx, r - Sxx, m, n))
    if sem_mode == "original" or estimator == "original":
        h_mean, h_sem = _original_quadratic(shuffler(x), shuffler(y), cs)
        if estimator == "original":
            mmd2 = h_mean
    if sem_mode == "original":
        sem = h_sem
    else:
        # Delta-method variance of the two-sample U-statistic: 4 var(h_x)/m + 4 var(h_y)/n with
        # h_x(x_i) = mean_j k(x_i, x_j) - mean_j k(x_i, y_j), h_y likewise.
        ky = R - kx
        hx = kx[:m] / (m - 1) - ky[:m] / n
        hy = ky[m:] / (n - 1) - kx[m:] / m
        var = 4.0 * hx.var(ddof=1) / m + 4.0 * hy.var(ddof=1) / n
        sem = float(math.sqrt(max(var, 0.0)))
    zval = mmd2 / sem if sem > 0 else 0.0
    if not want_perm:
        return MMDResult(mmd2, sem, float("nan"), float(zval), False, m, n, h, tuple(names), 0,
                         shuffle, sem_mode, estimator)

    indicator = np.zeros(N, np.float32)
    indicator[:m] = 1.0

    def perm_stats(U):
        """Statistics of the splits in the columns of U (N, b) (1 = 'x'), as float64."""
        if cache is not None:
            LU = _trmm(cache, U)
            sxx = 2.0 * np.einsum("nb,nb->b", U, LU, dtype=np.float64)
            rr = R @ U.astype(np.float64)
            return _stat(sxx, T - 2.0 * rr + sxx, rr - sxx, m, n)
        else:
            KU = np.zeros(U.shape, np.float32)
            for i in range(0, N, cs):
                zi = z[i:i + cs]
                for j in range(0, N, cs):
                    block = _kernel_block(zi, z[j:j + cs])
                    if i == j:
                        np.fill_diagonal(block, 0.0)
                    KU[i:i + cs] += block.astype(np.float32) @ U[j:j + cs]
        sxx = np.einsum("nb,nb->b", U, KU, dtype=np.float64)
        rr = R @ U.astype(np.float64)
        return _stat(sxx, T - 2.0 * rr + sxx, rr - sxx, m, n)

    # The observed statistic through the same float32 path, so that the comparison with the
    # permuted ones is like for like; tol absorbs the rounding of float32 sums (ties with the observed
    # split itself can only occur for tiny samples).
    observed = perm_stats(indicator[:, None])[0]
    tol = 1e-6 * T / (N * (N - 1.0))
    batch = int(max(1, min(1000, (1 << 24) // N)))
    done = exceed = 0
    for target in stages:
        while done < target:
            b = min(batch, target - done)
            U = rng.permuted(np.broadcast_to(indicator, (b, N)), axis=1).T   # (N, b), Fortran order
            s = perm_stats(U)
            exceed += int(np.sum(s >= observed - tol))
            done += b
        if (1 + exceed) / (1 + done) > _CONTINUE_BELOW:
            break
    p = float((1 + exceed) / (1 + done))
    return MMDResult(mmd2, sem, p, float(zval), False, m, n, h, tuple(names), done, shuffle, sem_mode,
                     estimator)


def _trmm(lower: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``lower @ U`` for a lower-triangular float32 matrix (BLAS strmm; a plain product without it)."""
    try:
        from scipy.linalg.blas import strmm
    except ImportError:   # pragma: no cover - scipy always ships BLAS wrappers
        return lower @ U
    return strmm(1.0, lower, np.asfortranarray(U, dtype=np.float32), lower=1)


def _original_quadratic(x, y, cs) -> tuple[float, float]:
    """The original analysis/mmd.py's quadratic statistic and its standard error (see mmd_test)."""
    k = min(len(x), len(y))
    x, y = x[:k], y[:k]
    s1 = s2 = 0.0
    for i in range(0, k, cs):
        sl = slice(i, i + cs)
        H = (_kernel_block(x[sl], x) + _kernel_block(y[sl], y) - _kernel_block(x[sl], y)
             - _kernel_block(y[sl], x))
        rows = np.arange(H.shape[0])
        H[rows, rows + i] = 0.0   # skip i == j
        s1 += H.sum()
        s2 += (H * H).sum()
    count = k * k - k
    mean = s1 / count
    return float(mean), float(math.sqrt(max(2.0 * (s2 / count - mean ** 2) / count, 0.0)))


# --- The original analysis.mmd API (tuples of numpy scalars, printed summary) -------------------------

def _h_sums(x: np.ndarray, y: np.ndarray, rows, cols, kernel, kwargs: dict,
            skip_diag: bool = False) -> np.ndarray:
    """Count, sum and sum of squares of ``H = k(x_r, x_c) + k(y_r, y_c) - k(x_r, y_c) - k(y_r, x_c)``.

    ``rows``/``cols`` index the (shuffled, equal-length) samples and broadcast against each other;
    ``skip_diag`` leaves out the diagonal of a square block (the i = j terms).
    """
    xr, xc, yr, yc = x[rows], x[cols], y[rows], y[cols]
    H = kernel(xr, xc, **kwargs) + kernel(yr, yc, **kwargs) - kernel(xr, yc, **kwargs) - kernel(yr, xc, **kwargs)
    sums = np.array([H.size, H.sum(), (H ** 2).sum()])
    if skip_diag:
        diag = np.diagonal(H)
        sums -= (diag.size, diag.sum(), (diag ** 2).sum())
    return sums


def mmd2(x: np.ndarray, y: np.ndarray, kernel: kernels.KernelFunc = kernels.exp_quad,
         linear: bool = True, unbiased: bool = True, chunksize: int = None, seed: int = None,
         **kwargs) -> Tuple[float, float]:
    """Squared maximum mean discrepancy between two samples (Gretton et al., 2012), as the original.

    Both samples are shuffled (``numpy.random.RandomState(seed).permutation``, or numpy's global
    random state when ``seed`` is None: x first, then y) and cut to ``m = min(N_x, N_y)`` rows.
    With ``H_ij = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(y_i, x_j)``:

    - linear: the mean of ``H`` over the ``m // 2`` disjoint pairs (2i, 2i + 1), standard error
      ``sqrt(var(H) / pairs)`` (``ddof=0``);
    - quadratic, unbiased: the mean of ``H_ij`` over i ≠ j, standard error
      ``sqrt(2 var(H) / (m² - m))``;
    - quadratic, biased: the mean over all i, j; standard error NaN.

    For the project's test with p-values and a result object, see :func:`mmd_test`.

    Parameters
    ----------
    x, y : array_like, shape (N_x, D) and (N_y, D)
        The two samples.
    kernel : callable
        ``kernel(a, b, **kwargs)`` over the last axis of broadcastable arrays
        (:mod:`core.analysis.kernels`); default :func:`kernels.exp_quad`.
    linear : bool
        Linear-time statistic (default) or quadratic-time.
    unbiased : bool
        Unbiased (default) or biased quadratic statistic; ignored if ``linear``.
    chunksize : int, optional
        Rows (linear: pairs) per block, to bound memory at O(chunksize²) for the quadratic
        statistic; default: one block.
    seed : int, optional
        Seed of the shuffling.
    **kwargs
        Passed to the kernel, e.g. ``scale=`` (:func:`kernels.bandwidth`).

    Returns
    -------
    (numpy.float64, numpy.float64)
        Estimate of the squared MMD and its standard error.
    """
    x, y = np.asarray(x), np.asarray(y)
    m = min(x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"mmd2 needs at least 2 observations per sample; got "
                         f"{x.shape[0]} and {y.shape[0]}")
    if chunksize is not None and (not isinstance(chunksize, (int, np.integer)) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive integer or None; got {chunksize!r}")
    rng = np.random if seed is None else np.random.RandomState(seed)
    x = rng.permutation(x)[:m]
    y = rng.permutation(y)[:m]
    n_terms = m // 2 if linear else m
    step = n_terms if chunksize is None else int(chunksize)
    starts = range(0, n_terms, step)
    sums = np.zeros(3)
    for i in starts:
        rows = np.arange(i, min(i + step, n_terms))[:, None]
        if linear:
            sums += _h_sums(x, y, 2 * rows, 2 * rows + 1, kernel, kwargs)
            continue
        for j in starts:
            cols = np.arange(j, min(j + step, n_terms))[None, :]
            sums += _h_sums(x, y, rows, cols, kernel, kwargs, skip_diag=unbiased and i == j)
    count, total, squares = sums
    mean = total / count
    if linear:
        var = (squares / count - mean ** 2) / count
    elif unbiased:
        var = 2. * (squares / count - mean ** 2) / count
    else:
        var = np.nan
    return mean, np.sqrt(var)


def bound_threshold_biased(alpha, m, K=1.):
    """Distribution-free test threshold of the biased MMD² at level ``alpha`` (Gretton et al., 2012, Cor. 9).

    ``(2K / m) (1 + sqrt(-2 log alpha))²`` for m observations per sample and a kernel bounded by K.
    """
    return (2. * K / m) * (1. + np.sqrt(-2. * np.log(alpha))) ** 2


def bound_threshold_unbiased(alpha, m, K=1.):
    """Distribution-free test threshold of the unbiased MMD² at level ``alpha`` (Gretton et al., 2012, Cor. 11).

    ``(4K / sqrt(m)) sqrt(-log alpha)`` for m observations per sample and a kernel bounded by K.
    """
    return (4. * K / np.sqrt(m)) * np.sqrt(-np.log(alpha))


def asymptotic_linear_test(mean: float, sem: float) -> Tuple[float, float]:
    """Asymptotic test of the linear-time MMD²: ``z = mean / sem`` and the one-sided ``p = 1 - Φ(z)``.

    Parameters
    ----------
    mean, sem : float
        The linear-time estimate and its standard error (:func:`mmd2` with ``linear=True``).

    Returns
    -------
    (float, numpy.float64)
        The normalised statistic z and the p-value.
    """
    z = mean / sem
    return z, stats.norm.sf(z)


def test(x: np.ndarray, y: np.ndarray, kernel: kernels.KernelFunc = kernels.exp_quad,
         linear: bool = False, unbiased: bool = True, chunksize: int = None, seed: int = None,
         **kwargs) -> Tuple[float, float, float]:
    """:func:`mmd2`, then :func:`asymptotic_linear_test` if ``linear``, printing one summary line.

    The line reads ``MMD²_l ≈ 0.00123 ± 0.000456 (z=2.7, p=0.0035)`` (``_u``/``_b`` for the
    quadratic statistics, which have no p-value), as the original's. Parameters as :func:`mmd2`.

    Returns
    -------
    (numpy.float64, numpy.float64, float)
        Estimate, standard error and p-value (NaN unless ``linear``).
    """
    mean, sem = mmd2(x, y, kernel, linear, unbiased, chunksize, seed, **kwargs)
    name = "l" if linear else ("u" if unbiased else "b")
    text = f"MMD\u00b2_{name} \u2248 {mean:.6g}"
    if np.isfinite(sem):
        text += f" \u00b1 {sem:.6g}"
    pval = np.nan
    if linear:
        z, pval = asymptotic_linear_test(mean, sem)
        text += f" (z={z:.4g}, p={pval:.4f})"
    print(text)
    return mean, sem, pval
