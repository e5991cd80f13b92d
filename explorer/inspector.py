"""Digit inspector: the current digit at high resolution with the geometry behind each morphometric."""
from __future__ import annotations


import numpy as np
import panel as pn
import param

from explorer.data import METRICS, PERTURBATION_NAMES
from explorer.gate import escape_html
from explorer.live_html import LiveHTML
from explorer.plotting import OVERLAYS, DigitPlot, digit_figure, digit_geometry
from explorer.state import ExplorerState
from explorer.warmup import prefetch_measuring

__all__ = ["Inspector", "digit_geometry", "digit_figure", "metrics_table", "METRIC_INFO", "OVERLAYS",
           "overlay_legend", "TABLE_CSS"]

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
        cells += f"<td>{unit}</td>" + (f"<td class='how'>{escape_html(how)}</td>" if explain else "")
        rows.append(f"<tr>{cells}</tr>")
    return f"<table class='metrics'>{head}{''.join(rows)}</table>"


#: The inspector's and the studio's titles: a Markdown heading's look.
TITLE_CSS = """
h3 {font-size: 1.25em; font-weight: 600; margin: 0.4em 0 0.3em;}
h4 {font-size: 1.1em; font-weight: 600; margin: 0.4em 0 0.3em;}
p {margin: 0.2em 0; font-size: 13px;}
"""

TABLE_CSS = """
table.metrics {border-collapse: collapse; font-size: 13px; width: 100%;}
table.metrics th {text-align: left; border-bottom: 2px solid #ccc; padding: 4px 8px; color: #444;}
table.metrics td {border-bottom: 1px solid #eee; padding: 4px 8px; vertical-align: top;}
table.metrics td.m {font-weight: 600;}
table.metrics td.how {color: #555; font-size: 12px;}
table.metrics td.up {color: #1a7f37;} table.metrics td.down {color: #c62828;}
"""


def overlay_legend(names) -> str:
    """HTML lines saying what each shown overlay draws."""
    return "".join(f"<div style='font-size:12px;color:#666;margin:2px 0'><b>{n}</b>: {OVERLAYS[n]}</div>"
                   for n in OVERLAYS if n in names)


def overlay_toggles(value) -> pn.widgets.CheckButtonGroup:
    """The overlay buttons of the inspector and the studio."""
    return pn.widgets.CheckButtonGroup(name="Overlays", options=list(OVERLAYS), value=list(value),
                                       button_type="primary", button_style="outline",
                                       orientation="vertical", width=120)


class Inspector(pn.viewable.Viewer):
    """The current digit at 4× resolution with toggleable overlays and its six metrics explained.

    The digit is drawn as the grid draws it (white ink on black); the thickness circles have a colour bar
    of the local thickness in pixels.
    """

    state = param.ClassSelector(class_=ExplorerState)
    overlays = param.List(default=["Skeleton", "Thickness", "Slant", "Parallelogram"])
    px = param.Integer(default=300, doc="Side of the digit on screen, pixels.")

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        self.plot = DigitPlot(self.px, "inspector-digit")
        self._fig = self.plot.figure
        self._renderers = self.plot.renderers
        self._toggles = overlay_toggles(self.overlays)
        self._toggles.link(self, value="overlays")
        self._legend = pn.pane.HTML("", width=120, margin=(5, 5))
        # rewritten on every digit: LiveHTML, not Markdown/HTML panes (each change of those re-lays out the page)
        self._title = LiveHTML(margin=(0, 10), stylesheets=[TITLE_CSS], css_classes=["explorer-inspector-title"])
        self._table = LiveHTML(stylesheets=[TABLE_CSS], sizing_mode="stretch_width")
        self._prev = pn.widgets.Button(name="‹", width=40, description="Previous digit (←)")
        self._next = pn.widgets.Button(name="›", width=40, description="Next digit (→)")
        self._index = pn.widgets.IntInput(name="", value=self.state.current, start=0, width=100)
        s = self.state
        self._prev.on_click(lambda e: self.step(-1))
        self._next.on_click(lambda e: self.step(+1))
        self._index.param.watch(self._on_index, "value")
        s.param.watch(self._on_change, ["current", "dataset"])
        s.param.watch(self._on_selection, "selection")
        self.param.watch(self._apply_overlays, "overlays")
        self._due = False  # an update of a served inspector is scheduled
        doc = pn.state.curdoc
        self._served = doc is not None and doc.session_context is not None
        if self._served:
            # The first page shows the digit's pixels; its geometry is measured once the page is on screen
            # (measuring imports scipy and the morphology: about 0.3 s the first page need not wait for,
            # imported meanwhile in a thread while the browser loads the page's scripts).
            self._render(geometry=False)
            doc.add_next_tick_callback(prefetch_measuring)
            pn.state.onload(self._render_due)
        else:
            self._render()
        self._apply_overlays()

    def _on_index(self, event):
        n = len(self.state.dataset)
        if 0 <= event.new < n:
            self.state.current = int(event.new)

    def _on_selection(self, *_):
        # a filter that removes the digit on show moves the inspector to the first digit it keeps (and an
        # empty selection is said in the title): never a digit the filters have left out, unannounced
        sel = self.state.selection
        if len(sel) and not np.isin(self.state.current, sel):
            self.state.current = int(sel[0])
        else:
            self._on_change()

    def step(self, delta: int):
        """Step ``delta`` digits through the browser's order (the filtered, sorted selection) when the
        current digit is in it, else through the dataset."""
        step_digit(self.state, delta)

    _step = step

    def _apply_overlays(self, *_):
        self.plot.set_overlays(self.overlays)
        self._legend.object = overlay_legend(self.overlays)

    def _on_change(self, *_):
        # Served, the inspector follows a tick after the event that changed the digit: the browser grid's
        # update (the same key press or click) reaches the screen first, in a message of its own.
        if not self._served:
            self._render()
        elif not self._due:
            self._due = True
            pn.state.curdoc.add_next_tick_callback(self._render_due)

    def _render_due(self):
        self._due = False
        with pn.io.hold():  # the inspector's title, table, digit and overlays in one message
            self._render()

    def _render(self, *, geometry: bool = True):
        s, ds = self.state, self.state.dataset
        i = min(max(s.current, 0), len(ds) - 1)
        self._index.value = i
        label = f" · label <b>{int(ds.labels[i])}</b>" if ds.labels is not None else ""
        pert = (f" · {escape_html(PERTURBATION_NAMES.get(int(ds.perturbations[i]), ds.perturbations[i]))}"
                if ds.perturbations is not None else "")
        title = f"<h3>Digit #{i:,}{label}{pert}</h3>"
        self._table.html = metrics_table(ds.metrics.iloc[i].to_dict())
        if not geometry:
            self.plot.show_pixels(ds.images[i])
        else:
            self.plot.show(ds.images[i])
        if self.plot.error is not None:
            title += f"<p><i>No geometry for this digit: {escape_html(self.plot.error)}</i></p>"
        if not len(s.selection) and len(ds):
            title += "<p><i>No digit passes the filters: showing the last one inspected.</i></p>"
        self._title.html = title

    def __panel__(self):
        controls = pn.Column(
            pn.pane.Markdown("**Overlays**", margin=(0, 5)), self._toggles, self._legend, width=130)
        nav = pn.Row(self._prev, self._index, self._next, align="center")
        return pn.Column(
            pn.Row(self._title, nav),
            pn.Row(pn.pane.Bokeh(self._fig), controls),
            self._table,
            css_classes=["explorer-inspector"], width=self.px + 60 + 140,
        )


def step_digit(state: ExplorerState, delta: int) -> None:
    """Make the digit ``delta`` places on in the selection the current one (wrapping around)."""
    sel = state.selection
    pos = np.flatnonzero(sel == state.current)
    if len(pos) and len(sel):
        state.current = int(sel[(pos[0] + delta) % len(sel)])
    elif len(sel):
        state.current = int(sel[0])
    else:
        state.current = int((state.current + delta) % len(state.dataset))
