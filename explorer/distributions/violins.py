"""Per-label violins of a metric, as in the paper's Figure 3: one mirrored, smoothed histogram per label."""
from __future__ import annotations

import numpy as np

from explorer.distributions.raster import PALETTE_HEX

__all__ = ["violin_patches", "NO_LABEL_COLOUR"]

NO_LABEL_COLOUR = PALETTE_HEX[10]
LABEL_COLOURS = PALETTE_HEX[:10]


def violin_patches(values: np.ndarray, groups: np.ndarray, keys: list, bins: int = 40,
                   half_width: float = 0.42) -> dict:
    """Histogram violins: one mirrored, smoothed histogram per group, for a Bokeh ``patches`` glyph.

    Parameters
    ----------
    values : numpy.ndarray
        Metric values (NaNs ignored).
    groups : numpy.ndarray
        Group key of each value.
    keys : list
        Groups to draw, in order; group ``k`` is centred at x = position ``k`` + 0.5.
    bins : int
    half_width : float
        Half the width of the widest violin, in category units.

    Returns
    -------
    dict
        Columns ``xs``, ``ys`` (lists of arrays), ``key``, ``colour``, ``n``, ``median``.
    """
    ok = np.isfinite(values)
    values, groups = values[ok], groups[ok]
    out = {"xs": [], "ys": [], "key": [], "colour": [], "n": [], "median": []}
    if len(values) == 0:
        return out
    lo, hi = np.percentile(values, [0.2, 99.8])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    # Fewer bins for few digits, so that a small selection still reads as a shape, not spikes.
    bins = int(np.clip(np.sqrt(len(values) / max(len(keys), 1)) * 2, 8, bins))
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    kernel = np.array([1, 4, 6, 4, 1], float) / 16  # light smoothing, so small groups read as shapes
    # One vectorised 2-D histogram for all groups.
    gi = np.searchsorted(np.asarray(keys), groups) if len(keys) else np.zeros(0, int)
    valid = (gi < len(keys)) & np.isin(groups, keys)
    bi = np.clip(np.searchsorted(edges, values[valid], side="right") - 1, 0, bins - 1)
    counts = np.bincount(gi[valid] * bins + bi, minlength=len(keys) * bins).reshape(len(keys), bins).astype(float)
    smooth = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 1, counts)
    dens = smooth / np.maximum(smooth.sum(axis=1, keepdims=True), 1)
    peak = dens.max() if dens.size and dens.max() > 0 else 1
    for k, key in enumerate(keys):
        n = int(counts[k].sum())
        if n == 0:
            continue
        w = dens[k] / peak * half_width
        x0 = k + 0.5
        out["xs"].append(np.concatenate([x0 - w, (x0 + w)[::-1]]))
        out["ys"].append(np.concatenate([centres, centres[::-1]]))
        out["key"].append(str(key))
        out["colour"].append(LABEL_COLOURS[int(key) % 10] if int(key) >= 0 else NO_LABEL_COLOUR)
        out["n"].append(n)
        out["median"].append(float(np.median(values[valid][gi[valid] == k])))
    return out
