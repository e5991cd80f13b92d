"""Latent traversals: what each latent of a generative model does to the digits' morphology.

Load a traversal grid (an array (L, S, 28, 28), or a PNG grid with its rows = latents and columns =
steps), measure every image in the background (progress bar, Cancel), then see:

- the grid; click an image to see it with the inspector's overlays (skeleton, thickness circles,
  slant line, bounding parallelogram) and its metrics;
- each metric plotted along each latent's traversal;
- a latents x metrics heatmap of effect size (Spearman correlation of the metric with the step, or
  a standardised slope: :func:`core.analysis.traversal_effects`).

Optionally, with latent codes for a set of samples (codes .npy/.csv, samples in any
:func:`core.samples.load_samples` format): the codes x metrics partial-correlation heatmap and the
mutual information gap (MIG).

Works in the app (``TraversalView(state=...)``) and standalone in a notebook::

    import panel as pn
    from explorer.traversals import TraversalView
    pn.extension(inline=True)
    view = TraversalView()
    view.load("traversal.npy"); view.measure()
    view
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import BasicTicker, ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.palettes import Category10_10, Greys256, RdBu11
from bokeh.plotting import figure

from core.analysis import METRICS, mig, partial_correlations, traversal_effects
from core.samples import SampleFormatError, Traversal, load_codes, load_samples, load_traversal
from explorer.browser import CELL, METRIC_LABELS, thumbnail_page
from explorer.compare import (BackgroundMeasure, MeasureCancelled, as_uint8, measure_loaded, on_document,
                              save_upload)
from explorer.inspector import digit_figure, digit_geometry, metrics_table, TABLE_CSS
from explorer.state import ExplorerState

__all__ = ["TraversalView"]

DIVERGING = list(reversed(RdBu11))  # red = negative, blue = positive


def _heatmap(name: str, title: str, x_label: str, y_label: str):
    src = ColumnDataSource(data={"x": [], "y": [], "value": [], "text": [], "colour": []})
    mapper = LinearColorMapper(palette=DIVERGING, low=-1, high=1)
    fig = figure(x_range=list(METRICS), y_range=["0"], width=560, height=260, title=title,
                 tools="", toolbar_location=None, name=name)
    fig.rect(x="x", y="y", width=1, height=1, source=src, line_color="white",
             fill_color={"field": "value", "transform": mapper})
    fig.text(x="x", y="y", text="text", source=src, text_align="center", text_baseline="middle",
             text_font_size="11px", text_color="colour")
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=5), width=10), "right")
    fig.add_tools(HoverTool(tooltips=[(y_label, "@y"), (x_label, "@x"), ("value", "@value{0.000}")]))
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.grid.visible = False
    fig.toolbar.logo = None
    return fig, src, mapper


def _heatmap_data(df: pd.DataFrame, scale: float) -> tuple[dict, list, list]:
    xs, ys, vals = [], [], []
    for r in df.index:
        for c in df.columns:
            xs.append(str(c))
            ys.append(str(r))
            vals.append(float(df.loc[r, c]))
    v = np.asarray(vals)
    colour = ["white" if abs(x) > 0.6 * scale else "#222" for x in v]
    return ({"x": xs, "y": ys, "value": v, "text": [f"{x:.2f}" for x in v], "colour": colour},
            [str(c) for c in df.columns], [str(r) for r in df.index][::-1])


class TraversalView(pn.viewable.Viewer):
    """Latent traversal grid, metrics along each latent, effect heatmap; codes: partial
    correlations and MIG.

    Parameters
    ----------
    state : ExplorerState, optional
        Shared app state (used for its reference data's metric ranges; a new state on the bundled
        sample when omitted).
    workers : int, optional
        Worker processes for ``measure_batch``.
    """

    state = param.ClassSelector(class_=ExplorerState)
    traversal = param.ClassSelector(class_=Traversal, allow_None=True)
    per_step = param.DataFrame(default=None, allow_None=True, doc="(latent, step) x metrics.")
    effects = param.DataFrame(default=None, allow_None=True, doc="latents x metrics effect sizes.")
    method = param.Selector(default="spearman", objects=["spearman", "slope"],
                            doc="Effect size: Spearman correlation with the step, or standardised slope.")
    selected = param.Tuple(default=(0, 0), length=2, doc="(latent, step) shown with overlays.")
    codes = param.DataFrame(default=None, allow_None=True, doc="Latent codes (N, C).")
    code_metrics = param.DataFrame(default=None, allow_None=True, doc="Metrics of the coded samples.")
    pcorr = param.DataFrame(default=None, allow_None=True, doc="codes x metrics partial correlations.")
    mig_result = param.Parameter(default=None, doc="core.analysis.MIGResult")

    def __init__(self, state: ExplorerState | None = None, workers: Optional[int] = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        self._tmp = tempfile.TemporaryDirectory(prefix="morpho-traversal-")
        self._uploads = 0
        self.job = BackgroundMeasure("traversal", workers=workers)
        # --- loading the traversal
        self._upload = pn.widgets.FileInput(accept=".npy,.npz,.png,.jpg,.jpeg", label="Upload a traversal",
                                            css_classes=["traversal-upload"])
        self._path = pn.widgets.TextInput(label="…or a path on the server", placeholder="/path/to/traversal.npy",
                                          width=340, css_classes=["traversal-path"])
        self._rows = pn.widgets.IntInput(label="Rows (latents; 0: infer)", value=0, start=0, width=150)
        self._cols = pn.widgets.IntInput(label="Columns (steps; 0: infer)", value=0, start=0, width=150)
        self._load_button = pn.widgets.Button(label="Load and measure", color="primary", width=160,
                                              css_classes=["traversal-load"])
        self._method = pn.widgets.RadioButtonGroup.from_param(self.param.method, label="Effect size")
        self._info = pn.pane.Markdown("Load a traversal: an array (L latents, S steps, 28, 28), "
                                      "(L, S, 1, 28, 28) or (L, S, 784), or one PNG grid with latents "
                                      "as rows and steps as columns.", css_classes=["traversal-info"],
                                      sizing_mode="stretch_width")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["traversal-error"],
                                    sizing_mode="stretch_width")
        # --- grid
        self._grid_src = ColumnDataSource(data={"image": [np.zeros((CELL, CELL), np.uint32)]})
        self._grid = figure(x_range=(0, CELL), y_range=(0, CELL), width=100, height=100, tools="",
                            toolbar_location=None, min_border=0, name="traversal-grid")
        self._grid_glyph = self._grid.image_rgba(image="image", x=0, y=0, dw=CELL, dh=CELL,
                                                 source=self._grid_src)
        self._grid.axis.visible = False
        self._grid.grid.visible = False
        self._grid.outline_line_color = None
        self._grid.on_event(Tap, self._on_tap)
        self._grid_pane = pn.pane.Bokeh(self._grid)
        # --- overlays of the selected image
        size = 112
        self._ov = {k: ColumnDataSource(data=d) for k, d in {
            "img": {"image": [np.zeros((size, size), np.uint8)]},
            "skeleton": {"image": [np.zeros((size, size), np.uint32)]},
            "circles": {"x": [], "y": [], "r": [], "t": []},
            "line": {"x": [], "y": []},
            "para": {"x": [], "y": []}}.items()}
        fig = digit_figure(size, 300, "traversal-digit")
        fig.image(image="image", x=0, y=0, dw=size, dh=size, source=self._ov["img"],
                  color_mapper=LinearColorMapper(palette=Greys256[::-1], low=0, high=255))
        fig.image_rgba(image="image", x=0, y=0, dw=size, dh=size, source=self._ov["skeleton"])
        tmapper = LinearColorMapper(palette="Viridis256", low=0, high=6)
        fig.circle(x="x", y="y", radius="r", source=self._ov["circles"], fill_alpha=0.12, line_width=1.2,
                   fill_color={"field": "t", "transform": tmapper}, line_color={"field": "t", "transform": tmapper})
        fig.line(x="x", y="y", source=self._ov["line"], line_color="#00b4d8", line_width=3, line_dash="dashed")
        fig.line(x="x", y="y", source=self._ov["para"], line_color="#7CFC00", line_width=2.5)
        self._digit = fig
        self._digit_title = pn.pane.Markdown("", css_classes=["traversal-selected"])
        self._digit_table = pn.pane.HTML("", stylesheets=[TABLE_CSS], width=300)
        # --- metric along traversal
        self._lines = {}
        for m in METRICS:
            f = figure(width=330, height=210, title=METRIC_LABELS.get(m, m), tools="hover",
                       tooltips=[("latent", "@latent"), ("step", "@step"), (m, "@value{0.000}")],
                       toolbar_location=None, name=f"traversal-line-{m}")
            f.xaxis.axis_label = "step"
            f.toolbar.logo = None
            self._lines[m] = f
        self._line_pane = pn.GridBox(*[pn.pane.Bokeh(self._lines[m]) for m in METRICS], ncols=3)
        self._line_srcs: dict = {}
        # --- heatmaps
        self._effect_fig, self._effect_src, self._effect_map = _heatmap(
            "traversal-effects", "Effect of each latent on each metric", "metric", "latent")
        self._effect_table = pn.pane.DataFrame(pd.DataFrame(), float_format="{:.3f}".format,
                                               css_classes=["traversal-effects-table"])
        # --- codes
        self._codes_upload = pn.widgets.FileInput(accept=".npy,.npz,.csv", label="Latent codes (.npy/.csv)",
                                                  css_classes=["traversal-codes-upload"])
        self._codes_path = pn.widgets.TextInput(label="…or codes path", width=300,
                                                css_classes=["traversal-codes-path"])
        self._samples_upload = pn.widgets.FileInput(accept=".npy,.npz,.gz,.idx,.png,.jpg,.csv", multiple=True,
                                                    label="Their samples (images, or metrics .csv)",
                                                    css_classes=["traversal-samples-upload"])
        self._samples_path = pn.widgets.TextInput(label="…or samples path", width=300,
                                                  css_classes=["traversal-samples-path"])
        self._codes_button = pn.widgets.Button(label="Load codes and measure samples", color="primary",
                                               width=260, css_classes=["traversal-codes-load"])
        self.codes_job = BackgroundMeasure("codes", workers=workers)
        self._codes_info = pn.pane.Markdown("", css_classes=["traversal-codes-info"], sizing_mode="stretch_width")
        self._pcorr_fig, self._pcorr_src, _ = _heatmap(
            "traversal-pcorr", "Partial correlation of each code with each metric", "metric", "code")
        self._mig = pn.pane.Markdown("", css_classes=["traversal-mig"], sizing_mode="stretch_width")
        self._codes_results = pn.Column(pn.pane.Bokeh(self._pcorr_fig), self._mig, visible=False)

        self._load_button.on_click(self._on_load)
        self._upload.param.watch(self._on_upload, "value")
        self._codes_button.on_click(self._on_codes)
        self.param.watch(self._compute_effects, ["per_step", "method"])
        self.param.watch(self._render_selected, ["selected", "per_step"])
        self._pending_images = None
        self._effect_note = pn.pane.Markdown("", css_classes=["traversal-effect-note"],
                                             sizing_mode="stretch_width")
        self._results = pn.Column(
            pn.pane.Markdown("### Metrics along each latent's traversal"),
            self._line_pane,
            pn.Row(self._method),
            pn.pane.Bokeh(self._effect_fig),
            self._effect_note,
            self._effect_table,
            visible=False, sizing_mode="stretch_width")

    # ---------------------------------------------------------------------------------------------
    # traversal

    def load(self, path, rows: Optional[int] = None, cols: Optional[int] = None, **kwargs) -> Traversal:
        """Load a traversal grid (see :func:`core.samples.load_traversal`) without measuring."""
        t = load_traversal(path, rows or None, cols or None, **kwargs)
        self.param.update(traversal=t, per_step=None, effects=None, selected=(0, 0))
        self._info.object = f"**Loaded** {t.description}"
        self._error.visible = False
        self._results.visible = False
        self._render_grid()
        return t

    def measure(self) -> pd.DataFrame:
        """Measure the loaded grid synchronously (scripts and notebooks)."""
        if self.traversal is None:
            raise ValueError("load a traversal first")
        L, S = self.traversal.shape
        df = self.job.run_sync(self.traversal.images.reshape(L * S, 28, 28))
        self._set_per_step(df)
        return self.per_step

    def _set_per_step(self, df: pd.DataFrame):
        L, S = self.traversal.shape
        df = df.copy()
        df.index = pd.MultiIndex.from_product([range(L), range(S)], names=["latent", "step"])
        self.per_step = df

    async def load_and_measure(self, path, rows=None, cols=None, **kwargs) -> bool:
        """Load and measure a traversal in the background; errors are shown in the view."""
        self._error.visible = False
        try:
            t = self.load(path, rows, cols, **kwargs)
        except (SampleFormatError, FileNotFoundError, ValueError) as e:
            self._show_error(f"Could not load the traversal: {e}")
            return False
        except Exception as e:
            self._show_error(f"Could not load {Path(str(path)).name}: {type(e).__name__}: {e}")
            return False
        L, S = t.shape
        df = await measure_loaded(self, t.images.reshape(L * S, 28, 28), t.description)
        if df is None:
            return False
        self._set_per_step(df)
        return True

    def _show_error(self, text: str, pane=None):
        pane = pane or self._error
        pane.object = text
        pane.visible = True

    async def _on_load(self, event=None):
        path = self._path.value.strip()
        if not path:
            self._show_error("Give the path of a traversal file, or upload one.")
            return
        await self.load_and_measure(path, self._rows.value, self._cols.value)

    def _store_upload(self, widget) -> Path:
        self._uploads += 1
        return save_upload(widget.value, widget.filename, Path(self._tmp.name) / f"upload-{self._uploads}")

    async def _on_upload(self, event):
        if not event.new:
            return
        try:
            path = self._store_upload(self._upload)
        except (OSError, ValueError) as e:
            self._show_error(f"Could not store the upload: {e}")
            return
        await self.load_and_measure(path, self._rows.value, self._cols.value)

    def _render_grid(self):
        t = self.traversal
        L, S = t.shape
        page = thumbnail_page(as_uint8(t.images.reshape(L * S, 28, 28)), L, S,
                              current_slot=self.selected[0] * S + self.selected[1])
        w, h = S * CELL, L * CELL
        zoom = max(1.0, min(2.5, 900 / w))

        def commit():
            self._grid.x_range.update(start=0, end=w)
            self._grid.y_range.update(start=0, end=h)
            self._grid.width, self._grid.height = int(w * zoom), int(h * zoom)
            self._grid_glyph.glyph.update(dw=w, dh=h)
            self._grid_src.data = {"image": [page]}

        on_document(commit)

    def _on_tap(self, event):
        if self.traversal is None:
            return
        L, S = self.traversal.shape
        col = int(event.x // CELL)
        row = int((L * CELL - event.y) // CELL)
        if 0 <= row < L and 0 <= col < S:
            self.selected = (row, col)
            self._render_grid()

    def _render_selected(self, *_):
        if self.traversal is None:
            return
        lat, step = self.selected
        image = as_uint8(self.traversal.images[lat, step])
        self._digit_title.object = f"**Latent {lat}, step {step}**"
        if self.per_step is not None:
            self._digit_table.object = metrics_table(self.per_step.loc[(lat, step)].to_dict(), explain=False)
        try:
            geo = digit_geometry(image)
        except Exception as e:
            geo = {"hires": np.kron(image[::-1], np.ones((4, 4), np.uint8))}
            self._digit_title.object += f" *(no geometry: {e})*"
        empty = np.zeros(geo["hires"].shape, np.uint32)
        xs, ys = geo.get("slant_line", ([], []))
        px, py = geo.get("parallelogram", ([], []))
        data = {"img": {"image": [geo["hires"]]},
                "skeleton": {"image": [geo.get("skeleton", empty)]},
                "circles": dict(geo.get("circles", {"x": [], "y": [], "r": [], "t": []})),
                "line": {"x": list(xs), "y": list(ys)},
                "para": {"x": list(px), "y": list(py)}}

        def commit():
            for k, d in data.items():
                self._ov[k].data = d

        on_document(commit)

    def _compute_effects(self, *_):
        if self.per_step is None:
            self.effects = None
            return
        eff = traversal_effects(self.per_step, method=self.method)
        self.effects = eff
        scale = 1.0 if self.method == "spearman" else max(1e-9, float(np.nanmax(np.abs(eff.to_numpy()))))
        data, xr, yr = _heatmap_data(eff, scale)
        L, S = self.traversal.shape
        per_step = self.per_step
        lines = {}
        for m in METRICS:
            lines[m] = [{"step": list(range(S)), "value": per_step.loc[lat, m].to_numpy(),
                         "latent": [lat] * S} for lat in range(L)]

        def commit():
            self._effect_fig.y_range.factors = yr
            self._effect_fig.height = 120 + 28 * len(yr)
            self._effect_map.update(low=-scale, high=scale)
            self._effect_src.data = data
            for m, f in self._lines.items():
                f.renderers = []
                for lat, d in enumerate(lines[m]):
                    colour = Category10_10[lat % 10]
                    f.line(x="step", y="value", source=ColumnDataSource(d), line_color=colour, line_width=2,
                           legend_label=f"latent {lat}")
                    f.scatter(x="step", y="value", source=ColumnDataSource(d), color=colour, size=5)
                if f.legend:
                    f.legend.label_text_font_size = "8px"
                    f.legend.location = "top_left"
                    f.legend.background_fill_alpha = 0.5

        on_document(commit)
        what = ("Spearman correlation of the metric with the step (+1: rises steadily along the latent)"
                if self.method == "spearman" else
                "least-squares change from first to last step, in standard deviations of the metric over "
                "the grid")
        table = eff.copy()
        table.index = [f"latent {i}" for i in table.index]
        self._effect_table.object = table
        strongest = ", ".join(f"{m} ← latent **{eff[m].abs().idxmax()}**" for m in eff.columns
                              if eff[m].abs().max() > 0)
        self._effect_note.object = (f"Effect size: {what}. Latent with the strongest effect on each "
                                    f"metric: {strongest or 'none'}.")
        self._results.visible = True

    # ---------------------------------------------------------------------------------------------
    # codes

    def load_codes(self, codes_path, samples_path, **kwargs) -> pd.DataFrame:
        """Load codes and the matching samples; returns the codes. Metrics CSVs are used as is."""
        codes = load_codes(codes_path)
        samples_path = Path(samples_path)
        metrics = None
        images = None
        if samples_path.is_file() and samples_path.suffix.lower() == ".csv":
            df = pd.read_csv(samples_path)
            present = [m for m in METRICS if m in df.columns]
            if not present:
                raise SampleFormatError(f"{samples_path.name}: found columns {list(df.columns)}; expected "
                                        f"metric columns among {list(METRICS)}")
            metrics = df[present].reset_index(drop=True)
            n = len(metrics)
        else:
            images = load_samples(samples_path, **kwargs).images
            n = len(images)
        if n != len(codes):
            raise SampleFormatError(f"found {len(codes)} codes but {n} samples; expected one code row per "
                                    "sample")
        self._pending_images = images
        self.param.update(codes=codes, code_metrics=metrics, pcorr=None, mig_result=None)
        self._codes_info.object = (f"**Codes:** {len(codes):,} x {codes.shape[1]} ({', '.join(codes.columns[:8])}"
                                   f"{'…' if codes.shape[1] > 8 else ''}); samples: {samples_path.name}")
        if metrics is not None:
            self._analyse_codes()
        return codes

    def measure_codes(self) -> pd.DataFrame:
        """Measure the coded samples synchronously and compute partial correlations and MIG."""
        if self._pending_images is not None:
            self.code_metrics = self.codes_job.run_sync(self._pending_images)
            self._analyse_codes()
        return self.code_metrics

    async def _on_codes(self, event=None):
        self._error.visible = False
        try:
            cpath = self._codes_path.value.strip() or (
                self._store_upload(self._codes_upload) if self._codes_upload.value else "")
            spath = self._samples_path.value.strip() or (
                self._store_upload(self._samples_upload) if self._samples_upload.value else "")
            if not cpath or not spath:
                raise ValueError("give both the codes and their samples (path or upload)")
            self.load_codes(cpath, spath)
        except (SampleFormatError, FileNotFoundError, ValueError, OSError) as e:
            self._show_error(f"Could not load the codes: {e}")
            return
        if self._pending_images is None:
            return
        self._codes_button.disabled = True
        try:
            self.code_metrics = await self.codes_job.run(self._pending_images)
        except MeasureCancelled as e:
            self._codes_info.object += f"  \n*Measuring {e}.*"
            return
        finally:
            self._codes_button.disabled = False
        self._analyse_codes()

    def _analyse_codes(self):
        try:
            pc = partial_correlations(self.codes, self.code_metrics)
            result = mig(self.codes, self.code_metrics) if self.codes.shape[1] >= 2 else None
        except ValueError as e:
            self._show_error(f"Could not analyse the codes: {e}")
            return
        self.param.update(pcorr=pc, mig_result=result)
        data, xr, yr = _heatmap_data(pc, 1.0)

        def commit():
            self._pcorr_fig.y_range.factors = yr
            self._pcorr_fig.height = 120 + 28 * len(yr)
            self._pcorr_src.data = data

        on_document(commit)
        if result is None:
            self._mig.object = "MIG needs at least two codes."
        else:
            per = ", ".join(f"{k}: {v:.2f}" for k, v in result.per_factor.items())
            self._mig.object = (f"**MIG = {result.score:.3f}** (mutual information gap, 20-bin histograms; "
                                f"1: each metric is captured by one code alone). Per metric: {per}.")
        self._codes_results.visible = True

    # ---------------------------------------------------------------------------------------------

    def __panel__(self):
        grid = pn.Row(pn.Column(pn.pane.Markdown("### Traversal grid (rows: latents, columns: steps; click an "
                                                 "image)"), self._grid_pane),
                      pn.Column(self._digit_title, pn.pane.Bokeh(self._digit), self._digit_table))
        codes = pn.Column(
            pn.pane.Markdown("### Codes vs metrics (optional)\nLatent codes of N samples and the samples "
                             "themselves (or their metrics CSV): partial correlation of each code with each "
                             "metric, controlling for the other codes, and the MIG."),
            pn.Row(self._codes_upload, self._codes_path), pn.Row(self._samples_upload, self._samples_path),
            self._codes_button, self.codes_job.panel(), self._codes_info, self._codes_results)
        return pn.Column(
            pn.pane.Markdown("## Latent traversals\nWhich latent controls which factor of variation?"),
            pn.Row(self._upload, self._path, self._rows, self._cols, self._load_button, align="end"),
            self._info, self._error, self.job.panel(),
            grid, self._results, codes,
            css_classes=["explorer-traversals"], sizing_mode="stretch_width")
