"""Kernel functions and bandwidth rules, with the names and signatures of the original ``analysis.kernels``.

Every function here takes and returns what the original's function of the same name does (same
parameter names, positions and defaults; numpy arrays or numpy scalars), so that code written for the
original runs unchanged (``sys.modules['analysis'] = core.analysis``). The project's own two-sample
test, :func:`core.analysis.mmd_test`, uses a per-dimension bandwidth from :func:`bandwidth`
(``type='std'``) through :func:`core.analysis.mmd.bandwidth`.

Scales follow one convention throughout: a scalar divides every dimension, a ``(D,)`` array divides
each dimension by its own value, and a ``(D, D)`` array is a *squared* scale (a covariance) whose
inverse weights the inner product.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

__all__ = ["KernelFunc", "product", "sq_dist", "exp_quad", "rat_quad", "polynomial", "bandwidth"]

#: Signature of a kernel: ``kernel(x, y, **kwargs) -> array`` over the last axis of broadcastable x, y.
KernelFunc = Callable[[np.ndarray, np.ndarray, Optional[Any]], np.ndarray]

_BANDWIDTH_TYPES = ("median", "rms", "std", "cov")


def product(x, y, scale=1.):
    """Scaled inner product of two collections of points.

    Parameters
    ----------
    x, y : array_like, shape (..., D)
        Points along the last axis; the leading shapes must broadcast.
    scale : float or array_like, shape (D,) or (D, D)
        Scalar: ``x·y / scale²``. ``(D,)``: each dimension divided by its own scale. ``(D, D)``: a
        squared scale matrix S, giving ``x' S⁻¹ y``.

    Returns
    -------
    numpy.ndarray or numpy.float64
        The broadcast shape of ``x`` and ``y`` without the last axis.
    """
    x, y = np.asarray(x), np.asarray(y)
    scale = np.asarray(scale)
    if scale.ndim == 0:
        return (x * y).sum(axis=-1) / scale ** 2
    if scale.ndim == 1:
        return ((x / scale) * (y / scale)).sum(axis=-1)
    weights = np.linalg.inv(scale)
    return np.einsum("...i,ij,...j->...", x, weights, y)


def sq_dist(x, y, scale=1.):
    """Scaled squared Euclidean distance: :func:`product` of ``x - y`` with itself.

    Parameters and result as :func:`product` (``scale``: scalar, ``(D,)`` or squared ``(D, D)``).
    """
    diff = np.asarray(x) - np.asarray(y)
    return product(diff, diff, scale)


def exp_quad(x: np.ndarray, y: np.ndarray, scale=1.):
    """Exponentiated quadratic (Gaussian) kernel ``exp(-sq_dist(x, y, scale) / 2)``, in (0, 1]."""
    return np.exp(-.5 * sq_dist(x, y, scale))


def rat_quad(x: np.ndarray, y: np.ndarray, exponent: float, scale=1.):
    """Rational quadratic kernel ``(1 + sq_dist(x, y, scale) / (2 exponent)) ** -exponent``."""
    return (1. + .5 * sq_dist(x, y, scale) / exponent) ** (-exponent)


def polynomial(x: np.ndarray, y: np.ndarray, power: int, scale=1.):
    """Polynomial kernel ``(product(x, y, scale) / D + 1) ** power`` (D: size of the last axis)."""
    x = np.asarray(x)
    return (product(x, y, scale) / x.shape[-1] + 1.) ** power


def _scale_of(x: np.ndarray, type: str):
    if type == "median":
        # Median over all pairs (x[i], x[j + 1]) of the first N-1 and last N-1 rows, as the original.
        return np.sqrt(np.median(sq_dist(x[:-1, None], x[None, 1:]).ravel()))
    if type == "rms":
        return np.sqrt(2. * np.var(x, axis=0, ddof=1).sum())
    if type == "std":
        return np.std(x, axis=0, ddof=1)
    if type == "cov":
        return np.cov(x, rowvar=False, ddof=1)
    raise ValueError(f"bandwidth type must be one of {list(_BANDWIDTH_TYPES)}; got {type!r}")


def _factor_of(n: int, d: int, factor):
    if isinstance(factor, str) and factor == "scott":
        return n ** (-1. / (d + 4.))
    if isinstance(factor, str) and factor == "silverman":
        return (n * (d + 2.) / 4.) ** (-1. / (d + 4.))
    if isinstance(factor, str) or not np.isscalar(factor):
        raise ValueError(f"factor must be a scalar, 'scott' or 'silverman'; got {factor!r}")
    return factor


def bandwidth(*x: np.ndarray, type='cov', factor: Union[float, str] = 'scott', subsample=None):
    """Kernel bandwidth of one or more samples by a rule of thumb.

    Parameters
    ----------
    *x : array_like, shape (N_i, D)
        Samples. With several, each one's bandwidth is computed alone and they are combined into that
        of the convolution of their Gaussian kernels: covariances add, other scales add in squares.
    type : {'median', 'rms', 'std', 'cov'}
        Scale of each sample: ``'median'``, square root of the median squared distance between rows
        (O(N²) memory); ``'rms'``, root-mean-square distance between rows,
        ``sqrt(2 sum(var(ddof=1)))``; ``'std'``, per-dimension standard deviations (``ddof=1``);
        ``'cov'``, the covariance matrix (a *squared* scale).
    factor : float or {'scott', 'silverman'}
        Multiplier of the scale: ``'scott'`` ``N**(-1/(D+4))``, ``'silverman'``
        ``(N(D+2)/4)**(-1/(D+4))`` (N before subsampling), or the number given. A ``'cov'`` scale
        is multiplied by its square.
    subsample : float, optional
        Fraction in (0, 1) of each sample's rows to use, drawn without replacement from numpy's
        global random state (``np.random.choice``).

    Returns
    -------
    numpy.float64 or numpy.ndarray
        ``'median'``/``'rms'``: a scalar; ``'std'``: shape (D,); ``'cov'``: shape (D, D).
    """
    if len(x) > 1:
        parts = np.array([bandwidth(sample, type=type, factor=factor, subsample=subsample)
                          for sample in x])
        return parts.sum(0) if type == "cov" else np.sqrt((parts ** 2).sum(0))
    if not x:
        raise ValueError("bandwidth needs at least one sample")
    data = np.asarray(x[0])
    if data.ndim != 2:
        raise ValueError(f"bandwidth needs samples of shape (N, D); got shape {data.shape}")
    n, d = data.shape
    if subsample is not None:
        if not 0. < subsample < 1.:
            raise ValueError(f"subsample must be in (0, 1); got {subsample}")
        data = data[np.random.choice(n, size=int(subsample * n), replace=False)]
    scale = _scale_of(data, type)
    f = _factor_of(n, d, factor)
    return scale * f ** 2 if type == "cov" else scale * f
