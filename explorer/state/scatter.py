"""The scatter plot's axes and its box/lasso selection (one of the filters, see :mod:`.filters`)."""
from __future__ import annotations

import param

from explorer.data import METRICS

__all__ = ["ScatterState"]


class ScatterState(param.Parameterized):
    """Which metrics the scatter plots, and the digits picked in it."""

    scatter_selection = param.Parameter(default=None, doc="Indices picked in the scatter (box/lasso), "
                                                        "or None for no scatter selection.")
    scatter_x = param.Selector(default="thickness", objects=list(METRICS), doc="Scatter plot's x metric.")
    scatter_y = param.Selector(default="slant", objects=list(METRICS), doc="Scatter plot's y metric.")
