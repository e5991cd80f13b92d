"""Mutual information gap with the API of the original ``analysis.mig`` (Chen et al., 2018).

``core.analysis.mig`` is two things at once, because the original and the project use the same name:

- this module, whose :func:`mig` takes the original's parameters ``(codes, factors,
  discretize_codes=None, discretize_factors=None, bins=20)`` and returns its tuple ``(score, mi,
  entropy)``: ``from analysis import mig; mig.mig(...)`` runs unchanged with
  ``sys.modules['analysis'] = core.analysis``;
- callable: ``core.analysis.mig(codes, factors, ...)`` is the project's
  :func:`core.analysis.disentanglement.mig` (a labelled :class:`~core.analysis.MIGResult`, metric
  selection, zero-entropy handling), as the app and the CLI use it.

Here, as in the original, each column is discretised or kept as its own labels by its flag, not by
the project's ``binning`` rule: ``np.digitize(col, np.histogram_bin_edges(col, bins)[:-1])`` for a
flagged column, the values themselves (each distinct value one label) otherwise. The mutual
information is the plug-in estimate in nats (:func:`core.analysis.mutual_information`).
"""
from __future__ import annotations

import sys
import types
from collections.abc import Iterable

import numpy as np

from . import disentanglement
from .disentanglement import _codes_of, _entropies, mutual_information

__all__ = ["mig"]


def _labels(x, discretize, bins, name: str) -> np.ndarray:
    """(N, K) table of discrete labels: flagged columns histogram-binned, the others as they are."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K); got shape {x.shape}")
    if discretize is None:
        discretize = np.issubdtype(x.dtype, np.floating)   # the whole table's dtype, as the original
    flags = list(discretize) if isinstance(discretize, Iterable) else [discretize] * x.shape[1]
    if len(flags) != x.shape[1]:
        raise ValueError(f"discretize_{name}: expected 1 or {x.shape[1]} flags (one per column of "
                         f"{name}); got {len(flags)}")
    columns = [np.digitize(col, np.histogram_bin_edges(col, bins)[:-1]) if flag else col
               for col, flag in zip(x.T, flags)]
    # Stacking casts to one dtype; labels are compared for equality only, which the cast preserves.
    return np.column_stack(columns) if columns else np.empty((x.shape[0], 0))


def mig(codes: np.ndarray, factors: np.ndarray, discretize_codes=None, discretize_factors=None,
        bins=20):
    """Mutual information gap, as the original ``analysis.mig.mig``.

    For each factor k, ``(I(z_a; v_k) - I(z_b; v_k)) / H(v_k)`` with z_a, z_b the two codes most
    informative about it; the score is the mean over factors (NaN if a factor has zero entropy).

    Parameters
    ----------
    codes : array_like, shape (N, C)
        Latent codes inferred by a model; C >= 2.
    factors : array_like, shape (N, F)
        Generative factors (e.g. morphometrics) of the same N digits.
    discretize_codes, discretize_factors : bool or sequence of bool, optional
        Whether to histogram-bin each column (one flag for all or one per column). Default: bin
        every column if the array is floating-point, none otherwise.
    bins : int or sequence of float or str
        Passed to :func:`numpy.histogram_bin_edges` for each binned column (a number of bins, the
        edges, or a rule such as ``'auto'``).

    Returns
    -------
    mig_score : numpy.float64
        The mutual information gap.
    mi : numpy.ndarray, shape (C, F)
        Mutual information (nats) of each code with each factor.
    entropy : numpy.ndarray, shape (F,)
        Entropy (nats) of each (discretised) factor.
    """
    code_labels = _labels(codes, discretize_codes, bins, "codes")
    factor_labels = _labels(factors, discretize_factors, bins, "factors")
    if code_labels.shape[0] != factor_labels.shape[0]:
        raise ValueError(f"codes and factors must have the same number of rows; got "
                         f"{code_labels.shape[0]} and {factor_labels.shape[0]}")
    if code_labels.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 codes (it is a gap between the top two); got "
                         f"{code_labels.shape[1]}")
    mi = mutual_information(code_labels, factor_labels)
    entropy = _entropies(*_codes_of(factor_labels))
    top = np.sort(mi, axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):   # zero entropy: NaN, as the original
        score = np.mean((top[0] - top[1]) / entropy)
    return score, mi, entropy


class _CallableModule(types.ModuleType):
    """This module, also callable as the project's :func:`core.analysis.disentanglement.mig`."""

    def __call__(self, *args, **kwargs):
        return disentanglement.mig(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
