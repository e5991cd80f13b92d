"""TraversalView: load a traversal (file, upload, or the live model), measure it, show its parts.

The parts, each in its own module of this package:

- :mod:`.grid` — the grid of one base code and the clicked image with overlays;
- :mod:`.effects` — metrics along each latent, the effect heatmap + table, strongest latents, reports;
- :mod:`.codes` — codes vs metrics: partial correlations and MIG;
- :mod:`.digit` — one digit with the inspector's overlays (shared with the Model tab).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import panel as pn
import param

from core.samples import Traversal
from explorer.compare import (BackgroundMeasure, heading, measure_loaded, read_for_view, start_on_document,
                              store_upload, user_message)
from explorer.gate import Upload, escape_md
from explorer.state import ExplorerState
from explorer.traversals.codes import CodesPanel
from explorer.traversals.effects import EffectsPanel
from explorer.traversals.grid import TraversalGrid, per_step_index

__all__ = ["TraversalView", "grid_of"]


def grid_of(traversal: Traversal) -> np.ndarray:
    """The traversal's images as (B, L, S, 28, 28): single-base (L, S, 28, 28) grids get B = 1."""
    images = np.asarray(traversal.images)
    return images[None] if images.ndim == 4 else images


def values_of(traversal: Traversal, steps: int) -> Optional[np.ndarray]:
    """The latent offsets (S,) of the steps when the traversal knows them."""
    v = getattr(traversal, "values", None)
    return None if v is None or len(v) != steps else np.asarray(v, float)


class TraversalView(pn.viewable.Viewer):
    """Latent traversal grid, metrics along each latent, effect heatmap and table; codes: partial
    correlations and MIG.

    Parameters
    ----------
    state : ExplorerState, optional
        Shared app state: its reference data sets the sd units, and a traversal put in its
        ``model_traversal`` (by the Model tab) is loaded and measured. A new state on the bundled
        sample when omitted.
    """

    state = param.ClassSelector(class_=ExplorerState)
    traversal = param.ClassSelector(class_=Traversal, allow_None=True)
    per_step = param.DataFrame(default=None, allow_None=True, doc="(base, latent, step) x metrics.")

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        self.error_text = ""  # the error on show, plain text (the alert shows it escaped)
        self.job = BackgroundMeasure("traversal")
        self._upload = pn.widgets.FileInput(accept=".npy,.npz,.png,.jpg,.jpeg", css_classes=["traversal-upload"],
                                            width=230)
        self._path = pn.widgets.TextInput(label="…or a path on the server", placeholder="/path/to/traversal.npy",
                                          width=250, css_classes=["traversal-path"])
        self._rows = pn.widgets.IntInput(label="Rows (latents; 0: infer)", value=0, start=0, width=140)
        self._cols = pn.widgets.IntInput(label="Columns (steps; 0: infer)", value=0, start=0, width=140)
        self._load_button = pn.widgets.Button(label="Load and measure", color="primary", width=150,
                                              css_classes=["traversal-load"], align="end")
        self._info = pn.pane.Markdown("Load a traversal: an array (L latents, S steps, 28, 28) or several "
                                      "base codes (B, L, S, 28, 28), or one PNG grid with latents as rows "
                                      "and steps as columns; or traverse the live model in the Model tab.",
                                      css_classes=["traversal-info"], sizing_mode="stretch_width")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["traversal-error"],
                                    sizing_mode="stretch_width")
        self.grid = TraversalGrid()
        self.effects_panel = EffectsPanel()
        self.codes_panel = CodesPanel(self._show_error)
        for part in (self.grid, self.effects_panel, self.codes_panel):
            part.state = self.state
        # The parts are always in the layout, empty until a traversal is measured: a layout shown (or given
        # new children) while its tab is hidden is never drawn by the browser, and the live model fills
        # this view from its own tab.
        self._results = self.effects_panel.panel()
        self._grid_area = self.grid.panel()
        self._load_button.on_click(self._on_load)
        self._upload.param.watch(self._on_upload, "value")
        self.state.param.watch(self._on_model_traversal, "model_traversal")
        if self.state.model_traversal is not None:  # traversed before this tab was first shown
            self._on_model_traversal()

    # convenient handles on the parts
    @property
    def effects(self):
        """The :class:`core.analysis.TraversalEffects` on show (None before measuring)."""
        return self.effects_panel.effects

    @property
    def method(self) -> str:
        return self.effects_panel.method

    @method.setter
    def method(self, value: str):
        self.effects_panel.method = value

    # ---------------------------------------------------------------------------------------------
    # loading and measuring

    def _read(self, source, rows=None, cols=None, **kwargs) -> Traversal:
        """Read a traversal grid through the session's gate (the app's read limits)."""
        return self.state.gate.traversal(source, rows or None, cols or None, **kwargs)

    def load(self, path, rows: Optional[int] = None, cols: Optional[int] = None, **kwargs) -> Traversal:
        """Load a traversal grid (see :func:`core.samples.load_traversal`) without measuring.

        The read goes through the state's gate, with the app's read limits.
        """
        t = self._read(path, rows, cols, **kwargs)
        self._show_traversal(t)
        return t

    def show(self, t: Traversal):
        """Show a traversal already in memory (e.g. the live model's) without measuring."""
        self._show_traversal(t)

    def _show_traversal(self, t: Traversal):
        images = grid_of(t)
        self.param.update(traversal=t, per_step=None)
        self._info.object = f"**Loaded** {escape_md(t.description)}"
        self._clear_error()
        self.grid.param.update(values=values_of(t, images.shape[2]), per_step=None)
        self.grid.images = images


    def measure(self) -> pd.DataFrame:
        """Measure the loaded grid and analyse it, synchronously (scripts and notebooks)."""
        if self.traversal is None:
            raise ValueError("load a traversal first")
        images = grid_of(self.traversal)
        df = self.job.run_sync(images.reshape(-1, 28, 28))
        self._set_per_step(df)
        return self.per_step

    def _set_per_step(self, df: pd.DataFrame):
        images = grid_of(self.traversal)
        df = df.copy()
        df.index = per_step_index(*images.shape[:3])
        self.per_step = df
        self.grid.per_step = df
        self.effects_panel.set_traversal(df, values_of(self.traversal, images.shape[2]),
                                         self.state.dataset.metrics)


    async def load_and_measure(self, path=None, rows=None, cols=None, *, traversal: Optional[Traversal] = None,
                               hide: Optional[Path] = None, **kwargs) -> bool:
        """Load ``path`` (or take ``traversal``) and measure it in the background; errors are shown.

        ``path`` is a path (already checked against the server's policy) or an
        :class:`explorer.gate.Upload`, read through the session's gate off the event loop.
        """
        self._clear_error()
        hidden = hide if hide is not None else path if isinstance(path, Upload) else None
        if traversal is None:
            traversal = await read_for_view(self, "traversal", hidden, self._read, path, rows, cols, **kwargs)
            if traversal is None:
                return False
        # after the read's await: update the views holding the document lock
        await self.state.in_document(lambda: self._show_traversal(traversal))
        df = await measure_loaded(self, grid_of(traversal).reshape(-1, 28, 28), traversal.description)
        if df is None:
            return False
        def show():
            try:
                self._set_per_step(df)
            except ValueError as e:
                self._show_error(f"Could not analyse the traversal: {e}")
                return False
            return True

        # after an await: update the views holding the document lock
        return await self.state.in_document(show)

    def _show_error(self, text: str, kind: str = "danger"):
        """Show ``text`` (plain text, escaped here) in the error alert."""
        self.error_text = text
        self._error.param.update(object=escape_md(text), alert_type=kind, visible=True)

    def _clear_error(self):
        self.error_text = ""
        self._error.visible = False

    async def _on_load(self, event=None):
        try:  # the server's path policy: inside --data-root, or off on a public server
            path = self.state.gate.path(self._path.value, "traversal")
        except ValueError as e:
            self._show_error(str(e))
            return
        await self.load_and_measure(path, self._rows.value, self._cols.value)

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
            await self.load_and_measure(upload, self._rows.value, self._cols.value)
        finally:
            upload.discard()  # read into memory (or refused): the stored copy is no longer needed

    def _on_model_traversal(self, event=None):
        t = self.state.model_traversal
        if t is not None:
            start_on_document(self.state, lambda: self.load_and_measure(traversal=t))

    # ---------------------------------------------------------------------------------------------
    # codes (delegated to the codes part)

    def load_codes(self, codes_path, samples_path, **kwargs) -> pd.DataFrame:
        return self.codes_panel.load(codes_path, samples_path, **kwargs)

    def measure_codes(self) -> pd.DataFrame:
        return self.codes_panel.measure()

    # ---------------------------------------------------------------------------------------------
    def __panel__(self):
        controls = pn.FlexBox(
            pn.Column(pn.pane.Markdown("Upload a traversal", margin=(0, 10)), self._upload),
            self._path, self._rows, self._cols, self._load_button,
            align_items="flex-end", gap="6px", sizing_mode="stretch_width")
        return pn.Column(
            heading("## Latent traversals\nWhich latent controls which factor of variation?"),
            controls, self._info, self._error, self.job.panel(),
            self._grid_area, self._results, self.codes_panel.panel(),
            css_classes=["explorer-traversals"], sizing_mode="stretch_width")
