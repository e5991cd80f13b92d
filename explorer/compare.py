"""Compare samples: a generative model's samples against the reference data, metric by metric.

Load a model's samples (upload or path; any format of :func:`core.samples.load_samples`), measure
them in a background thread with a progress bar and a Cancel button while the app stays responsive,
then see each metric's histogram for samples vs reference (overlaid, optionally per label), the
kernel two-sample (MMD) test and per-metric distances, a gallery of the samples furthest from the
data and a CSV download of the sample metrics.

Works in the app (``CompareView(state=...)``) and standalone in a notebook::

    import panel as pn
    from explorer.compare import CompareView
    pn.extension(inline=True)
    view = CompareView()          # reference: the bundled sample
    view.load("samples.npy")      # or use the upload widget
    view.measure()                # synchronous in scripts; the button measures in the background
    view
"""
from __future__ import annotations

import asyncio
import io
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from core.analysis import (METRICS, ComparisonReport, compare_report, distance_to_data)
from core.samples import SampleFormatError, Samples, load_samples
from explorer.browser import CELL, METRIC_LABELS, thumbnail_page
from explorer.state import ExplorerState

__all__ = ["CompareView", "MeasureCancelled", "measure_in_chunks", "BackgroundMeasure", "as_uint8"]

# One worker per kind of view job, so measuring samples never waits for the app's own jobs.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-measure")

SAMPLE_COLOUR = "#e8590c"
REFERENCE_COLOUR = "#495057"
ACCEPT = ".npy,.npz,.gz,.idx,.png,.jpg,.jpeg,.ubyte"


class MeasureCancelled(Exception):
    """Measuring was cancelled by the user."""


def as_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 copy of images that are uint8 or float in [0, 1] (for display)."""
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(np.asarray(images, np.float64) * 255), 0, 255).astype(np.uint8)


def measure_in_chunks(images: np.ndarray, *, cancel: Optional[threading.Event] = None,
                      report: Optional[Callable[[int, int], None]] = None, chunk: int = 100,
                      workers: Optional[int] = None) -> pd.DataFrame:
    """Measure digits chunk by chunk with ``core.measure.measure_batch``, reporting progress.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, 28, 28)
        uint8 or float in [0, 1].
    cancel : threading.Event, optional
        Checked between chunks; when set, :class:`MeasureCancelled` is raised.
    report : callable, optional
        ``report(done, total)`` after each chunk.
    chunk : int
        Digits per ``measure_batch`` call.
    workers : int, optional
        Passed to ``measure_batch``.

    Returns
    -------
    pandas.DataFrame
        N rows, the six metric columns.
    """
    from core.measure import measure_batch

    n = len(images)
    frames = []
    if report:
        report(0, n)
    for start in range(0, n, chunk):
        if cancel is not None and cancel.is_set():
            raise MeasureCancelled(f"cancelled after {start:,} of {n:,} digits")
        frames.append(measure_batch(images[start:start + chunk], progress=False, workers=workers))
        if report:
            report(min(start + chunk, n), n)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(METRICS))


class BackgroundMeasure:
    """Progress bar + Cancel button + status line for measuring off the event loop.

    ``await job.run(images)`` measures in a worker thread and updates the bar from the event loop
    (the app, or a notebook's kernel loop) until done; ``job.cancel()`` (the button) stops it
    between chunks.
    """

    def __init__(self, name: str, chunk: int = 100, workers: Optional[int] = None):
        self.chunk = chunk
        self.workers = workers
        self._cancel = threading.Event()
        self._done = (0, 0)
        self.running = False
        self.progress = pn.indicators.Progress(label=f"{name} progress", value=0, max=100, width=320,
                                               visible=False, css_classes=[f"{name}-progress"],
                                               bar_color="primary", margin=(12, 10))
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger", width=90,
                                               visible=False, css_classes=[f"{name}-cancel"])
        self.cancel_button.on_click(lambda e: self.cancel())
        self.label = pn.pane.Markdown("", margin=(5, 10), css_classes=[f"{name}-progress-label"])

    def cancel(self):
        """Ask the running job to stop after the current chunk."""
        self._cancel.set()

    def _report(self, done: int, total: int):
        self._done = (done, total)

    def _show(self):
        done, total = self._done
        self.progress.value = int(100 * done / total) if total else 0
        self.label.object = f"Measuring… {done:,} / {total:,} digits" if total else "Measuring…"

    async def run(self, images: np.ndarray) -> pd.DataFrame:
        """Measure ``images`` in the worker thread; raises :class:`MeasureCancelled` if cancelled."""
        if self.running:
            raise RuntimeError("a measurement is already running")
        self.running = True
        self._cancel.clear()
        self._done = (0, len(images))
        self.progress.param.update(visible=True, value=0)
        self.cancel_button.visible = True
        self._show()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            _EXECUTOR, lambda: measure_in_chunks(images, cancel=self._cancel, report=self._report,
                                                 chunk=self.chunk, workers=self.workers))
        try:
            while not future.done():
                self._show()
                await asyncio.wait([future], timeout=0.1)
            result = future.result()
            self._show()
            return result
        finally:
            self.running = False
            self.progress.visible = False
            self.cancel_button.visible = False
            self.label.object = ""

    def run_sync(self, images: np.ndarray) -> pd.DataFrame:
        """Measure in the calling thread (scripts, tests)."""
        return measure_in_chunks(images, chunk=self.chunk, workers=self.workers)

    def panel(self):
        return pn.Row(self.progress, self.cancel_button, self.label, align="center")


def save_upload(values, filenames, folder: Path) -> Path:
    """Write uploaded file(s) into ``folder``; several images become a folder of images.

    Returns
    -------
    pathlib.Path
        The file, or the folder holding several files.
    """
    if isinstance(values, (bytes, bytearray)):
        values, filenames = [values], [filenames]
    values, filenames = list(values or []), list(filenames or [])
    if not values:
        raise ValueError("no file was uploaded")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for data, name in zip(values, filenames):
        safe = Path(str(name)).name or "upload"
        p = folder / safe
        p.write_bytes(data)
        paths.append(p)
    return paths[0] if len(paths) == 1 else folder


def _histogram_figure(metric: str) -> tuple:
    fig = figure(width=330, height=210, title=METRIC_LABELS.get(metric, metric), tools="",
                 toolbar_location=None, name=f"compare-hist-{metric}")
    ref = ColumnDataSource(data={"left": [], "right": [], "top": []})
    smp = ColumnDataSource(data={"left": [], "right": [], "top": []})
    fig.quad(left="left", right="right", bottom=0, top="top", source=ref, fill_color=REFERENCE_COLOUR,
             fill_alpha=0.35, line_color=REFERENCE_COLOUR, line_alpha=0.6, legend_label="reference")
    fig.quad(left="left", right="right", bottom=0, top="top", source=smp, fill_color=SAMPLE_COLOUR,
             fill_alpha=0.35, line_color=SAMPLE_COLOUR, line_alpha=0.8, legend_label="samples")
    fig.legend.location = "top_right"
    fig.legend.label_text_font_size = "9px"
    fig.legend.background_fill_alpha = 0.6
    fig.yaxis.axis_label = "density"
    fig.toolbar.logo = None
    return fig, ref, smp


def on_document(fn: Callable[[], None]) -> None:
    """Run ``fn`` (which edits raw Bokeh models) holding the document lock.

    In a served app it is scheduled on the session's event loop (Bokeh refuses model changes from
    async callbacks, which run outside the lock); in scripts and notebooks it runs at once.
    """
    doc = pn.state.curdoc
    pn.state.execute(fn, schedule=bool(doc is not None and doc.session_context))


def _hist(values: np.ndarray, edges: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return {"left": [], "right": [], "top": []}
    v = v[(v >= edges[0]) & (v <= edges[-1])]
    if len(v) == 0:
        return {"left": [], "right": [], "top": []}
    top, _ = np.histogram(v, bins=edges, density=True)
    return {"left": edges[:-1], "right": edges[1:], "top": top}


async def measure_loaded(view, images: np.ndarray, description: str):
    """Measure `images` with ``view.job`` for a view that loaded them (CompareView, TraversalView).

    The view's load button is disabled meanwhile; a cancellation or failure is shown in the view's info
    pane / error alert and gives None, never an exception: user data must not take the app down.
    """
    view._load_button.disabled = True
    try:
        return await view.job.run(images)
    except MeasureCancelled as e:
        view._info.object = f"**Loaded** {description}  \n*Measuring {e}.*"
    except Exception as e:
        view._show_error(f"Measuring failed: {type(e).__name__}: {e}")
    finally:
        view._load_button.disabled = False
    return None


class CompareView(pn.viewable.Viewer):
    """Samples vs reference data: histograms, MMD test, distances, atypical samples, CSV.

    Parameters
    ----------
    state : ExplorerState, optional
        Shared app state; its ``dataset`` (images, labels, metrics) is the reference data. A new
        state on the bundled sample when omitted.
    workers : int, optional
        Worker processes for ``measure_batch`` (default: measure in the background thread).
    """

    state = param.ClassSelector(class_=ExplorerState)
    samples = param.ClassSelector(class_=Samples, allow_None=True, doc="The loaded samples.")
    sample_metrics = param.DataFrame(default=None, allow_None=True, doc="Their morphometrics.")
    report = param.ClassSelector(class_=ComparisonReport, allow_None=True)
    label = param.Selector(default="all", objects=["all"], doc="Label for the histograms.")
    linear = param.Boolean(default=True, doc="Linear-time MMD (the paper's); else quadratic.")
    gallery_size = param.Integer(default=24, bounds=(1, 96))

    def __init__(self, state: ExplorerState | None = None, workers: Optional[int] = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        self._tmp = tempfile.TemporaryDirectory(prefix="morpho-samples-")
        self._uploads = 0
        self.job = BackgroundMeasure("compare", workers=workers)
        self._upload = pn.widgets.FileInput(accept=ACCEPT, multiple=True, label="Upload samples",
                                            css_classes=["compare-upload"])
        self._path = pn.widgets.TextInput(label="…or a path on the server", placeholder="/path/to/samples.npy",
                                          width=380, css_classes=["compare-path"])
        self._load_button = pn.widgets.Button(label="Load and measure", color="primary", width=160,
                                              css_classes=["compare-load"])
        self._linear = pn.widgets.Checkbox.from_param(self.param.linear, label="Linear-time MMD (paper)")
        self._label_select = pn.widgets.Select.from_param(self.param.label, label="Histograms for label",
                                                          width=160)
        self._info = pn.pane.Markdown("Load a model's samples: `.npy`/`.npz` (N,28,28), (N,1,28,28) or "
                                      "(N,784) in uint8, [0,1] or [-1,1]; IDX; PNG/JPEG images or a grid.",
                                      css_classes=["compare-info"], sizing_mode="stretch_width")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["compare-error"],
                                    sizing_mode="stretch_width")
        self._mmd = pn.pane.Markdown("", css_classes=["compare-mmd"], sizing_mode="stretch_width")
        self._table = pn.pane.DataFrame(pd.DataFrame(), index=False, float_format="{:.4g}".format,
                                        css_classes=["compare-table"], sizing_mode="stretch_width",
                                        max_height=420)
        self._hists = {m: _histogram_figure(m) for m in METRICS}
        self._hist_note = pn.pane.Markdown("", margin=(0, 10))
        n = self.gallery_size
        self._gcols = 12
        self._grows = max(1, -(-n // self._gcols))
        w, h = self._gcols * CELL, self._grows * CELL
        self._gallery_img = ColumnDataSource(data={"image": [np.zeros((h, w), np.uint32)]})
        self._gallery_cells = ColumnDataSource(data={"x": [], "y": [], "index": [], "distance": [],
                                                     **{m: [] for m in METRICS}})
        gfig = figure(x_range=(0, w), y_range=(0, h), width=int(w * 2.2), height=int(h * 2.2), tools="",
                      toolbar_location=None, min_border=0, name="compare-gallery")
        gfig.image_rgba(image="image", x=0, y=0, dw=w, dh=h, source=self._gallery_img)
        cells = gfig.rect(x="x", y="y", width=CELL, height=CELL, source=self._gallery_cells, fill_alpha=0,
                          line_alpha=0, hover_fill_alpha=0.12, hover_fill_color="#ff8c00")
        gfig.add_tools(HoverTool(renderers=[cells], tooltips=[
            ("sample", "@index"), ("distance (sd)", "@distance{0.00}")] +
            [(m, f"@{m}{{0.00}}") for m in METRICS]))
        gfig.axis.visible = False
        gfig.grid.visible = False
        gfig.outline_line_color = None
        self._gallery = gfig
        self._download = pn.widgets.FileDownload(callback=self._csv, filename="samples-morpho.csv",
                                                 label="Download sample metrics (CSV)", color="success",
                                                 disabled=True, css_classes=["compare-download"], width=260)
        self._load_button.on_click(self._on_load)
        self._upload.param.watch(self._on_upload, "value")
        self.state.param.watch(self._on_reference, "dataset")
        self.param.watch(self._update_report, ["sample_metrics", "linear"])
        self.param.watch(self._update_hists, ["label", "report"])
        self._results = pn.Column(visible=False, sizing_mode="stretch_width")
        self._build_results()

    # ---------------------------------------------------------------------------------------------
    # loading and measuring

    def load(self, path, **kwargs) -> Samples:
        """Load samples from ``path`` (see :func:`core.samples.load_samples`) without measuring."""
        samples = load_samples(path, **kwargs)
        self.param.update(samples=samples, sample_metrics=None, report=None)
        self._info.object = f"**Loaded** {samples.description}"
        self._error.visible = False
        self._results.visible = False
        self._download.disabled = True
        return samples

    def measure(self) -> pd.DataFrame:
        """Measure the loaded samples synchronously (scripts and notebooks)."""
        if self.samples is None:
            raise ValueError("load samples first")
        df = self.job.run_sync(self.samples.images)
        self.sample_metrics = df
        return df

    async def load_and_measure(self, path, **kwargs) -> bool:
        """Load ``path`` and measure it in the background; report errors in the view.

        Returns
        -------
        bool
            Whether the samples were loaded and measured (False on error or cancellation).
        """
        self._error.visible = False
        try:
            samples = self.load(path, **kwargs)
        except (SampleFormatError, FileNotFoundError, ValueError) as e:
            self._show_error(f"Could not load the samples: {e}")
            return False
        except Exception as e:  # user data must never take the app down
            self._show_error(f"Could not load {Path(str(path)).name}: {type(e).__name__}: {e}")
            return False
        df = await measure_loaded(self, samples.images, samples.description)
        if df is None:
            return False
        self.sample_metrics = df
        return True

    def _show_error(self, text: str):
        self._error.object = text
        self._error.visible = True

    async def _on_load(self, event=None):
        try:  # the server's path policy: inside --data-root, or off on a public server
            path = self.state.resolve_user_path(self._path.value, "samples")
        except ValueError as e:
            self._show_error(str(e))
            return
        await self.load_and_measure(path)

    async def _on_upload(self, event):
        if not event.new:
            return
        self._uploads += 1
        folder = Path(self._tmp.name) / f"upload-{self._uploads}"
        try:
            path = save_upload(self._upload.value, self._upload.filename, folder)
        except (OSError, ValueError) as e:
            self._show_error(f"Could not store the upload: {e}")
            return
        await self.load_and_measure(path)

    def _on_reference(self, *_):
        self._update_report()

    # ---------------------------------------------------------------------------------------------
    # results

    def _update_report(self, *_):
        df = self.sample_metrics
        ds = self.state.dataset
        if df is None or self.samples is None:
            self.report = None
            self._results.visible = False
            return
        try:
            rep = compare_report(df, ds.metrics, sample_labels=self.samples.labels,
                                 reference_labels=ds.labels, linear=self.linear, seed=0)
        except ValueError as e:
            self._show_error(f"Could not compare: {e}")
            self.report = None
            return
        labels = ["all"]
        if ds.labels is not None:
            labels += [str(v) for v in np.unique(ds.labels)]
        self.param.label.objects = labels
        if self.label not in labels:
            self.label = "all"
        self.report = rep
        self._render_report(rep)
        self._render_gallery()
        self._download.disabled = False
        self._results.visible = True

    def _render_report(self, rep: ComparisonReport):
        r = rep.mmd
        verdict = ("**differ** from the reference data (p < 0.01)" if r.p_value < 0.01 else
                   "are **not distinguishable** from the reference data at the 1% level")
        self._mmd.object = (
            f"### Kernel two-sample test\n"
            f"{len(self.sample_metrics):,} samples vs {len(self.state.dataset):,} reference digits "
            f"({self.state.dataset.name}), on {', '.join(r.columns)}:\n\n"
            f"`{r.to_text()}`\n\nThe samples' morphometrics {verdict}.")
        table = rep.distances.copy()
        table["label"] = table["label"].astype(str)
        table = table[["label", "metric", "n_samples", "n_reference", "sample_mean", "reference_mean",
                       "wasserstein", "wasserstein_std", "ks_statistic", "ks_p_value"]]
        table.columns = ["label", "metric", "n samples", "n reference", "mean samples", "mean reference",
                         "W1", "W1 / sd", "KS", "KS p"]
        self._table.object = table

    def _update_hists(self, *_):
        rep, df, ds = self.report, self.sample_metrics, self.state.dataset
        if rep is None or df is None:
            return
        ref = ds.metrics
        smask = np.ones(len(df), bool)
        rmask = np.ones(len(ref), bool)
        note = ""
        if self.label != "all" and ds.labels is not None:
            lab = int(self.label)
            rmask = ds.labels == lab
            if self.samples.labels is not None:
                smask = self.samples.labels == lab
            else:
                note = (f"*The samples have no labels: all samples are shown against reference digits "
                        f"of label {lab}.*")
        self._hist_note.object = note
        for m, (fig, rsrc, ssrc) in self._hists.items():
            r = ref[m].to_numpy(dtype=float)[rmask]
            s = df[m].to_numpy(dtype=float)[smask]
            both = np.concatenate([r[np.isfinite(r)], s[np.isfinite(s)]])
            if len(both) == 0:
                empty = {"left": [], "right": [], "top": []}
                on_document(lambda rsrc=rsrc, ssrc=ssrc: (rsrc.update(data=dict(empty)),
                                                          ssrc.update(data=dict(empty))))
                continue
            lo, hi = np.percentile(both, [0.5, 99.5])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, 41)
            # bins over the central 99% of both sets: far outliers are left out, not piled up
            rd, sd = _hist(r, edges), _hist(s, edges)
            on_document(lambda rsrc=rsrc, ssrc=ssrc, rd=rd, sd=sd: (rsrc.update(data=rd),
                                                                    ssrc.update(data=sd)))

    def _render_gallery(self):
        df, ds = self.sample_metrics, self.state.dataset
        dist = distance_to_data(df, ds.metrics)
        order = np.argsort(np.where(np.isfinite(dist), -dist, np.inf), kind="stable")[:self.gallery_size]
        imgs = as_uint8(self.samples.images[order])
        page = thumbnail_page(imgs, self._grows, self._gcols)
        k = np.arange(len(order))
        r, c = np.divmod(k, self._gcols)
        h = self._grows * CELL
        data = {"x": c * CELL + CELL / 2, "y": h - r * CELL - CELL / 2, "index": order,
                "distance": dist[order]}
        for m in METRICS:
            data[m] = df[m].to_numpy()[order]

        def commit():
            self._gallery_img.data = {"image": [page]}
            self._gallery_cells.data = data

        on_document(commit)
        self.furthest = pd.DataFrame({"sample": order, "distance": dist[order]})

    def _csv(self):
        df = self.sample_metrics
        if df is None:
            return io.StringIO("")
        out = df.copy()
        out.index.name = "index"
        if self.samples is not None and self.samples.labels is not None:
            out.insert(0, "label", self.samples.labels)
        name = Path(self.samples.path).stem if self.samples is not None else "samples"
        self._download.filename = f"{name}-morpho.csv"
        return io.StringIO(out.to_csv())

    # ---------------------------------------------------------------------------------------------
    # layout

    def _build_results(self):
        hists = pn.GridBox(*[pn.pane.Bokeh(self._hists[m][0]) for m in METRICS], ncols=3)
        self._results[:] = [
            self._mmd,
            pn.pane.Markdown("### Per-metric distances\nW1: Wasserstein-1 distance in the metric's units "
                             "(W1 / sd: in reference standard deviations); KS: Kolmogorov–Smirnov "
                             "statistic (largest difference of the cumulative distributions) and its "
                             "p-value. Rows per label when both samples and reference have labels."),
            self._table,
            pn.Row(pn.pane.Markdown("### Histograms: samples vs reference"), self._label_select),
            self._hist_note,
            hists,
            pn.pane.Markdown(f"### The {self.gallery_size} samples furthest from the data\nMean distance "
                             "to the 5 nearest reference digits in morphometric space (length, "
                             "thickness, slant, width, height; in reference standard deviations), "
                             "largest first; hover for the values."),
            pn.pane.Bokeh(self._gallery),
            self._download,
        ]

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("## Compare samples with the data\nHas the model learned the data's "
                             "morphology? Measure its samples and compare them with the reference "
                             "digits."),
            pn.Row(self._upload, pn.Column(pn.Row(self._path, self._load_button, align="end"))),
            self._linear,
            self._info,
            self._error,
            self.job.panel(),
            self._results,
            css_classes=["explorer-compare"], sizing_mode="stretch_width",
        )
