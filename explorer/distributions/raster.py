"""The scatter's points drawn on the server into one image, and which digit lies under the mouse.

Sending 70,000 points to the browser and letting it draw and hit-test them made a box selection take
1.6 s (WebGL, software-rendered) and every filter change resend the colours. Instead the server draws the
visible range into an RGBA image the size of the plot (a few milliseconds with numpy) and answers hover,
click and box/lasso selection from the coordinates it holds: the browser only ever receives one image.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rasterize", "nearest", "in_rect", "in_polygon", "PALETTE_RGB"]

#: Colour of each code: labels 0-9 (Bokeh Category10), 10 no label, 11 filtered out.
PALETTE_HEX = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#555555", "#d4d4d4"]
PALETTE_RGB = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE_HEX], np.uint8)
FILTERED = 11


def rasterize(x: np.ndarray, y: np.ndarray, code: np.ndarray, x_range: tuple, y_range: tuple,
              width: int, height: int, *, selected: np.ndarray | None = None, dot: int = 2) -> np.ndarray:
    """Draw points as ``dot`` x ``dot`` squares on a transparent background (the plot's own background
    shows through, light or dark theme).

    Filtered-out points (code 11) are drawn first, then the others in index order; with a selection,
    unselected points are drawn faded (a quarter opaque) and the selected ones on top in full colour.

    Parameters
    ----------
    x, y : numpy.ndarray
        float (N,) coordinates in data units (NaN: not drawn).
    code : numpy.ndarray
        int (N,) colour codes, indices into :data:`PALETTE_RGB`.
    x_range, y_range : tuple of float
        (start, end) shown, data units.
    width, height : int
        Image size, pixels.
    selected : numpy.ndarray, optional
        bool (N,) mask of the selected points.
    dot : int
        Side of each point's square, pixels.

    Returns
    -------
    numpy.ndarray
        uint32 (height, width) packed RGBA, bottom row first (as Bokeh's ``image_rgba`` wants).
    """
    img = np.zeros((height, width, 4), np.uint8)
    x0, x1 = x_range
    y0, y1 = y_range
    with np.errstate(invalid="ignore", divide="ignore"):
        col = np.floor((x - x0) / (x1 - x0) * width).astype(np.int64, copy=False)
        row = np.floor((y - y0) / (y1 - y0) * height).astype(np.int64, copy=False)
    ok = np.isfinite(x) & np.isfinite(y) & (col > -dot) & (col < width) & (row > -dot) & (row < height)
    rgba = np.empty((len(x), 4), np.uint8)
    rgba[:, :3] = PALETTE_RGB[code]
    rgba[:, 3] = 255
    if selected is not None:
        rgba[~selected, 3] = 64
    # Painter's order: filtered-out grey, then unselected, then selected (later writes win).
    rank = (code != FILTERED).astype(np.int8)
    if selected is not None:
        rank = rank + 2 * selected.astype(np.int8)
    order = np.flatnonzero(ok)
    order = order[np.argsort(rank[order], kind="stable")]
    c, r, paint = col[order], row[order], rgba[order]
    flat = img.reshape(-1, 4)
    for dr in range(dot):
        for dc in range(dot):
            rr, cc = r + dr, c + dc
            inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
            flat[rr[inside] * width + cc[inside]] = paint[inside]
    return img.view(np.uint32)[..., 0]


def nearest(x: np.ndarray, y: np.ndarray, px: float, py: float, x_scale: float, y_scale: float,
            max_px: float = 8.0, candidates: np.ndarray | None = None) -> int:
    """Index of the point nearest (``px``, ``py``) on screen, or -1 if none is within ``max_px`` pixels.

    Parameters
    ----------
    x, y : numpy.ndarray
        float (N,) coordinates, data units.
    px, py : float
        The mouse position, data units.
    x_scale, y_scale : float
        Screen pixels per data unit along each axis (the plot's zoom).
    candidates : numpy.ndarray, optional
        Indices to consider (e.g. the digits passing the filters); all when omitted.
    """
    idx = np.arange(len(x)) if candidates is None else np.asarray(candidates)
    if len(idx) == 0:
        return -1
    dx = (x[idx] - px) * x_scale
    dy = (y[idx] - py) * y_scale
    d2 = dx * dx + dy * dy
    d2 = np.where(np.isnan(d2), np.inf, d2)
    k = int(np.argmin(d2))
    return int(idx[k]) if d2[k] <= max_px * max_px else -1


def in_rect(x: np.ndarray, y: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Indices of the points inside a box (bounds in any order), int64 (k,)."""
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    with np.errstate(invalid="ignore"):
        return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def in_polygon(x: np.ndarray, y: np.ndarray, xs, ys) -> np.ndarray:
    """Indices of the points inside a polygon (a lasso), by the even-odd rule, int64 (k,).

    The polygon's bounding box first narrows the candidates, then one crossing test per edge runs over
    those only (a lasso has a few hundred vertices).
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 3:
        return np.zeros(0, np.int64)
    cand = in_rect(x, y, xs.min(), xs.max(), ys.min(), ys.max())
    cx, cy = x[cand], y[cand]
    inside = np.zeros(len(cand), bool)
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    for xa, ya, xb, yb in zip(xs, ys, xj, yj):
        if ya == yb:
            continue
        crosses = (ya > cy) != (yb > cy)
        x_at = xa + (cy - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (cx < x_at)
    return cand[inside]
