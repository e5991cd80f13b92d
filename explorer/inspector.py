"""Digit inspector: the current digit at high resolution with the geometry behind each morphometric."""
from __future__ import annotations

import html

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper, Range1d
from bokeh.palettes import Greys256, Viridis256
from bokeh.plotting import figure

from explorer.data import METRICS, PERTURBATION_NAMES
from explorer.state import ExplorerState

__all__ = ["Inspector", "digit_geometry", "metrics_table", "METRIC_INFO", "OVERLAYS"]

#: name -> (unit, how it is measured), for teaching.
METRIC_INFO = {
    "area": ("px²", "Number of ink pixels of the binarised digit (measured at 4× resolution, in original "
                    "pixels)."),
    "length": ("px", "Length of the skeleton: the binarised digit thinned to lines one pixel wide."),
    "thickness": ("px", "Mean stroke thickness: twice the distance from the skeleton to the boundary, "
                        "averaged along the skeleton."),
    "slant": ("rad", "Horizontal shear of the image moments, arctan(−cov(x, y) / var(y)); positive leans "
                     "right."),
    "width": ("px", "Width of the bounding parallelogram, sheared by the slant, that holds all but 2% of "
                    "the ink."),
    "height": ("px", "Height of that bounding parallelogram."),
}

#: overlay name -> what it shows
OVERLAYS = {
    "Binarised": "shape thresholded at half intensity (area)",
    "Skeleton": "one-pixel-wide centre lines (length)",
    "Thickness": "inscribed circles along the skeleton, coloured by local thickness",
    "Slant": "shear line through the centroid",
    "Parallelogram": "bounding parallelogram (width, height)",
    "Ellipse": "moments ellipse (2σ)",
}


def digit_geometry(image: np.ndarray, *, max_circles: int = 36) -> dict:
    """Everything the inspector draws, in plot coordinates of the hi-res image (x right, y up).

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (28, 28) digit.
    max_circles : int
        Inscribed circles drawn at most (evenly spaced along the skeleton).

    Returns
    -------
    dict
        ``size`` (hi-res side), ``hires`` (uint8, bottom row first), ``binary``/``skeleton`` (RGBA uint32),
        ``circles`` (x, y, r, t), ``centroid``, ``slant_line`` (xs, ys), ``parallelogram`` (xs, ys),
        ``ellipse`` (x, y, width, height, angle), ``scale``. Geometry that cannot be computed (blank
        digit) is omitted.
    """
    from core.measure import measure_details

    details = measure_details(image, mode="released")
    morph, moments, corners = details.morph, details.moments, details.corners
    hires = np.asarray(morph.hires_image)
    size = hires.shape[0]
    scale = morph.scale

    def to_plot(x, y):  # hi-res pixel (x, y), y down -> plot coordinates, y up, pixel centres
        return np.asarray(x, float) + 0.5, size - (np.asarray(y, float) + 0.5)

    def rgba(mask, colour, alpha):
        out = np.zeros(mask.shape + (4,), np.uint8)
        out[mask] = (*colour, alpha)
        return np.ascontiguousarray(out[::-1]).view(np.uint32)[..., 0]

    geo = {"size": size, "scale": scale, "hires": np.ascontiguousarray(hires[::-1])}
    binary = np.asarray(morph.binary_image, bool)
    skeleton = np.asarray(morph.skeleton, bool)
    geo["binary"] = rgba(binary, (255, 170, 0), 110)
    geo["skeleton"] = rgba(skeleton, (230, 30, 60), 255)
    rr, cc = np.nonzero(skeleton)
    if len(rr):
        pick = np.linspace(0, len(rr) - 1, min(max_circles, len(rr))).round().astype(int)
        dist = np.asarray(morph.distance_map, float)[rr[pick], cc[pick]]
        x, y = to_plot(cc[pick], rr[pick])
        geo["circles"] = {"x": x, "y": y, "r": dist, "t": 2 * dist / scale}
    if binary.any():
        cx, cy = moments.centroid
        shear = moments.horizontal_shear
        ys = np.array([0.0, size - 1.0])
        xs = cx + shear * (ys - cy)  # the shear line: x - cx = shear (y - cy)
        geo["centroid"] = tuple(float(v) for v in to_plot(cx, cy))
        geo["slant_line"] = tuple(a.tolist() for a in to_plot(xs, ys))
        px, py = to_plot([c[0] for c in corners], [c[1] for c in corners])
        geo["parallelogram"] = (px.tolist() + [px[0]], py.tolist() + [py[0]])
        u20, u11, u02 = moments.covariance
        cov = np.array([[u20, u11], [u11, u02]], float)
        evals, evecs = np.linalg.eigh(cov)
        major = evecs[:, 1]
        geo["ellipse"] = {
            "x": geo["centroid"][0], "y": geo["centroid"][1],
            "width": 4 * np.sqrt(max(evals[1], 0)), "height": 4 * np.sqrt(max(evals[0], 0)),
            "angle": -float(np.arctan2(major[1], major[0])),  # y flips between image and plot
        }
    return geo


def metrics_table(values: dict, *, before: dict | None = None, explain: bool = True) -> str:
    """HTML table of the six metrics with units (and their change from ``before``, when given)."""
    head = "<tr><th>Metric</th>"
    head += "<th>Before</th><th>After</th><th>Change</th>" if before is not None else "<th>Value</th>"
    head += "<th>Unit</th>" + ("<th>How it is measured</th>" if explain else "") + "</tr>"
    rows = []
    for m in METRICS:
        unit, how = METRIC_INFO[m]
        v = values.get(m, np.nan)
        cells = f"<td class='m'>{m}</td>"
        if before is not None:
            b = before.get(m, np.nan)
            d = v - b
            cls = "up" if d > 1e-9 else "down" if d < -1e-9 else ""
            cells += f"<td>{b:.3f}</td><td>{v:.3f}</td><td class='{cls}'>{d:+.3f}</td>"
        else:
            extra = f" ({np.degrees(v):.1f}°)" if m == "slant" and np.isfinite(v) else ""
            cells += f"<td>{v:.3f}{extra}</td>"
        cells += f"<td>{unit}</td>" + (f"<td class='how'>{html.escape(how)}</td>" if explain else "")
        rows.append(f"<tr>{cells}</tr>")
    return f"<table class='metrics'>{head}{''.join(rows)}</table>"


TABLE_CSS = """
table.metrics {border-collapse: collapse; font-size: 13px; width: 100%;}
table.metrics th {text-align: left; border-bottom: 2px solid #ccc; padding: 4px 8px; color: #444;}
table.metrics td {border-bottom: 1px solid #eee; padding: 4px 8px; vertical-align: top;}
table.metrics td.m {font-weight: 600;}
table.metrics td.how {color: #555; font-size: 12px;}
table.metrics td.up {color: #1a7f37;} table.metrics td.down {color: #c62828;}
"""


def digit_figure(size: int, px: int, name: str):
    """A square Bokeh figure for a digit image of side ``size`` (plot units), ``px`` screen pixels."""
    fig = figure(x_range=Range1d(0, size, bounds=(0, size)), y_range=Range1d(0, size, bounds=(0, size)),
                 width=px, height=px, tools="pan,wheel_zoom,reset", toolbar_location="below",
                 min_border=4, match_aspect=True, name=name)
    fig.axis.visible = False
    fig.grid.visible = False
    fig.toolbar.logo = None
    return fig


class Inspector(pn.viewable.Viewer):
    """The current digit at 4× resolution with toggleable overlays and its six metrics explained."""

    state = param.ClassSelector(class_=ExplorerState)
    overlays = param.List(default=["Skeleton", "Thickness", "Slant", "Parallelogram"])

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        size = 112
        self._img = ColumnDataSource(data={"image": [np.zeros((size, size), np.uint8)]})
        self._binary = ColumnDataSource(data={"image": [np.zeros((size, size), np.uint32)]})
        self._skeleton = ColumnDataSource(data={"image": [np.zeros((size, size), np.uint32)]})
        self._circles = ColumnDataSource(data={"x": [], "y": [], "r": [], "t": []})
        self._line = ColumnDataSource(data={"x": [], "y": []})
        self._centroid = ColumnDataSource(data={"x": [], "y": []})
        self._para = ColumnDataSource(data={"x": [], "y": []})
        self._ellipse = ColumnDataSource(data={"x": [], "y": [], "width": [], "height": [], "angle": []})
        fig = digit_figure(size, 420, "inspector-digit")
        mapper = LinearColorMapper(palette=Greys256[::-1], low=0, high=255)
        fig.image(image="image", x=0, y=0, dw=size, dh=size, source=self._img, color_mapper=mapper)
        tmapper = LinearColorMapper(palette=Viridis256, low=0, high=6)
        self._renderers = {
            "Binarised": [fig.image_rgba(image="image", x=0, y=0, dw=size, dh=size, source=self._binary)],
            "Skeleton": [fig.image_rgba(image="image", x=0, y=0, dw=size, dh=size, source=self._skeleton)],
            "Thickness": [fig.circle(x="x", y="y", radius="r", source=self._circles, fill_alpha=0.06,
                                     line_width=1.5, fill_color={"field": "t", "transform": tmapper},
                                     line_color={"field": "t", "transform": tmapper})],
            "Slant": [fig.line(x="x", y="y", source=self._line, line_color="#00b4d8", line_width=3,
                               line_dash="dashed"),
                      fig.scatter(x="x", y="y", source=self._centroid, size=10, color="#00b4d8",
                                  marker="circle_cross", fill_alpha=0.3)],
            "Parallelogram": [fig.line(x="x", y="y", source=self._para, line_color="#7CFC00", line_width=2.5)],
            "Ellipse": [fig.ellipse(x="x", y="y", width="width", height="height", angle="angle",
                                    source=self._ellipse, fill_alpha=0, line_color="#ff66cc", line_width=2.5)],
        }
        self._fig = fig
        self._toggles = pn.widgets.CheckButtonGroup(
            name="Overlays", options=list(OVERLAYS), value=list(self.overlays), button_type="primary",
            button_style="outline", orientation="vertical", width=140)
        self._toggles.link(self, value="overlays")
        self._legend = pn.pane.HTML("", width=180, margin=(5, 5))
        self._title = pn.pane.Markdown("", margin=(0, 10))
        self._table = pn.pane.HTML("", stylesheets=[TABLE_CSS], width=630)
        self._prev = pn.widgets.Button(name="‹", width=40)
        self._next = pn.widgets.Button(name="›", width=40)
        self._index = pn.widgets.IntInput(name="", value=self.state.current, start=0, width=100)
        s = self.state
        self._prev.on_click(lambda e: self._step(-1))
        self._next.on_click(lambda e: self._step(+1))
        self._index.param.watch(self._on_index, "value")
        s.param.watch(self._render, ["current", "dataset"])
        self.param.watch(self._apply_overlays, "overlays")
        self._render()
        self._apply_overlays()

    def _on_index(self, event):
        n = len(self.state.dataset)
        if 0 <= event.new < n:
            self.state.current = int(event.new)

    def _step(self, delta: int):
        # Step through the browser's order (the filtered, sorted selection) when the digit is in it.
        s = self.state
        sel = s.selection
        pos = np.flatnonzero(sel == s.current)
        if len(pos) and len(sel):
            s.current = int(sel[(pos[0] + delta) % len(sel)])
        else:
            s.current = int((s.current + delta) % len(s.dataset))

    def _apply_overlays(self, *_):
        for name, renderers in self._renderers.items():
            for r in renderers:
                r.visible = name in self.overlays
        self._legend.object = "".join(
            f"<div style='font-size:12px;color:#555;margin:2px 0'><b>{n}</b>: {OVERLAYS[n]}</div>"
            for n in OVERLAYS if n in self.overlays)

    def _render(self, *_):
        s, ds = self.state, self.state.dataset
        i = min(max(s.current, 0), len(ds) - 1)
        image = ds.images[i]
        self._index.value = i
        label = f" · label **{ds.labels[i]}**" if ds.labels is not None else ""
        pert = (f" · {PERTURBATION_NAMES.get(int(ds.perturbations[i]), ds.perturbations[i])}"
                if ds.perturbations is not None else "")
        self._title.object = f"### Digit #{i:,}{label}{pert}"
        values = ds.metrics.iloc[i].to_dict()
        self._table.object = metrics_table(values)
        try:
            geo = digit_geometry(image)
        except Exception as e:  # a blank or odd digit: show the pixels, say why there is no geometry
            geo = {"hires": np.kron(image[::-1], np.ones((4, 4), np.uint8))}
            self._title.object += f"\n\n*No geometry for this digit: {e}*"
        self._img.data = {"image": [geo["hires"]]}
        empty = np.zeros(geo["hires"].shape, np.uint32)
        self._binary.data = {"image": [geo.get("binary", empty)]}
        self._skeleton.data = {"image": [geo.get("skeleton", empty)]}
        c = geo.get("circles", {"x": [], "y": [], "r": [], "t": []})
        self._circles.data = dict(c)
        xs, ys = geo.get("slant_line", ([], []))
        self._line.data = {"x": list(xs), "y": list(ys)}
        cen = geo.get("centroid")
        self._centroid.data = {"x": [cen[0]] if cen else [], "y": [cen[1]] if cen else []}
        px, py = geo.get("parallelogram", ([], []))
        self._para.data = {"x": list(px), "y": list(py)}
        e = geo.get("ellipse")
        self._ellipse.data = {k: [e[k]] if e else [] for k in ("x", "y", "width", "height", "angle")}

    def __panel__(self):
        controls = pn.Column(
            pn.pane.Markdown("**Overlays**", margin=(0, 5)), self._toggles, self._legend, width=190)
        nav = pn.Row(self._prev, self._index, self._next, align="start")
        return pn.Column(
            pn.Row(self._title, nav),
            pn.Row(pn.pane.Bokeh(self._fig), controls),
            self._table,
            css_classes=["explorer-inspector"], width=640,
        )
