"""The Distributions view: a scatter of two metrics and per-label violins of both, linked to the browser.

The scatter (as the paper's Figure 3) colours each digit by its label; digits failing the browser's
filters are light grey. Hover shows a digit's thumbnail, label and the two metrics; a click makes it the
current digit; a box or lasso selection becomes a filter of the browser. The axes and the selection live
in :class:`~explorer.state.ExplorerState` (``scatter_x``, ``scatter_y``, ``scatter_selection``), so in the
URL. The points are drawn on the server (see :mod:`explorer.distributions.raster` for why).
"""
from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.events import MouseLeave, MouseMove, RangesUpdate, SelectionGeometry, Tap
from bokeh.models import (BoxSelectTool, ColumnDataSource, FactorRange, LassoSelectTool, Label, Legend,
                          LegendItem, LinearColorMapper, Range1d)
from bokeh.palettes import Greys256
from bokeh.plotting import figure

from explorer.browser import METRIC_LABELS
from explorer.data import METRICS
from explorer.distributions.raster import FILTERED, PALETTE_HEX, in_polygon, in_rect, nearest, rasterize
from explorer.distributions.violins import violin_patches
from explorer.plotting import TOOLS
from explorer.state import ExplorerState

__all__ = ["Distributions"]

_BORDERS = {"min_border_left": 56, "min_border_right": 8, "min_border_top": 8, "min_border_bottom": 44}
_LEGEND_PX = 74  # the label legend on the right of the scatter
_THUMB_PX = 56  # hover thumbnail, screen pixels


def _padded(values: np.ndarray, pad: float = 0.04) -> tuple[float, float]:
    """(lo, hi) of the finite values, widened by ``pad`` of the span on each side."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else 1.0
    return lo - pad * span, hi + pad * span


class Distributions(pn.viewable.Viewer):
    """Scatter of metric ``scatter_x`` against ``scatter_y`` with per-label violins of both.

    Parameters
    ----------
    state : ExplorerState
        Shared state; a new one on the bundled sample when omitted.
    x, y : str, optional
        Metrics on the axes to start with (they set ``state.scatter_x`` / ``scatter_y``).
    width, height : int
        Size of the scatter on screen (pixels), legend included; the violins take ``violin_width``.
    """

    state = param.ClassSelector(class_=ExplorerState)
    width = param.Integer(default=560)
    height = param.Integer(default=440)
    violin_width = param.Integer(default=380)

    def __init__(self, state: ExplorerState | None = None, *, x: str | None = None, y: str | None = None,
                 **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        # x, y: the axes to start with (metric names); they are the shared state's, so the URL's.
        s.param.update(**{k: v for k, v in (("scatter_x", x), ("scatter_y", y)) if v is not None})
        options = {METRIC_LABELS[m]: m for m in METRICS}
        self._x = pn.widgets.Select(name="x axis", options=options, value=s.scatter_x, width=150)
        self._y = pn.widgets.Select(name="y axis", options=options, value=s.scatter_y, width=150)
        self._x.param.watch(lambda e: setattr(s, "scatter_x", e.new), "value")
        self._y.param.watch(lambda e: setattr(s, "scatter_y", e.new), "value")
        self._clear = pn.widgets.Button(name="Clear selection", button_type="light", width=130,
                                        description="Remove the box/lasso selection from the filters")
        self._clear.on_click(lambda e: setattr(s, "scatter_selection", None))
        self._info = pn.pane.Markdown("", margin=(0, 10), css_classes=["explorer-scatter-status"])
        self._build_scatter()
        self._build_violins()
        s.param.watch(self._on_axes, ["scatter_x", "scatter_y", "dataset"])
        s.param.watch(self._on_filters, ["labels", "perturbations", "ranges"])
        s.param.watch(self._on_scatter_selection, ["scatter_selection"])
        s.param.watch(self._on_selection, ["selection"])
        s.param.watch(self._draw_current, ["current"])
        self._on_axes()

    # ---------------------------------------------------------------------------------------------------
    # building

    def _build_scatter(self):
        fig = figure(width=self.width, height=self.height, x_range=Range1d(0, 1), y_range=Range1d(0, 1),
                     tools=TOOLS, toolbar_location="above", name="scatter", **_BORDERS)
        fig.toolbar.logo = None
        self._image = ColumnDataSource(data={"image": [np.zeros((1, 1), np.uint32)], "x": [0.0], "y": [0.0],
                                             "dw": [1.0], "dh": [1.0]})
        fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=self._image)
        # Select tools need a renderer; the selection itself is computed here from the geometry.
        self._select_target = fig.scatter(x=[], y=[], alpha=0)
        box = BoxSelectTool(renderers=[self._select_target], description="Box select (filters the browser)")
        lasso = LassoSelectTool(renderers=[self._select_target], description="Lasso select (filters the browser)")
        fig.add_tools(box, lasso)
        fig.toolbar.active_drag = box
        # The outline of the last box/lasso, and a ring on the current digit.
        self._outline = ColumnDataSource(data={"x": [], "y": []})
        fig.patch(x="x", y="y", source=self._outline, fill_alpha=0.05, fill_color="#333",
                  line_color="#333", line_dash="dashed", line_width=1.5)
        self._current = ColumnDataSource(data={"x": [], "y": []})
        fig.scatter(x="x", y="y", source=self._current, size=14, marker="circle", fill_alpha=0,
                    line_color="#d6008f", line_width=2.5)  # magenta: visible on light and dark themes
        # Hover card: a ring on the digit, its thumbnail and a label with the label and two metrics.
        self._hover_ring = ColumnDataSource(data={"x": [], "y": []})
        fig.scatter(x="x", y="y", source=self._hover_ring, size=11, marker="circle", fill_alpha=0,
                    line_color="#ff8c00", line_width=2.5)
        self._thumb = ColumnDataSource(data={"image": [], "x": [], "y": [], "dw": [], "dh": []})
        fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self._thumb,
                  color_mapper=LinearColorMapper(palette=Greys256, low=0, high=255))
        self._card = Label(x=0, y=0, x_units="data", y_units="data", text="", visible=False, name="hover-card",
                           text_font_size="12px", background_fill_color="white", background_fill_alpha=0.92,
                           border_line_color="#888", padding=4)
        fig.add_layout(self._card)
        # A legend of the label colours (renderers without data draw only the legend's swatches).
        # Clicking an entry hides its points: the browser toggles the swatch renderer's `visible`, which
        # comes back here and redraws the points without that colour code.
        items = []
        self._hidden: set = set()
        for k, (name, colour) in enumerate([(str(i), PALETTE_HEX[i]) for i in range(10)]
                                           + [("no label", PALETTE_HEX[10]), ("filtered", PALETTE_HEX[FILTERED])]):
            r = fig.scatter(x=[np.nan], y=[np.nan], color=colour, size=8, marker="square")
            r.on_change("visible", lambda attr, old, new, code=k: self._on_legend(code, new))
            items.append(LegendItem(label=name, renderers=[r]))
        self._legend_items = items
        legend = Legend(items=items, title="label", glyph_width=12, glyph_height=12, label_height=12,
                        spacing=1, padding=4, margin=4, label_text_font_size="11px",
                        title_text_font_size="11px", border_line_color=None, click_policy="hide")
        fig.add_layout(legend, "right")
        fig.on_event(RangesUpdate, self._on_ranges)
        fig.on_event(SelectionGeometry, self._on_geometry)
        fig.on_event(MouseMove, self._on_hover)
        fig.on_event(MouseLeave, lambda e: self._hide_card())
        fig.on_event(Tap, self._on_tap)
        self._fig = fig
        self._hovered = -1

    def _build_violins(self):
        self._violins, self._violin_figs = {}, {}
        for axis in ("x", "y"):
            src = ColumnDataSource(data={"xs": [], "ys": [], "key": [], "colour": [], "n": [], "median": []})
            vf = figure(width=self.violin_width, height=(self.height + 30) // 2,
                        x_range=FactorRange(*[str(k) for k in range(10)]), y_range=Range1d(0, 1),
                        tools="hover,save", tooltips=[("label", "@key"), ("digits", "@n"),
                                                      ("median", "@median{0.000}")],
                        toolbar_location="right", name=f"violins-{axis}", min_border_left=56)
            vf.toolbar.logo = None
            vf.toolbar.autohide = True
            vf.patches("xs", "ys", source=src, fill_color="colour", line_color="colour", fill_alpha=0.55)
            vf.xaxis.axis_label = "digit label"
            self._violins[axis] = src
            self._violin_figs[axis] = vf

    # ---------------------------------------------------------------------------------------------------
    # state -> plots

    def _frame_px(self) -> tuple[int, int]:
        """The scatter's frame (the area inside the axes), pixels: measured by the browser when known."""
        fig = self._fig
        try:  # read-only properties the browser reports once the plot is drawn
            w, h = fig.inner_width, fig.inner_height
        except Exception:  # not drawn yet (bokeh raises UnsetValueError)
            w = h = None
        if not w or not h:
            w = self.width - _BORDERS["min_border_left"] - _BORDERS["min_border_right"] - _LEGEND_PX
            h = self.height - _BORDERS["min_border_top"] - _BORDERS["min_border_bottom"] - 30  # toolbar
        return max(int(w), 50), max(int(h), 50)

    def _on_axes(self, *_):
        s, ds = self.state, self.state.dataset
        self._x.value, self._y.value = s.scatter_x, s.scatter_y
        self._xs = np.ascontiguousarray(ds.metrics[s.scatter_x].to_numpy(), dtype=float)
        self._ys = np.ascontiguousarray(ds.metrics[s.scatter_y].to_numpy(), dtype=float)
        labels = ds.labels if ds.labels is not None else np.full(len(ds), -1)
        self._label_codes = np.where(labels >= 0, labels % 10, 10).astype(np.int8)
        present = set(np.unique(self._label_codes).tolist())
        for code, item in enumerate(self._legend_items[:11]):  # only the labels this data has
            item.visible = code in present
        self._fig.xaxis.axis_label = METRIC_LABELS[s.scatter_x]
        self._fig.yaxis.axis_label = METRIC_LABELS[s.scatter_y]
        x0, x1 = _padded(self._xs)
        y0, y1 = _padded(self._ys)
        self._fig.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
        self._fig.y_range.update(start=y0, end=y1, reset_start=y0, reset_end=y1)
        self._view = (x0, x1, y0, y1)
        self._outline.data = {"x": [], "y": []}
        self._hide_card()
        for axis, metric in (("x", s.scatter_x), ("y", s.scatter_y)):
            vf = self._violin_figs[axis]
            lo, hi = _padded(ds.metrics[metric].to_numpy())
            vf.y_range.update(start=lo, end=hi)
            vf.yaxis.axis_label = METRIC_LABELS[metric]
        self._on_filters()

    def _on_filters(self, *_):
        s = self.state
        self._passing = s.filter_mask(exclude_scatter=True)
        self._codes = np.where(self._passing, self._label_codes, FILTERED).astype(np.int8)
        self._on_scatter_selection()

    def _on_scatter_selection(self, *_):
        # The points' image depends on the filters and the scatter selection only.
        s, ds = self.state, self.state.dataset
        if s.scatter_selection is None:
            self._selected = None
            self._outline.data = {"x": [], "y": []}
        else:
            mask = np.zeros(len(ds), bool)
            sel = np.asarray(s.scatter_selection, dtype=np.int64)
            mask[sel[(sel >= 0) & (sel < len(ds))]] = True
            self._selected = mask
        with pn.io.hold():
            self._draw_points()
            self._draw_current()
        self._on_selection()

    def _on_selection(self, *_):
        # The violins and the status line follow what passes every filter (the browser's selection).
        s, ds = self.state, self.state.dataset
        shown = getattr(self, "_shown_selection", (None, None, None))
        if shown[0] is s.selection and shown[1] is s.scatter_selection and shown[2] is self._passing:
            return  # already drawn for these objects (both state watchers fire on a box selection)
        self._shown_selection = (s.selection, s.scatter_selection, self._passing)  # references: no id reuse
        self._draw_violins()
        n_pass = int(self._passing.sum())
        if s.scatter_selection is None:
            picked = "drag a box or lasso to select digits (it filters the browser)"
        else:
            picked = f"**{len(s.scatter_selection):,} selected** ({len(s.selection):,} pass every filter)"
        self._info.object = (f"{n_pass:,} of {len(ds):,} digits pass the filters (coloured; the rest grey) "
                             f"· {picked} · hover a point to see the digit, click to inspect it")

    def _on_legend(self, code: int, visible: bool):
        if visible:
            self._hidden.discard(code)
        else:
            self._hidden.add(code)
        self._draw_points()

    def _draw_points(self):
        x0, x1, y0, y1 = self._view
        w, h = self._frame_px()
        xs = self._xs
        if self._hidden:  # labels switched off in the legend: not drawn (NaN is skipped)
            xs = np.where(np.isin(self._codes, list(self._hidden)), np.nan, xs)
        img = rasterize(xs, self._ys, self._codes, (x0, x1), (y0, y1), w, h, selected=self._selected)
        self._image.data = {"image": [img], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}

    def _draw_current(self, *_):
        i = self.state.current
        if 0 <= i < len(self._xs) and np.isfinite(self._xs[i]) and np.isfinite(self._ys[i]):
            self._current.data = {"x": [self._xs[i]], "y": [self._ys[i]]}
        else:
            self._current.data = {"x": [], "y": []}

    def _draw_violins(self):
        # The violins show the digits in the browser (all filters, the scatter selection included).
        s, ds = self.state, self.state.dataset
        sel = s.selection
        groups = ds.labels[sel] if ds.labels is not None else np.full(len(sel), -1)
        keys = list(range(10)) if ds.labels is not None else [-1]
        factors = [str(k) for k in keys] if ds.labels is not None else ["all"]  # unlabelled: one violin
        for axis, metric in (("x", s.scatter_x), ("y", s.scatter_y)):
            data = violin_patches(ds.metrics[metric].to_numpy()[sel], groups, keys)
            if ds.labels is None:
                data["key"] = ["all"] * len(data["key"])
            self._violins[axis].data = data
            vf = self._violin_figs[axis]
            if list(vf.x_range.factors) != factors:
                vf.x_range.factors = factors
                vf.xaxis.axis_label = "digit label" if ds.labels is not None else "all digits (no labels)"

    # ---------------------------------------------------------------------------------------------------
    # browser events

    def _on_ranges(self, event):
        view = (event.x0, event.x1, event.y0, event.y1)
        if None in view or np.allclose(view, self._view, rtol=1e-9, atol=0):
            return  # the plot was shown again (a tab switch): nothing to redraw
        self._view = view
        self._draw_points()
        self._hide_card()

    def _on_geometry(self, event):
        if not event.final:
            return
        g = event.geometry
        if g.get("type") == "rect":
            idx = in_rect(self._xs, self._ys, g["x0"], g["x1"], g["y0"], g["y1"])
            outline = {"x": [g["x0"], g["x1"], g["x1"], g["x0"]], "y": [g["y0"], g["y0"], g["y1"], g["y1"]]}
        elif g.get("type") == "poly":
            idx = in_polygon(self._xs, self._ys, g["x"], g["y"])
            outline = {"x": list(g["x"]), "y": list(g["y"])}
        else:
            return
        # A list of ints: the state's URL form; an empty box selects nothing (and the browser says so).
        self.state.scatter_selection = idx.tolist()
        self._outline.data = outline

    def _scales(self) -> tuple[float, float]:
        x0, x1, y0, y1 = self._view
        w, h = self._frame_px()
        return w / (x1 - x0), h / (y1 - y0)

    def _pick(self, x, y) -> int:
        if x is None or y is None:
            return -1
        sx, sy = self._scales()
        return nearest(self._xs, self._ys, x, y, sx, sy, max_px=8.0)

    def _on_hover(self, event):
        i = self._pick(event.x, event.y)
        if i == self._hovered:
            return
        self._hovered = i
        if i < 0:
            self._hide_card()
            return
        s, ds = self.state, self.state.dataset
        sx, sy = self._scales()
        x0, x1, y0, y1 = self._view
        px, py = self._xs[i], self._ys[i]
        dw, dh = _THUMB_PX / sx, _THUMB_PX / sy
        # The card sits beside the point, on the side with room.
        left = px > (x0 + x1) / 2
        tx = px - 10 / sx - dw if left else px + 10 / sx
        ty = min(max(py - dh / 2, y0), y1 - dh)
        label = f"label {ds.labels[i]}" if ds.labels is not None else "no label"
        xm, ym = s.scatter_x, s.scatter_y
        unit = {"slant": "rad", "area": "px²"}
        text = (f"#{i:,} · {label}\n{xm} {px:.2f} {unit.get(xm, 'px')}\n{ym} {py:.2f} {unit.get(ym, 'px')}")
        with pn.io.hold():
            self._hover_ring.data = {"x": [px], "y": [py]}
            self._thumb.data = {"image": [np.ascontiguousarray(ds.images[i][::-1])], "x": [tx], "y": [ty],
                                "dw": [dw], "dh": [dh]}
            card_x = tx - 4 / sx - 118 / sx if left else tx + dw + 4 / sx
            self._card.update(x=card_x, y=ty, text=text, visible=True)

    def _hide_card(self):
        self._hovered = -1
        if len(self._thumb.data["image"]):
            self._thumb.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
            self._hover_ring.data = {"x": [], "y": []}
        self._card.visible = False

    def _on_tap(self, event):
        i = self._pick(event.x, event.y)
        if i >= 0:
            self.state.current = i

    def __panel__(self):
        return pn.Column(
            pn.Row(self._x, self._y, pn.Column(pn.Spacer(height=18), self._clear)),
            self._info,
            pn.Row(pn.pane.Bokeh(self._fig),
                   pn.Column(pn.pane.Bokeh(self._violin_figs["y"]), pn.pane.Bokeh(self._violin_figs["x"]))),
            css_classes=["explorer-distributions"],
        )
