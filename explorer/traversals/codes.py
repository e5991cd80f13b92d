"""Codes vs metrics: partial correlation of each latent code with each metric, and the MIG.

Give the latent codes of N samples and the samples themselves (any :func:`core.samples.load_samples`
format, measured in the shared pool) or their metrics CSV, each as an upload or a path on the server.
Every file is read through the session's gate (:class:`explorer.gate.Gate`, the app's read limits) off
the event loop; column names read from the files are escaped where they are shown. The analysis (on
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

from core.analysis import DIAGNOSTIC_METRICS, code_diagnostics
from core.samples import SampleFormatError
from explorer.compare import (BackgroundMeasure, MeasureCancelled, heading, on_document, run_in_pool, run_in_worker,
                              store_upload, user_message)
from explorer.gate import Gate, Upload, escape_md
from explorer.traversals.effects import heatmap_figure

__all__ = ["CodesPanel"]


def _name(source) -> str:
    return source.name if isinstance(source, Upload) else Path(str(source)).name


class CodesPanel(param.Parameterized):
    """Load codes + samples (or metrics), measure, then the partial-correlation heatmap and MIG."""

    codes = param.DataFrame(default=None, allow_None=True, doc="Latent codes (N, C).")
    code_metrics = param.DataFrame(default=None, allow_None=True, doc="Metrics of the coded samples.")
    pcorr = param.DataFrame(default=None, allow_None=True, doc="codes x metrics partial correlations.")
    mig_result = param.Parameter(default=None, doc="core.analysis.MIGResult")

    def __init__(self, show_error, **params):
        """``show_error(text)`` reports an error (plain text; the view escapes it)."""
        super().__init__(**params)
        # the view's ExplorerState (set by TraversalView): where plots are updated, and its gate reads
        self.state = None
        self._own_gate = None
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
    @property
    def gate(self) -> Gate:
        """The session's gate (a default one, with the app's limits, outside the app)."""
        if self.state is not None:
            return self.state.gate
        if self._own_gate is None:
            self._own_gate = Gate()
        return self._own_gate

    def _read(self, codes_source, samples_source, **kwargs):
        """Codes, and the samples' metrics (a CSV) or images, through the gate; checked to match."""
        gate = self.gate
        codes = gate.codes(codes_source)
        where = samples_source.path if isinstance(samples_source, Upload) else Path(samples_source)
        metrics = images = None
        if where.is_file() and where.suffix.lower() == ".csv":
            metrics = gate.code_metrics(samples_source, DIAGNOSTIC_METRICS)
            n = len(metrics)
        else:
            images = gate.samples(samples_source, **kwargs).images
            n = len(images)
        if n != len(codes):
            raise SampleFormatError(f"found {len(codes)} codes but {n} samples; expected one code row per "
                                    "sample")
        return codes, metrics, images

    def _apply(self, codes: pd.DataFrame, metrics, images, samples_name: str) -> None:
        self._pending_images = images
        self.param.update(codes=codes, code_metrics=metrics, pcorr=None, mig_result=None)
        names = ", ".join(map(str, codes.columns[:8])) + ("…" if codes.shape[1] > 8 else "")
        # column names come from the visitor's file: escaped
        self.info.object = (f"**Codes:** {len(codes):,} x {codes.shape[1]} ({escape_md(names)}); samples: "
                            f"{escape_md(samples_name)}")

    def load(self, codes_path, samples_path, **kwargs) -> pd.DataFrame:
        """Load codes and the matching samples (paths or :class:`explorer.gate.Upload`, read through the
        gate with the app's limits); returns the codes. A metrics CSV is used as is."""
        codes, metrics, images = self._read(codes_path, samples_path, **kwargs)
        self._apply(codes, metrics, images, _name(samples_path))
        return codes

    def measure(self) -> pd.DataFrame:
        """Measure the coded samples (if images were given) and analyse, synchronously."""
        if self._pending_images is not None:
            self.code_metrics = self.job.run_sync(self._pending_images)
        self.show(*code_diagnostics(self.codes, self.code_metrics))
        return self.code_metrics

    async def _source(self, box, upload, purpose: str):
        """The path typed in ``box`` (the server's path policy applies), else the file(s) uploaded."""
        if box.value.strip():
            return self.gate.path(box.value, purpose)
        if upload.value:
            return await store_upload(self.state, upload) if self.state is not None else \
                self.gate.upload(upload.value, upload.filename)
        return None

    async def _on_click(self, event=None):
        stored = []
        try:
            csrc = await self._source(self._codes_path, self._codes_upload, "codes")
            if isinstance(csrc, Upload):
                stored.append(csrc)
            ssrc = await self._source(self._samples_path, self._samples_upload, "samples")
            if isinstance(ssrc, Upload):
                stored.append(ssrc)
            if csrc is None or ssrc is None:
                raise ValueError("give both the codes and their samples (path or upload)")
            # off the event loop, bounded by the gate's limits
            codes, metrics, images = await run_in_pool(self._read, csrc, ssrc)
        except (SampleFormatError, FileNotFoundError, ValueError, OSError, MemoryError) as e:
            text = Gate.message(e)
            for up in stored:
                text = user_message(text, up)
            if isinstance(e, MemoryError):
                text = "not enough memory on the server"
            self._show_error(f"Could not load the codes: {text}")
            return
        except Exception as e:  # user data must never take the app down
            text = Gate.message(e)
            for up in stored:
                text = user_message(text, up)
            self._show_error(f"Could not load the codes: {type(e).__name__}: {text}")
            return
        finally:
            for up in stored:
                up.discard()  # read into memory (or refused): the stored copies are no longer needed
        self._apply(codes, metrics, images, _name(ssrc))
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
            pc, result = await run_in_worker(code_diagnostics, self.codes, self.code_metrics)
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
