"""Codes vs metrics: partial correlation of each latent code with each metric, and the MIG.

Give the latent codes of N samples and the samples themselves (any :func:`core.samples.load_samples`
format, measured in the shared pool) or their metrics CSV. The analysis (on
:data:`core.analysis.DIAGNOSTIC_METRICS`) runs in the pool too, with a busy indicator; the heatmap
and the MIG line are updated together.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource

from core.analysis import DIAGNOSTIC_METRICS, mig, partial_correlations
from core.samples import SampleFormatError, load_codes, load_samples
from explorer.compare import BackgroundMeasure, MeasureCancelled, heading, on_document, run_in_pool, user_message
from explorer.traversals.effects import heatmap_figure

__all__ = ["CodesPanel", "analyse_codes"]


def analyse_codes(codes: pd.DataFrame, metrics: pd.DataFrame):
    """Partial correlations (codes x DIAGNOSTIC_METRICS) and the MIG (None for fewer than 2 codes)."""
    factors = metrics[[m for m in DIAGNOSTIC_METRICS if m in metrics.columns]]
    pc = partial_correlations(codes, factors)
    result = mig(codes, factors) if codes.shape[1] >= 2 else None
    return pc, result


class CodesPanel(param.Parameterized):
    """Load codes + samples (or metrics), measure, then the partial-correlation heatmap and MIG."""

    codes = param.DataFrame(default=None, allow_None=True, doc="Latent codes (N, C).")
    code_metrics = param.DataFrame(default=None, allow_None=True, doc="Metrics of the coded samples.")
    pcorr = param.DataFrame(default=None, allow_None=True, doc="codes x metrics partial correlations.")
    mig_result = param.Parameter(default=None, doc="core.analysis.MIGResult")

    def __init__(self, store_upload, show_error, **params):
        """``store_upload(widget) -> (path, folder)`` saves an upload; ``show_error(text)`` reports."""
        super().__init__(**params)
        self.state = None  # the view's ExplorerState (set by TraversalView): where plots are updated
        self._store_upload = store_upload
        self._show_error = show_error
        self._pending_images = None
        self._codes_upload = pn.widgets.FileInput(accept=".npy,.npz,.csv", css_classes=["traversal-codes-upload"],
                                                  width=220)
        self._codes_path = pn.widgets.TextInput(label="…or codes path", width=260,
                                                css_classes=["traversal-codes-path"])
        self._samples_upload = pn.widgets.FileInput(accept=".npy,.npz,.gz,.idx,.png,.jpg,.csv", multiple=True,
                                                    css_classes=["traversal-samples-upload"], width=220)
        self._samples_path = pn.widgets.TextInput(label="…or samples path", width=260,
                                                  css_classes=["traversal-samples-path"])
        self.button = pn.widgets.Button(label="Load codes and measure samples", color="primary",
                                        width=260, css_classes=["traversal-codes-load"])
        self.job = BackgroundMeasure("codes")
        self._busy = pn.indicators.LoadingSpinner(value=True, size=20, visible=False,
                                                  css_classes=["traversal-codes-busy"])
        self.info = pn.pane.Markdown("", css_classes=["traversal-codes-info"], sizing_mode="stretch_width")
        self.source = ColumnDataSource(data={"x": [], "y": [], "shade": [], "text": [], "text_colour": []})
        self.heatmap = heatmap_figure(self.source, "traversal-pcorr",
                                      "Partial correlation of each code with each metric",
                                      DIAGNOSTIC_METRICS, "metric", "code", "partial correlation")
        self.mig_text = pn.pane.Markdown("", css_classes=["traversal-mig"], sizing_mode="stretch_width")
        # always in the layout (see explorer.compare: layouts are never shown/hidden)
        self.results = pn.Column(pn.pane.Bokeh(self.heatmap), self.mig_text)
        self.button.on_click(self._on_click)
        self.last_seconds = None  # wall time of the last analysis (codes+metrics -> heatmap/MIG)

    # ---------------------------------------------------------------------------------------------
    def load(self, codes_path, samples_path, **kwargs) -> pd.DataFrame:
        """Load codes and the matching samples; returns the codes. A metrics CSV is used as is."""
        codes = load_codes(codes_path)
        samples_path = Path(samples_path)
        metrics = images = None
        if samples_path.is_file() and samples_path.suffix.lower() == ".csv":
            df = pd.read_csv(samples_path)
            present = [m for m in DIAGNOSTIC_METRICS if m in df.columns]
            if not present:
                raise SampleFormatError(f"{samples_path.name}: found columns {list(df.columns)}; expected "
                                        f"metric columns among {list(DIAGNOSTIC_METRICS)}")
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
        names = ", ".join(map(str, codes.columns[:8])) + ("…" if codes.shape[1] > 8 else "")
        self.info.object = f"**Codes:** {len(codes):,} x {codes.shape[1]} ({names}); samples: {samples_path.name}"
        return codes

    def measure(self) -> pd.DataFrame:
        """Measure the coded samples (if images were given) and analyse, synchronously."""
        if self._pending_images is not None:
            self.code_metrics = self.job.run_sync(self._pending_images)
        self.show(*analyse_codes(self.codes, self.code_metrics))
        return self.code_metrics

    async def _on_click(self, event=None):
        folder = None
        try:
            # typed paths follow the server's path policy (inside --data-root, or off on a public server)
            cpath = self.state.resolve_user_path(self._codes_path.value, "codes") if \
                self._codes_path.value.strip() else ""
            if not cpath and self._codes_upload.value:
                cpath, folder = self._store_upload(self._codes_upload)
            spath = self.state.resolve_user_path(self._samples_path.value, "samples") if \
                self._samples_path.value.strip() else ""
            if not spath and self._samples_upload.value:
                spath, folder = self._store_upload(self._samples_upload)
            if not cpath or not spath:
                raise ValueError("give both the codes and their samples (path or upload)")
            self.load(cpath, spath)
        except (SampleFormatError, FileNotFoundError, ValueError, OSError) as e:
            self._show_error(f"Could not load the codes: {user_message(e, folder)}")
            return
        self.button.disabled = True
        try:
            if self._pending_images is not None:
                self.code_metrics = await self.job.run(self._pending_images)
            await self.analyse_in_background()
        except MeasureCancelled as e:
            self.info.object += f"  \n*Measuring {e}.*"
        finally:
            self.button.disabled = False

    async def analyse_in_background(self):
        """Partial correlations and MIG in the pool, with the busy indicator."""
        self._busy.visible = True
        self.info.object += "  \nComputing partial correlations and MIG…"
        t0 = time.perf_counter()
        try:
            pc, result = await run_in_pool(analyse_codes, self.codes, self.code_metrics)
        except ValueError as e:
            self._show_error(f"Could not analyse the codes: {e}")
            return
        finally:
            self._busy.visible = False
        self.show(pc, result)
        self.last_seconds = time.perf_counter() - t0

    def show(self, pc: pd.DataFrame, result) -> None:
        self.param.update(pcorr=pc, mig_result=result)
        data = {"x": [], "y": [], "shade": [], "text": [], "text_colour": []}
        for r in pc.index:
            for c in pc.columns:
                v = float(pc.loc[r, c])
                data["x"].append(str(c))
                data["y"].append(str(r))
                data["shade"].append(v if np.isfinite(v) else 0.0)
                data["text"].append(f"{v:.2f}")
                data["text_colour"].append("white" if abs(v) > 0.6 else "#222")
        factors = [str(r) for r in pc.index][::-1]
        if result is None:
            text = "MIG needs at least two codes."
        else:
            per = ", ".join(f"{k}: {v:.2f}" for k, v in result.per_factor.items())
            text = (f"**MIG = {result.score:.3f}** (mutual information gap on "
                    f"{', '.join(DIAGNOSTIC_METRICS)}, 20-bin histograms; 1: each metric is captured by one "
                    f"code alone). Per metric: {per}.")

        def commit():
            self.heatmap.y_range.factors = factors
            self.heatmap.height = 110 + 26 * len(factors)
            self.source.data = data

        on_document(commit, self.state)
        self.mig_text.object = text

    def panel(self) -> pn.Column:
        return pn.Column(
            heading("### Codes vs metrics (optional)\nLatent codes of N samples and the samples themselves "
                    "(or their metrics CSV): partial correlation of each code with each metric, controlling "
                    "for the other codes, and the MIG."),
            pn.FlexBox(pn.Column(pn.pane.Markdown("Latent codes (.npy/.csv)", margin=(0, 10)),
                                 self._codes_upload), self._codes_path,
                       pn.Column(pn.pane.Markdown("Their samples (images, or metrics .csv)", margin=(0, 10)),
                                 self._samples_upload), self._samples_path,
                       align_items="flex-end", gap="6px", sizing_mode="stretch_width"),
            pn.Row(self.button, self._busy), self.job.panel(), self.info, self.results,
            sizing_mode="stretch_width")
