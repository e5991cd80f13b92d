"""Sample correlations and partial correlations, with the API of the original ``analysis.correlations``.

Plain arrays in, plain arrays out, as the original (paper, section 4.2 and Fig. 6). The project's
table-level function, :func:`core.analysis.partial_correlations` (codes x metrics, a labelled
DataFrame), computes its entries with :func:`partial_correlations` here.
"""
from __future__ import annotations

import numpy as np

__all__ = ["correlation", "partial_correlations", "partial_correlation_matrix"]


def correlation(x, y):
    """Pearson correlation of x with y, column by column.

    Parameters
    ----------
    x : array_like, shape (N,) or (N, P)
    y : array_like, shape (N,) or (N, Q)

    Returns
    -------
    numpy.float64 or numpy.ndarray
        In [-1, 1]: a scalar for two 1-D inputs, shape (P,) or (Q,) for one 1-D and one 2-D input,
        shape (P, Q) for two 2-D inputs (entry (i, j): column i of x with column j of y).
    """
    x, y = np.asarray(x), np.asarray(y)
    zx = (x - x.mean(0)) / x.std(0)
    zy = (y - y.mean(0)) / y.std(0)
    return zx.T @ zy / x.shape[0]


def partial_correlations(ivs, dv):
    """Partial correlation of a dependent variable with each independent variable, controlling for the others.

    Entry i is ``-P[0, i+1] / sqrt(P[0, 0] P[i+1, i+1])`` with P the inverse of the scatter matrix of
    the centred ``[dv, ivs]`` (the correlation of dv and column i after removing the linear effect
    of the other columns and a constant).

    Parameters
    ----------
    ivs : array_like, shape (N, M)
        Independent variables.
    dv : array_like, shape (N,)
        Dependent variable.

    Returns
    -------
    numpy.ndarray, shape (M,)
        Partial correlations in [-1, 1].

    Raises
    ------
    numpy.linalg.LinAlgError
        If the columns of ``[dv, ivs]`` are linearly dependent (e.g. a constant column).
    """
    ivs, dv = np.asarray(ivs), np.asarray(dv)
    if dv.ndim == 1:
        dv = dv[:, None]
    centred = np.column_stack([dv, ivs])
    if not np.issubdtype(centred.dtype, np.floating):   # integer/boolean codes (the original refused them)
        centred = centred.astype(np.float64)
    centred = centred - centred.mean(axis=0)
    precision = np.linalg.inv(centred.T @ centred)
    return -precision[0, 1:] / np.sqrt(precision[0, 0] * np.diag(precision)[1:])


def partial_correlation_matrix(ivs, dvs, which=None):
    """Partial correlations of every dependent variable with (selected) independent variables.

    Parameters
    ----------
    ivs : array_like, shape (N, M)
        Independent variables; each partial correlation controls for all other columns of ``ivs``.
    dvs : array_like, shape (N, I) or (N,)
        Dependent variables (a 1-D array is one variable).
    which : int or array_like of int, shape (J,), optional
        Columns of ``ivs`` to report; default all.

    Returns
    -------
    numpy.ndarray, shape (I, J)
        Rows: dependent variables; columns: the selected independent variables.
    """
    ivs, dvs = np.asarray(ivs), np.asarray(dvs)
    if dvs.ndim == 1:
        dvs = dvs[:, None]
    pcorr = np.array([partial_correlations(ivs, dv) for dv in dvs.T])
    if which is not None:
        pcorr = pcorr[..., np.atleast_1d(which)]
    return pcorr
