"""Filters, sort order, paging and the current digit: which digits the views show.

Filters combine with AND: digit labels, perturbation labels, a [lo, hi] range per metric and the
box/lasso selection made in the scatter plot (:mod:`.scatter`). ``selection`` holds the indices passing
all filters, in the order chosen by ``sort_by``; the browser pages through it.
"""
from __future__ import annotations

import numpy as np
import param

from explorer.data import METRICS
from explorer.state.dataset import DatasetState
from explorer.state.scatter import ScatterState

__all__ = ["FilterState"]


class FilterState(DatasetState, ScatterState):
    """Filters over the dataset, the sorted selection they leave, the page and the current digit.

    Built on the dataset and the scatter's selection (they filter by them, and follow a new dataset).
    """

    labels = param.List(default=[], item_type=int, doc="Digit labels to show; empty shows all.")
    perturbations = param.List(default=[], item_type=int, doc="Perturbation labels to show; empty: all.")
    ranges = param.Dict(default={}, doc="Metric name -> [lo, hi] range filter.")
    sort_by = param.Selector(default="index", objects=["index", *METRICS], doc="Order of the selection.")
    descending = param.Boolean(default=False)

    selection = param.Array(default=np.zeros(0, np.int64), doc="Indices passing all filters, sorted.")
    current = param.Integer(default=0, bounds=(0, None), doc="Index of the current digit.")
    page = param.Integer(default=0, bounds=(0, None), doc="Browser page (0-based).")
    page_size = param.Integer(default=100, bounds=(1, None))

    @param.depends("dataset", watch=True, on_init=False)
    def _on_dataset(self):
        # A new dataset: clear what referred to the old one, clamp ranges to the new metrics.
        ds = self.dataset
        with param.parameterized.batch_call_watchers(self):
            self.scatter_selection = None
            self.ranges = {k: v for k, v in self.ranges.items() if k in METRICS}
            if self.current >= len(ds):
                self.current = 0
        self._update_selection()

    @param.depends("labels", "perturbations", "ranges", "scatter_selection", "sort_by", "descending",
                   watch=True)
    def _update_selection(self):
        ds = self.dataset
        if ds is None:
            return
        mask = self.filter_mask(exclude_scatter=False)
        idx = np.flatnonzero(mask)
        if self.sort_by != "index":
            values = ds.metrics[self.sort_by].to_numpy()[idx]
            # NaNs (unmeasurable digits) always last, stable order among equal values
            key = -values if self.descending else values
            order = np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")
            idx = idx[order]
        elif self.descending:
            idx = idx[::-1]
        with param.parameterized.batch_call_watchers(self):
            self.selection = idx
            last_page = max(0, (len(idx) - 1) // self.page_size)
            if self.page > last_page:
                self.page = last_page

    def filter_mask(self, exclude_scatter: bool = False) -> np.ndarray:
        """Boolean mask of the digits passing the filters.

        Parameters
        ----------
        exclude_scatter : bool
            Leave out the scatter selection (the scatter shows the other filters and its own selection).
        """
        ds = self.dataset
        n = len(ds)
        mask = np.ones(n, bool)
        if self.labels and ds.labels is not None:
            mask &= np.isin(ds.labels, self.labels)
        if self.perturbations and ds.perturbations is not None:
            mask &= np.isin(ds.perturbations, self.perturbations)
        for metric, bounds in self.ranges.items():
            if metric not in METRICS or bounds is None:
                continue
            lo, hi = bounds
            values = ds.metrics[metric].to_numpy()
            with np.errstate(invalid="ignore"):
                mask &= (values >= lo) & (values <= hi)
        if not exclude_scatter and self.scatter_selection is not None:
            picked = np.zeros(n, bool)
            sel = np.asarray(self.scatter_selection, dtype=np.int64)
            picked[sel[(sel >= 0) & (sel < n)]] = True
            mask &= picked
        return mask

    def reset_filters(self):
        """Show every digit again."""
        self.param.update(labels=[], perturbations=[], ranges={}, scatter_selection=None)

    def metric_bounds(self, metric: str) -> tuple[float, float]:
        """Finite (min, max) of a metric over the dataset."""
        values = self.dataset.metrics[metric].to_numpy()
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return 0.0, 1.0
        return float(values.min()), float(values.max())
