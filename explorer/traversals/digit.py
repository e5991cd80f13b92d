"""One digit at 4x resolution with the inspector's overlays and its metrics table.

Used for the traversal image clicked in the grid and for the live model's decoded digit
(:mod:`explorer.model`). The geometry comes from :func:`explorer.inspector.digit_geometry`.
"""
from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.palettes import Greys256, Viridis256

from explorer.inspector import TABLE_CSS, digit_figure, digit_geometry, metrics_table
from explorer.plotting import pixels_4x

__all__ = ["OverlayDigit", "SIZE"]

SIZE = 112  # hi-res side: 28 px x the measurement's scale 4

_EMPTY = {
    "img": {"image": [np.zeros((SIZE, SIZE), np.uint8)]},
    "skeleton": {"image": [np.zeros((SIZE, SIZE), np.uint32)]},
    "circles": {"x": [], "y": [], "r": [], "t": []},
    "line": {"x": [], "y": []},
    "para": {"x": [], "y": []},
}


class OverlayDigit:
    """A Bokeh figure of a digit with skeleton, thickness circles, slant line and bounding
    parallelogram, a title and a metrics table.

    Parameters
    ----------
    name : str
        CSS/Bokeh name prefix, e.g. ``"traversal"`` gives ``traversal-digit`` and ``traversal-selected``.
    px : int
        Screen size of the figure, in pixels.
    """

    def __init__(self, name: str, px: int = 300):
        self.sources = {k: ColumnDataSource(data=dict(d)) for k, d in _EMPTY.items()}
        fig = digit_figure(SIZE, px, f"{name}-digit")
        # white ink on black, as in the grids
        fig.image(image="image", x=0, y=0, dw=SIZE, dh=SIZE, source=self.sources["img"],
                  color_mapper=LinearColorMapper(palette=Greys256, low=0, high=255))
        fig.image_rgba(image="image", x=0, y=0, dw=SIZE, dh=SIZE, source=self.sources["skeleton"])
        tmapper = LinearColorMapper(palette=Viridis256, low=0, high=6)
        fig.circle(x="x", y="y", radius="r", source=self.sources["circles"], fill_alpha=0.12, line_width=1.2,
                   fill_color={"field": "t", "transform": tmapper}, line_color={"field": "t", "transform": tmapper})
        fig.line(x="x", y="y", source=self.sources["line"], line_color="#00b4d8", line_width=3,
                 line_dash="dashed")
        fig.line(x="x", y="y", source=self.sources["para"], line_color="#7CFC00", line_width=2.5)
        self.figure = fig
        self.title = pn.pane.Markdown("", css_classes=[f"{name}-selected"], margin=(0, 10))
        self.table = pn.pane.HTML("", stylesheets=[TABLE_CSS], width=px, css_classes=[f"{name}-metrics"])

    @staticmethod
    def geometry(image: np.ndarray) -> tuple[dict, str]:
        """Overlay data of a uint8 (28, 28) digit, and a note when it has no geometry (blank digit)."""
        try:
            geo = digit_geometry(image)
            note = ""
        except Exception as e:  # a blank or odd digit: show the pixels, say why there is no geometry
            geo = {"hires": pixels_4x(image)}
            note = f" *(no geometry: {e})*"
        empty = np.zeros(geo["hires"].shape, np.uint32)
        xs, ys = geo.get("slant_line", ([], []))
        px, py = geo.get("parallelogram", ([], []))
        data = {"img": {"image": [geo["hires"]]},
                "skeleton": {"image": [geo.get("skeleton", empty)]},
                "circles": dict(geo.get("circles", {"x": [], "y": [], "r": [], "t": []})),
                "line": {"x": list(xs), "y": list(ys)},
                "para": {"x": list(px), "y": list(py)}}
        return data, note

    def commit(self, data: dict) -> None:
        """Push overlay data (from :meth:`geometry`) to the figure; call holding the document lock."""
        for k, d in data.items():
            self.sources[k].data = d

    def show_metrics(self, values: dict | None) -> None:
        self.table.object = metrics_table(values, explain=False) if values is not None else ""

    def panel(self) -> pn.Column:
        return pn.Column(self.title, pn.pane.Bokeh(self.figure), self.table)
