"""The live model: move a latent code with sliders and watch the decoded digit and its morphometrics.

With a decoder in the app (``Explorer(decoder=f, latent_dim=D)`` in Jupyter, or
``panel serve explorer --args --decoder model.onnx``), the "Model" tab shows:

- one slider per latent (bounded to [-3, 3], the bulk of the standard normal prior); each move decodes
  the code and redraws the digit with the inspector's overlays (skeleton, thickness circles, slant
  line, bounding parallelogram) and its six metrics;
- "Sample N and compare with the data": draws N codes from the prior, decodes them in the shared
  worker pool and puts them in ``state.model_samples``; the Compare samples tab measures and compares
  them — no files;
- "Traverse every latent": a multi-base traversal (B base codes from the prior, every latent, S steps
  over ±span) into ``state.model_traversal``; the Latent traversals tab measures and analyses it.

Standalone::

    from explorer.model import ModelView
    ModelView(decoder=f, latent_dim=16)
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import panel as pn
import param

from core.samples import Samples, Traversal
from explorer.compare import as_uint8, heading, on_document, run_in_pool
from explorer.plotting import wrap_row
from explorer.state import ExplorerState
from explorer.traversals.digit import OverlayDigit

__all__ = ["ModelView", "SLIDER_BOUND"]

#: Slider range of every latent: ±3 standard deviations of the N(0, 1) prior.
SLIDER_BOUND = 3.0
#: Sliders shown at most (a code longer than this is edited through its first latents; the rest stay
#: at their value and can be set with ``view.code``).
MAX_SLIDERS = 64


def _traversal(decoder, bases: np.ndarray, span: float, steps: int) -> Traversal:
    """Decode a (B, L, S) traversal of ``decoder`` around ``bases`` (B, D) as a core.samples.Traversal."""
    from core.decoders import traverse

    grid = traverse(decoder, bases, span=span, steps=steps)
    B, L, S = grid.shape[:3]
    desc = (f"live model {decoder.name}: {B} base codes x {L} latents x {S} steps over "
            f"[{-span:g}, {span:g}] around each base value")
    return Traversal(images=grid, source_range="uint8", description=desc, path="",
                     values=np.linspace(-span, span, steps))


def _samples(decoder, n: int, seed: int) -> Samples:
    from core.decoders import sample

    images, _ = sample(decoder, n, seed=seed)
    return Samples(images=images, source_range="uint8", path="",
                   description=f"{n:,} samples of the live model {decoder.name} (codes from N(0, I), seed {seed})")


class ModelView(pn.viewable.Viewer):
    """Sliders per latent -> the decoded digit with overlays and metrics; sample and traverse buttons.

    Parameters
    ----------
    state : ExplorerState, optional
        Shared app state holding the decoder (``state.decoder``); sampling and traversing set its
        ``model_samples`` and ``model_traversal``. A new state on the bundled sample when omitted.
    decoder : object, optional
        Anything :func:`core.decoders.as_decoder` adapts (numpy callable, torch module, ONNX path,
        ``"package.module:function"``); sets ``state.decoder``.
    latent_dim : int, optional
        The code length D, when the decoder does not say.
    """

    state = param.ClassSelector(class_=ExplorerState)
    code = param.Array(default=None, doc="The current latent code, float (D,).")
    n_samples = param.Integer(default=1000, bounds=(10, 100_000), doc="Samples to draw and compare.")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the prior draws.")
    n_bases = param.Integer(default=5, bounds=(1, 50), doc="Base codes of the traversal.")
    span = param.Number(default=2.0, bounds=(0.1, 5.0), doc="Traversal offsets: -span .. +span.")
    steps = param.Integer(default=9, bounds=(3, 25), doc="Steps per latent.")
    busy = param.Boolean(default=False)

    def __init__(self, state: ExplorerState | None = None, decoder=None, latent_dim: Optional[int] = None,
                 **params):
        super().__init__(state=state or ExplorerState(), **params)
        if decoder is not None:
            from core.decoders import as_decoder

            self.state.decoder = as_decoder(decoder, latent_dim=latent_dim)
        if self.state.decoder is None:
            raise ValueError("ModelView needs a decoder: pass decoder= (and latent_dim=) or set state.decoder")
        self.decoder = self.state.decoder
        D = int(self.decoder.latent_dim)
        self.code = np.zeros(D)
        self.digit = OverlayDigit("model", px=300)
        self.last_ms: Optional[float] = None  # server time of the last move, decode to overlays
        self.sliders = [pn.widgets.FloatSlider(label=f"z{i}", start=-SLIDER_BOUND, end=SLIDER_BOUND, step=0.05,
                                               value=0.0, width=260, margin=(0, 8),
                                               css_classes=["model-slider", f"model-slider-{i}"])
                        for i in range(min(D, MAX_SLIDERS))]
        for i, s in enumerate(self.sliders):
            s.param.watch(lambda e, i=i: self._on_slider(i, e.new), "value")
        self._zero = pn.widgets.Button(label="Zero code", width=110, css_classes=["model-zero"])
        self._random = pn.widgets.Button(label="Random code", width=120, css_classes=["model-random"])
        self._zero.on_click(lambda e: self.set_code(np.zeros(D)))
        self._random.on_click(lambda e: self.set_code(np.clip(self._rng().standard_normal(D),
                                                              -SLIDER_BOUND, SLIDER_BOUND)))
        self._sample_button = pn.widgets.Button(label="Sample N and compare with the data", color="primary",
                                                width=280, css_classes=["model-sample"])
        self._traverse_button = pn.widgets.Button(label="Traverse every latent", color="primary",
                                                  width=280, css_classes=["model-traverse"])
        self._sample_button.on_click(self._on_sample)
        self._traverse_button.on_click(self._on_traverse)
        self._spinner = pn.indicators.LoadingSpinner(value=True, size=20, visible=False,
                                                     css_classes=["model-busy"])
        self._status = pn.pane.Markdown("", css_classes=["model-status"], sizing_mode="stretch_width")
        self._draws = 0
        self._setting = False
        # The first frame goes straight into the figure's sources, before the figure is in any document:
        # it is then sent with the figure itself. Sent as a change at the next tick instead, it could
        # reach the browser before the figure did (quick tab switches on a busy server): a black digit
        # and "reference ... isn't known" errors.
        self.render(now=True)

    # ---------------------------------------------------------------------------------------------
    def _rng(self) -> np.random.Generator:
        self._draws += 1
        return np.random.default_rng([self.seed, self._draws])

    def _on_slider(self, i: int, value: float):
        if self._setting:
            return
        code = self.code.copy()
        code[i] = value
        self.code = code
        self.render()

    def set_code(self, code: np.ndarray) -> None:
        """Show ``code`` (D,) and move the sliders to it (one redraw)."""
        code = np.asarray(code, float).reshape(-1)
        if code.shape != self.code.shape:
            raise ValueError(f"a code of {self.code.shape[0]} latents is needed; got shape {code.shape}")
        self.code = code
        self._setting = True  # one redraw for the whole code, not one per slider
        try:
            for s, v in zip(self.sliders, code):
                s.value = float(np.clip(v, -SLIDER_BOUND, SLIDER_BOUND))
        finally:
            self._setting = False
        self.render()

    def decode(self, code: np.ndarray) -> np.ndarray:
        """The decoded digit of one code (D,), uint8 (28, 28)."""
        return as_uint8(np.asarray(self.decoder(np.asarray(code, float)[None]))[0])

    def render(self, now: bool = False) -> None:
        """Decode the current code and redraw the digit, its overlays and its metrics.

        Parameters
        ----------
        now : bool
            Update the figure's sources at once (the first frame, drawn before the view is shown);
            otherwise on the session's document, holding its lock.
        """
        from core.measure import measure_image

        t0 = time.perf_counter()
        image = self.decode(self.code)
        data, note = self.digit.geometry(image)
        try:
            values = measure_image(image)._asdict()
        except ValueError:
            values = None
        self.image = image
        self.metrics = values
        nz = np.flatnonzero(np.abs(self.code) > 1e-9)
        shown = ", ".join(f"z{i} = {self.code[i]:+.2f}" for i in nz[:6]) + (" …" if len(nz) > 6 else "")
        self.digit.title.object = f"**Decoded digit** ({shown or 'zero code'}){note}"
        self.digit.show_metrics(values)
        if now:
            self.digit.commit(data)
        else:
            on_document(lambda: self.digit.commit(data), self.state)
        self.last_ms = 1000 * (time.perf_counter() - t0)

    # ---------------------------------------------------------------------------------------------
    async def _run(self, what: str, fn, *args):
        self.busy = True
        self._spinner.visible = True
        self._sample_button.disabled = self._traverse_button.disabled = True
        self._status.object = f"{what}…"
        try:
            return await run_in_pool(fn, *args)
        finally:
            self.busy = False
            self._spinner.visible = False
            self._sample_button.disabled = self._traverse_button.disabled = False

    def sample_now(self) -> Samples:
        """Draw ``n_samples`` and set ``state.model_samples`` synchronously (scripts)."""
        s = _samples(self.decoder, self.n_samples, self.seed)
        self.state.model_samples = s
        return s

    def traverse_now(self) -> Traversal:
        """Traverse every latent and set ``state.model_traversal`` synchronously (scripts)."""
        t = _traversal(self.decoder, self._bases(), self.span, self.steps)
        self.state.model_traversal = t
        return t

    def _bases(self) -> np.ndarray:
        D = self.code.shape[0]
        rng = np.random.default_rng(self.seed)
        bases = rng.standard_normal((self.n_bases, D))
        bases[0] = self.code  # the code on show is the first base
        return bases

    async def _on_sample(self, event=None):
        try:
            s = await self._run(f"Decoding {self.n_samples:,} samples", _samples, self.decoder, self.n_samples,
                                self.seed)
        except Exception as e:  # a decoder error must not take the app down
            self._status.object = f"**Sampling failed:** {type(e).__name__}: {e}"
            return
        self._status.object = (f"Sent {len(s):,} samples to **Compare samples**, which measures and "
                               "compares them now.")
        self.state.model_samples = s

    async def _on_traverse(self, event=None):
        try:
            t = await self._run("Decoding the traversal", _traversal, self.decoder, self._bases(), self.span,
                                self.steps)
        except Exception as e:
            self._status.object = f"**Traversal failed:** {type(e).__name__}: {e}"
            return
        B, L, S = t.images.shape[:3]
        self._status.object = (f"Sent a traversal of {B} base codes x {L} latents x {S} steps to **Latent "
                               "traversals**, which measures and analyses it now.")
        self.state.model_traversal = t

    # ---------------------------------------------------------------------------------------------
    def __panel__(self):
        D = self.code.shape[0]
        more = (f"\n\n*Sliders for the first {MAX_SLIDERS} of {D} latents.*" if D > MAX_SLIDERS else "")
        sliders = pn.Column(*self.sliders, scroll=True, max_height=520, width=290,
                            css_classes=["model-sliders"])
        actions = pn.Column(
            heading("### Sample and compare"),
            pn.Row(pn.widgets.IntInput.from_param(self.param.n_samples, label="N samples", width=120,
                                                  css_classes=["model-n"]),
                   pn.widgets.IntInput.from_param(self.param.seed, label="Seed", width=90)),
            self._sample_button,
            heading("### Traverse"),
            pn.Row(pn.widgets.IntInput.from_param(self.param.n_bases, label="Base codes", width=90,
                                                  css_classes=["model-bases"]),
                   pn.widgets.IntInput.from_param(self.param.steps, label="Steps", width=80,
                                                  css_classes=["model-steps"]),
                   pn.widgets.FloatInput.from_param(self.param.span, label="Span (±)", width=80, step=0.5)),
            self._traverse_button,
            pn.Row(self._spinner, self._status, sizing_mode="stretch_width"),
            width=320)
        return pn.Column(
            heading(f"## Live model: {self.decoder.name}\nMove a latent (each from −{SLIDER_BOUND:g} to "
                    f"+{SLIDER_BOUND:g}, the prior's ±3 sd) and watch the decoded digit and its "
                    f"morphometrics.{more}"),
            wrap_row(pn.Column(pn.Row(self._zero, self._random), sliders), self.digit.panel(), actions,
                     gap="12px"),
            css_classes=["explorer-model"], sizing_mode="stretch_width")
