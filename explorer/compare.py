"""Compare samples: a generative model's samples against the reference data, metric by metric.

Load a model's samples (upload, path, or the live model of the Model tab; one source at a time: the
last one used is on show and named in the info line), measure them in the
server's shared worker pool (:mod:`explorer.jobs`: fair between sessions, with a progress bar and a
Cancel button) while the app stays responsive, then see:

- the verdict of the kernel two-sample (MMD) test, from the quadratic-time and the linear-time
  statistics (:func:`core.analysis.compare_report`), overall and per label when both sides have labels;
- per-metric distances (Wasserstein-1, Kolmogorov-Smirnov) with readable p-values;
- each metric's histogram for samples vs reference (overlaid, optionally per label);
- the samples furthest from the data;
- downloads in the browser: the report (HTML, JSON) and the sample metrics (CSV).

A failed load never disturbs the results on show: they stay those of the last samples measured.
Every file is read through the session's gate (:class:`explorer.gate.Gate`: the app's read limits,
uploads stored under a safe name) off the event loop, and everything the visitor supplied (file
names, descriptions, messages) is escaped where it is shown.

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
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Legend, LegendItem, Range1d
from bokeh.plotting import figure

from core.analysis import METRICS, ComparisonReport, compare_report, distance_to_data, format_p
from core.samples import SampleFormatError, Samples
from explorer.browser import CELL, METRIC_LABELS, thumbnail_page
from explorer.gate import Upload, escape_md
from explorer.live_html import LiveHTML
from explorer.plotting import wrap_row
from explorer.state import ExplorerState

__all__ = ["CompareView", "MeasureCancelled", "BackgroundMeasure", "as_uint8", "heading", "VIEW_CSS",
           "store_upload", "user_message"]

SAMPLE_COLOUR = "#e8590c"
REFERENCE_COLOUR = "#495057"
ACCEPT = ".npy,.npz,.gz,.idx,.png,.jpg,.jpeg,.ubyte"

#: Value-range choices of the loader (label -> ``value_range`` of :func:`core.samples.load_samples`).
VALUE_RANGES = {"detect": None, "uint8 (0–255)": "uint8", "float [0, 1]": "[0,1]", "float [-1, 1]": "[-1,1]"}

#: One heading scale for every diagnostics view (Markdown panes render in their own shadow root, so
#: each pane carries it): the view title, then equal section headings.
VIEW_CSS = """
h2 {font-size: 1.3rem; margin: 0.4em 0 0.3em 0;}
h3 {font-size: 1.05rem; margin: 0.6em 0 0.2em 0;}
h4 {font-size: 0.95rem; margin: 0.5em 0 0.2em 0;}
"""


def heading(text: str, **kwargs) -> pn.pane.Markdown:
    """A Markdown pane with the views' heading sizes (use ``##`` for the view, ``###`` for sections)."""
    if "width" not in kwargs:
        kwargs.setdefault("sizing_mode", "stretch_width")
    return pn.pane.Markdown(text, stylesheets=[VIEW_CSS], **kwargs)


class MeasureCancelled(Exception):
    """Measuring was cancelled by the user."""


def as_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 copy of images that are uint8 or float in [0, 1] (for display)."""
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(np.asarray(images, np.float64) * 255), 0, 255).astype(np.uint8)


def on_document(fn: Callable[[], None], state: Optional[ExplorerState] = None) -> None:
    """Run ``fn`` (which edits raw Bokeh models) holding the document lock.

    With ``state``: through ``state.run_on_document`` (its session's document, or at once in scripts
    and notebooks). Without: scheduled on the current session's event loop in a served app (Bokeh
    refuses model changes from async callbacks, which run outside the lock), at once elsewhere.
    """
    if state is not None:
        state.run_on_document(fn)
        return
    doc = pn.state.curdoc
    pn.state.execute(fn, schedule=bool(doc is not None and doc.session_context))


def start_on_document(state: ExplorerState, coro_fn: Callable[[], "asyncio.Future"]) -> None:
    """Start the coroutine ``coro_fn()`` as if a widget of this session had: from its document's event
    loop with the document current (in a served app), at once in scripts and notebooks.

    For work triggered by another view (the live model setting ``state.model_samples``): started from
    inside that view's own async callback, the new coroutine would see the unlocked document proxy as
    current, and the new plots it adds would never reach the browser.
    """
    async def run():
        await coro_fn()

    state.run_on_document(lambda: pn.state.execute(run))


def _owner() -> str:
    from explorer import jobs

    return jobs.session_owner()


async def run_in_pool(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in the server's shared pool and await it without blocking the loop."""
    from explorer import jobs

    return await jobs.submit(_owner(), fn, *args, **kwargs)


async def run_in_worker(fn, *args, **kwargs):
    """As :func:`run_in_pool`, for long numerical work: in a worker process once they are on
    (:func:`explorer.jobs.submit_to_worker`; ``fn`` importable, arguments picklable)."""
    from explorer import jobs

    return await jobs.submit_to_worker(_owner(), fn, *args, **kwargs)


class BackgroundMeasure:
    """Progress bar + Cancel button + status line for measuring in the shared worker pool.

    ``await job.run(images)`` measures with :func:`explorer.jobs.measure` (chunks that interleave
    fairly with other sessions' work) and moves the bar from the event loop until done;
    ``job.cancel()`` (the button) cancels the job's remaining chunks.
    """

    def __init__(self, name: str):
        self.name = name
        self._job = None
        self._done = (0, 0)
        self.running = False
        self.progress = pn.indicators.Progress(label=f"{name} progress", value=0, max=100, width=320,
                                               visible=False, css_classes=[f"{name}-progress"],
                                               bar_color="primary", margin=(12, 10))
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger", width=90,
                                               visible=False, css_classes=[f"{name}-cancel"])
        self.cancel_button.on_click(lambda e: self.cancel())
        # rewritten ten times a second while measuring: LiveHTML (a Markdown pane's change re-lays out the page)
        self.label = LiveHTML(margin=(5, 10), css_classes=[f"{name}-progress-label"])

    def cancel(self):
        """Cancel the running measurement (its unstarted chunks are dropped)."""
        if self._job is not None:
            self._job.cancel()

    def _report(self, done: int, total: int):
        # called from a worker thread: only store; the event loop shows it
        self._done = (done, total)

    def _show(self):
        done, total = self._done
        self.progress.value = int(100 * done / total) if total else 0
        self.label.html = f"Measuring… {done:,} / {total:,} digits" if total else "Measuring…"

    async def run(self, images: np.ndarray) -> pd.DataFrame:
        """Measure ``images`` (N, 28, 28) in the pool; raises :class:`MeasureCancelled` if cancelled.

        Returns
        -------
        pandas.DataFrame
            N rows, the six metric columns.
        """
        from explorer import jobs

        if self.running:
            raise RuntimeError("a measurement is already running")
        self.running = True
        n = len(images)
        self._done = (0, n)
        self.progress.param.update(visible=True, value=0)
        self.cancel_button.visible = True
        self._show()
        try:
            self._job = job = jobs.measure(_owner(), images, progress=self._report)
            while not job.done():
                self._show()
                await asyncio.sleep(0.1)
            if job.cancelled():
                raise MeasureCancelled(f"cancelled after {self._done[0]:,} of {n:,} digits")
            try:
                result = job.result()
            except (asyncio.CancelledError, Exception) as e:
                if job.cancelled() or type(e).__name__ == "CancelledError":
                    raise MeasureCancelled(f"cancelled after {self._done[0]:,} of {n:,} digits") from None
                raise
            self._show()
            return result.reset_index(drop=True)
        finally:
            self._job = None
            self.running = False
            self.progress.visible = False
            self.cancel_button.visible = False
            self.label.html = ""

    def run_sync(self, images: np.ndarray) -> pd.DataFrame:
        """Measure in the pool and wait (scripts, notebooks, tests)."""
        from explorer import jobs

        return jobs.measure(_owner(), images).result().reset_index(drop=True)

    def panel(self):
        return pn.Row(self.progress, self.cancel_button, self.label, align="center")


async def store_upload(state: ExplorerState, widget) -> Upload:
    """Store what the FileInput ``widget`` received through the session's gate (size checked, safe
    name, atomic), off the event loop.

    Raises
    ------
    ValueError
        No file, or over the upload limit (the message names the file, never a server path).
    OSError
        The server could not store it.
    """
    return await run_in_pool(state.gate.upload, widget.value, widget.filename)


def user_message(error, source=None) -> str:
    """An error's text for the visitor (plain text: escape it where it is shown).

    Server paths are hidden (an :class:`explorer.gate.Upload` shows as the name the visitor gave; a
    folder ``source`` is cut from the text), and the loader's "pass value_range=..." advice points
    at the view's Value range control.
    """
    from explorer.gate import Gate

    text = str(error)
    if isinstance(source, (str, Path)):
        text = text.replace(str(source) + "/", "").replace(str(source), "upload")
        source = None
    text = Gate.message(text, source)
    labels = {v: k for k, v in VALUE_RANGES.items()}
    return re.sub(r"pass value_range='([^']+)'",
                  lambda m: f"choose Value range “{labels.get(m.group(1), m.group(1))}” above and load "
                            "again", text)


def source_name(source) -> str:
    """How a loaded source is named in messages: an upload's name, a typed path's file name."""
    if isinstance(source, Upload):
        return source.name
    return Path(str(source)).name or str(source)


def _histogram_figure(metric: str) -> tuple:
    # explicit ranges, set with the data: an empty auto-ranged plot makes Bokeh warn in the console
    fig = figure(width=300, height=200, title=METRIC_LABELS.get(metric, metric), tools="save",
                 toolbar_location="right", name=f"compare-hist-{metric}", x_range=Range1d(0, 1),
                 y_range=Range1d(0, 1))
    ref = ColumnDataSource(data={"left": [], "right": [], "top": []})
    smp = ColumnDataSource(data={"left": [], "right": [], "top": []})
    r1 = fig.quad(left="left", right="right", bottom=0, top="top", source=ref, fill_color=REFERENCE_COLOUR,
                  fill_alpha=0.35, line_color=REFERENCE_COLOUR, line_alpha=0.6)
    r2 = fig.quad(left="left", right="right", bottom=0, top="top", source=smp, fill_color=SAMPLE_COLOUR,
                  fill_alpha=0.35, line_color=SAMPLE_COLOUR, line_alpha=0.8)
    # The legend sits above the plot area: it can never cover a bar.
    legend = Legend(items=[LegendItem(label="reference", renderers=[r1]),
                           LegendItem(label="samples", renderers=[r2])],
                    orientation="horizontal", label_text_font_size="9px", padding=2, margin=0,
                    spacing=8, glyph_height=10, glyph_width=14)
    fig.add_layout(legend, "above")
    fig.yaxis.axis_label = "density"
    fig.toolbar.logo = None
    return fig, ref, smp


def _hist(values: np.ndarray, edges: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    v = v[(v >= edges[0]) & (v <= edges[-1])]
    if len(v) == 0:
        return {"left": [], "right": [], "top": []}
    top, _ = np.histogram(v, bins=edges, density=True)
    return {"left": edges[:-1], "right": edges[1:], "top": top}


async def read_for_view(view, what: str, hidden, read, source, *args, **kwargs):
    """``read(source, *args, **kwargs)`` off the event loop (the gate's read bounds it); on failure the view's
    error alert says why, naming ``what`` and the source as the visitor knows it, and None is returned.

    ``hidden`` is what :func:`user_message` hides (an Upload, or an upload folder).
    """
    try:
        return await run_in_pool(read, source, *args, **kwargs)
    except (SampleFormatError, FileNotFoundError, ValueError) as e:
        view._show_error(f"Could not load the {what}: {user_message(e, hidden)}")
    except MemoryError:
        view._show_error(f"Could not load {source_name(source)}: not enough memory on the server.")
    except Exception as e:  # user data must never take the app down
        view._show_error(f"Could not load {source_name(source)}: {type(e).__name__}: {user_message(e, hidden)}")
    return None


async def measure_loaded(view, images: np.ndarray, description: str):
    """Measure `images` with ``view.job`` for a view that loaded them (CompareView, TraversalView).

    The view's load button is disabled meanwhile; a cancellation or failure is shown in the view's
    error alert and gives None, never an exception: user data must not take the app down.
    """
    view._load_button.disabled = True
    try:
        return await view.job.run(images)
    except MeasureCancelled as e:
        view._show_error(f"Measuring {description.split(':')[0]} was {e}; the results shown are unchanged.",
                         kind="warning")
    except Exception as e:
        view._show_error(f"Measuring failed: {type(e).__name__}: {e}")
    finally:
        view._load_button.disabled = False
    return None


def _bytes_download(**kwargs) -> pn.widgets.FileDownload:
    return pn.widgets.FileDownload(disabled=True, color="success", variant="outline",
                                   width=190, **kwargs)


class CompareView(pn.viewable.Viewer):
    """Samples vs reference data: verdict, MMD tests, distances, histograms, atypical samples, downloads.

    Parameters
    ----------
    state : ExplorerState, optional
        Shared app state; its ``dataset`` (images, labels, metrics) is the reference data, and samples
        set in its ``model_samples`` (by the Model tab) are loaded and measured. A new state on the
        bundled sample when omitted.
    """

    state = param.ClassSelector(class_=ExplorerState)
    samples = param.ClassSelector(class_=Samples, allow_None=True, doc="The measured samples on show.")
    sample_metrics = param.DataFrame(default=None, allow_None=True, doc="Their morphometrics.")
    report = param.ClassSelector(class_=ComparisonReport, allow_None=True)
    label = param.Selector(default="all", objects=["all"], doc="Label for the histograms.")
    value_range = param.Selector(default="detect", objects=list(VALUE_RANGES),
                                 doc="Intensity range of the files (detect, or declare it).")
    gallery_size = param.Integer(default=24, bounds=(1, 96))
    computing = param.Boolean(default=False, doc="The comparison report is being computed.")

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        self.job = BackgroundMeasure("compare")
        self.error_text = ""  # the error on show, plain text (the alert shows it escaped)
        self.origin = ""  # where the samples on show came from: "upload", "path" or "live model"
        self._upload = pn.widgets.FileInput(accept=ACCEPT, multiple=True, css_classes=["compare-upload"],
                                            width=240)
        self._path = pn.widgets.TextInput(label="…or a path on the server", placeholder="/path/to/samples.npy",
                                          width=260, css_classes=["compare-path"])
        self._range = pn.widgets.Select.from_param(self.param.value_range, label="Value range", width=140,
                                                   css_classes=["compare-range"])
        # The button loads the path box only; an upload loads when it arrives, the live model's samples
        # when sent: the last source used is on show, named in the info line.
        self._load_button = pn.widgets.Button(label="Load path and measure", color="primary", width=170,
                                              css_classes=["compare-load"], align="end")
        self._label_select = pn.widgets.Select.from_param(self.param.label, label="Histograms for label",
                                                          width=150)
        self._info = pn.pane.Markdown("Load a model's samples: `.npy`/`.npz` (N,28,28), (N,1,28,28) or "
                                      "(N,784) in uint8, [0,1] or [-1,1]; IDX; PNG/JPEG images or a grid. "
                                      "Or sample the live model in the Model tab.",
                                      css_classes=["compare-info"], sizing_mode="stretch_width")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["compare-error"],
                                    sizing_mode="stretch_width")
        # Nothing here hides or shows a layout: a layout made visible (or given new children) while its
        # tab is hidden is never drawn by the browser (the live model fills this view from its own tab).
        # Only single widgets/panes are shown and hidden; the results are always there, empty at first.
        self._spinner = pn.indicators.LoadingSpinner(value=True, size=22, margin=(5, 10), visible=False,
                                                     css_classes=["compare-busy"])
        self._busy_text = pn.pane.Markdown("", margin=(5, 0), css_classes=["compare-busy-text"])
        self._verdict = heading("### Verdict\n*No samples compared yet.*", css_classes=["compare-verdict"])
        self._mmd = heading("", css_classes=["compare-mmd"])
        self._per_label_title = heading("### Per label\nQuadratic-time MMD on each label's samples and "
                                        "reference digits; p adjusted over the labels by Holm's method.",
                                        visible=False)
        self._per_label = pn.pane.DataFrame(pd.DataFrame(), index=False, css_classes=["compare-per-label"],
                                            sizing_mode="stretch_width", max_height=300, visible=False)
        self._table = pn.pane.DataFrame(pd.DataFrame(), index=False, css_classes=["compare-table"],
                                        sizing_mode="stretch_width", max_height=380)
        self._effects_note = heading("", css_classes=["compare-effects-note"])
        self._effects = pn.pane.DataFrame(pd.DataFrame(), index=False, css_classes=["compare-effects"],
                                          sizing_mode="stretch_width")
        self._quality = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["compare-quality"],
                                      sizing_mode="stretch_width")
        self._hists = {m: _histogram_figure(m) for m in METRICS}
        self._hist_note = pn.pane.Markdown("", margin=(0, 10))
        n = self.gallery_size
        self._gcols = 12
        self._grows = max(1, -(-n // self._gcols))
        w, h = self._gcols * CELL, self._grows * CELL
        self._gallery_img = ColumnDataSource(data={"image": [np.zeros((h, w), np.uint32)]})
        self._gallery_cells = ColumnDataSource(data={"x": [], "y": [], "index": [], "distance": [],
                                                     **{m: [] for m in METRICS}})
        gfig = figure(x_range=(0, w), y_range=(0, h), width=int(w * 2.2), height=int(h * 2.2), tools="save",
                      toolbar_location="right", min_border=0, name="compare-gallery")
        gfig.image_rgba(image="image", x=0, y=0, dw=w, dh=h, source=self._gallery_img)
        cells = gfig.rect(x="x", y="y", width=CELL, height=CELL, source=self._gallery_cells, fill_alpha=0,
                          line_alpha=0, hover_fill_alpha=0.12, hover_fill_color="#ff8c00")
        gfig.add_tools(HoverTool(renderers=[cells], tooltips=[
            ("sample", "@index"), ("distance (sd)", "@distance{0.00}")] +
            [(m, f"@{m}{{0.00}}") for m in METRICS]))
        gfig.axis.visible = False
        gfig.grid.visible = False
        gfig.outline_line_color = None
        gfig.toolbar.logo = None
        self._gallery = gfig
        self._download = _bytes_download(callback=self._csv, filename="samples-morpho.csv",
                                         label="Sample metrics (CSV)", css_classes=["compare-download"])
        self._download_html = _bytes_download(callback=self._report_html, filename="comparison.html",
                                              label="Report (HTML)", css_classes=["compare-download-html"])
        self._download_json = _bytes_download(callback=self._report_json, filename="comparison.json",
                                              label="Report (JSON)", css_classes=["compare-download-json"])
        self._load_button.on_click(self._on_load)
        self._upload.param.watch(self._on_upload, "value")
        self.state.param.watch(self._on_reference, "dataset")
        self.state.param.watch(self._on_model_samples, "model_samples")
        self.param.watch(self._update_hists, ["label", "report"])
        self._results = pn.Column(sizing_mode="stretch_width")
        self._build_results()
        if self.state.model_samples is not None:  # sampled before this tab was first shown
            self._on_model_samples()

    # ---------------------------------------------------------------------------------------------
    # loading and measuring

    def _read(self, source, **kwargs) -> Samples:
        """Read samples through the session's gate (the app's read limits), whatever the source."""
        kwargs.setdefault("value_range", VALUE_RANGES[self.value_range])
        return self.state.gate.samples(source, **kwargs)

    def load(self, path, **kwargs) -> Samples:
        """Load samples from ``path`` (see :func:`core.samples.load_samples`) without measuring.

        The read goes through the state's gate, with the app's read limits. The results on show are
        cleared: call :meth:`measure` next (scripts and notebooks).
        """
        samples = self._read(path, **kwargs)
        self.param.update(samples=samples, sample_metrics=None, report=None)
        self.origin = "upload" if isinstance(path, Upload) else "path"
        self._info.object = f"**Loaded** {escape_md(samples.description)}"
        self._clear_error()
        self._set_downloads(False)
        return samples

    def measure(self) -> pd.DataFrame:
        """Measure the loaded samples and compare them, synchronously (scripts and notebooks)."""
        if self.samples is None:
            raise ValueError("load samples first")
        df = self.job.run_sync(self.samples.images)
        self.sample_metrics = df
        self._show_report(compare_report(**self._report_arguments(df, self.samples)))
        return df

    async def load_and_measure(self, path=None, *, samples: Optional[Samples] = None, hide: Optional[Path] = None,
                               origin: Optional[str] = None, **kwargs) -> bool:
        """Load ``path`` (or take ``samples``), measure in the background and compare.

        ``path`` is a path (already checked against the server's policy) or an
        :class:`explorer.gate.Upload`; it is read through the session's gate off the event loop.
        The results on show change only when the new samples were measured: a failed or cancelled
        load leaves them (and their description) as they were, with the reason in the error alert.
        ``origin`` names the source in the info line ("upload", "path", "live model"); ``hide`` is a
        server folder cut from messages.

        Returns
        -------
        bool
            Whether the samples were loaded, measured and compared.
        """
        self._clear_error()
        if origin is None:
            origin = "live model" if samples is not None else "upload" if isinstance(path, Upload) else "path"
        hidden = hide if hide is not None else path if isinstance(path, Upload) else None
        if samples is None:
            samples = await read_for_view(self, "samples", hidden, self._read, path, **kwargs)
            if samples is None:
                return False
        df = await measure_loaded(self, samples.images, samples.description)
        if df is None:
            return False
        if not await self._compare_in_background(samples, df, origin):
            return False
        return True

    def _show_error(self, text: str, kind: str = "danger"):
        """Show ``text`` (plain text, escaped here) in the error alert."""
        self.error_text = text
        self._error.param.update(object=escape_md(text), alert_type=kind, visible=True)

    def _clear_error(self):
        self.error_text = ""
        self._error.visible = False

    async def _on_load(self, event=None):
        try:  # the server's path policy: inside --data-root, or off on a public server
            path = self.state.gate.path(self._path.value, "samples")
        except ValueError as e:
            self._show_error(str(e))
            return
        await self.load_and_measure(path, origin="path")

    async def _on_upload(self, event):
        if not event.new:
            return
        try:
            upload = await store_upload(self.state, self._upload)
        except ValueError as e:
            self._show_error(f"Could not use the upload: {user_message(e)}")
            return
        except OSError as e:
            self._show_error(f"Could not store the upload: {type(e).__name__} (server disk)")
            return
        try:
            await self.load_and_measure(upload, origin="upload")
        finally:
            upload.discard()  # read into memory (or refused): the stored copy is no longer needed

    def _on_model_samples(self, event=None):
        samples = self.state.model_samples
        if samples is not None:
            start_on_document(self.state, lambda: self.load_and_measure(samples=samples, origin="live model"))

    def _on_reference(self, *_):
        if self.sample_metrics is not None and self.samples is not None:
            asyncio.ensure_future(self._compare_in_background(self.samples, self.sample_metrics))

    # ---------------------------------------------------------------------------------------------
    # results

    def _report_arguments(self, df: pd.DataFrame, samples: Samples) -> dict:
        """The arguments of :func:`core.analysis.compare_report` for ``samples`` (metrics ``df``) against the
        dataset on show: plain data, so that a worker process can take them."""
        ds = self.state.dataset
        provenance = {"samples": samples.description,
                      "reference": getattr(ds, "description", None) or f"{ds.name} ({len(ds):,} digits)"}
        return dict(sample_metrics=df, reference_metrics=ds.metrics, sample_labels=samples.labels,
                    reference_labels=ds.labels, seed=0, provenance=provenance, sample_images=samples.images,
                    reference_images=getattr(ds, "images", None))

    async def _compare_in_background(self, samples: Samples, df: pd.DataFrame, origin: Optional[str] = None
                                     ) -> bool:
        """Compute the report in a worker (the quadratic tests take seconds) with a busy indicator,
        then show samples, metrics and report together."""
        self.computing = True
        self._spinner.visible = True
        self._busy_text.object = "Computing the two-sample tests…"
        try:
            rep = await run_in_worker(compare_report, **self._report_arguments(df, samples))
        except ValueError as e:
            self._show_error(f"Could not compare: {e}")
            return False
        finally:
            self.computing = False
            self._spinner.visible = False
            self._busy_text.object = ""
        if origin is not None:
            self.origin = origin
        self.param.update(samples=samples, sample_metrics=df)
        self._show_report(rep)
        return True

    def _show_report(self, rep: ComparisonReport):
        ds = self.state.dataset
        labels = ["all"]
        if ds.labels is not None:
            labels += [str(v) for v in np.unique(ds.labels)]
        self.param.label.objects = labels
        if self.label not in labels:
            self.label = "all"
        origin = f" (from the {self.origin})" if self.origin else ""
        self._info.object = f"**Showing** {escape_md(self.samples.description)}{origin}"
        self._clear_error()  # a success replaces any earlier error
        self.report = rep
        self._render_report(rep)
        self._render_gallery()
        self._set_downloads(True)

    def _set_downloads(self, enabled: bool):
        for d in (self._download, self._download_html, self._download_json):
            d.disabled = not enabled

    def _render_report(self, rep: ComparisonReport):
        self._verdict.object = f"### Verdict\n{rep.verdict}"
        lines = []
        for kind, r in (("quadratic", rep.mmd_quadratic), ("linear", rep.mmd_linear)):
            if r is None:
                continue
            mark = " — **the verdict's test**" if kind == rep.verdict_test else ""
            perms = f", {r.n_permutations:,} permutations" if r.n_permutations else ""
            lines.append(f"- {r.test_name} ({r.statistic}): {r.mmd2:.4g} ± {r.sem:.2g}, "
                         f"{'permutation ' if not r.linear else ''}{r.p_text}{perms}; "
                         f"n = {r.n_x:,} vs {r.n_y:,}{mark}")
        cols = ", ".join(rep.mmd.columns)
        notes = "".join(f"\n\n*{n}*" for n in rep.notes)
        self._mmd.object = (
            f"### Kernel two-sample tests\n{rep.n_samples:,} samples vs {rep.n_reference:,} reference "
            f"digits ({escape_md(self.state.dataset.name)}), on {cols}:\n\n" + "\n".join(lines) + notes)
        per_label = rep.per_label
        if per_label is not None and len(per_label):
            t = per_label[["label", "n_samples", "n_reference", "mmd2", "p_text", "p_holm_text", "differs"]].copy()
            t["mmd2"] = t["mmd2"].map(lambda v: f"{v:.3g}")
            t["differs"] = t["differs"].map(lambda v: "differs" if v else "–")
            t.columns = ["label", "n samples", "n reference", "MMD²_u", "p", "p (Holm)", "at 1%"]
            self._per_label.object = t
            self._per_label.visible = True
            self._per_label_title.visible = True
        else:
            self._per_label.visible = False
            self._per_label_title.visible = False
        table = rep.distances.copy()
        table["label"] = table["label"].astype(str)
        table = table[["label", "metric", "n_samples", "n_reference", "sample_mean", "reference_mean",
                       "wasserstein", "wasserstein_std", "ci_low", "ci_high", "ks_statistic", "ks_p_value"]]
        for c in ("sample_mean", "reference_mean", "wasserstein", "wasserstein_std", "ci_low", "ci_high",
                  "ks_statistic"):
            table[c] = table[c].map(lambda v: f"{v:.4g}")
        table["ks_p_value"] = table["ks_p_value"].map(format_p)
        table.columns = ["label", "metric", "n samples", "n reference", "mean samples", "mean reference",
                         "W1", "W1 / sd", "95% low", "95% high", "KS", "KS p"]
        self._table.object = table
        self._render_effects(rep)

    def _render_effects(self, rep: ComparisonReport):
        """The answer in effect sizes (W1/sd with interval, real-digit baseline, resolution) and what
        matters of the samples' quality."""
        e = rep.effects
        t = pd.DataFrame({"metric": e["metric"],
                          "W1 / sd [95%]": [f"{w:.2g} [{lo:.2g}, {hi:.2g}]" for w, lo, hi in
                                            zip(e["w1_sd"], e["ci_low"], e["ci_high"])],
                          rep.baseline_name: e["baseline_sd"].map(lambda v: f"{v:.2g}"),
                          "resolves (sd)": e["resolution_sd"].map(lambda v: f"{v:.2g}"),
                          "beyond real digits": np.where(e["beyond_baseline"], "yes", "–")})
        self._effects.object = t
        self._effects_note.object = (
            f"### Effect sizes\n{rep.answer}\n\n*W1 in reference sd with its bootstrap 95% interval; "
            f"baseline: {rep.baseline_source}; resolves: the smallest shift this comparison detects with 80% "
            "power at these sizes (simulated on the reference). A metric is beyond real digits when its "
            "interval lies above the baseline's.*")
        q = rep.quality
        if q is not None and q.matters:
            self._quality.object = "**Sample quality.** " + "; ".join(q.findings) + "."
            self._quality.visible = True
        else:
            self._quality.visible = False

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
        updates = []
        for m, (fig, rsrc, ssrc) in self._hists.items():
            r = ref[m].to_numpy(dtype=float)[rmask]
            s = df[m].to_numpy(dtype=float)[smask]
            both = np.concatenate([r[np.isfinite(r)], s[np.isfinite(s)]])
            if len(both) == 0:
                empty = {"left": [], "right": [], "top": []}
                updates.append((fig, rsrc, ssrc, empty, dict(empty)))
                continue
            lo, hi = np.percentile(both, [0.5, 99.5])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            # bins over the central 99% of both sets: far outliers are left out, not piled up
            edges = np.linspace(lo, hi, 41)
            updates.append((fig, rsrc, ssrc, _hist(r, edges), _hist(s, edges)))

        def commit():
            for fig, rsrc, ssrc, rd, sd in updates:
                rsrc.data, ssrc.data = rd, sd
                if len(rd["left"]):
                    top = max(np.max(rd["top"], initial=0), np.max(sd["top"], initial=0)) or 1.0
                    pad = 0.02 * (rd["right"][-1] - rd["left"][0])
                    fig.x_range.update(start=rd["left"][0] - pad, end=rd["right"][-1] + pad)
                    fig.y_range.update(start=0, end=1.05 * top)

        on_document(commit, self.state)

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

        on_document(commit, self.state)
        self.furthest = pd.DataFrame({"sample": order, "distance": dist[order]})

    def _stem(self) -> str:
        return (Path(self.samples.path).stem if self.samples is not None and self.samples.path else
                "samples") or "samples"

    def _csv(self):
        df = self.sample_metrics
        if df is None:
            return io.StringIO("")
        out = df.copy()
        out.index.name = "index"
        if self.samples is not None and self.samples.labels is not None:
            out.insert(0, "label", self.samples.labels)
        self._download.filename = f"{self._stem()}-morpho.csv"
        return io.StringIO(out.to_csv())

    def _report_html(self):
        """The report as a standalone HTML file (written by ``to_html`` to a temp file, read back)."""
        if self.report is None:
            return io.BytesIO(b"")
        self._download_html.filename = f"{self._stem()}-comparison.html"
        with tempfile.TemporaryDirectory(prefix="morpho-report-") as tmp:
            path = Path(tmp) / "report.html"
            self.report.to_html(path)
            return io.BytesIO(path.read_bytes())

    def _report_json(self):
        if self.report is None:
            return io.StringIO("")
        self._download_json.filename = f"{self._stem()}-comparison.json"
        return io.StringIO(self.report.to_json())

    # ---------------------------------------------------------------------------------------------
    # layout

    def _build_results(self):
        hists = wrap_row(*[pn.pane.Bokeh(self._hists[m][0]) for m in METRICS])
        self._results[:] = [
            self._verdict,
            self._quality,
            self._effects_note,
            self._effects,
            self._mmd,
            self._per_label_title,
            self._per_label,
            pn.Row(self._download_html, self._download_json, self._download),
            heading("### Per-metric distances\nW1: Wasserstein-1 distance in the metric's units "
                    "(W1 / sd: in reference standard deviations); KS: Kolmogorov–Smirnov "
                    "statistic (largest difference of the cumulative distributions) and its "
                    "p-value. Rows per label when both samples and reference have labels."),
            self._table,
            pn.Row(heading("### Histograms: samples vs reference", width=420), self._label_select),
            self._hist_note,
            hists,
            heading(f"### The {self.gallery_size} samples furthest from the data\nMean distance "
                    "to the 5 nearest reference digits in morphometric space (length, "
                    "thickness, slant, width, height; in reference standard deviations), "
                    "largest first; hover for the values."),
            pn.pane.Bokeh(self._gallery),
        ]

    def __panel__(self):
        controls = pn.FlexBox(
            pn.Column(pn.pane.Markdown("Upload samples", margin=(0, 10)), self._upload),
            self._path, self._range, self._load_button,
            align_items="flex-end", gap="6px", sizing_mode="stretch_width")
        return pn.Column(
            heading("## Compare samples with the data\nHas the model learned the data's morphology? "
                    "Measure its samples and compare them with the reference digits."),
            controls,
            self._info,
            self._error,
            self.job.panel(),
            pn.Row(self._spinner, self._busy_text),
            self._results,
            css_classes=["explorer-compare"], sizing_mode="stretch_width",
        )
