"""Disentanglement scores from morphometrics: partial correlations and the mutual information gap."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ._common import DIAGNOSTIC_METRICS, diagnostic_columns, json_safe, names_of
from .correlations import partial_correlation_matrix

__all__ = ["partial_correlations", "MIGResult", "mig", "discretise", "code_diagnostics"]


def partial_correlations(codes, metrics, *, columns: Optional[Sequence[str]] = DIAGNOSTIC_METRICS
                         ) -> pd.DataFrame:
    """Partial correlation of each latent code with each metric, controlling for the other codes.

    Entry (i, j) is the correlation between code i and metric j after removing from both the linear
    effect of all other codes (and a constant), computed from the precision matrix of
    ``[metric j, codes]``: ``-P[0, i+1] / sqrt(P[0, 0] P[i+1, i+1])``
    (:func:`core.analysis.correlations.partial_correlation_matrix`, as the original; paper Fig. 6).

    Parameters
    ----------
    codes : pandas.DataFrame or array_like, shape (N, C)
        Latent codes (e.g. the inferred continuous codes of an InfoGAN, one-hot categorical codes).
    metrics : pandas.DataFrame or array_like, shape (N, M)
        Morphometrics of the same N digits.
    columns : sequence of str or None
        A ``metrics`` DataFrame holding all these columns is restricted to them
        (:data:`DIAGNOSTIC_METRICS` by default, the one metric set of the diagnostics); None: all columns.

    Returns
    -------
    pandas.DataFrame, shape (C, M)
        Partial correlations in [-1, 1]; index: code names, columns: metric names.
    """
    metrics = diagnostic_columns(metrics, columns)
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
    try:
        out = partial_correlation_matrix(c, y).T
    except np.linalg.LinAlgError:
        raise ValueError("codes (with the metric) are linearly dependent: a code is constant or "
                         "a combination of the others (e.g. a full one-hot block); drop one "
                         "column") from None
    return pd.DataFrame(np.clip(out, -1.0, 1.0), index=names_of(codes, "z"),
                        columns=names_of(metrics, "metric"))


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
        Bin index of each value, 0 to ``n_bins - 1`` (the maximum falls in the last bin, as in the
        original's ``np.digitize(x, edges[:-1])``, whose bins are numbered from 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = np.empty(x.shape, dtype=np.int64)
    if isinstance(bins, (int, np.integer)) and x.shape[0] > 0:
        # All columns at once, with the very edges np.histogram_bin_edges computes (linspace of
        # min..max, or min-0.5..max+0.5 for a constant column), so the bins are identical.
        lo, hi = x.min(0), x.max(0)
        flat = lo == hi
        lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
        edges = np.linspace(lo, hi, int(bins) + 1, axis=1)                    # (K, bins + 1)
        for k0 in range(0, x.shape[1], 64):                                   # bounded memory
            sl = slice(k0, k0 + 64)
            out[:, sl] = (x[:, sl, None] >= edges[None, sl, 1:-1]).sum(-1)
        return out
    for k in range(x.shape[1]):
        edges = np.histogram_bin_edges(x[:, k], bins)
        out[:, k] = np.clip(np.digitize(x[:, k], edges[1:-1]), 0, len(edges) - 2)
    return out


def _codes_of(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: values relabelled 0..k-1 (as int64, (N, K)) and each column's k."""
    columns = np.asarray(columns)
    out = np.empty(columns.shape, np.int64)
    sizes = np.empty(columns.shape[1], np.int64)
    for j in range(columns.shape[1]):
        col = columns[:, j]
        if np.issubdtype(col.dtype, np.integer) and len(col) and col.min() >= 0 and col.max() < 4 * len(col) + 64:
            present = np.bincount(col) > 0          # small non-negative ints: relabel without sorting
            remap = np.cumsum(present) - 1
            out[:, j] = remap[col]
            sizes[j] = int(present.sum())
        else:
            _, inv = np.unique(col, return_inverse=True)
            out[:, j] = inv.ravel()
            sizes[j] = inv.max() + 1 if len(inv) else 0
    return out, sizes


def _plogp(counts: np.ndarray, n: int) -> np.ndarray:
    """-p log p elementwise (0 where the count is 0)."""
    q = counts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q > 0, -q * np.log(np.where(q > 0, q, 1.0)), 0.0)


def _entropies(labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    n = labels.shape[0]
    return np.array([_plogp(np.bincount(labels[:, j], minlength=sizes[j]), n).sum()
                     for j in range(labels.shape[1])])


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mutual information (nats) between every column of two discrete tables.

    All joint histograms are counted with one :func:`numpy.bincount` per block of columns (no loop
    over pairs): 300 codes x 5 factors x 5,000 rows take a few tens of milliseconds.

    Parameters
    ----------
    a : array_like of int, shape (N, C)
    b : array_like of int, shape (N, F)

    Returns
    -------
    numpy.ndarray, shape (C, F)
        ``I(a_i; b_k) = H(a_i) + H(b_k) - H(a_i, b_k)`` from the joint counts (the plug-in estimate,
        as ``sklearn.metrics.mutual_info_score``).
    """
    la, sa = _codes_of(np.asarray(a))
    lb, sb = _codes_of(np.asarray(b))
    n, C = la.shape
    F = lb.shape[1]
    kb_max = int(sb.max()) if F else 0
    hjoint = np.zeros((C, F))
    # joint index of (a_i, b_k) for a block of codes: ((i * F + k) * ka_max + a) * kb_max + b
    ka_max = int(sa.max()) if C else 0
    if ka_max * kb_max > (1 << 20):
        # Many distinct values (e.g. unbinned float columns): dense joint histograms would take
        # gigabytes, so count only the joint labels that occur, pair by pair.
        for i in range(C):
            for k in range(F):
                _, counts = np.unique(la[:, i] * kb_max + lb[:, k], return_counts=True)
                hjoint[i, k] = _plogp(counts, n).sum()
    else:
        block = max(1, (1 << 22) // max(1, n * F))
        for c0 in range(0, C, block):
            A = la[:, c0:c0 + block]                                             # (n, c)
            c = A.shape[1]
            pair = (np.arange(c)[:, None] * F + np.arange(F)[None, :])            # (c, F)
            idx = ((pair[None] * ka_max + A[:, :, None]) * kb_max + lb[:, None, :])   # (n, c, F)
            counts = np.bincount(idx.ravel(), minlength=c * F * ka_max * kb_max)
            hjoint[c0:c0 + c] = _plogp(counts.reshape(c, F, ka_max * kb_max), n).sum(-1)
    mi = _entropies(la, sa)[:, None] + _entropies(lb, sb)[None, :] - hjoint
    return np.maximum(mi, 0.0)


@dataclass(frozen=True)
class MIGResult:
    """Result of :func:`mig`.

    Attributes
    ----------
    score : float
        Mutual information gap, in [0, 1].
    per_factor : pandas.Series, shape (F,)
        Gap per factor (difference between the two codes most informative about it, over its
        entropy); NaN for a factor with zero entropy.
    mutual_info : pandas.DataFrame, shape (C, F)
        Mutual information between discretised codes and factors, in nats.
    entropy : pandas.Series, shape (F,)
        Entropy of each discretised factor, in nats.
    binning, zero_entropy : str
        The choices made (see :func:`mig`).
    """

    score: float
    per_factor: pd.Series
    mutual_info: pd.DataFrame
    entropy: pd.Series
    binning: str = "default"
    zero_entropy: str = "skip"

    def __float__(self) -> float:
        return float(self.score)

    def to_dict(self) -> dict:
        return json_safe({"score": self.score, "per_factor": self.per_factor,
                          "mutual_info": {c: self.mutual_info[c] for c in self.mutual_info.columns},
                          "entropy": self.entropy, "binning": self.binning,
                          "zero_entropy": self.zero_entropy})


def mig(codes, factors, bins=20, *, discretise_factors: Optional[bool] = None, binning: str = "default",
        zero_entropy: str = "skip", columns: Optional[Sequence[str]] = DIAGNOSTIC_METRICS) -> MIGResult:
    """Mutual information gap (Chen et al., 2018) with histogram discretisation.

    For each factor k: ``(I(z_a; v_k) - I(z_b; v_k)) / H(v_k)`` where z_a, z_b are the two codes
    with the highest mutual information with v_k; MIG is the mean over factors. All joint
    histograms are counted at once (:func:`mutual_information`), so 300 codes x 5 factors take
    milliseconds.

    Parameters
    ----------
    codes : pandas.DataFrame or array_like, shape (N, C)
        Latent codes; C >= 2.
    factors : pandas.DataFrame or array_like, shape (N, F)
        Generative factors (e.g. morphometrics). Discretised into ``bins`` unless integer-valued
        (e.g. digit labels), see ``discretise_factors``. A DataFrame holding all of ``columns`` is
        restricted to them.
    bins : int or str
        Histogram bins for :func:`numpy.histogram_bin_edges`.
    discretise_factors : bool, optional
        Force (True) or skip (False) discretising the factors; default: discretise float factors.
    binning : {'default', 'original'}
        ``'default'``: every code is discretised into ``bins`` histogram bins, integer codes too (a
        code's information should not depend on its storage type). ``'original'``: as the original
        ``analysis/mig.py``, integer codes are used as they are (each distinct value its own bin),
        float codes binned; with many distinct integer values this inflates their mutual information
        (docs/diagnostics.md gives the size).
    zero_entropy : {'skip', 'original'}
        A factor with zero entropy (constant) has no gap. ``'skip'``: its gap is NaN and the score
        averages the other factors. ``'original'``: as the original, the division by zero makes the
        score NaN.
    columns : sequence of str or None
        Restriction of a factors DataFrame (:data:`DIAGNOSTIC_METRICS` by default); None: all columns.

    Returns
    -------
    MIGResult
        ``.score`` and the mutual information matrix.
    """
    if binning not in ("default", "original"):
        raise ValueError(f"binning must be 'default' or 'original'; got {binning!r}")
    if zero_entropy not in ("skip", "original"):
        raise ValueError(f"zero_entropy must be 'skip' or 'original'; got {zero_entropy!r}")
    factors = diagnostic_columns(factors, columns)
    c_raw = np.asarray(codes)
    f_raw = np.asarray(factors)
    if c_raw.ndim == 1:
        c_raw = c_raw[:, None]
    if f_raw.ndim == 1:
        f_raw = f_raw[:, None]
    for name, a in (("codes", c_raw), ("factors", f_raw)):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{name} must be numeric; got dtype {a.dtype}")
    if c_raw.shape[0] != f_raw.shape[0]:
        raise ValueError(f"codes and factors must have the same number of rows; got {c_raw.shape[0]} "
                         f"and {f_raw.shape[0]}")
    if c_raw.shape[1] < 2:
        raise ValueError("MIG needs at least 2 codes (it is a gap between the top two)")
    ok = np.isfinite(c_raw.astype(np.float64)).all(1) & np.isfinite(f_raw.astype(np.float64)).all(1)
    c_raw, f_raw = c_raw[ok], f_raw[ok]
    if len(c_raw) < 2:
        raise ValueError("MIG needs at least 2 rows with finite codes and factors")
    if discretise_factors is None:
        discretise_factors = not np.issubdtype(f_raw.dtype, np.integer)
    f = discretise(f_raw, bins) if discretise_factors else f_raw.astype(np.int64)
    code_is_int = np.issubdtype(c_raw.dtype, np.integer) or c_raw.dtype == bool
    if binning == "original" and code_is_int:
        cd = c_raw.astype(np.int64)
    else:
        cd = discretise(c_raw.astype(np.float64), bins)
    mi = mutual_information(cd, f)
    lf, sf = _codes_of(f)
    ent = _entropies(lf, sf)
    top = np.sort(mi, axis=0)[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = np.where(ent > 0, (top[0] - top[1]) / np.where(ent > 0, ent, 1.0), np.nan)
    if zero_entropy == "original":
        score = float(np.mean(gaps))            # NaN as soon as one factor is constant
    else:
        score = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else float("nan")
    code_names, factor_names = names_of(codes, "z"), names_of(factors, "v")
    per_factor = pd.Series(gaps, index=factor_names, name="mig")
    return MIGResult(score, per_factor, pd.DataFrame(mi, index=code_names, columns=factor_names),
                     pd.Series(ent, index=factor_names, name="entropy"), binning, zero_entropy)


def code_diagnostics(codes, metrics) -> tuple[pd.DataFrame, Optional[MIGResult]]:
    """Both disentanglement answers for codes of digits whose metrics are known (paper, section 4.2).

    Parameters
    ----------
    codes : pandas.DataFrame, shape (N, C)
        Latent codes of N digits.
    metrics : pandas.DataFrame, shape (N, M)
        Their morphometrics; the columns of :data:`DIAGNOSTIC_METRICS` among them are used.

    Returns
    -------
    tuple
        ``(partial_correlations(codes, factors), mig(codes, factors))``: a (C, F) DataFrame, and a
        :class:`MIGResult`, or None for fewer than 2 codes (MIG is a gap between the top two).
    """
    factors = metrics[[m for m in DIAGNOSTIC_METRICS if m in metrics.columns]]
    return partial_correlations(codes, factors), (mig(codes, factors) if codes.shape[1] >= 2 else None)
