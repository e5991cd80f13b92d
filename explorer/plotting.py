"""Drawing helpers shared by the views: a digit with the overlays behind its morphometrics.

:class:`DigitPlot` is the one place that draws a digit at 4x resolution with the geometry Morpho-MNIST
measures (binarised shape, skeleton, inscribed circles, shear line, bounding parallelogram, moments
ellipse). The inspector shows the current digit with it; the perturbation studio shows the digit before
and after the perturbation with the same overlays.
"""
from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper, Range1d
from bokeh.palettes import Greys256, Viridis256
from bokeh.plotting import figure

from explorer import warmup

__all__ = ["DigitPlot", "OVERLAYS", "digit_geometry", "digit_figure", "pixels_4x", "TOOLS", "wrap_row"]

#: Tools of every plot: pan and zoom, reset, and save as PNG.
TOOLS = "pan,wheel_zoom,reset,save"

#: overlay name -> what it shows
OVERLAYS = {
    "Binarised": "shape thresholded at half intensity (area)",
    "Skeleton": "one-pixel-wide centre lines (length)",
    "Thickness": "inscribed circles along the skeleton, coloured by local thickness",
    "Slant": "shear line through the centroid",
    "Parallelogram": "bounding parallelogram (width, height)",
    "Ellipse": "moments ellipse (2σ)",
}

#: Local thickness (px) at the top of the circles' colour scale: MNIST strokes are 1-6 px thick.
THICKNESS_MAX = 6.0


def pixels_4x(image: np.ndarray) -> np.ndarray:
    """A uint8 (28, 28) digit as the digit plots draw its pixels: each pixel a 4x4 block (nearest neighbour,
    the measuring scale's grid), rows flipped for Bokeh's y-up image; uint8 (112, 112), C-contiguous."""
    return np.ascontiguousarray(np.kron(image[::-1], np.ones((4, 4), np.uint8)))


def digit_geometry(image: np.ndarray, *, max_circles: int = 36) -> dict:
    """Everything the overlays draw, in plot coordinates of the hi-res image (x right, y up).

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (28, 28) digit.
    max_circles : int
        Inscribed circles drawn at most (evenly spaced along the skeleton).

    Returns
    -------
    dict
        ``size`` (hi-res side, 112 px), ``hires`` (uint8 (112, 112), bottom row first),
        ``binary``/``skeleton`` (RGBA packed uint32 (112, 112)), ``binary_mask``/``skeleton_mask``
        (the same as uint8 (112, 112), 1 = on, bottom row first), ``circles`` (x, y, r in hi-res px;
        t = local thickness in original px), ``centroid``, ``slant_line`` (xs, ys), ``parallelogram``
        (xs, ys), ``ellipse`` (x, y, width, height, angle), ``scale``, ``metrics`` (the six
        morphometrics, dict). Geometry that cannot be computed (blank digit) is omitted.
    """
    from core.measure import measure_details

    # while the kernels compile in the background (first start), the reference path: same numbers, no wait
    details = measure_details(image, mode="released", engine=warmup.engine())
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

    def flipped(mask):  # uint8 0/1, bottom row first: 4x lighter to send than RGBA
        return np.ascontiguousarray(mask[::-1]).astype(np.uint8)

    geo = {"size": size, "scale": scale, "hires": np.ascontiguousarray(hires[::-1]),
           "metrics": details.metrics._asdict()}
    binary = np.asarray(morph.binary_image, bool)
    skeleton = np.asarray(morph.skeleton, bool)
    geo["binary"] = rgba(binary, (255, 170, 0), 110)
    geo["skeleton"] = rgba(skeleton, (230, 30, 60), 255)
    geo["binary_mask"] = flipped(binary)
    geo["skeleton_mask"] = flipped(skeleton)
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


def wrap_row(*objects, gap: str = "4px", **params):
    """A row of ``objects`` that wraps onto more lines when the window is narrow.

    Use it (not ``pn.FlexBox``) for anything holding a Bokeh plot: a plot inside a FlexBox (a
    ReactiveHTML layout) that reaches the page after the first render -- a tab built when first shown, a
    result section filled later -- is laid out with a 0x0 frame and never draws (Panel 1.9, Bokeh 3.9).
    A Bokeh row with CSS ``flex-wrap`` lays its children out like a FlexBox and draws them.
    """
    # no stretch-width by default: a stretch-width Bokeh row takes the sum of its children's widths as its
    # own and scrolls the page sideways instead of wrapping (seen at 1026 px)
    styles = {"flex-wrap": "wrap", "gap": gap, "min-width": "0", **params.pop("styles", {})}
    params.setdefault("sizing_mode", None)
    return pn.Row(*objects, styles=styles, **params)


def digit_figure(size: int, px: int, name: str, *, tools: str = TOOLS, toolbar: str | None = "below"):
    """A square Bokeh figure for a digit image of side ``size`` (plot units), about ``px`` screen pixels.

    Explicit ranges (never data ranges): no "could not set initial ranges" when a source is empty.
    """
    fig = figure(x_range=Range1d(0, size, bounds=(0, size)), y_range=Range1d(0, size, bounds=(0, size)),
                 width=px, height=px, tools=tools, toolbar_location=toolbar, min_border=4, name=name)
    fig.axis.visible = False
    fig.grid.visible = False
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.background_fill_color = "black"
    fig.border_fill_color = None
    return fig


def _mask_mapper(colour: str) -> LinearColorMapper:
    """0 -> transparent, 1 -> ``colour``."""
    return LinearColorMapper(palette=["rgba(0, 0, 0, 0)", colour], low=0, high=1)


class DigitPlot:
    """A digit at 4x resolution, white ink on black as MNIST and the browser grid, with toggleable overlays.

    Parameters
    ----------
    px : int
        Side of the plot on screen, pixels.
    name : str
        Bokeh model name (tests and CSS find the plot by it).
    colour_bar : bool
        Add the colour bar of the thickness circles (local thickness, px) on the right.
    """

    SIZE = 112  # 28 px x the measuring scale 4

    def __init__(self, px: int, name: str, *, colour_bar: bool = True, title: str | None = None):
        size = self.SIZE
        empty = np.zeros((size, size), np.uint8)
        self._img = ColumnDataSource(data={"image": [empty]})
        self._binary = ColumnDataSource(data={"image": [empty]})
        self._skeleton = ColumnDataSource(data={"image": [empty]})
        self._circles = ColumnDataSource(data={"x": [], "y": [], "r": [], "t": []})
        self._line = ColumnDataSource(data={"x": [], "y": []})
        self._centroid = ColumnDataSource(data={"x": [], "y": []})
        self._para = ColumnDataSource(data={"x": [], "y": []})
        self._ellipse = ColumnDataSource(data={"x": [], "y": [], "width": [], "height": [], "angle": []})
        fig = digit_figure(size, px, name)
        if title:
            fig.title.text = title
        # Greys256 runs from black to white: ink (255) is white, background (0) black, as in the grid.
        fig.image(image="image", x=0, y=0, dw=size, dh=size, source=self._img,
                  color_mapper=LinearColorMapper(palette=Greys256, low=0, high=255))
        tmapper = LinearColorMapper(palette=Viridis256, low=0, high=THICKNESS_MAX)
        self.renderers = {
            # Masks drawn through two-colour maps (0 transparent): a quarter of the bytes of RGBA images.
            "Binarised": [fig.image(image="image", x=0, y=0, dw=size, dh=size, source=self._binary,
                                    color_mapper=_mask_mapper("rgba(255, 170, 0, 0.43)"))],
            "Skeleton": [fig.image(image="image", x=0, y=0, dw=size, dh=size, source=self._skeleton,
                                   color_mapper=_mask_mapper("rgb(230, 30, 60)"))],
            "Thickness": [fig.circle(x="x", y="y", radius="r", source=self._circles, fill_alpha=0.08,
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
        self.colour_bar = None
        if colour_bar:
            self.colour_bar = ColorBar(color_mapper=tmapper, title="local thickness (px)", width=10,
                                       title_text_font_size="11px", major_label_text_font_size="10px",
                                       title_standoff=4, padding=4)
            fig.add_layout(self.colour_bar, "right")
        self.figure = fig
        self.geometry: dict = {}
        self.error: Exception | None = None  # why the digit shown last has no geometry
        self.shown: set = set(OVERLAYS)
        self._sent: set = set()

    def set_overlays(self, names) -> None:
        """Show the overlays named in ``names`` (keys of :data:`OVERLAYS`), hide the others."""
        self.shown = set(names)
        for name, renderers in self.renderers.items():
            for r in renderers:
                r.visible = name in self.shown
        if self.colour_bar is not None:
            self.colour_bar.visible = "Thickness" in self.shown
        if self.geometry:
            self._send(self.geometry)

    def show_pixels(self, image: np.ndarray) -> None:
        """Draw a digit's pixels only (nearest-neighbour 4x), leaving the overlays as they are: the fast
        path of a slider move, before the geometry is measured."""
        self._img.data = {"image": [pixels_4x(image)]}

    def show(self, image: np.ndarray) -> dict:
        """Draw a digit and its geometry; returns the geometry (``{}`` and pixels only for a blank digit).

        Raises nothing for a digit whose geometry cannot be computed: its pixels are drawn and the
        exception is kept in ``self.error``.
        """
        self.error = None
        try:
            geo = digit_geometry(image)
        except Exception as e:  # a blank or odd digit: show the pixels, say why there is no geometry
            geo = {"hires": pixels_4x(image)}
            self.error = e
        self.geometry = geo
        self._img.data = {"image": [geo["hires"]]}
        self._sent = set()
        self._send(geo)
        return geo

    def _send(self, geo: dict) -> None:
        # Only the shown overlays travel to the browser (a slider move sends less); a hidden one is
        # sent when it is switched on.
        def due(name):
            return name in self.shown and name not in self._sent

        if due("Binarised"):
            self._binary.data = {"image": [geo.get("binary_mask", np.zeros(geo["hires"].shape, np.uint8))]}
        if due("Skeleton"):
            self._skeleton.data = {"image": [geo.get("skeleton_mask", np.zeros(geo["hires"].shape, np.uint8))]}
        if due("Thickness"):
            self._circles.data = dict(geo.get("circles", {"x": [], "y": [], "r": [], "t": []}))
        if due("Slant"):
            xs, ys = geo.get("slant_line", ([], []))
            self._line.data = {"x": list(xs), "y": list(ys)}
            cen = geo.get("centroid")
            self._centroid.data = {"x": [cen[0]] if cen else [], "y": [cen[1]] if cen else []}
        if due("Parallelogram"):
            px, py = geo.get("parallelogram", ([], []))
            self._para.data = {"x": list(px), "y": list(py)}
        if due("Ellipse"):
            e = geo.get("ellipse")
            self._ellipse.data = {k: [e[k]] if e else [] for k in ("x", "y", "width", "height", "angle")}
        self._sent |= self.shown
