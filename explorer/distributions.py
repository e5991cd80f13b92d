"""Distributions: any metric against any other, coloured by digit label, with per-label violins.

As the paper's Figure 3. The scatter draws every digit with WebGL (fluid at 70,000 points): digits that
pass the browser's filters in their label's colour, the others in light grey. A box or lasso selection in
the scatter becomes a filter of the browser (linked selection).
"""
from __future__ import annotations

import os

import numpy as np
import panel as pn
import param
from bokeh.models import BoxSelectTool, ColumnDataSource, FactorRange, LassoSelectTool, LinearColorMapper
from bokeh.plotting import figure

from explorer.browser import LABEL_COLOURS, METRIC_LABELS
from explorer.data import METRICS
from explorer.state import ExplorerState

__all__ = ["Distributions", "violin_patches"]

_NO_LABEL_COLOUR = "#555555"
_FILTERED_COLOUR = "#cfcfcf"


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
    counts = np.zeros((len(keys), bins))
    bi = np.clip(np.searchsorted(edges, values[valid], side="right") - 1, 0, bins - 1)
    np.add.at(counts, (gi[valid], bi), 1)
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
        out["colour"].append(LABEL_COLOURS[int(key) % 10] if int(key) >= 0 else _NO_LABEL_COLOUR)
        out["n"].append(n)
        out["median"].append(float(np.median(values[valid][gi[valid] == k])))
    return out


class Distributions(pn.viewable.Viewer):
    """Scatter of metric ``x`` against metric ``y`` with per-label violins of both."""

    state = param.ClassSelector(class_=ExplorerState)
    x = param.Selector(default="thickness", objects=list(METRICS))
    y = param.Selector(default="slant", objects=list(METRICS))
    backend = param.Selector(default=os.environ.get("MORPHO_EXPLORER_SCATTER", "webgl"),
                             objects=["webgl", "canvas"], constant=True,
                             doc="Bokeh output backend of the scatter: WebGL draws 70,000 points fluidly on a "
                                 "GPU; canvas can be faster on software-only rendering.")

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        self._x = pn.widgets.Select(name="x", options={METRIC_LABELS[m]: m for m in METRICS}, value=self.x,
                                    width=180)
        self._y = pn.widgets.Select(name="y", options={METRIC_LABELS[m]: m for m in METRICS}, value=self.y,
                                    width=180)
        self._x.link(self, value="x")
        self._y.link(self, value="y")
        self._clear = pn.widgets.Button(name="Clear scatter selection", button_type="light")
        self._clear.on_click(lambda e: setattr(s, "scatter_selection", None))
        self._info = pn.pane.Markdown("", margin=(8, 10))

        # One source for every digit (row i = digit i), numeric columns only: they travel as binary arrays,
        # and a filter change only resends the colour codes and alphas. This keeps 70,000 points fluid.
        self._points = ColumnDataSource(data={"x": np.zeros(0), "y": np.zeros(0), "code": np.zeros(0, np.int8),
                                              "alpha": np.zeros(0, np.float32)})
        mapper = LinearColorMapper(palette=LABEL_COLOURS + [_NO_LABEL_COLOUR, _FILTERED_COLOUR],
                                   low=-0.5, high=11.5)
        colour = {"field": "code", "transform": mapper}
        fig = figure(width=620, height=520, output_backend=self.backend, name="scatter",
                     tools="pan,wheel_zoom,reset", toolbar_location="above")
        self._scatter = fig.scatter("x", "y", source=self._points, size=3.5, color=colour, alpha="alpha",
                                    selection_color=colour, selection_alpha=0.9,
                                    nonselection_color="#bbbbbb", nonselection_alpha=0.12)
        box = BoxSelectTool(renderers=[self._scatter])
        lasso = LassoSelectTool(renderers=[self._scatter])
        fig.add_tools(box, lasso)
        fig.toolbar.active_drag = box
        fig.toolbar.logo = None
        self._fig = fig
        self._points.selected.on_change("indices", self._on_select)
        self._violins = {}
        self._violin_figs = {}
        for axis in ("x", "y"):
            src = ColumnDataSource(data={"xs": [], "ys": [], "key": [], "colour": [], "n": [], "median": []})
            vf = figure(width=560, height=250, x_range=FactorRange(*[str(k) for k in range(10)]),
                        tools="hover", tooltips=[("label", "@key"), ("digits", "@n"),
                                                 ("median", "@median{0.000}")],
                        toolbar_location=None, name=f"violins-{axis}")
            vf.patches("xs", "ys", source=src, fill_color="colour", line_color="colour", fill_alpha=0.55)
            vf.xaxis.axis_label = "digit label"
            self._violins[axis] = src
            self._violin_figs[axis] = vf
        self._syncing = False
        self.param.watch(self._render_axes, ["x", "y"])
        s.param.watch(self._render_axes, ["dataset"])
        s.param.watch(self._render_filtered, ["labels", "perturbations", "ranges"])
        s.param.watch(self._render_selection, ["scatter_selection", "selection"])
        self._render_axes()

    # Coordinates of all digits only change with the axes or the dataset; filters only recolour.
    def _render_axes(self, *_):
        ds = self.state.dataset
        self._fig.xaxis.axis_label = METRIC_LABELS[self.x]
        self._fig.yaxis.axis_label = METRIC_LABELS[self.y]
        code, alpha = self._colours()
        self._syncing = True
        try:
            self._points.data = {"x": np.ascontiguousarray(ds.metrics[self.x].to_numpy()),
                                 "y": np.ascontiguousarray(ds.metrics[self.y].to_numpy()),
                                 "code": code, "alpha": alpha}
        finally:
            self._syncing = False
        self._render_selection()

    def _colours(self):
        """Colour code (label, 10 no label, 11 filtered out) and alpha of every digit."""
        s, ds = self.state, self.state.dataset
        mask = s.filter_mask(exclude_scatter=True)
        labels = ds.labels if ds.labels is not None else np.full(len(ds), -1)
        code = np.where(labels >= 0, labels % 10, 10).astype(np.int8)
        code[~mask] = 11
        alpha = np.where(mask, 0.55, 0.25).astype(np.float32)
        self._shown = int(mask.sum())
        return code, alpha

    def _render_filtered(self, *_):
        code, alpha = self._colours()
        self._syncing = True
        try:
            self._points.data.update(code=code, alpha=alpha)
        finally:
            self._syncing = False
        self._render_selection()

    def _render_selection(self, *_):
        s, ds = self.state, self.state.dataset
        self._syncing = True
        try:
            want = [] if s.scatter_selection is None else np.asarray(s.scatter_selection).tolist()
            if want != list(self._points.selected.indices):  # no echo of the scatter's own selection
                self._points.selected.indices = want
        finally:
            self._syncing = False
        # The violins show the digits in the browser (all filters, the scatter selection included).
        sel = s.selection
        groups = ds.labels[sel] if ds.labels is not None else np.full(len(sel), -1)
        keys = list(range(10)) if ds.labels is not None else [-1]
        for axis in ("x", "y"):
            metric = getattr(self, axis)
            self._violins[axis].data = violin_patches(ds.metrics[metric].to_numpy()[sel], groups, keys)
            self._violin_figs[axis].yaxis.axis_label = METRIC_LABELS[metric]
            self._violin_figs[axis].x_range.factors = [str(k) for k in keys]
        shown = self._shown
        self._info.object = (f"{shown:,} digits pass the filters (coloured; the rest grey) · "
                             + (f"**{len(s.scatter_selection):,} selected**" if s.scatter_selection is not None
                                else "box or lasso select to filter the browser"))

    def _on_select(self, attr, old, new):
        if self._syncing:
            return
        self.state.scatter_selection = np.asarray(new, dtype=np.int64) if len(new) else None

    def __panel__(self):
        return pn.Column(
            pn.Row(self._x, self._y, self._clear, self._info),
            pn.Row(pn.pane.Bokeh(self._fig),
                   pn.Column(pn.pane.Bokeh(self._violin_figs["y"]), pn.pane.Bokeh(self._violin_figs["x"]))),
            css_classes=["explorer-distributions"],
        )
