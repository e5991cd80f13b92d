"""Model diagnostics from morphometrics (Castro et al., JMLR 2019, sections 4 and 5).

Morpho-MNIST asks "to what extent has my model learned to represent specific factors of
variation?". This module holds the paper's analysis, in plain numpy/scipy/pandas:

- :func:`mmd_test`: kernel two-sample test (Gretton et al., 2012) between two morphometric tables,
  e.g. metrics of a generative model's samples against those of the test data (paper, section 4.1).
  Gaussian kernel with a per-dimension bandwidth (standard deviation times Scott's factor, from both
  samples), the linear-time statistic with its asymptotic one-sided p-value, or the unbiased
  quadratic-time statistic (chunked, bounded memory) with a permutation p-value.
- :func:`metric_distances`: per-metric Wasserstein-1 and Kolmogorov-Smirnov distances, overall and
  per digit label.
- :func:`compare_report`: both of the above in one :class:`ComparisonReport` (``morpho compare``).
- :func:`partial_correlations`: correlation of each latent code with each metric, controlling for
  the other codes (paper, section 4.2, Fig. 6).
- :func:`mig`: mutual information gap (Chen et al., 2018) with histogram discretisation.
- :func:`traversal_effects`: measure a latent traversal grid and summarise each latent's effect on
  each metric.
- :func:`distance_to_data`: how far each sample lies from the reference digits (for galleries).

All metrics are in the units of :mod:`core.measure`: area in px², length/thickness/width/height in
px (28x28 pixel units), slant in radians.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "METRICS",
    "MMD_COLUMNS",
    "MMDResult",
    "bandwidth",
    "gaussian_kernel",
    "mmd_test",
    "metric_distances",
    "ComparisonReport",
    "compare_report",
    "partial_correlations",
    "MIGResult",
    "mig",
    "discretise",
    "measure_traversal",
    "traversal_effects",
    "distance_to_data",
]

#: The six morphometrics of :mod:`core.measure` (duplicated here so that this module imports
#: without the measurement code).
METRICS = ("area", "length", "thickness", "slant", "width", "height")

#: Columns the paper compares in its MMD test (section 4.1): area is left out, being largely
#: determined by length and thickness.
MMD_COLUMNS = ("length", "thickness", "slant", "width", "height")


# --------------------------------------------------------------------------------------------
# Kernel two-sample test
# --------------------------------------------------------------------------------------------

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
        asymptotic normal for the linear-time statistic, permutation for the quadratic one
        (NaN if ``n_permutations=0``).
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

    @property
    def statistic(self) -> str:
        """Name of the estimator: ``'MMD²_l'`` (linear) or ``'MMD²_u'`` (unbiased quadratic)."""
        return "MMD²_l" if self.linear else "MMD²_u"

    def to_text(self) -> str:
        """One line: estimate ± standard error, z and p-value."""
        text = f"{self.statistic} = {self.mmd2:.6g} ± {self.sem:.3g}"
        if self.linear:
            text += f" (z = {self.z:.4g}, p = {self.p_value:.4g}; n = {self.n_x} vs {self.n_y})"
        else:
            text += (f" (z = {self.z:.4g}, permutation p = {self.p_value:.4g} with "
                     f"{self.n_permutations} permutations; n = {self.n_x} vs {self.n_y})")
        return text

    def __str__(self) -> str:
        return self.to_text()


def _as_table(x, columns=None, name="x") -> tuple[np.ndarray, tuple]:
    """(N, D) float64 array and column names from a DataFrame or array_like."""
    if isinstance(x, pd.DataFrame):
        if columns is not None:
            missing = [c for c in columns if c not in x.columns]
            if missing:
                raise ValueError(f"{name} has no column(s) {missing}; it has {list(x.columns)}")
            x = x[list(columns)]
        names = tuple(str(c) for c in x.columns)
        arr = x.to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        names = tuple(columns) if columns is not None else tuple(f"x{i}" for i in range(arr.shape[-1]))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a table of shape (N, D); got shape {arr.shape}")
    return arr, names


def _drop_nonfinite(arr: np.ndarray, name: str) -> np.ndarray:
    ok = np.isfinite(arr).all(axis=1)
    if not ok.all():
        warnings.warn(f"{name}: ignoring {int((~ok).sum())} of {len(arr)} rows with NaN/inf "
                      f"(digits that could not be measured)", RuntimeWarning, stacklevel=3)
        arr = arr[ok]
    return arr


def bandwidth(*samples: np.ndarray, factor="scott") -> np.ndarray:
    """Per-dimension Gaussian-kernel bandwidth from one or more samples.

    Each sample contributes its per-column standard deviation (``ddof=1``) times a rule-of-thumb
    factor; several samples are combined as ``sqrt(sum(h_i**2))``, the bandwidth of the convolution
    of their Gaussian kernels (as in the paper's analysis).

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
    squares = []
    for s in samples:
        s = np.asarray(s, dtype=np.float64)
        n, d = s.shape
        if n < 2:
            raise ValueError(f"bandwidth needs at least 2 observations per sample; got {n}")
        if factor == "scott":
            f = n ** (-1.0 / (d + 4.0))
        elif factor == "silverman":
            f = (n * (d + 2.0) / 4.0) ** (-1.0 / (d + 4.0))
        elif isinstance(factor, str) or not np.isscalar(factor):
            raise ValueError(f"factor must be a number, 'scott' or 'silverman'; got {factor!r}")
        else:
            f = float(factor)
        squares.append((np.std(s, axis=0, ddof=1) * f) ** 2)
    h = np.sqrt(np.sum(squares, axis=0))
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


def mmd_test(x, y, *, linear: bool = True, seed=None, columns: Optional[Sequence[str]] = None,
             scale=None, factor="scott", chunksize: int = 2048, n_permutations: int = 200
             ) -> MMDResult:
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
        False: unbiased quadratic-time statistic ``MMD²_u`` on all observations, computed in
        ``chunksize`` x ``chunksize`` kernel blocks (memory ``O(chunksize² + N * n_permutations)``),
        its delta-method standard error, and a permutation p-value.
    seed : int or numpy.random.Generator, optional
        Seed for the shuffling (linear statistic) and the permutations.
    columns : sequence of str, optional
        Columns of DataFrame inputs to compare. Default: :data:`MMD_COLUMNS` when both inputs are
        DataFrames that have them (the paper's choice), otherwise all columns.
    scale : array_like, shape (D,), optional
        Kernel bandwidth per dimension. Default: :func:`bandwidth` of both samples (standard
        deviation with Scott's factor).
    factor : float or {'scott', 'silverman'}
        Bandwidth rule when ``scale`` is not given.
    chunksize : int
        Kernel block size for the quadratic statistic.
    n_permutations : int
        Permutations for the quadratic statistic's p-value (0: no p-value, NaN). Ignored if linear.

    Returns
    -------
    MMDResult
        ``.mmd2``, ``.sem``, ``.p_value`` and details.
    """
    if columns is None and isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame):
        if all(c in x.columns and c in y.columns for c in MMD_COLUMNS):
            columns = MMD_COLUMNS
    xa, names = _as_table(x, columns, "x")
    ya, _ = _as_table(y, columns if columns is not None else
                      (list(x.columns) if isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame)
                       else None), "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x and y must have the same number of columns; got {xa.shape[1]} and "
                         f"{ya.shape[1]}")
    xa = _drop_nonfinite(xa, "x")
    ya = _drop_nonfinite(ya, "y")
    h = bandwidth(xa, ya, factor=factor) if scale is None else np.broadcast_to(
        np.asarray(scale, dtype=np.float64), (xa.shape[1],)).copy()
    rng = np.random.default_rng(seed)
    if linear:
        return _mmd_linear(xa / h, ya / h, rng, h, names)
    return _mmd_quadratic(xa / h, ya / h, rng, h, names, int(chunksize), int(n_permutations))


def _mmd_linear(x, y, rng, h, names) -> MMDResult:
    m = min(len(x), len(y))
    if m < 4:
        raise ValueError(f"the linear-time MMD needs at least 4 observations per sample; got "
                         f"{len(x)} and {len(y)}")
    x = x[rng.permutation(len(x))[:m]]
    y = y[rng.permutation(len(y))[:m]]
    half = m // 2
    x1, x2 = x[0:2 * half:2], x[1:2 * half:2]
    y1, y2 = y[0:2 * half:2], y[1:2 * half:2]
    k = lambda a, b: np.exp(-0.5 * ((a - b) ** 2).sum(1))  # noqa: E731  (inputs pre-scaled)
    hvals = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    mean = float(hvals.mean())
    sem = float(hvals.std(ddof=1) / math.sqrt(half))
    if sem > 0:
        z = mean / sem
        p = float(stats.norm.sf(z))
    else:  # identical pairs: no evidence either way
        z, p = 0.0, 1.0
    return MMDResult(mean, sem, p, float(z), True, len(x), len(y), h, tuple(names), 0)


def _mmd_quadratic(x, y, rng, h, names, chunksize, n_permutations) -> MMDResult:
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the quadratic MMD needs at least 2 observations per sample; got {m}, {n}")
    if chunksize < 1:
        raise ValueError(f"chunksize must be positive; got {chunksize}")
    z = np.concatenate([x, y])
    N = m + n
    # Column 0 of U is the observed split (x first); the others are random relabellings.
    U = np.zeros((N, 1 + n_permutations))
    U[:m, 0] = 1.0
    for p in range(n_permutations):
        U[rng.permutation(N)[:m], 1 + p] = 1.0
    R = np.zeros(N)          # row sums of K0 (kernel without its diagonal)
    KU = np.zeros_like(U)    # K0 @ U, accumulated over blocks
    for i in range(0, N, chunksize):
        zi = z[i:i + chunksize]
        for j in range(0, N, chunksize):
            block = _kernel_block(zi, z[j:j + chunksize])
            if i == j:
                np.fill_diagonal(block, 0.0)
            R[i:i + chunksize] += block.sum(1)
            KU[i:i + chunksize] += block @ U[j:j + chunksize]
    T = R.sum()
    Sxx = (U * KU).sum(0)          # u' K0 u
    r = U.T @ R                    # u' K0 1
    Sxy = r - Sxx
    Syy = T - 2.0 * r + Sxx
    stat = Sxx / (m * (m - 1)) + Syy / (n * (n - 1)) - 2.0 * Sxy / (m * n)
    mmd2 = float(stat[0])
    # Delta-method variance of the two-sample U-statistic: 4 var(h_x)/m + 4 var(h_y)/n with
    # h_x(x_i) = mean_j k(x_i, x_j) - mean_j k(x_i, y_j), h_y likewise.
    kx = KU[:, 0]              # sum over x of K0
    ky = R - kx                # sum over y of K0
    hx = kx[:m] / (m - 1) - ky[:m] / n
    hy = ky[m:] / (n - 1) - kx[m:] / m
    var = 4.0 * hx.var(ddof=1) / m + 4.0 * hy.var(ddof=1) / n
    sem = float(math.sqrt(max(var, 0.0)))
    zval = mmd2 / sem if sem > 0 else 0.0
    if n_permutations > 0:
        p = float((1 + np.sum(stat[1:] >= mmd2)) / (1 + n_permutations))
    else:
        p = float("nan")
    return MMDResult(mmd2, sem, p, float(zval), False, m, n, h, tuple(names), n_permutations)


# --------------------------------------------------------------------------------------------
# Per-metric distances and the comparison report
# --------------------------------------------------------------------------------------------

_DIST_COLUMNS = ["label", "metric", "n_samples", "n_reference", "sample_mean", "reference_mean",
                 "wasserstein", "wasserstein_std", "ks_statistic", "ks_p_value"]


def metric_distances(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                     sample_labels=None, reference_labels=None,
                     metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per-metric Wasserstein-1 and two-sample Kolmogorov-Smirnov distances.

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Morphometrics (columns of :data:`METRICS`) of the samples and of the reference data.
    sample_labels, reference_labels : array_like, shape (N,), optional
        Digit labels. When both are given, rows per label follow the overall rows.
    metrics : sequence of str
        Metrics to compare (those missing from either table are skipped).

    Returns
    -------
    pandas.DataFrame
        One row per (label, metric); ``label`` is ``'all'`` or the digit label (int). Columns:
        ``n_samples``, ``n_reference`` (finite values used), ``sample_mean``, ``reference_mean``,
        ``wasserstein`` (W1, in the metric's units), ``wasserstein_std`` (W1 divided by the
        reference standard deviation), ``ks_statistic`` (sup-distance of the CDFs, in [0, 1]) and
        ``ks_p_value`` (two-sided).
    """
    metrics = [m for m in metrics if m in sample_metrics.columns and m in reference_metrics.columns]
    if not metrics:
        raise ValueError(f"no metric in common: samples have {list(sample_metrics.columns)}, "
                         f"reference has {list(reference_metrics.columns)}")
    groups = [("all", np.ones(len(sample_metrics), bool), np.ones(len(reference_metrics), bool))]
    if sample_labels is not None and reference_labels is not None:
        sl = np.asarray(sample_labels)
        rl = np.asarray(reference_labels)
        if len(sl) != len(sample_metrics) or len(rl) != len(reference_metrics):
            raise ValueError("labels must have one entry per row of their metrics table")
        for lab in np.union1d(np.unique(sl), np.unique(rl)):
            lab_py = lab.item() if hasattr(lab, "item") else lab
            groups.append((lab_py, sl == lab, rl == lab))
    rows = []
    for lab, smask, rmask in groups:
        for m in metrics:
            s = sample_metrics[m].to_numpy(dtype=np.float64)[smask]
            r = reference_metrics[m].to_numpy(dtype=np.float64)[rmask]
            s, r = s[np.isfinite(s)], r[np.isfinite(r)]
            row = {"label": lab, "metric": m, "n_samples": len(s), "n_reference": len(r),
                   "sample_mean": s.mean() if len(s) else np.nan,
                   "reference_mean": r.mean() if len(r) else np.nan,
                   "wasserstein": np.nan, "wasserstein_std": np.nan,
                   "ks_statistic": np.nan, "ks_p_value": np.nan}
            if len(s) and len(r):
                w = stats.wasserstein_distance(s, r)
                sd = r.std(ddof=1) if len(r) > 1 else np.nan
                ks = stats.ks_2samp(s, r)
                row.update(wasserstein=w, wasserstein_std=w / sd if sd and sd > 0 else np.nan,
                           ks_statistic=float(ks.statistic), ks_p_value=float(ks.pvalue))
            rows.append(row)
    out = pd.DataFrame(rows, columns=_DIST_COLUMNS)
    out["label"] = out["label"].astype(object)
    return out


@dataclass
class ComparisonReport:
    """Samples vs reference data: the MMD test and per-metric distances.

    Attributes
    ----------
    mmd : MMDResult
        Kernel two-sample test on :data:`MMD_COLUMNS`.
    distances : pandas.DataFrame
        :func:`metric_distances` (overall rows, then per label when labels were given).
    n_samples, n_reference : int
        Rows of the two tables.
    """

    mmd: MMDResult
    distances: pd.DataFrame
    n_samples: int
    n_reference: int

    def to_text(self, per_label: bool = True) -> str:
        """Printable report: the MMD line and the distances table.

        Parameters
        ----------
        per_label : bool
            Include the per-label rows when present.
        """
        d = self.distances
        if not per_label:
            d = d[d["label"].astype(str) == "all"]
        table = d[["label", "metric", "sample_mean", "reference_mean", "wasserstein",
                   "wasserstein_std", "ks_statistic", "ks_p_value"]].rename(columns={
                       "sample_mean": "mean(samples)", "reference_mean": "mean(reference)",
                       "wasserstein": "W1", "wasserstein_std": "W1/std",
                       "ks_statistic": "KS", "ks_p_value": "KS p"})
        lines = [
            f"Samples: {self.n_samples}   reference: {self.n_reference}",
            f"Kernel two-sample test on {', '.join(self.mmd.columns)}:",
            f"  {self.mmd.to_text()}",
            "  -> " + ("the samples' morphometrics differ from the reference data's (p < 0.01)"
                       if self.mmd.p_value < 0.01 else
                       "not distinguishable from the reference data at the 1% level"),
            "",
            "Per-metric distances (W1 in the metric's units; KS = max CDF difference):",
            table.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def compare_report(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                   sample_labels=None, reference_labels=None, linear: bool = True, seed=0
                   ) -> ComparisonReport:
    """Compare a model's sample morphometrics with reference data (``morpho compare``).

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Tables with the columns of :data:`METRICS` (as from ``core.measure.measure_batch``).
    sample_labels, reference_labels : array_like, shape (N,), optional
        Digit labels; the distances are then also given per label.
    linear : bool
        Linear-time MMD (default, as the paper) or the quadratic-time unbiased statistic.
    seed : int
        Seed for the MMD test's shuffling/permutations.

    Returns
    -------
    ComparisonReport
    """
    result = mmd_test(sample_metrics, reference_metrics, linear=linear, seed=seed)
    distances = metric_distances(sample_metrics, reference_metrics, sample_labels=sample_labels,
                                 reference_labels=reference_labels)
    return ComparisonReport(result, distances, len(sample_metrics), len(reference_metrics))


# --------------------------------------------------------------------------------------------
# Disentanglement: partial correlations and MIG
# --------------------------------------------------------------------------------------------

def _names(x, prefix: str) -> list:
    if isinstance(x, pd.DataFrame):
        return [str(c) for c in x.columns]
    return [f"{prefix}{i}" for i in range(np.shape(x)[1] if np.ndim(x) == 2 else 1)]


def partial_correlations(codes, metrics) -> pd.DataFrame:
    """Partial correlation of each latent code with each metric, controlling for the other codes.

    Entry (i, j) is the correlation between code i and metric j after removing from both the linear
    effect of all other codes (and a constant), computed from the precision matrix of
    ``[metric j, codes]``: ``-P[0, i+1] / sqrt(P[0, 0] P[i+1, i+1])``.

    Parameters
    ----------
    codes : pandas.DataFrame or array_like, shape (N, C)
        Latent codes (e.g. the inferred continuous codes of an InfoGAN, one-hot categorical codes).
    metrics : pandas.DataFrame or array_like, shape (N, M)
        Morphometrics of the same N digits.

    Returns
    -------
    pandas.DataFrame, shape (C, M)
        Partial correlations in [-1, 1]; index: code names, columns: metric names.
    """
    c = np.asarray(codes, dtype=np.float64)
    y = np.asarray(metrics, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if c.shape[0] != y.shape[0]:
        raise ValueError(f"codes and metrics must have the same number of rows; got {c.shape[0]} "
                         f"and {y.shape[0]}")
    ok = np.isfinite(c).all(1) & np.isfinite(y).all(1)
    c, y = c[ok], y[ok]
    n, C = c.shape
    if n <= C + 2:
        raise ValueError(f"need more observations ({n}) than codes + 2 ({C + 2})")
    out = np.empty((C, y.shape[1]))
    for j in range(y.shape[1]):
        v = np.column_stack([y[:, j], c])
        v = v - v.mean(0)
        cov = v.T @ v
        try:
            prec = np.linalg.inv(cov)
        except np.linalg.LinAlgError:
            raise ValueError("codes (with the metric) are linearly dependent: a code is constant or "
                             "a combination of the others (e.g. a full one-hot block); drop one "
                             "column") from None
        out[:, j] = -prec[0, 1:] / np.sqrt(prec[0, 0] * np.diag(prec)[1:])
    return pd.DataFrame(np.clip(out, -1.0, 1.0), index=_names(codes, "z"),
                        columns=_names(metrics, "metric"))


def discretise(x, bins=20) -> np.ndarray:
    """Histogram discretisation of each column.

    Parameters
    ----------
    x : array_like, shape (N, K)
        Continuous values.
    bins : int or str
        Passed to :func:`numpy.histogram_bin_edges` per column.

    Returns
    -------
    numpy.ndarray of int, shape (N, K)
        Bin index of each value, 0 to ``n_bins - 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.int64)
    for k in range(x.shape[1]):
        edges = np.histogram_bin_edges(x[:, k], bins)
        out[:, k] = np.clip(np.digitize(x[:, k], edges[1:-1]), 0, len(edges) - 2)
    return out


def _entropy(a: np.ndarray) -> float:
    _, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    pxy = joint / joint.sum()
    px, py = pxy.sum(1, keepdims=True), pxy.sum(0, keepdims=True)
    nz = pxy > 0
    return float(max((pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])).sum(), 0.0))


@dataclass(frozen=True)
class MIGResult:
    """Result of :func:`mig`.

    Attributes
    ----------
    score : float
        Mutual information gap, in [0, 1].
    per_factor : pandas.Series, shape (F,)
        Gap per factor (difference between the two codes most informative about it, over its
        entropy).
    mutual_info : pandas.DataFrame, shape (C, F)
        Mutual information between discretised codes and factors, in nats.
    entropy : pandas.Series, shape (F,)
        Entropy of each discretised factor, in nats.
    """

    score: float
    per_factor: pd.Series
    mutual_info: pd.DataFrame
    entropy: pd.Series

    def __float__(self) -> float:
        return float(self.score)


def mig(codes, factors, bins=20, *, discretise_factors: Optional[bool] = None) -> MIGResult:
    """Mutual information gap (Chen et al., 2018) with histogram discretisation.

    For each factor k: ``(I(z_a; v_k) - I(z_b; v_k)) / H(v_k)`` where z_a, z_b are the two codes
    with the highest mutual information with v_k; MIG is the mean over factors.

    Parameters
    ----------
    codes : pandas.DataFrame or array_like, shape (N, C)
        Latent codes; C >= 2. Discretised into ``bins`` histogram bins per code.
    factors : pandas.DataFrame or array_like, shape (N, F)
        Generative factors (e.g. morphometrics). Discretised like the codes unless integer-valued
        (e.g. digit labels), see ``discretise_factors``.
    bins : int or str
        Histogram bins for :func:`numpy.histogram_bin_edges`.
    discretise_factors : bool, optional
        Force (True) or skip (False) discretising the factors; default: discretise float factors.

    Returns
    -------
    MIGResult
        ``.score`` and the mutual information matrix.
    """
    c = np.asarray(codes, dtype=np.float64)
    f_raw = np.asarray(factors)
    if c.ndim == 1:
        c = c[:, None]
    if f_raw.ndim == 1:
        f_raw = f_raw[:, None]
    if c.shape[0] != f_raw.shape[0]:
        raise ValueError(f"codes and factors must have the same number of rows; got {c.shape[0]} "
                         f"and {f_raw.shape[0]}")
    if c.shape[1] < 2:
        raise ValueError("MIG needs at least 2 codes (it is a gap between the top two)")
    ok = np.isfinite(c).all(1) & np.isfinite(f_raw.astype(np.float64)).all(1)
    c, f_raw = c[ok], f_raw[ok]
    if discretise_factors is None:
        discretise_factors = not np.issubdtype(f_raw.dtype, np.integer)
    f = discretise(f_raw, bins) if discretise_factors else f_raw.astype(np.int64)
    cd = discretise(c, bins)
    mi = np.array([[_mutual_info(cd[:, i], f[:, k]) for k in range(f.shape[1])]
                   for i in range(cd.shape[1])])
    ent = np.array([_entropy(f[:, k]) for k in range(f.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = np.where(ent > 0, (top[0] - top[1]) / ent, np.nan)
    code_names, factor_names = _names(codes, "z"), _names(factors, "v")
    per_factor = pd.Series(gaps, index=factor_names, name="mig")
    return MIGResult(float(np.nanmean(gaps)) if np.isfinite(gaps).any() else float("nan"),
                     per_factor, pd.DataFrame(mi, index=code_names, columns=factor_names),
                     pd.Series(ent, index=factor_names, name="entropy"))


# --------------------------------------------------------------------------------------------
# Latent traversals
# --------------------------------------------------------------------------------------------

def measure_traversal(grid, *, progress=False, workers=None, **measure_kwargs) -> pd.DataFrame:
    """Measure every image of a latent traversal grid.

    Parameters
    ----------
    grid : array_like, shape (L, S, H, W)
        Images for L latents x S steps (uint8 in [0, 255] or float in [0, 1]).
    progress, workers, **measure_kwargs
        Passed to ``core.measure.measure_batch``.

    Returns
    -------
    pandas.DataFrame
        L*S rows with a (latent, step) MultiIndex and the six metric columns.
    """
    from core.measure import measure_batch

    grid = np.asarray(grid)
    if grid.ndim != 4:
        raise ValueError(f"a traversal grid has shape (latents, steps, H, W); got {grid.shape}")
    L, S = grid.shape[:2]
    df = measure_batch(grid.reshape(L * S, *grid.shape[2:]), progress=progress, workers=workers,
                       **measure_kwargs)
    df.index = pd.MultiIndex.from_product([range(L), range(S)], names=["latent", "step"])
    return df


def traversal_effects(grid, *, method: str = "spearman", metrics: Sequence[str] = METRICS,
                      progress=False, workers=None) -> pd.DataFrame:
    """Each latent's effect on each metric along a latent traversal.

    Parameters
    ----------
    grid : array_like, shape (L, S, H, W), or pandas.DataFrame
        The traversal images (latent l varied over S increasing steps in row l), or their per-step
        metrics as returned by :func:`measure_traversal` (index (latent, step)).
    method : {'spearman', 'slope'}
        ``'spearman'`` (default): Spearman rank correlation of the metric with the step index, in
        [-1, 1] (+1: the metric increases monotonically along the traversal). ``'slope'``: least-
        squares slope of the metric against the step position scaled to [0, 1], divided by the
        metric's standard deviation over the whole grid (standard deviations of change from the
        first to the last step). A metric that stays constant along a latent's traversal has
        effect 0; unmeasurable digits (NaN) are ignored.
    metrics : sequence of str
        Metric columns to summarise.
    progress, workers
        Passed to :func:`measure_traversal` when ``grid`` holds images.

    Returns
    -------
    pandas.DataFrame, shape (L, len(metrics))
        Index ``latent`` (0..L-1), one column per metric. ``.attrs['per_step']`` holds the per-step
        metrics (the :func:`measure_traversal` table) for plotting, ``.attrs['method']`` the method.
    """
    if method not in ("spearman", "slope"):
        raise ValueError(f"method must be 'spearman' or 'slope'; got {method!r}")
    if isinstance(grid, pd.DataFrame):
        per_step = grid
        if list(per_step.index.names) != ["latent", "step"]:
            raise ValueError("per-step metrics need a (latent, step) MultiIndex, as from "
                             "measure_traversal")
    else:
        per_step = measure_traversal(grid, progress=progress, workers=workers)
    metrics = [m for m in metrics if m in per_step.columns]
    latents = sorted(per_step.index.get_level_values("latent").unique())
    out = pd.DataFrame(0.0, index=pd.Index(latents, name="latent"), columns=metrics)
    overall_sd = per_step[metrics].std(ddof=1)
    for lat in latents:
        block = per_step.xs(lat, level="latent").sort_index()
        steps = block.index.to_numpy(dtype=np.float64)
        pos = (steps - steps.min()) / (steps.max() - steps.min()) if len(steps) > 1 else steps
        for m in metrics:
            v = block[m].to_numpy(dtype=np.float64)
            ok = np.isfinite(v)
            if ok.sum() < 2 or np.ptp(v[ok]) == 0 or np.ptp(pos[ok]) == 0:
                continue  # constant (or unmeasurable): no effect
            if method == "spearman":
                out.loc[lat, m] = float(stats.spearmanr(pos[ok], v[ok]).statistic)
            else:
                slope = np.polyfit(pos[ok], v[ok], 1)[0]
                sd = overall_sd[m]
                out.loc[lat, m] = float(slope / sd) if sd > 0 else 0.0
    out.attrs["per_step"] = per_step
    out.attrs["method"] = method
    return out


# --------------------------------------------------------------------------------------------
# Atypical samples
# --------------------------------------------------------------------------------------------

def distance_to_data(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                     columns: Sequence[str] = MMD_COLUMNS, k: int = 5) -> np.ndarray:
    """How far each sample lies from the reference data in morphometric space.

    The mean Euclidean distance from a sample to its ``k`` nearest reference digits, in the
    reference data's standard deviations per column (so 1 means "one standard deviation away
    along one metric"). Used to show the samples furthest from the data.

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Morphometric tables.
    columns : sequence of str
        Columns used (default: the paper's MMD columns).
    k : int
        Number of nearest reference digits averaged.

    Returns
    -------
    numpy.ndarray, shape (N_samples,)
        Distance in standard deviations; NaN for samples with a NaN metric.
    """
    from scipy.spatial import cKDTree

    ref = reference_metrics[list(columns)].to_numpy(dtype=np.float64)
    ref = ref[np.isfinite(ref).all(1)]
    if len(ref) < 1:
        raise ValueError("the reference data has no finite metrics")
    mu, sd = ref.mean(0), ref.std(0, ddof=1) if len(ref) > 1 else np.ones(ref.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    tree = cKDTree((ref - mu) / sd)
    s = sample_metrics[list(columns)].to_numpy(dtype=np.float64)
    out = np.full(len(s), np.nan)
    ok = np.isfinite(s).all(1)
    if ok.any():
        kk = min(k, len(ref))
        dist, _ = tree.query((s[ok] - mu) / sd, k=kk)
        out[ok] = dist.reshape(len(dist), -1).mean(1)
    return out
