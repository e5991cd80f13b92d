"""Counterfactuals tab: do(thickness), do(intensity) on a digit, a model's counterfactual beside the reference
intervention, measured attributes, and the soundness tables of :func:`core.causal.counterfactual_soundness`.

Uses of the shared state (kept thin, for re-wiring): ``state.dataset.images`` (the digits),
``state.current`` (the digit shown; the digit box follows and sets it), ``state.run_job`` (the soundness
tables run on the server-wide pool) and ``state.busy``. Visitor input is only bounded numeric widgets and a
fixed choice of model; every text shown is built from numbers and escaped.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import panel as pn
import param

from core import causal
from core.perturb import NoEffectWarning
from explorer.gate import escape_html
from explorer.state import ExplorerState

__all__ = ["Counterfactuals", "digit_png", "MODELS"]

#: Built-in models a visitor may pick (a model passed to the view is added as "your model").
MODELS = {"leaky (thickness leaks into slant)": causal.leaky_counterfactual,
          "reference (SetThickness, SetIntensity)": causal.reference_counterfactual}
_PX = 168
_SOUNDNESS_DIGITS = 20

_CSS = """
table.cf {border-collapse: collapse; font-size: 13px;} table.cf th, table.cf td {padding: 3px 8px;
border-bottom: 1px solid #e4e4e4; text-align: right;} table.cf th {background: #f3f3f3;}
table.cf td.s, table.cf th.s {text-align: left;} table.cf td.bad {color: #b2182b; font-weight: 600;}
"""


def digit_png(image: np.ndarray, px: int = _PX) -> bytes:
    """A digit as PNG bytes, ``px`` pixels square, nearest-neighbour (each digit pixel a block)."""
    from PIL import Image

    return _png_bytes(Image.fromarray(np.asarray(image, np.uint8)).resize((px, px), Image.NEAREST))


def _png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _fmt(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def attributes_table(rows: dict) -> str:
    """HTML table: attribute rows, one column per image (numbers only, escaped)."""
    names = list(rows)
    attrs = causal.ATTRIBUTES
    head = "<tr><th class='s'>attribute</th>" + "".join(f"<th>{escape_html(n)}</th>" for n in names) + "</tr>"
    body = "".join("<tr><td class='s'>" + a + "</td>" + "".join(f"<td>{_fmt(rows[n].get(a))}</td>" for n in names)
                   + "</tr>" for a in attrs)
    return f"<table class='cf'>{head}{body}</table>"


def soundness_tables(report) -> str:
    """The by-attribute and effectiveness tables of a :class:`core.causal.SoundnessReport` (escaped)."""
    by = report.by_attribute
    rows = []
    for a, r in by.iterrows():
        bad = r["passed"] is False
        rows.append(f"<tr><td class='s'>{escape_html(str(a))}</td><td>{_fmt(r['effectiveness_mae'])}</td>"
                    f"<td>{_fmt(r['max_drift'])}</td><td>{_fmt(r['tolerance'])}</td>"
                    f"<td class='{'bad' if bad else ''}'>{'—' if r['passed'] is None else ('pass' if r['passed'] else 'FAIL')}"
                    "</td></tr>")
    by_html = ("<table class='cf'><tr><th class='s'>attribute</th><th>effectiveness error</th><th>max drift</th>"
               "<th>tolerance</th><th>verdict</th></tr>" + "".join(rows) + "</table>")
    comp = report.composition
    rev = report.reversibility
    comp_html = ("<table class='cf'><tr><th>k</th><th>image distance</th><th>thickness drift</th>"
                 "<th>intensity drift</th></tr>" + "".join(
                     f"<tr><td>{int(r['step'])}</td><td>{_fmt(r['image_distance'])}</td><td>{_fmt(r['thickness'])}</td>"
                     f"<td>{_fmt(r['intensity'])}</td></tr>" for _, r in comp.iterrows()) + "</table>")
    rev_html = ("<table class='cf'><tr><th class='s'>do, then undo</th><th>image distance</th><th>thickness</th>"
                "<th>intensity</th><th>slant</th></tr>" + "".join(
                    f"<tr><td class='s'>{escape_html(r['intervention'])}</td><td>{_fmt(r['image_distance'])}</td>"
                    f"<td>{_fmt(r['thickness'])}</td><td>{_fmt(r['intensity'])}</td><td>{_fmt(r['slant'])}</td></tr>"
                    for _, r in rev.iterrows()) + "</table>")
    verdict = "sound" if report.passed else "not sound"
    return (f"<p><b>{escape_html(str(report.settings.get('model', '')))}</b>: {verdict} on "
            f"{int(report.settings.get('digits', 0))} digits</p><h4>Effectiveness</h4>{by_html}"
            f"<h4>Composition (null intervention k times)</h4>{comp_html}<h4>Reversibility</h4>{rev_html}")


class Counterfactuals(pn.viewable.Viewer):
    """Set do(thickness) and do(intensity) on the current digit; compare a model with the reference.

    Parameters
    ----------
    state : ExplorerState
    model : callable, optional
        ``cf(images, parents, do) -> images`` (see :func:`core.causal.counterfactual_soundness`), offered
        as "your model" and chosen first.
    """

    state = param.ClassSelector(class_=ExplorerState)
    model = param.Callable(default=None, allow_None=True)

    def __init__(self, **params):
        super().__init__(**params)
        models = dict(MODELS)
        if self.model is not None:
            models = {"your model": self.model, **models}
        self._models = models
        n = len(self.state.dataset.images)
        self.digit = pn.widgets.IntInput(name="Digit", start=0, end=max(n - 1, 0), value=min(self.state.current, n - 1),
                                         width=110)
        self.thickness = pn.widgets.FloatSlider(name="do(thickness) px", start=.5, end=8., step=.1, value=2.5, css_classes=["cf-thickness"],
                                                width=260)
        self.intensity = pn.widgets.FloatSlider(name="do(intensity) grey level", start=64., end=255., step=1.,
                                                value=255., width=260)
        self.choice = pn.widgets.Select(name="Model", options=list(models), value=list(models)[0], width=300)
        self.run_button = pn.widgets.Button(name=f"Soundness tables ({_SOUNDNESS_DIGITS} digits from this one)",
                                            button_type="primary", width=300)
        self.original = pn.pane.PNG(None, width=_PX, height=_PX, css_classes=["cf-original"])
        self.counterfactual = pn.pane.PNG(None, width=_PX, height=_PX, css_classes=["cf-model"])
        self.reference = pn.pane.PNG(None, width=_PX, height=_PX, css_classes=["cf-reference"])
        self.model_title = pn.pane.HTML("", width=_PX)
        self.attributes = pn.pane.HTML("", stylesheets=[_CSS], css_classes=["cf-attributes"])
        self.tables = pn.pane.HTML("<p>Press the button to measure effectiveness, composition and reversibility.</p>",
                                   stylesheets=[_CSS], css_classes=["cf-tables"])
        self._parents = None
        self.digit.param.watch(self._on_digit, "value")
        self.state.param.watch(self._on_state_digit, "current")
        self.state.param.watch(self._on_dataset, "dataset")
        for w in (self.thickness, self.intensity, self.choice):
            w.param.watch(lambda e: self._draw(), "value")
        self.run_button.on_click(self._on_soundness)
        self._load_digit()

    # -- state
    def _on_state_digit(self, event):
        if event.new != self.digit.value and 0 <= event.new <= self.digit.end:
            self.digit.value = event.new

    def _on_dataset(self, event):
        n = len(self.state.dataset.images)
        self.digit.end = max(n - 1, 0)
        self.digit.value = min(self.state.current, n - 1)
        self._load_digit()

    def _on_digit(self, event):
        if self.state.current != event.new:
            self.state.current = int(event.new)
        self._load_digit()

    def _image(self) -> np.ndarray:
        return np.asarray(self.state.dataset.images[int(self.digit.value)])

    def _load_digit(self):
        """Measure the digit and start from the null intervention (its own thickness and intensity)."""
        img = self._image()
        m = causal.measure_attributes(img[None]).iloc[0]
        self._parents = m
        self.original.object = digit_png(img)
        with param.parameterized.discard_events(self.thickness), param.parameterized.discard_events(self.intensity):
            if np.isfinite(m["thickness"]):
                self.thickness.value = float(np.clip(round(m["thickness"], 1), .5, 8.))
            if np.isfinite(m["intensity"]):
                self.intensity.value = float(np.clip(round(m["intensity"]), 64., 255.))
        self._draw()

    def _do(self) -> dict:
        m = self._parents
        do = {}
        if abs(self.thickness.value - round(m["thickness"], 1)) > 1e-9:
            do["thickness"] = float(self.thickness.value)
        if abs(self.intensity.value - round(m["intensity"])) > 1e-9:
            do["intensity"] = float(self.intensity.value)
        return do

    def _draw(self):
        img = self._image()
        m = self._parents
        parents = {"thickness": [m["thickness"]], "intensity": [m["intensity"]]}
        do = self._do()
        rows = {"original": m.to_dict()}
        failed = ""
        if not do:
            self.counterfactual.object = self.reference.object = digit_png(img)
            rows["model"] = rows["reference"] = m.to_dict()
        else:
            import pandas as pd
            par = pd.DataFrame(parents)
            # a requested change too small to move the binary image is said beside the digit, not logged
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NoEffectWarning)
                ref = causal.reference_counterfactual(img[None], par, do)
                try:
                    cf = causal._run_cf(self._models[self.choice.value], img[None], par,
                                        {k: np.array([v]) for k, v in do.items()}, self.choice.value)
                except Exception as e:   # the user's model failed: say so, keep the reference
                    failed = f"<br><b>the model failed</b>: {escape_html(type(e).__name__)}"
                    cf = None
            if any(issubclass(w.category, NoEffectWarning) for w in caught):
                failed += "<br>the thickness change rounds to no change of the binary image"
            self.reference.object = digit_png(ref[0])
            rows["reference"] = causal.measure_attributes(ref).iloc[0].to_dict()
            if cf is not None:
                self.counterfactual.object = digit_png(cf[0])
                rows["model"] = causal.measure_attributes(cf).iloc[0].to_dict()
        what = ", ".join(f"do({k} = {v:g})" for k, v in do.items()) or "no intervention"
        self.model_title.object = f"<b>{escape_html(self.choice.value)}</b><br>{escape_html(what)}{failed}"
        self.attributes.object = attributes_table(
            {"original": rows["original"], "model": rows.get("model", {}), "reference": rows["reference"]})

    async def _on_soundness(self, event=None):
        s = self.state
        if s.busy:
            return
        start = int(self.digit.value)
        images = np.asarray(s.dataset.images[start:start + _SOUNDNESS_DIGITS])
        name = self.choice.value
        fn = self._models[name]
        self.run_button.disabled = True
        try:
            rep = await s.run_job(f"Counterfactual soundness of {name} on {len(images)} digits",
                                  causal.counterfactual_soundness, fn, images)
            self.tables.object = soundness_tables(rep)
        except Exception as e:
            self.tables.object = f"<p><b>Could not measure soundness</b>: {escape_html(str(e))}</p>"
        finally:
            self.run_button.disabled = False

    def __panel__(self):
        images = pn.Row(pn.Column(pn.pane.HTML("<b>original</b>", width=_PX), self.original),
                        pn.Column(self.model_title, self.counterfactual),
                        pn.Column(pn.pane.HTML("<b>reference intervention</b><br>SetThickness, SetIntensity",
                                               width=_PX), self.reference))
        controls = pn.Column(self.digit, self.thickness, self.intensity, self.choice, self.run_button)
        return pn.Column(pn.Row(controls, images), pn.Row(self.attributes, self.tables), sizing_mode="stretch_width")
