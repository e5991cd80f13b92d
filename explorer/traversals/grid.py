"""The traversal grid of one base code (rows: latents, columns: steps) and the clicked image.

A multi-base traversal (B base codes, L latents, S steps) is shown one base at a time; the
"Base code" slider picks it. Clicking an image shows it with the inspector's overlays and its
metrics (:class:`explorer.traversals.digit.OverlayDigit`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from explorer.browser import CELL, thumbnail_page
from explorer.compare import as_uint8, heading, on_document
from explorer.plotting import wrap_row
from explorer.traversals.digit import OverlayDigit

__all__ = ["TraversalGrid", "TOOLBAR"]

TOOLBAR = 30  # px of the grid figure's toolbar row (above the image)


class TraversalGrid(param.Parameterized):
    """Grid figure + base selector + the selected image with overlays.

    Set :attr:`images` (B, L, S, 28, 28) and, once measured, :attr:`per_step` (index (base, latent,
    step)); :attr:`selected` is the (base, latent, step) shown with overlays.
    """

    images = param.Array(default=None, allow_None=True, doc="(B, L, S, 28, 28) uint8 or float [0, 1].")
    values = param.Array(default=None, allow_None=True, doc="(S,) latent offsets of the steps, if known.")
    per_step = param.DataFrame(default=None, allow_None=True, doc="(base, latent, step) x metrics.")
    base = param.Integer(default=0, bounds=(0, None), doc="Base code shown in the grid.")
    selected = param.Tuple(default=(0, 0, 0), length=3, doc="(base, latent, step) shown with overlays.")

    def __init__(self, **params):
        super().__init__(**params)
        self.state = None  # the view's ExplorerState (set by TraversalView): where plots are updated
        self._src = ColumnDataSource(data={"image": [np.zeros((CELL, CELL), np.uint32)]})
        self.figure = figure(x_range=(0, CELL), y_range=(0, CELL), width=100, height=100, tools="save",
                             toolbar_location="above", min_border=0, name="traversal-grid")
        self.figure.toolbar.logo = None
        self._glyph = self.figure.image_rgba(image="image", x=0, y=0, dw=CELL, dh=CELL, source=self._src)
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.figure.outline_line_color = None
        self.figure.on_event(Tap, self._on_tap)
        self._base_slider = pn.widgets.IntSlider(label="Base code", start=0, end=1, value=0, width=220,
                                                 visible=False, css_classes=["traversal-base"])
        self._base_slider.link(self, value="base", bidirectional=True)
        self.digit = OverlayDigit("traversal", px=280)
        self.param.watch(self._on_images, "images")
        self.param.watch(self._render_grid, ["base"])
        self.param.watch(self._render_selected, ["selected", "per_step"])

    # ---------------------------------------------------------------------------------------------
    def _on_images(self, *_):
        if self.images is None:
            return
        B = self.images.shape[0]
        self._base_slider.param.update(end=max(1, B - 1), value=0, visible=B > 1)
        with param.parameterized.discard_events(self):
            self.base = 0
        self.selected = (0, 0, 0)
        self._render_grid()

    def _render_grid(self, *_):
        if self.images is None:
            return
        B, L, S = self.images.shape[:3]
        b = min(self.base, B - 1)
        sb, sl, ss = self.selected
        current = sl * S + ss if sb == b else -1
        page = thumbnail_page(as_uint8(self.images[b].reshape(L * S, 28, 28)), L, S, current_slot=current)
        w, h = S * CELL, L * CELL
        # as large as fits beside the overlays at 1366 px wide (a long traversal shrinks rather than scroll the page)
        zoom = max(0.4, min(2.5, 560 / w, 520 / h))

        def commit():
            self.figure.x_range.update(start=0, end=w)
            self.figure.y_range.update(start=0, end=h)
            # the toolbar row above the image takes TOOLBAR px
            self.figure.width, self.figure.height = int(w * zoom), int(h * zoom) + TOOLBAR
            self._glyph.glyph.update(dw=w, dh=h)
            self._src.data = {"image": [page]}

        on_document(commit, self.state)

    def _on_tap(self, event):
        if self.images is None:
            return
        B, L, S = self.images.shape[:3]
        col = int(event.x // CELL)
        row = int((L * CELL - event.y) // CELL)
        if 0 <= row < L and 0 <= col < S:
            self.selected = (min(self.base, B - 1), row, col)
            self._render_grid()

    def step_label(self, step: int) -> str:
        if self.values is not None and len(self.values) > step:
            return f"step {step} (offset {float(self.values[step]):+.2f})"
        return f"step {step}"

    def _render_selected(self, *_):
        if self.images is None:
            return
        b, lat, step = self.selected
        B = self.images.shape[0]
        image = as_uint8(self.images[b, lat, step])
        base = f"base {b}, " if B > 1 else ""
        data, note = self.digit.geometry(image)
        self.digit.title.object = f"**{base}latent {lat}, {self.step_label(step)}**{note}"
        values = None
        if self.per_step is not None and (b, lat, step) in self.per_step.index:
            values = self.per_step.loc[(b, lat, step)].to_dict()
        self.digit.show_metrics(values)
        on_document(lambda: self.digit.commit(data), self.state)

    # ---------------------------------------------------------------------------------------------
    def panel(self) -> pn.Row:
        return wrap_row(
            pn.Column(heading("### Traversal grid\nRows: latents, columns: steps; click an image."),
                      self._base_slider, pn.pane.Bokeh(self.figure)),
            self.digit.panel(), gap="12px")


def per_step_index(B: int, L: int, S: int) -> pd.MultiIndex:
    """The (base, latent, step) index of a measured (B, L, S) grid, in C order."""
    return pd.MultiIndex.from_product([range(B), range(L), range(S)], names=["base", "latent", "step"])
