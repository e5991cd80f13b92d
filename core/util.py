"""Matplotlib helpers with the names and signatures of the original ``morphomnist.util``.

``plot_digit``, ``plot_grid``, ``plot_ellipse`` and ``plot_parallelogram`` draw as the original's
(same defaults: reversed grey colour map, hidden axes, column-first grid order), so notebooks and
scripts written for ``morphomnist.util`` run on ``core.util``. matplotlib is an optional dependency
(``pip install morpho-mnist-explorer[plot]``): importing this module does not need it, calling a
function does. The explorer draws with Bokeh and does not use this module.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["plot_digit", "plot_grid", "plot_ellipse", "plot_parallelogram"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:   # optional extra: say how to get it
        raise ImportError("core.util needs matplotlib: pip install 'morpho-mnist-explorer[plot]' "
                          "(or pip install matplotlib)") from None
    return plt


def plot_digit(img, ax=None, title=None, **kwargs):
    """Draw one digit as an image with hidden axes.

    Parameters
    ----------
    img : array_like, shape (H, W) (or with extra length-1 axes)
        The digit; ink is dark (colour map ``'gray_r'`` unless ``cmap`` is given).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default the current axes.
    title : str, optional
        Axes title.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` (they override ``cmap='gray_r'``).
    """
    if ax is None:
        ax = _pyplot().gca()
    options = {"cmap": "gray_r", **kwargs}
    ax.imshow(np.asarray(img).squeeze(), **options)
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)
    if title is not None:
        ax.set_title(title)


def plot_grid(imgs, nrow=None, digit_kw=None, **kwargs) -> Tuple["object", np.ndarray]:
    """Draw digits on a grid of new subplots, filling each column top to bottom, then the next.

    Parameters
    ----------
    imgs : array_like, shape (N, H, W)
        The digits.
    nrow : int, optional
        Rows of the grid; default ``floor(sqrt(N))`` (a near-square grid). Columns:
        ``ceil(N / nrow)``.
    digit_kw : dict, optional
        Keyword arguments of :func:`plot_digit` for every digit.
    **kwargs
        Passed to :func:`matplotlib.pyplot.subplots` (e.g. ``figsize``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axs : numpy.ndarray of matplotlib.axes.Axes, shape (ncol, nrow)
        The subplots transposed (``axs.flat[i]`` holds digit i); unused subplots are hidden.
    """
    imgs = np.asarray(imgs)
    num = imgs.shape[0]
    if nrow is None:
        nrow = int(np.floor(np.sqrt(num)))
    ncol = int(np.ceil(num / nrow))
    fig, axs = _pyplot().subplots(nrow, ncol, **kwargs)
    axs = np.atleast_1d(axs).T
    digit_kw = {} if digit_kw is None else digit_kw
    for i in range(num):
        ax = axs.flat[i]
        plot_digit(imgs[i], ax, **digit_kw)
        ax.axis("off")
    for ax in axs.flat[num:]:
        ax.set_visible(False)
    return fig, axs


def plot_ellipse(x, y, angle, major, minor, ax=None, **kwargs):
    """Draw an ellipse, e.g. the one of a digit's image moments.

    Parameters
    ----------
    x, y : float
        Centre, in data (pixel) coordinates.
    angle : float
        Direction of the major axis, radians, counter-clockwise in data coordinates.
    major, minor : float
        Semi-axis lengths (the ellipse is ``2 * major`` by ``2 * minor`` across).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default the current axes.
    **kwargs
        Passed to :class:`matplotlib.patches.Ellipse` (e.g. ``fill=False``, ``color``).
    """
    from matplotlib.patches import Ellipse

    if ax is None:
        ax = _pyplot().gca()
    ax.add_patch(Ellipse(xy=(x, y), width=2 * major, height=2 * minor, angle=np.rad2deg(angle),
                         **kwargs))


def plot_parallelogram(top_left, top_right, bottom_right, bottom_left, scale=1., ax=None, **kwargs):
    """Draw the closed outline through four corners, e.g. a digit's bounding parallelogram.

    Parameters
    ----------
    top_left, top_right, bottom_right, bottom_left : array_like, shape (2,)
        Corners as (x, y). Each is drawn at ``scale * corner - 0.5``: corners in pixel-edge
        coordinates land on the pixel-centre grid that ``imshow`` uses.
    scale : float
        Factor from the corners' coordinates to the drawn image's, useful when they were found at
        another resolution (e.g. ``1 / 4`` for corners on a 4x upsampled digit drawn at 28x28).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default the current axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.
    """
    if ax is None:
        ax = _pyplot().gca()
    outline = np.array([top_left, top_right, bottom_right, bottom_left, top_left], dtype=float)
    ax.plot(*(scale * outline.T - .5), **kwargs)
