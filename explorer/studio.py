"""Perturbation studio: perturb the current digit live, then apply to the selection and export it."""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import LinearColorMapper
from bokeh.palettes import Greys256

from explorer.data import METRICS, PERTURBATION_NAMES, export_dataset, measure_metrics
from explorer.inspector import TABLE_CSS, digit_figure, metrics_table
from explorer.state import ExplorerState

__all__ = ["Studio", "perturbation_specs", "make_perturbation", "perturb_digit",
           "perturb_batch"]

# Morpho-MNIST perturbation label of each class (see explorer.data.PERTURBATION_NAMES).
_CODES = {"Thinning": 1, "Thickening": 2, "Swelling": 3, "Fracture": 4, "SetThickness": 5, "SetSlant": 6,
          "SetWidth": 7}


@dataclass
class PerturbationSpec:
    """A perturbation class and its parameters, from ``core.perturb.PERTURBATIONS``."""

    key: str
    label: str
    cls: type
    params: list
    random: bool
    code: int


def perturbation_specs() -> dict:
    """Perturbations offered by the studio, in the order of ``core.perturb.PERTURBATIONS``.

    Returns
    -------
    dict
        key -> :class:`PerturbationSpec`.
    """
    from core.perturb import PERTURBATIONS

    specs = {}
    for key, (cls, params) in PERTURBATIONS.items():
        sig = inspect.signature(cls)
        slider_params = list(params)  # core.perturb.ParamSpec: name, default, range, step, unit, integer
        code = _CODES.get(cls.__name__, 8)
        label = PERTURBATION_NAMES.get(code, key.replace("_", " "))
        specs[key] = PerturbationSpec(key, label.capitalize(), cls, slider_params, "rng" in sig.parameters, code)
    return specs


def make_perturbation(spec: PerturbationSpec, values: dict, rng: np.random.Generator | None = None):
    """Instantiate a perturbation with slider ``values`` (defaults for missing ones)."""
    kwargs = {}
    for p in spec.params:
        v = values.get(p.name, p.default)
        kwargs[p.name] = int(round(v)) if p.integer else float(v)
    if spec.random:
        kwargs["rng"] = rng if rng is not None else np.random.default_rng(0)
    return spec.cls(**kwargs)


def perturb_digit(image: np.ndarray, spec: PerturbationSpec, values: dict, seed: int) -> np.ndarray:
    """Perturb one digit reproducibly: uint8 (28, 28) in, uint8 (28, 28) out."""
    from core.perturb import perturb_image

    pert = make_perturbation(spec, values, np.random.default_rng(seed))
    return perturb_image(image, pert, mode="released", scale=4)


def perturb_batch(images: np.ndarray, spec: PerturbationSpec, values: dict, seed: int,
                  progress=None) -> tuple[np.ndarray, pd.DataFrame]:
    """Perturb digits (one generator seeded once, so the batch is reproducible) and measure them.

    Returns
    -------
    images : numpy.ndarray
        uint8 (N, 28, 28).
    metrics : pandas.DataFrame
        Their six morphometrics.
    """
    from core.perturb import perturb_image

    rng = np.random.default_rng(seed)
    pert = make_perturbation(spec, values, rng)
    n = len(images)
    out = np.empty_like(images)
    total = 2 * n  # perturbing, then measuring
    for i in range(n):
        out[i] = perturb_image(images[i], pert, mode="released", scale=4)
        if progress and (i % 50 == 0 or i == n - 1):
            progress(i + 1, total)
    metrics = measure_metrics(out, (lambda d, t: progress(n + d, total)) if progress else None)
    return out, metrics


class Studio(pn.viewable.Viewer):
    """Choose a perturbation and its parameters; see the current digit before and after, with metrics."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        self.specs = perturbation_specs()
        if s.perturbation not in self.specs:
            s.perturbation = next(iter(self.specs))
        self._kind = pn.widgets.Select(name="Perturbation", options={sp.label: k for k, sp in self.specs.items()},
                                       value=s.perturbation, width=260)
        self._seed = pn.widgets.IntInput(name="Seed", value=s.seed, start=0, width=120)
        self._sliders = pn.Column(width=280)
        self._slider_widgets = {}
        size = 28
        mapper = LinearColorMapper(palette=Greys256[::-1], low=0, high=255)
        self._figs, self._sources = {}, {}
        for which in ("original", "perturbed"):
            fig = digit_figure(size, 300, f"studio-{which}")
            fig.title.text = which.capitalize()
            r = fig.image(image=[np.zeros((size, size), np.uint8)], x=0, y=0, dw=size, dh=size,
                          color_mapper=mapper)
            self._figs[which], self._sources[which] = fig, r.data_source
        self._table = pn.pane.HTML("", stylesheets=[TABLE_CSS], width=640, height=230)
        self._apply_info = pn.pane.Markdown("")
        self._out = pn.widgets.TextInput(name="Export folder", placeholder="folder for the IDX + CSV files",
                                         value=str(Path.cwd() / "morpho-export"), width=420)
        self._open_after = pn.widgets.Checkbox(name="Open the exported dataset", value=False)
        self._apply = pn.widgets.Button(name="Apply to selection and export", button_type="primary")
        self._apply.on_click(self._on_apply)
        self._kind.param.watch(self._on_kind, "value")
        self._seed.param.watch(lambda e: setattr(s, "seed", int(e.new)), "value")
        s.param.watch(self._on_state, ["perturbation", "perturbation_params", "seed"])
        s.param.watch(self._render_original, ["current", "dataset"])
        s.param.watch(self._update_apply_info, ["selection"])
        self._build_sliders()
        self._render_original()
        self._update_apply_info()

    # ---------------------------------------------------------------------------------------------------
    @property
    def spec(self) -> PerturbationSpec:
        return self.specs[self.state.perturbation]

    def values(self) -> dict:
        """Current parameter values (the state's, else the defaults)."""
        stored = self.state.perturbation_params or {}
        return {p.name: stored.get(p.name, p.default) for p in self.spec.params}

    def _build_sliders(self):
        values = self.values()
        widgets = {}
        for p in self.spec.params:
            v = min(max(values[p.name], p.low), p.high)
            label = p.name.replace("_", " ") + (f" ({p.unit})" if p.unit else "")
            if p.integer:
                w = pn.widgets.IntSlider(name=label, start=int(p.low), end=int(p.high),
                                         step=int(p.step), value=int(v), width=260)
            else:
                w = pn.widgets.FloatSlider(name=label, start=float(p.low),
                                           end=float(p.high), step=float(p.step), value=float(v), width=260)
            w.param.watch(self._on_slider, "value")
            widgets[p.name] = w
        self._slider_widgets = widgets
        self._sliders.objects = list(widgets.values())
        self._seed.visible = self.spec.random

    def _on_kind(self, event):
        self.state.param.update(perturbation=event.new, perturbation_params={})

    def _on_slider(self, event):
        # Draw first, then record in the state (and so the URL): the preview's update leaves first.
        values = {k: w.value for k, w in self._slider_widgets.items()}
        self._render_perturbed(values=values)
        self._drawn = (self.state.perturbation, values, self.state.seed)
        self.state.perturbation_params = values

    def _on_state(self, *events):
        s = self.state
        if any(e.name == "perturbation" for e in events):
            self._kind.value = s.perturbation
            self._build_sliders()
        else:
            for k, w in self._slider_widgets.items():
                v = (s.perturbation_params or {}).get(k)
                if v is not None and v != w.value:
                    w.value = v
        self._seed.value = s.seed
        if getattr(self, "_drawn", None) != (s.perturbation, self.values(), s.seed):
            self._render_perturbed()

    def _render_original(self, *_):
        s, ds = self.state, self.state.dataset
        self._original = ds.images[min(s.current, len(ds) - 1)]
        self._before = ds.metrics.iloc[min(s.current, len(ds) - 1)].to_dict()
        self._sources["original"].data = {"image": [np.ascontiguousarray(self._original[::-1])]}
        self._render_perturbed()

    def _render_perturbed(self, *_, values: dict | None = None):
        from core.measure import measure_image

        t0 = time.perf_counter()
        self._drawn = None
        try:
            out = perturb_digit(self._original, self.spec, values or self.values(), self.state.seed)
            after = measure_image(out)._asdict()
        except Exception as e:  # e.g. a blank digit after strong thinning: say so, keep the app alive
            self._table.object = f"<p>Cannot perturb or measure this digit: {e}</p>"
            return
        ms = (time.perf_counter() - t0) * 1000
        self._sources["perturbed"].data = {"image": [np.ascontiguousarray(out[::-1])]}
        self._table.object = metrics_table(after, before=self._before, explain=False)
        self.last_ms = ms  # not shown per move: every extra pane update delays the preview
        self.last_perturbed = out
        self.last_metrics = after

    def _update_apply_info(self, *_):
        n = len(self.state.selection)
        self._apply_info.object = (f"The perturbation above, with these parameters and seed, applied to the "
                                   f"**{n:,} digits** of the current selection (browser filters).")
        self._apply.disabled = n == 0

    async def _on_apply(self, event):
        s = self.state
        folder = Path(self._out.value.strip()).expanduser()
        if not self._out.value.strip():
            await s.in_document(lambda: s.notify("Choose an export folder first.", "warning"))
            return
        idx = s.selection.copy()
        ds = s.dataset
        spec, values, seed = self.spec, self.values(), s.seed

        def job():
            images, metrics = perturb_batch(ds.images[idx], spec, values, seed, progress=s.report)
            labels = ds.labels[idx] if ds.labels is not None else None
            perts = np.full(len(idx), spec.code, np.int64)
            files = export_dataset(folder, images, labels, metrics, perts)
            return files

        try:
            files = await s.run_job(f"Applying {spec.label.lower()} to {len(idx):,} digits", job)
        except Exception as e:
            text = f"Export to {folder} failed: {e}"
            await s.in_document(lambda: s.notify(text, "danger"))
            return
        await s.in_document(lambda: s.notify(
            f"Exported {len(idx):,} perturbed digits to {folder} ({', '.join(f.name for f in files)})",
            "success"))
        if self._open_after.value:
            await s.open(folder)

    def __panel__(self):
        controls = pn.Column(self._kind, self._sliders, self._seed, width=290)
        return pn.Column(
            pn.Row(controls, pn.pane.Bokeh(self._figs["original"]), pn.pane.Bokeh(self._figs["perturbed"])),
            pn.Row(pn.Column(self._table, width=640)),
            pn.layout.Divider(),
            pn.pane.Markdown("#### Apply to the selection and export (released layout: IDX + CSV)"),
            self._apply_info,
            pn.Row(self._out, self._open_after),
            self._apply,
            css_classes=["explorer-studio"],
        )
