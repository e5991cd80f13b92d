"""Digit browser: filters and a paged grid of thumbnails; a click selects the current digit."""
from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.plotting import figure

from explorer.data import METRICS, PERTURBATION_NAMES
from explorer.inspector import step_digit
from explorer.live_html import LiveHTML
from explorer.state import ExplorerState

__all__ = ["Filters", "Browser", "KeyNavigation", "thumbnail_page", "METRIC_LABELS"]

CELL = 30  # 28 px digit + 2 px gutter
GRID_COLS = 10
LABEL_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
METRIC_LABELS = {"area": "Area (px²)", "length": "Length (px)", "thickness": "Thickness (px)",
                 "slant": "Slant (rad)", "width": "Width (px)", "height": "Height (px)"}

_COMPACT_BUTTONS = ":host .bk-btn {padding: 4px 2px; min-width: 0;}"
_GUTTER_RGB = np.array([245, 245, 247], np.uint32)


def thumbnail_page(images: np.ndarray, rows: int, cols: int, current_slot: int = -1) -> np.ndarray:
    """Tile digits into one RGBA image (packed uint32, bottom row first as Bokeh wants).

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (k, 28, 28), k <= rows * cols.
    rows, cols : int
    current_slot : int
        Slot whose gutter is drawn in the highlight colour (-1: none).

    Returns
    -------
    numpy.ndarray
        uint32 (rows * CELL, cols * CELL).
    """
    k = len(images)
    tiles = np.zeros((rows * cols, CELL, CELL, 4), np.uint8)
    tiles[..., :3] = _GUTTER_RGB.astype(np.uint8)
    tiles[..., 3] = 255
    if 0 <= current_slot < k:
        tiles[current_slot, :, :, :3] = (255, 140, 0)
    # Digits as white ink on a near-black square, like MNIST itself.
    ink = images.astype(np.uint16)
    tiles[:k, 1:29, 1:29, 0] = (18 + ink * (255 - 18) // 255).astype(np.uint8)
    tiles[:k, 1:29, 1:29, 1] = (20 + ink * (255 - 20) // 255).astype(np.uint8)
    tiles[:k, 1:29, 1:29, 2] = (28 + ink * (255 - 28) // 255).astype(np.uint8)
    grid = tiles.reshape(rows, cols, CELL, CELL, 4).transpose(0, 2, 1, 3, 4).reshape(rows * CELL, cols * CELL, 4)
    return np.ascontiguousarray(grid[::-1]).view(np.uint32)[..., 0]


class KeyNavigation(pn.custom.JSComponent):
    """Arrow keys step digits, PageUp/PageDown step pages, while the browser is on screen.

    One ``keydown`` listener on the page's document; keys typed into a text box, a number box, a select
    or on a slider handle (which use the arrows themselves) are left alone, and so are keys pressed while
    the browser's tab is hidden. Each accepted key is sent to Python as ``{"key": name}``.
    """

    _esm = """
    const KEYS = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'PageUp', 'PageDown'];
    export function render({ model, el }) {
      const onkey = (event) => {
        if (!KEYS.includes(event.key) || event.altKey || event.ctrlKey || event.metaKey) return;
        // The element really focused, through Panel's shadow roots.
        const target = event.composedPath()[0];
        if (target && target.closest && target.closest(
            'input, textarea, select, [contenteditable], [role=slider], .noUi-handle, .bk-input')) return;
        if (!el.isConnected || (el.checkVisibility && !el.checkVisibility())) return;  // tab hidden
        event.preventDefault();
        model.send_msg({key: event.key});
      };
      document.addEventListener('keydown', onkey);
      model.on('remove', () => document.removeEventListener('keydown', onkey));
      return document.createElement('span');
    }
    """

    def __init__(self, on_key, **params):
        super().__init__(width=0, height=0, margin=0, **params)
        self._on_key = on_key

    def _handle_msg(self, msg):
        key = msg.get("key") if isinstance(msg, dict) else None
        if not key:
            return
        # Panel hands custom messages over without the document lock, which the views' Bokeh models
        # need: run the step as a next-tick callback of the session (it holds the lock).
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(lambda: self._step(key))
        else:
            self._on_key(key)

    def _step(self, key: str) -> None:
        # Every change the key makes in one held document: one patch message, not one per changed model (a
        # served inspector follows in a message of its own, a tick later: see Inspector._on_change).
        with pn.io.hold():
            self._on_key(key)


class Filters(pn.viewable.Viewer):
    """Filter widgets (label, perturbation, metric ranges, sort) bound to an :class:`ExplorerState`."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        self._labels = pn.widgets.CheckButtonGroup(
            name="Digit label", options=list(range(10)), value=list(s.labels), button_type="primary",
            button_style="outline", sizing_mode="stretch_width", stylesheets=[_COMPACT_BUTTONS])
        self._perts = pn.widgets.CheckButtonGroup(
            name="Perturbation", options={}, value=[], button_type="primary", button_style="outline",
            sizing_mode="stretch_width")
        self._sliders = {m: pn.widgets.RangeSlider(name=METRIC_LABELS[m], start=0, end=1, value=(0, 1),
                                                   step=0.01, sizing_mode="stretch_width", format="0[.]00")
                         for m in METRICS}
        self._sort = pn.widgets.Select(name="Sort by", options=["index", *METRICS], value=s.sort_by,
                                       sizing_mode="stretch_width")
        # A one-box CheckBoxGroup: its text is a <label> of the box, so a click on the words toggles it
        # (Panel's Checkbox draws the text beside the box, not clickable).
        self._desc = pn.widgets.CheckBoxGroup(options=["Descending"], value=["Descending"] if s.descending else [],
                                              margin=(30, 10, 5, 10))
        self._reset = pn.widgets.Button(name="Reset filters", button_type="light")
        self._count = pn.pane.Markdown("", margin=(0, 10))
        self._updating = False
        self._labels.param.watch(self._on_labels, "value")
        self._perts.param.watch(self._on_perts, "value")
        for m, w in self._sliders.items():
            w.param.watch(self._on_range, "value_throttled")
        self._sort.link(s, value="sort_by")
        self._desc.param.watch(lambda e: setattr(s, "descending", bool(e.new)), "value")
        self._reset.on_click(lambda e: s.reset_filters())
        s.param.watch(self._sync_from_state, ["labels", "perturbations", "ranges", "sort_by", "descending"])
        s.param.watch(self._on_dataset, "dataset")
        s.param.watch(self._update_count, ["selection", "scatter_selection"])
        self._on_dataset()

    def _on_dataset(self, *_):
        s, ds = self.state, self.state.dataset
        self._updating = True
        try:
            if ds.perturbations is not None:
                present = sorted(set(np.unique(ds.perturbations).tolist()))
                self._perts.options = {PERTURBATION_NAMES.get(p, str(p)): p for p in present}
            else:
                self._perts.options = {}
            self._perts.visible = ds.perturbations is not None
            self._labels.visible = ds.labels is not None
            for m, w in self._sliders.items():
                lo, hi = s.metric_bounds(m)
                pad = max(hi - lo, 1e-6) * 1e-3  # so that the extreme digits pass the default range
                lo, hi = lo - pad, hi + pad
                step = 10 ** np.floor(np.log10(max(hi - lo, 1e-6) / 200))
                w.param.update(start=lo, end=hi, step=float(step))
                cur = s.ranges.get(m)
                w.value = (max(lo, cur[0]), min(hi, cur[1])) if cur else (lo, hi)
        finally:
            self._updating = False
        self._sync_from_state()
        self._update_count()

    def _sync_from_state(self, *_):
        s = self.state
        self._updating = True
        try:
            self._labels.value = list(s.labels)
            self._perts.value = [p for p in s.perturbations if p in self._perts.values]
            for m, w in self._sliders.items():
                r = s.ranges.get(m)
                w.value = (max(w.start, r[0]), min(w.end, r[1])) if r else (w.start, w.end)
            self._sort.value = s.sort_by
            self._desc.value = ["Descending"] if s.descending else []
        finally:
            self._updating = False

    def _on_labels(self, event):
        if not self._updating:
            self.state.labels = sorted(int(v) for v in event.new)

    def _on_perts(self, event):
        if not self._updating:
            self.state.perturbations = sorted(int(v) for v in event.new)

    def _on_range(self, event):
        if self._updating:
            return
        ranges = {}
        for m, w in self._sliders.items():
            lo, hi = w.value
            if lo > w.start or hi < w.end:  # only narrowed sliders are filters
                ranges[m] = [float(lo), float(hi)]
        self.state.ranges = ranges

    def _update_count(self, *_):
        s = self.state
        extra = " · scatter selection active" if s.scatter_selection is not None else ""
        self._count.object = f"**{len(s.selection):,}** of {len(s.dataset):,} digits{extra}"

    def __panel__(self):
        return pn.Column(
            self._count,
            pn.pane.Markdown("**Digit label** (none selected = all)", margin=(0, 10)),
            self._labels,
            self._perts,
            *self._sliders.values(),
            pn.Row(self._sort, self._desc, sizing_mode="stretch_width"),
            self._reset,
            sizing_mode="stretch_width", css_classes=["explorer-filters"],
        )


class Browser(pn.viewable.Viewer):
    """A paged grid of the selected digits; click a thumbnail to make it the current digit.

    Parameters
    ----------
    state : ExplorerState
        Shared state; a new one on the bundled sample when omitted.
    filters : bool
        Show the filter widgets beside the grid (for standalone use).
    """

    state = param.ClassSelector(class_=ExplorerState)
    rows = param.Integer(default=10, bounds=(1, 40))
    cols = param.Integer(default=GRID_COLS, bounds=(1, 40))
    zoom = param.Number(default=1.4, doc="Screen pixels per digit pixel.")

    def __init__(self, state: ExplorerState | None = None, filters: bool = True, **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        s.page_size = self.rows * self.cols
        self._show_filters = filters
        self._filters = Filters(state=s) if filters else None
        w, h = self.cols * CELL, self.rows * CELL
        self._image = ColumnDataSource(data={"image": [np.zeros((h, w), np.uint32)]})
        self._cells = ColumnDataSource(data={k: [] for k in ("x", "y", "index", "label", *METRICS)})
        fig = figure(x_range=Range1d(0, w, bounds=(0, w)), y_range=Range1d(0, h, bounds=(0, h)),
                     width=int(w * self.zoom), height=int(h * self.zoom),
                     tools="save", toolbar_location="right", min_border=0, name="digit-grid")
        fig.toolbar.logo = None
        fig.toolbar.autohide = True
        fig.image_rgba(image="image", x=0, y=0, dw=w, dh=h, source=self._image)
        # Transparent cells carry the hover information of each thumbnail.
        cells = fig.rect(x="x", y="y", width=CELL, height=CELL, source=self._cells, fill_alpha=0,
                         line_alpha=0, hover_fill_alpha=0.12, hover_fill_color="#ff8c00")
        fig.text(x="tx", y="ty", text="label_text", source=self._cells, text_font_size="10px", text_font_style="bold",
                 text_color="label_colour", text_baseline="top", text_align="left")
        tooltips = [("index", "@index"), ("label", "@label")] + [(m, f"@{m}{{0.00}}") for m in METRICS]
        fig.add_tools(HoverTool(renderers=[cells], tooltips=tooltips))
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.on_event(Tap, self._on_tap)
        self._fig = fig
        # Shown or hidden through a Column: a Bokeh pane's own visible follows its figure's.
        self._pane = pn.Column(pn.pane.Bokeh(fig, sizing_mode="fixed"), margin=0)
        self._empty = pn.pane.Alert("", alert_type="warning", visible=False, width=int(w * self.zoom),
                                    css_classes=["explorer-empty"])
        self._prev = pn.widgets.Button(name="‹ Prev", width=75, description="Previous page (PageUp)")
        self._next = pn.widgets.Button(name="Next ›", width=75, description="Next page (PageDown)")
        self._page_input = pn.widgets.IntInput(name="", value=1, start=1, width=80)
        self._page_info = LiveHTML(margin=(8, 5))  # rewritten on every page: not a Markdown pane (see LiveHTML)
        self._keys = KeyNavigation(self.on_key)
        self._help = pn.pane.Markdown("← → step digits · PageUp/PageDown step pages · click a digit to "
                                      "inspect it", margin=(0, 5), styles={"font-size": "12px", "color": "#666"})
        self._prev.on_click(lambda e: self._goto(s.page - 1))
        self._next.on_click(lambda e: self._goto(s.page + 1))
        self._page_input.param.watch(lambda e: self._goto(e.new - 1), "value")
        self._page_slots = np.zeros(0, np.int64)
        s.param.watch(self._render, ["selection", "page", "current", "dataset"])
        s.param.watch(self._show_current_page, "current")
        self._show_current_page()
        self._render()

    def on_key(self, key: str) -> None:
        """Keyboard navigation: arrows step digits through the selection, PageUp/PageDown step pages."""
        s = self.state
        if key in ("ArrowLeft", "ArrowUp"):
            step_digit(s, -1 if key == "ArrowLeft" else -self.cols)
        elif key in ("ArrowRight", "ArrowDown"):
            step_digit(s, +1 if key == "ArrowRight" else self.cols)
        elif key in ("PageUp", "PageDown"):
            page = self._clamped_page(s.page + (1 if key == "PageDown" else -1))
            if page != s.page:  # PageDown on the last page (PageUp on the first) keeps the digit looked at
                self._turn_to(page)

    def _turn_to(self, page: int) -> None:
        # The page and the current digit change in one update, so the grid is drawn (and sent) once.
        s = self.state
        idx = self.page_indices(page)
        if len(idx):  # the current digit follows the page, so the inspector shows what is on screen
            s.param.update(page=page, current=int(idx[0]))
        else:
            s.page = page

    def _show_current_page(self, *_):
        # The page holding the current digit (a shared link with ?digit=2630, a digit stepped past the
        # page's end); a digit outside the selection leaves the page alone.
        s = self.state
        pos = np.flatnonzero(s.selection == s.current)
        if len(pos):
            s.page = int(pos[0] // s.page_size)

    def _clamped_page(self, page: int) -> int:
        s = self.state
        last = max(0, (len(s.selection) - 1) // s.page_size)
        return int(min(max(page, 0), last))

    def _goto(self, page: int):
        """Prev/Next and the page box: show ``page`` with its first digit current, as PageDown does."""
        page = self._clamped_page(page)
        if page == self.state.page:
            # Nothing to turn: the page box echoing the page shown (``_render`` sets it after every page
            # change, a shared link's included), which must not move the current digit off its page.
            return
        with pn.io.hold():  # the grid, its cells and the page box in one message (the inspector next)
            self._turn_to(page)

    def page_indices(self, page: int | None = None) -> np.ndarray:
        """Dataset indices of the digits on ``page`` (default: the current page), in selection order."""
        s = self.state
        start = (s.page if page is None else page) * s.page_size
        return s.selection[start:start + s.page_size]

    def _render(self, *events):
        s, ds = self.state, self.state.dataset
        idx = self.page_indices()
        slots = np.flatnonzero(idx == s.current)
        current_slot = int(slots[0]) if len(slots) else -1
        self._image.data = {"image": [thumbnail_page(ds.images[idx], self.rows, self.cols, current_slot)]}
        if not events or any(e.name != "current" for e in events):
            k = np.arange(len(idx))
            r, c = np.divmod(k, self.cols)
            h = self.rows * CELL
            labels = ds.labels[idx] if ds.labels is not None else np.full(len(idx), -1)
            data = {"x": c * CELL + CELL / 2, "y": h - r * CELL - CELL / 2, "index": idx, "label": labels,
                    "tx": c * CELL + 2.5, "ty": h - r * CELL - 2,
                    "label_text": [str(v) if v >= 0 else "" for v in labels],
                    "label_colour": [LABEL_COLOURS[v % 10] if v >= 0 else "#fff" for v in labels]}
            met = ds.metrics.iloc[idx].to_numpy()  # the page's rows only (not all 70,000 converted per page)
            for j, m in enumerate(METRICS):
                data[m] = met[:, j]
            # A page's hundred cells as plain lists: Bokeh sends each numpy column as a binary buffer of
            # its own (two websocket frames each), lists travel inside the one patch message.
            self._cells.data = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}
            self._page_slots = idx
        n = len(s.selection)
        pages = max(1, -(-n // s.page_size))
        self._page_input.param.update(end=pages, value=s.page + 1)
        first = s.page * s.page_size + 1
        if n:
            self._page_info.html = f"/ {pages:,} · {first:,}–{first + len(idx) - 1:,} of <b>{n:,}</b>"
        else:
            self._page_info.html = "no digits"
            self._empty.object = (f"**No digit passes the filters** (0 of {len(ds):,}). Widen a range, pick "
                                  "other labels, clear the scatter selection, or press *Reset filters*.")
        self._empty.visible = n == 0
        self._pane.visible = n > 0
        self._prev.disabled = s.page <= 0
        self._next.disabled = s.page >= pages - 1

    def _on_tap(self, event):
        col = int(event.x // CELL)
        row = int((self.rows * CELL - event.y) // CELL)
        if not (0 <= col < self.cols and 0 <= row < self.rows):
            return
        k = row * self.cols + col
        if k < len(self._page_slots):
            with pn.io.hold():  # the grid's highlight in one message (the inspector next)
                self.state.current = int(self._page_slots[k])

    def __panel__(self):
        grid = pn.Column(
            pn.Row(self._prev, self._page_input, self._page_info, self._next, align="start"),
            self._pane, self._empty, self._help, self._keys,
            css_classes=["explorer-browser"], width=int(self.cols * CELL * self.zoom) + 40,
        )
        if self._filters is not None:
            return pn.Row(pn.Column(self._filters, width=320), grid)
        return grid
