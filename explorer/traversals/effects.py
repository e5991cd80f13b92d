"""What each latent does to each metric: lines along the traversal, the effect heatmap and table.

- Line plots: each metric along each latent's traversal (mean over the base codes), one line per
  latent; the legend lies below the plot (never over a point), lists every latent, and a click on an
  entry hides that latent's line.
- Effects (:func:`core.analysis.traversal_effects`): the mean effect over base codes with its 95%
  confidence interval and the share of bases that agree on its sign, as a least-squares slope (metric
  units per latent unit, or reference-data standard deviations per latent unit) or as a Spearman
  correlation with the step. The heatmap's ColumnDataSource data and the table's HTML are built from
  the same long-form data and replaced in one document change, so they always show the same numbers.
- "Strongest latent" per metric by effect size, ties reported as ties.
- Downloads: the analysis as HTML and JSON.
"""
from __future__ import annotations

import html
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (BasicTicker, ColorBar, ColumnDataSource, GlyphRenderer, HoverTool, Legend, LegendItem,
                          Line, LinearColorMapper, Range1d, Scatter)
from bokeh.palettes import Category10_10, Category20_20, RdBu11
from bokeh.plotting import figure

from core.analysis import DIAGNOSTIC_METRICS, traversal_effects
from explorer.browser import METRIC_LABELS
from explorer.compare import heading, on_document
from explorer.plotting import wrap_row

__all__ = ["EffectsPanel", "METHODS", "UNITS", "heatmap_figure"]

DIVERGING = list(reversed(RdBu11))  # red = negative, blue = positive
METHODS = {"slope": "Slope", "spearman": "Spearman ρ"}
# the "per latent unit" or "per step" is said by the note (TraversalEffects.units): the latent values may
# be unknown (a grid image), and then the slopes are per step
UNITS = {"metric": "metric units", "sd": "reference sd"}


def heatmap_figure(source: ColumnDataSource, name: str, title: str, x_factors, x_label: str, y_label: str,
                   value_label: str = "value"):
    """A categorical heatmap over ``source`` (columns x, y, shade in [-1, 1], text, text_colour)."""
    mapper = LinearColorMapper(palette=DIVERGING, low=-1, high=1)
    fig = figure(x_range=list(x_factors), y_range=["0"], width=520, height=240, title=title,
                 tools="save", toolbar_location="right", name=name)
    fig.rect(x="x", y="y", width=1, height=1, source=source, line_color="white",
             fill_color={"field": "shade", "transform": mapper})
    fig.text(x="x", y="y", text="text", source=source, text_align="center", text_baseline="middle",
             text_font_size="11px", text_color="text_colour")
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=5), width=10,
                            title="colour: value / largest |value|"), "right")
    fig.add_tools(HoverTool(tooltips=[(y_label, "@y"), (x_label, "@x"), (value_label, "@text")]))
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.grid.visible = False
    fig.toolbar.logo = None
    return fig


TABLE_CSS = """
table.effects {border-collapse: collapse; font-size: 12px;}
table.effects th {text-align: right; border-bottom: 2px solid #ccc; padding: 3px 8px; color: #444;}
table.effects td {text-align: right; border-bottom: 1px solid #eee; padding: 3px 8px; white-space: nowrap;}
table.effects td.lat {font-weight: 600;}
table.effects span.ci, table.effects span.agree {color: #666; font-size: 11px;}
table.effects td.strongest {background: #fff3bf;}
"""


def effects_table_html(data: dict, metrics, latents) -> str:
    """Latents x metrics HTML table of the heatmap's long-form ``data``: effect, 95% CI, sign agreement;
    the strongest latent of each metric highlighted (★, or "tie")."""
    cell = {(y, x): k for k, (y, x) in enumerate(zip(data["y"], data["x"]))}
    head = "<tr><th>latent</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in metrics) + "</tr>"
    rows = []
    for lat in latents:
        tds = [f"<td class='lat'>{html.escape(lat)}</td>"]
        for m in metrics:
            k = cell.get((lat, m))
            if k is None:
                tds.append("<td>–</td>")
                continue
            star = data["strongest"][k]
            cls = " class='strongest'" if star else ""
            tds.append(f"<td{cls} data-latent='{lat}' data-metric='{m}'><span class='v'>{data['text'][k]}</span>"
                       f"{' ' + star if star else ''}<br><span class='ci'>{data['ci'][k]}</span> "
                       f"<span class='agree'>{data['agreement_text'][k]}</span></td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table class='effects'>{head}{''.join(rows)}</table>"


def both_sides_html(enc) -> str:
    """The traversal's slope beside the encoder's coefficient, per latent and metric (empty without codes)."""
    if enc is None:
        return ""
    head = ("<tr><th>latent</th><th>metric</th><th>decoder (traversal)</th><th>encoder (codes)</th>"
            "<th>agreement</th></tr>")
    rows = []
    for _, r in enc.table.iterrows():
        rows.append(f"<tr><td class='lat'>{html.escape(str(r['latent']))}</td><td>{html.escape(r['metric'])}</td>"
                    f"<td>{_fmt(r['decoder_sd'])}</td><td>{_fmt(r['encoder_sd'])}</td>"
                    f"<td>{html.escape(r['agreement'])}</td></tr>")
    return (f"<h4>Both sides: reference sd per latent unit, from the traversal and from the codes of "
            f"{enc.n_digits:,} real digits</h4><table class='effects'>{head}{''.join(rows)}</table>")


def _fmt(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.3g}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"


class EffectsPanel(param.Parameterized):
    """Line plots, effect heatmap + table, strongest latents and report downloads for a measured
    traversal.

    Set :meth:`set_traversal` with the per-step metrics (index (base, latent, step)), the step
    offsets and the reference metrics; :attr:`method` and :attr:`units` switch the effect shown.
    """

    method = param.Selector(default="slope", objects=list(METHODS), doc="Effect size: slope or Spearman ρ.")
    units = param.Selector(default="sd", objects=list(UNITS), doc="Units of the slope.")
    effects = param.Parameter(default=None, doc="The core.analysis.TraversalEffects on show.")
    computing = param.Boolean(default=False)

    def __init__(self, **params):
        super().__init__(**params)
        self.state = None  # the view's ExplorerState (set by TraversalView): where plots are updated
        self.metrics = list(DIAGNOSTIC_METRICS)
        self._cache: dict = {}
        self._per_step = None
        self._values = None
        self._reference = None
        self._n_latents = 0
        # one source for the heatmap AND the table: they cannot disagree
        self.source = ColumnDataSource(data=self._empty())
        self.heatmap = heatmap_figure(self.source, "traversal-effects", "Effect of each latent on each metric",
                                      self.metrics, "metric", "latent", "effect")
        self.heatmap.add_tools(HoverTool(tooltips=[("latent", "@y"), ("metric", "@x"), ("effect", "@text"),
                                                   ("95% CI", "@ci"), ("sign agreement", "@agreement_text")]))
        # the table is rendered from the same long-form data as the heatmap's source, in the same step
        self.table = pn.pane.HTML("", stylesheets=[TABLE_CSS], css_classes=["traversal-effects-table"],
                                  max_height=420, min_width=420, styles={"overflow-y": "auto"})
        self._method = pn.widgets.RadioButtonGroup.from_param(self.param.method, options={v: k for k, v in
                                                                                          METHODS.items()},
                                                              css_classes=["traversal-method"])
        self._units = pn.widgets.RadioButtonGroup.from_param(self.param.units, options={v: k for k, v in
                                                                                        UNITS.items()},
                                                             css_classes=["traversal-units"])
        self.note = pn.pane.Markdown("*Load or traverse a model to see each latent's effects.*", css_classes=["traversal-effect-note"], sizing_mode="stretch_width")
        self.both_sides = pn.pane.HTML("", stylesheets=[TABLE_CSS], css_classes=["traversal-both-sides"],
                                       sizing_mode="stretch_width")
        self._encoder = None    # (codes, metrics) of real digits, for the encoder side
        self._busy = pn.indicators.LoadingSpinner(value=True, size=20, visible=False,
                                                  css_classes=["traversal-busy"])
        self._lines: dict = {}
        self._line_srcs: dict = {}
        for m in self.metrics:
            # explicit ranges, set with the data: an empty auto-ranged plot makes Bokeh warn
            f = figure(width=300, height=200, title=METRIC_LABELS.get(m, m), tools="save",
                       toolbar_location="right", name=f"traversal-line-{m}", x_range=Range1d(0, 1),
                       y_range=Range1d(0, 1))
            f.add_tools(HoverTool(tooltips=[("latent", "@latent"), ("offset", "@x{0.00}"),
                                            (m, "@value{0.000}")]))
            f.xaxis.axis_label = "latent offset"
            f.toolbar.logo = None
            f.line(x=[], y=[])  # a placeholder until a traversal is drawn (Bokeh warns on plots without any)
            # below the plot, every latent listed; click an entry to hide that latent. One legend for the
            # figure's life, and a fixed height: a new traversal changes items, not the page's layout.
            f.add_layout(Legend(items=[], orientation="horizontal", ncols=5, click_policy="hide",
                                label_text_font_size="9px", spacing=4, padding=2, margin=2,
                                glyph_width=12, glyph_height=8, label_height=10), "below")
            self._lines[m] = f
        self.download_html = pn.widgets.FileDownload(callback=self._html, filename="traversal-effects.html",
                                                     label="Effects report (HTML)", color="success",
                                                     variant="outline", disabled=True, width=200,
                                                     css_classes=["traversal-download-html"])
        self.download_json = pn.widgets.FileDownload(callback=self._json, filename="traversal-effects.json",
                                                     label="Effects report (JSON)", color="success",
                                                     variant="outline", disabled=True, width=200,
                                                     css_classes=["traversal-download-json"])
        self.param.watch(self._show, ["method", "units"])

    @staticmethod
    def _empty() -> dict:
        return {k: [] for k in ("x", "y", "value", "shade", "text", "text_colour", "ci", "agreement",
                                "agreement_text", "strongest")}

    # ---------------------------------------------------------------------------------------------
    # data in

    def set_traversal(self, per_step: pd.DataFrame, values, reference: pd.DataFrame | None):
        """A newly measured traversal: draw its lines, compute and show its effects.

        Parameters
        ----------
        per_step : pandas.DataFrame
            Metrics, index (base, latent, step).
        values : numpy.ndarray of float, shape (S,), or None
            Latent offset of each step (None: the steps are 0..S-1).
        reference : pandas.DataFrame or None
            The reference data's metrics (for the sd units).
        """
        self._per_step, self._values, self._reference = per_step, values, reference
        self._cache = {}
        self._n_latents = per_step.index.get_level_values("latent").nunique()
        self._draw_lines()
        self._show()

    def set_encoder(self, codes, metrics: pd.DataFrame | None):
        """Encoder codes of real digits (N, D) with their metrics: the effects are then read from both
        sides (:func:`core.analysis.encoder_effects`) and shown beside each other; None clears."""
        self._encoder = None if codes is None else (np.asarray(codes, float), metrics)
        self._cache = {}
        self._show()

    def analyse(self, method: str, units: str = "sd"):
        """The TraversalEffects of the current traversal for ``method`` and slope ``units`` (computed
        from the measured per-step table once, then cached: a toggle only swaps tables)."""
        key = (method, units if method == "slope" else "-")
        if key not in self._cache:
            if ("slope", "sd") not in self._cache:
                # one analysis holds both methods; with_method swaps its table
                self._cache[("slope", "sd")] = traversal_effects(
                    self._per_step, method="slope", values=self._values, reference_metrics=self._reference,
                    metrics=self.metrics)
            if self._encoder is not None and self._values is not None:
                base = self._cache[("slope", "sd")]
                self._cache[("slope", "sd")] = base.with_encoder(*self._encoder)
            if key == ("spearman", "-"):
                self._cache[key] = self._cache[("slope", "sd")].with_method("spearman")
            elif key == ("slope", "metric"):
                self._cache[key] = traversal_effects(self._per_step, method="slope", values=self._values,
                                                     reference_metrics=None, metrics=self.metrics)
        return self._cache[key]

    # ---------------------------------------------------------------------------------------------
    # lines

    def _draw_lines(self):
        ps = self._per_step
        S = ps.index.get_level_values("step").nunique()
        x = np.asarray(self._values, float) if self._values is not None else np.arange(S, dtype=float)
        mean = ps.groupby(level=["latent", "step"]).mean()
        L = self._n_latents
        palette = Category10_10 if L <= 10 else Category20_20
        data = {m: [{"x": x, "value": mean.loc[lat, m].to_numpy(), "latent": [str(lat)] * S}
                    for lat in range(L)] for m in self.metrics}
        ncols = min(L, 5)
        nrows = -(-L // ncols)

        def commit():
            for m, f in self._lines.items():
                # renderers are rebuilt only for a new traversal (not on method toggles)
                renderers, items = [], []
                for lat, d in enumerate(data[m]):
                    colour = palette[lat % len(palette)]
                    src = ColumnDataSource(d)
                    line = GlyphRenderer(data_source=src, glyph=Line(x="x", y="value", line_color=colour,
                                                                      line_width=2))
                    dots = GlyphRenderer(data_source=src, glyph=Scatter(x="x", y="value", fill_color=colour,
                                                                         line_color=colour, size=5))
                    renderers += [line, dots]
                    items.append(LegendItem(label=f"latent {lat}", renderers=[line, dots]))
                # renderers are rebuilt only for a new traversal (not on method toggles), all at once
                f.renderers = renderers
                legend = f.legend[0]
                legend.update(items=items, ncols=ncols)
                height = 200 + 16 * nrows
                if f.height != height:  # a layout change: only when the legend needs another row
                    f.height = height
                ys = np.concatenate([d["value"] for d in data[m]])
                ys = ys[np.isfinite(ys)]
                lo, hi = (float(ys.min()), float(ys.max())) if len(ys) else (0.0, 1.0)
                pad = 0.08 * (hi - lo) if hi > lo else max(0.05 * abs(hi), 0.05)
                xpad = 0.04 * (x[-1] - x[0]) if len(x) > 1 else 0.5
                f.x_range.update(start=float(x[0] - xpad), end=float(x[-1] + xpad))
                f.y_range.update(start=lo - pad, end=hi + pad)
                f.xaxis.axis_label = "latent offset" if self._values is not None else "step"

        on_document(commit, self.state)

    # ---------------------------------------------------------------------------------------------
    # effects

    def _show(self, *_):
        if self._per_step is None:
            return
        eff = self.analyse(self.method, self.units)
        self.effects = eff
        data, latents = self.heatmap_data(eff)
        note = self.strongest_text(eff)
        table = effects_table_html(data, self.metrics, latents[::-1])

        def commit():
            # heatmap and table from the same data, in one document change
            self.heatmap.y_range.factors = latents
            self.heatmap.height = 110 + 26 * len(latents)
            self.source.data = data
            self.table.object = table

        on_document(commit, self.state)
        self.note.object = note
        self.both_sides.object = both_sides_html(self.analyse("slope", "sd").encoder)
        self._units.visible = self.method == "slope"
        for d in (self.download_html, self.download_json):
            d.disabled = False

    def table_frame(self, eff) -> pd.DataFrame:
        """The effect table (latents x metrics) on show: ``eff.table`` in the selected method and units."""
        return eff.table

    def heatmap_data(self, eff) -> tuple[dict, list]:
        """Long-form data of the heatmap and the table: one row per (latent, metric)."""
        table = eff.table
        per_metric_colour = self.method == "slope" and self.units == "metric"
        data = self._empty()
        overall = float(np.nanmax(np.abs(table.to_numpy()))) if table.size else 0.0
        for lat in table.index:
            for m in table.columns:
                v = float(table.loc[lat, m])
                # colour: the value over the largest |value| (per metric in metric units, which differ)
                top = (float(np.nanmax(table[m].abs().to_numpy())) if per_metric_colour else
                       1.0 if self.method == "spearman" else overall)
                shade = v / top if top > 0 and np.isfinite(v) else 0.0
                data["x"].append(str(m))
                data["y"].append(str(lat))
                data["value"].append(v)
                data["shade"].append(shade)
                data["text"].append(_fmt(v))
                data["text_colour"].append("white" if abs(shade) > 0.6 else "#222")
                lo, hi = float(eff.ci_low.loc[lat, m]), float(eff.ci_high.loc[lat, m])
                data["ci"].append(f"[{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) else "–")
                a = float(eff.sign_agreement.loc[lat, m])
                data["agreement"].append(a)
                data["agreement_text"].append(f"{a:.0%} agree" if np.isfinite(a) and eff.n_bases > 1 else "")
                winners = list(eff.strongest.get(m, []))
                data["strongest"].append(("tie" if len(winners) > 1 else "★") if lat in winners else "")
        return data, [str(i) for i in table.index][::-1]

    def strongest_text(self, eff) -> str:
        parts = []
        for m in self.metrics:
            winners = list(eff.strongest.get(m, []))
            if not winners:
                continue
            if len(winners) == 1:
                parts.append(f"{m} ← latent **{winners[0]}**")
            else:
                parts.append(f"{m} ← tie between latents **{', '.join(map(str, winners))}**")
        what = {"slope": "least-squares slope of the metric against the latent value, in " + eff.units,
                "spearman": "Spearman rank correlation of the metric with the step (±1: monotonic, whatever "
                            "its size)"}[self.method]
        over = (f" Mean over {eff.n_bases} base codes, with its {eff.confidence:.0%} confidence interval and the "
                "share of bases agreeing on its sign." if eff.n_bases > 1 else
                " One base code: no confidence interval.")
        stable = ""
        if eff.n_bases > 1:
            st = eff.stability()
            held = [f"{r['metric']} ← {r['strongest']}: {r['holds']} of {r['of']}" for _, r in st.iterrows()
                    if r["strongest"] is not None]
            if held:
                stable = (" Does the strongest latent hold when the bases are drawn again (with replacement)? "
                          + "; ".join(held) + ".")
        return (f"Effect: {what}.{over} Strongest latent per metric (by effect size, the mean slope, "
                f"whatever the method): {'; '.join(parts) or 'none'}.{stable}")

    # ---------------------------------------------------------------------------------------------
    def _html(self):
        if self.effects is None:
            return io.BytesIO(b"")
        with tempfile.TemporaryDirectory(prefix="morpho-report-") as tmp:
            path = Path(tmp) / "effects.html"
            self.effects.to_html(path)
            return io.BytesIO(path.read_bytes())

    def _json(self):
        return io.StringIO(self.effects.to_json() if self.effects is not None else "")

    def panel(self) -> pn.Column:
        lines = wrap_row(*[pn.pane.Bokeh(self._lines[m]) for m in self.metrics])
        return pn.Column(
            heading("### Metrics along each latent's traversal\nMean over the base codes; click a legend "
                    "entry to hide a latent."),
            lines,
            heading("### Effect of each latent"),
            pn.Row(self._method, self._units, self._busy),
            self.note,
            wrap_row(pn.pane.Bokeh(self.heatmap), self.table, gap="12px"),
            self.both_sides,
            pn.Row(self.download_html, self.download_json),
            sizing_mode="stretch_width")
