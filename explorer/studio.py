"""Perturbation studio: perturb the current digit live, then apply to the selection and download it."""
from __future__ import annotations

import re
import time
import warnings

import numpy as np
import panel as pn
import param

from explorer.data import export_dataset
from explorer.gate import escape_html
from explorer.inspector import TABLE_CSS, TITLE_CSS, metrics_table, overlay_legend, overlay_toggles, step_digit
from explorer.live_html import LiveHTML
from explorer.perturbing import PerturbationSpec, perturb_digit, perturb_digits, perturbation_specs
from explorer.plotting import DigitPlot
from explorer.state import ExplorerState
from explorer.studio_export import dataset_zip, metrics_csv

__all__ = ["Studio", "PARAM_LABELS", "reach_warning"]

#: (perturbation, parameter) -> slider label, in words a newcomer reads without the paper at hand.
#: core.perturb.ParamSpec has names, units and a short doc but no display label; these are the studio's.
PARAM_LABELS = {
    # short enough that the slider's title keeps its value in view in the 250 px column
    ("thinning", "amount"): "Removed (× thickness)",
    ("thickening", "amount"): "Added (× thickness)",
    ("swelling", "strength"): "Swelling strength (power of the warp)",
    ("swelling", "radius"): "Swollen region radius (× ½√thickness px)",
    ("fracture", "thickness"): "Width of each break (px)",
    ("fracture", "prune"): "Distance kept from stroke ends (px)",
    ("fracture", "num_frac"): "Number of breaks",
    ("set_thickness", "target"): "Target thickness (px)",
    ("set_slant", "target_rad"): "Target slant (radians, + leans right)",
    ("set_width", "target"): "Target width (px)",
}

#: Perturbations that aim at a value of a metric: key -> (parameter, metric, tolerance in metric units;
#: at least 5% of the target is tolerated too).
#: The tolerances are what the perturbations reach on ordinary MNIST digits (they are approximate).
TARGETS = {"set_thickness": ("target", "thickness", 0.25), "set_slant": ("target_rad", "slant", 0.05),
           "set_width": ("target", "width", 0.6)}


def touches_frame(image: np.ndarray) -> bool:
    """Whether a uint8 (28, 28) digit has ink (>= half intensity, the measuring threshold) in its outermost
    rows or columns, where the frame may clip it."""
    ink = np.asarray(image) >= 128
    return bool(ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any())


def reach_warning(key: str, values: dict, original: np.ndarray, perturbed: np.ndarray, after: dict) -> str:
    """Why the perturbed digit is not what was asked for, or "" when it is.

    Parameters
    ----------
    key : str
        Perturbation key in ``core.perturb.PERTURBATIONS``.
    values : dict
        Its parameter values.
    original, perturbed : numpy.ndarray
        uint8 (28, 28) digits before and after.
    after : dict
        Metrics of ``perturbed``.
    """
    clipped = touches_frame(perturbed) and not touches_frame(original)
    if key in TARGETS:
        name, metric, tol = TARGETS[key]
        target = float(values[name])
        got = float(after.get(metric, np.nan))
        unit = "rad" if metric == "slant" else "px"
        if not np.isfinite(got) or abs(got - target) > max(tol, 0.05 * abs(target)):
            why = ("the digit reaches the edge of the 28 × 28 frame and is clipped" if touches_frame(perturbed)
                   else "this digit cannot be transformed that far (the perturbation is approximate)")
            return f"Asked for {metric} {target:.2f} {unit}, got {got:.2f} {unit}: {why}."
    if clipped:
        return "The perturbed digit reaches the edge of the 28 × 28 frame: part of it may be clipped."
    return ""


#: Perturbations that dilate or erode the binary digit with a disk of integer radius.
DISK_PERTURBATIONS = ("thinning", "thickening", "set_thickness")

#: What the studio says under their sliders (figures: ``python scripts/no_effect_table.py``, 5,000 digits).
ROUND_TRIP_NOTE = (
    "Every result goes up-scale ×4 → binarise → down-scale, which alone moves mean thickness by +0.072 px "
    "(0.10 sd) and length by −1.5 px. The disk's radius is a whole number of hi-res pixels: thinning or "
    "thickening amounts below about 0.20 × thickness (0.13–0.29 over the bundled digits) and thickness "
    "changes under 0.5 px change nothing but that round trip.")


class Studio(pn.viewable.Viewer):
    """Choose a perturbation and its parameters; see the current digit before and after, with overlays and
    metrics; apply it to the selection and download the result (zip of IDX + CSV)."""

    state = param.ClassSelector(class_=ExplorerState)
    overlays = param.List(default=["Skeleton", "Parallelogram"])
    px = param.Integer(default=270, doc="Side of each digit on screen, pixels.")

    def __init__(self, state: ExplorerState | None = None, **params):
        super().__init__(state=state or ExplorerState(), **params)
        s = self.state
        self.specs = perturbation_specs()
        if s.perturbation not in self.specs:
            s.perturbation = next(iter(self.specs))
        self._kind = pn.widgets.Select(name="Perturbation", options={sp.label: k for k, sp in self.specs.items()},
                                       value=s.perturbation, width=250)
        self._seed = pn.widgets.IntInput(name="Seed (where the random ones act)", value=s.seed, start=0,
                                         width=250)
        self._sliders = pn.Column(width=260, margin=0)
        self._slider_widgets = {}
        self._round_trip = pn.pane.Markdown(ROUND_TRIP_NOTE, width=250, margin=(0, 5),
                                            styles={"font-size": "11px", "color": "#555"},
                                            css_classes=["explorer-studio-round-trip"])
        self._no_effect = ""
        # rewritten on every digit / slider step / progress tick: LiveHTML (a Markdown or HTML pane's change
        # re-lays out the whole page in the browser)
        self._title = LiveHTML(margin=(0, 10), stylesheets=[TITLE_CSS], css_classes=["explorer-studio-title"])
        self._prev = pn.widgets.Button(name="‹", width=40, description="Previous digit")
        self._next = pn.widgets.Button(name="›", width=40, description="Next digit")
        self._prev.on_click(lambda e: step_digit(s, -1))
        self._next.on_click(lambda e: step_digit(s, +1))
        self._plots = {"original": DigitPlot(self.px, "studio-original", colour_bar=False, title="Original"),
                       "perturbed": DigitPlot(self.px + 60, "studio-perturbed", title="Perturbed")}
        self._plots["perturbed"].figure.height = self.px
        self._toggles = overlay_toggles(self.overlays)
        self._toggles.link(self, value="overlays")
        self._legend = pn.pane.HTML("", width=120, margin=(5, 5))
        self._warning = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                                      css_classes=["explorer-studio-warning"], margin=(0, 10))
        self._table = LiveHTML(stylesheets=[TABLE_CSS], width=560)
        self._build_export()
        self._kind.param.watch(self._on_kind, "value")
        self._seed.param.watch(lambda e: setattr(s, "seed", int(e.new)), "value")
        self.param.watch(self._apply_overlays, "overlays")
        s.param.watch(self._on_state, ["perturbation", "perturbation_params", "seed"])
        s.param.watch(self._render_original, ["current", "dataset"])
        s.param.watch(self._update_export_info, ["selection", "busy", "progress"])
        self._build_sliders()
        self._apply_overlays()
        self._render_original()
        self._update_export_info()

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
            label = PARAM_LABELS.get((self.spec.key, p.name), p.name.replace("_", " ").capitalize())
            kw = dict(name=label, width=250)
            if p.integer:
                w = pn.widgets.IntSlider(start=int(p.low), end=int(p.high), step=int(p.step), value=int(v), **kw)
            else:
                w = pn.widgets.FloatSlider(start=float(p.low), end=float(p.high), step=float(p.step),
                                           value=float(v), **kw)
            w.param.watch(self._on_slider, "value")
            widgets[p.name] = w
        self._slider_widgets = widgets
        self._sliders.objects = list(widgets.values())
        self._seed.visible = self.spec.random
        self._round_trip.visible = self.spec.key in DISK_PERTURBATIONS

    def _on_kind(self, event):
        if event.new != self.state.perturbation:  # a user's choice, not the echo of the state's
            self.state.param.update(perturbation=event.new, perturbation_params={})

    def _on_slider(self, event):
        # The pixels first, alone in their message to the browser; the table, the warning and the state
        # (so the URL) a moment later, in a second message: what the user looks at changes sooner.
        values = {k: w.value for k, w in self._slider_widgets.items()}
        doc = pn.state.curdoc
        later = doc is not None and doc.session_context is not None
        self._render_perturbed(values=values, details=not later)
        if not later:
            self._drawn = (self.state.perturbation, values, self.state.seed)
            self.state.perturbation_params = values
            return

        def rest():
            if {k: w.value for k, w in self._slider_widgets.items()} != values:
                return  # the slider moved on: its own callback follows
            self._show_details(values)
            self._drawn = (self.state.perturbation, values, self.state.seed)
            self.state.perturbation_params = values
        # A few frames later, so the browser paints the pixels before it lays out the new table.
        doc.add_timeout_callback(rest, 40)

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
        self._update_export_info()

    def _apply_overlays(self, *_):
        for plot in self._plots.values():
            plot.set_overlays(self.overlays)
        self._legend.object = overlay_legend(self.overlays)

    def _render_original(self, *_):
        s, ds = self.state, self.state.dataset
        i = min(max(s.current, 0), len(ds) - 1)
        self._index = i
        self._original = ds.images[i]
        self._before = ds.metrics.iloc[i].to_dict()
        label = f", label <b>{int(ds.labels[i])}</b>" if ds.labels is not None else ""
        self._title.html = (f"<h4>Perturbing digit #{i:,}{label}</h4>"
                            "<p>The current digit: pick another in <i>Browse &amp; inspect</i>, in the scatter, "
                            "or with ‹ ›.</p>")
        with pn.io.hold():
            self._plots["original"].show(self._original)
            self._render_perturbed()

    def _render_perturbed(self, *_, values: dict | None = None, details: bool = True):
        t0 = time.perf_counter()
        self._drawn = None
        values = values or self.values()
        from core.perturb import NoEffectWarning

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NoEffectWarning)
                out = perturb_digit(self._original, self.spec, values, self.state.seed, self._index)
            self._no_effect = next((str(w.message) for w in caught if issubclass(w.category, NoEffectWarning)), "")
        except Exception as e:  # e.g. a blank digit: say so, keep the app alive
            self.last_perturbed = None
            self._warning.param.update(object=f"Cannot perturb this digit: {e}", visible=True)
            return
        with pn.io.hold():  # one message to the browser: the pixels and their overlays
            geo = self._plots["perturbed"].show(out)
        self.last_ms = (time.perf_counter() - t0) * 1000
        self.last_perturbed = out
        after = geo.get("metrics")
        self.last_metrics = after if after is not None else {m: np.nan for m in self._before}
        if details:
            self._show_details(values)

    def _show_details(self, values: dict) -> None:
        """The metrics table and the warning for the last perturbed digit."""
        out, after = self.last_perturbed, self.last_metrics
        if out is None:  # perturbing failed; the warning says why
            return
        if self._plots["perturbed"].error is not None:
            warning = f"The perturbed digit cannot be measured: {self._plots['perturbed'].error}"
        else:
            warning = reach_warning(self.spec.key, values, self._original, out, after)
        if self._no_effect:
            warning = (f"No effect on this digit: {self._no_effect}." + (f" {warning}" if warning else ""))
        with pn.io.hold():
            self._table.html = metrics_table(after, before=self._before, explain=False)
            if warning != self._warning.object or self._warning.visible != bool(warning):
                self._warning.param.update(object=warning, visible=bool(warning))

    # ---------------------------------------------------------------------------------------------------
    # apply to the selection, export, download

    _OPEN_AFTER = "Open that folder in the explorer afterwards"
    _EXPORTS = {"Perturbed selection (zip: IDX + CSV)": "perturbed",
                "Selection unperturbed (zip: IDX + CSV)": "plain",
                "Metrics of the selection (CSV)": "metrics"}

    def _build_export(self):
        self._what = pn.widgets.RadioBoxGroup(name="Export", options=list(self._EXPORTS), inline=False)
        self._export_info = LiveHTML(margin=(0, 10))  # changes with every progress tick of an apply
        self._prepare = pn.widgets.Button(name="Prepare download", button_type="primary", width=170)
        self._prepare.on_click(self._on_prepare)
        self._download = pn.widgets.FileDownload(file=None, filename="morpho-export.zip", visible=False,
                                                 button_type="success", width=300, label="Download")
        self._busy = pn.indicators.Progress(name="export progress", value=-1, active=False, visible=False,
                                            width=300, bar_color="primary")
        self._out = pn.widgets.TextInput(name="Also write to a folder on the server (optional)",
                                         placeholder="folder for the IDX + CSV files", value="", width=400)
        # A one-box CheckBoxGroup: a click on its words toggles it (they are the box's <label>).
        self._open_after = pn.widgets.CheckBoxGroup(options=[self._OPEN_AFTER], value=[])
        self._what.param.watch(lambda e: self._update_export_info(), "value")
        self.state.param.watch(self._on_paths, ["paths_enabled"])
        self._on_paths()

    def _on_paths(self, *_):
        # No server folders on a server whose path boxes are off (public address without --data-root).
        on = self.state.paths_enabled
        self._out.visible = self._open_after.visible = on
        if not on:
            self._out.value = ""

    def _update_export_info(self, *_):
        s = self.state
        n = len(s.selection)
        what = self._EXPORTS[self._what.value]
        if what == "perturbed":
            params = ", ".join(f"{p.name} {v:g}" for p, v in zip(self.spec.params, self.values().values()))
            seed = f", seed {s.seed}" if self.spec.random else ""
            text = (f"<b>{escape_html(self.spec.label)}</b> ({escape_html(params + seed)}) applied to the "
                    f"<b>{n:,} digits</b> passing the browser's filters, then measured.")
        elif what == "plain":
            text = f"The <b>{n:,} digits</b> passing the browser's filters, as they are, with their metrics."
        else:
            text = f"The six metrics of the <b>{n:,} digits</b> passing the browser's filters (one row each)."
        if n == 0:
            text = "No digit passes the browser's filters: nothing to export."
        self._export_info.html = f"<p>{text}</p>"
        self._prepare.disabled = n == 0 or s.busy
        self._busy.visible = s.busy
        self._busy.active = s.busy and s.progress < 0
        self._busy.value = s.progress if s.busy and s.progress >= 0 else -1

    async def _on_prepare(self, event=None):
        s = self.state
        if s.busy:
            await s.in_document(lambda: s.notify("Still working on the previous job; try again when it "
                                                 "finishes.", "warning"))
            return
        idx = s.selection.copy()
        ds = s.dataset
        what = self._EXPORTS[self._what.value]
        spec, values, seed = self.spec, self.values(), s.seed
        folder_text = self._out.value.strip()
        folder = None
        if folder_text and what != "metrics":
            try:  # the server's path policy: --data-root confinement, off on a public server
                folder = s.resolve_user_path(folder_text, "export")
            except ValueError as e:
                text = str(e)
                await s.in_document(lambda: s.notify(text, "danger"))
                return
        # the previous export's button goes now: it must not stay beside the one being prepared
        await s.in_document(lambda: self._download.param.update(visible=False, file=None))
        labels = ds.labels[idx] if ds.labels is not None else None
        # the data set's name may be an upload's: only letters, digits, '.', '_' and '-' reach the file name
        base = re.sub(r"[^\w.-]+", "-", (ds.name.split() or ["data"])[0].lower()).strip("-.") or "data"
        stem = f"{base[:40]}-{spec.key if what == 'perturbed' else 'selection'}-{len(idx)}"

        def package(images, metrics, perts):  # zip (and the optional server folder), on the pool
            if folder is not None:
                export_dataset(folder, images, labels, metrics, perts)
            return dataset_zip(images, labels, metrics, perts, folder=stem, source_index=idx), f"{stem}.zip"

        try:
            if what == "metrics":
                data, filename = await s.run_job(f"Exporting the metrics of {len(idx):,} digits",
                                                 lambda: (metrics_csv(ds.metrics.iloc[idx], idx, labels),
                                                          f"{stem}-metrics.csv"))
            elif what == "plain":
                perts = ds.perturbations[idx] if ds.perturbations is not None else None
                data, filename = await s.run_job(
                    f"Exporting {len(idx):,} digits", package, ds.images[idx],
                    ds.metrics.iloc[idx].reset_index(drop=True), perts)
            else:
                # Fair chunks on the shared pool (in its worker processes once they are on): other sessions'
                # work interleaves with a long export, and the server's event loop never waits for it.
                from explorer import jobs

                images = await s.track(
                    f"Applying {spec.label.lower()} to {len(idx):,} digits",
                    jobs.map_digits(s.owner, perturb_digits, ds.images, spec, values, seed, indices=idx,
                                    progress=s.report))
                metrics = await s.track(f"Measuring {len(idx):,} perturbed digits",
                                        jobs.measure(s.owner, images, progress=s.report))
                data, filename = await s.run_job("Packing the export", package, images,
                                                 metrics.reset_index(drop=True),
                                                 np.full(len(idx), spec.code, np.int64))
        except Exception as e:
            text = f"Export failed: {type(e).__name__}: {e}"
            await s.in_document(lambda: s.notify(text, "danger"))
            return

        def ready():
            import io

            self._download.param.update(file=io.BytesIO(data), filename=filename, visible=True,
                                        label=f"Download {filename} ({len(data) / 1e6:.2f} MB)")
            where = f"; also written to {folder}" if folder is not None else ""
            kind = "perturbed digits" if what == "perturbed" else "digits" if what == "plain" else "metric rows"
            s.notify(f"Exported {len(idx):,} {kind}: {filename} is ready to download{where}", "success")
        await s.in_document(ready)
        if folder is not None and self._OPEN_AFTER in self._open_after.value:
            await s.open(folder)

    def __panel__(self):
        controls = pn.Column(self._kind, self._sliders, self._round_trip, self._seed,
                             pn.pane.Markdown("**Overlays**", margin=(0, 5)),
                             pn.Row(self._toggles, self._legend), width=270)
        export = pn.Column(
            pn.pane.Markdown("#### Apply to the selection and download", margin=(0, 10)),
            pn.Row(self._what, pn.Column(self._export_info, pn.Row(self._prepare, self._busy), self._download,
                                         width=520)),
            pn.Row(self._out, self._open_after, align="end"),
        )
        return pn.Column(
            pn.Row(self._title, pn.Column(pn.Spacer(height=4), pn.Row(self._prev, self._next))),
            pn.Row(controls, pn.Column(
                pn.Row(pn.pane.Bokeh(self._plots["original"].figure),
                       pn.pane.Bokeh(self._plots["perturbed"].figure)),
                self._warning, self._table)),
            pn.layout.Divider(),
            export,
            css_classes=["explorer-studio"],
        )
