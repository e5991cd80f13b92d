"""Standalone, offline HTML and strict JSON reports of the model diagnostics.

:class:`core.analysis.ComparisonReport` and :class:`core.analysis.TraversalEffects` render through
this module (their ``to_html`` / ``to_json`` methods): it sits below :mod:`core.analysis` and never
imports it (the report objects bring what they need). The HTML is one self-contained file: inline CSS,
inline SVG figures drawn here (no plotting library, no script, no external URL), tables, the verdict,
the settings, where the data came from and the software versions, so it can be attached to a paper
review or an e-mail and opened anywhere. Files are written atomically (:func:`core.io.atomic_write`).
"""
from __future__ import annotations

import functools
import html
import json
import math
import platform
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["versions", "dumps_json", "write_text", "comparison_html", "traversal_html",
           "svg_histogram", "svg_heatmap", "svg_lines"]

_REFERENCE_COLOUR = "#8c8c8c"
_SAMPLE_COLOUR = "#d95f02"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]
_MAX_LINES = 8
_CITATION = ("Castro, Tan, Kainz, Konukoglu, Glocker. Morpho-MNIST: quantitative assessment and "
             "diagnostics for representation learning. JMLR 20(178), 2019.")


# --------------------------------------------------------------------------------------------------
# files and metadata
# --------------------------------------------------------------------------------------------------

def versions() -> dict:
    """Versions of the software that produced a report (project and its git commit when known, Python,
    numpy, scipy, pandas, platform)."""
    import scipy

    import core

    out = {"morpho-mnist-explorer": getattr(core, "__version__", "unknown")}
    commit = _git_commit()
    if commit:
        out["git commit"] = commit
    out.update({"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                "pandas": pd.__version__, "platform": platform.platform(terse=True)})
    return out


@functools.lru_cache(maxsize=1)
def _git_commit() -> Optional[str]:
    """Short commit of the checkout core/ was imported from (None outside a git checkout)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() + (" (modified)" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def dumps_json(obj, *, indent: int = 2) -> str:
    """Strict JSON text (no NaN/Infinity tokens: callers pass :func:`core.analysis._common.json_safe` output)."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; a clear error if its folder does not exist."""
    from core.io import atomic_write

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    with atomic_write(path, "w") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------------------------------
# SVG figures (inline, no xmlns URL needed in HTML5)
# --------------------------------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(t) < 1e-12 * step else t)
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 1e-3:
        return f"{v:.2e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.3g}"


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def svg_histogram(sample: np.ndarray, reference: np.ndarray, *, title: str, unit: str = "",
                  bins: int = 40, width: int = 330, height: int = 210) -> str:
    """Overlaid density histograms of one metric: reference (grey bars) and samples (orange outline).

    Bins span the central 99% of both sets (far outliers are left out, not piled up); the legend sits
    above the plot so it never covers bars.
    """
    s = np.asarray(sample, float)
    r = np.asarray(reference, float)
    s, r = s[np.isfinite(s)], r[np.isfinite(r)]
    ml, mr, mt, mb = 42, 10, 40, 34
    pw, ph = width - ml - mr, height - mt - mb
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_esc(title)}">',
           f'<text x="{ml}" y="14" class="t">{_esc(title)}</text>',
           f'<rect x="{ml}" y="22" width="10" height="8" fill="{_REFERENCE_COLOUR}" opacity="0.6"/>'
           f'<text x="{ml + 14}" y="30" class="l">reference (n = {len(r):,})</text>',
           f'<rect x="{ml + 150}" y="22" width="10" height="8" fill="none" stroke="{_SAMPLE_COLOUR}" '
           f'stroke-width="2"/><text x="{ml + 164}" y="30" class="l">samples (n = {len(s):,})</text>']
    both = np.concatenate([s, r])
    if len(both) == 0:
        out.append(f'<text x="{ml + 10}" y="{mt + ph / 2}" class="l">no finite values</text></svg>')
        return "".join(out)
    lo, hi = np.percentile(both, [0.5, 99.5])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)

    def dens(v):
        if len(v) == 0:
            return np.zeros(bins)
        c, _ = np.histogram(v, edges)
        return c / (len(v) * (edges[1] - edges[0]))

    dr, ds = dens(r), dens(s)
    top = max(dr.max(), ds.max(), 1e-12) * 1.05
    X = lambda v: ml + (v - lo) / (hi - lo) * pw  # noqa: E731
    Y = lambda d: mt + ph - d / top * ph  # noqa: E731
    for i in range(bins):
        if dr[i] > 0:
            out.append(f'<rect x="{X(edges[i]):.1f}" y="{Y(dr[i]):.1f}" width="{max(pw / bins - 0.5, 0.5):.1f}" '
                       f'height="{mt + ph - Y(dr[i]):.1f}" fill="{_REFERENCE_COLOUR}" opacity="0.6"/>')
    pts = [f"{X(edges[0]):.1f},{Y(0):.1f}"]
    for i in range(bins):
        pts += [f"{X(edges[i]):.1f},{Y(ds[i]):.1f}", f"{X(edges[i + 1]):.1f},{Y(ds[i]):.1f}"]
    pts.append(f"{X(edges[-1]):.1f},{Y(0):.1f}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{_SAMPLE_COLOUR}" stroke-width="1.8"/>')
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" class="ax"/>'
               f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" class="ax"/>')
    for t in _nice_ticks(lo, hi):
        x = X(t)
        out.append(f'<line x1="{x:.1f}" y1="{mt + ph}" x2="{x:.1f}" y2="{mt + ph + 4}" class="ax"/>'
                   f'<text x="{x:.1f}" y="{mt + ph + 15}" class="k" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 3}" class="k" text-anchor="middle">{_esc(unit)}</text>')
    out.append(f'<text x="10" y="{mt + ph / 2}" class="k" text-anchor="middle" '
               f'transform="rotate(-90 10 {mt + ph / 2})">density</text>')
    out.append("</svg>")
    return "".join(out)


def _diverging(v: float, scale: float) -> str:
    """Blue (negative) - white - red (positive) colour of v / scale in [-1, 1]."""
    if v is None or not np.isfinite(v) or scale <= 0:
        return "#eeeeee"
    t = max(-1.0, min(1.0, v / scale))
    a = np.array([178, 24, 43]) if t > 0 else np.array([33, 102, 172])
    c = np.round(255 + (a - 255) * abs(t)).astype(int)
    return "#%02x%02x%02x" % tuple(c)


def svg_heatmap(table: pd.DataFrame, *, scale=None, marks: Optional[dict] = None, ci=None,
                cell: int = 76, title: str = "") -> str:
    """Latents (rows) x metrics (columns) heatmap with the value in each cell.

    Parameters
    ----------
    table : pandas.DataFrame
        Values.
    scale : float or pandas.Series, optional
        Colour scale: one number for all columns, or one per column (default: max |value| per table).
    marks : dict, optional
        ``{metric: [latent, ...]}`` cells outlined (the strongest latents).
    ci : tuple of DataFrames, optional
        (low, high) shown in each cell's tooltip.
    """
    rows, cols = list(table.index), list(table.columns)
    ml, mt = 70, 40 if title else 24
    rh = 26
    w, h = ml + cell * len(cols) + 10, mt + rh * len(rows) + 10
    vals = table.to_numpy(float)
    if scale is None:
        s = np.nanmax(np.abs(vals)) if np.isfinite(vals).any() else 1.0
        scales = [s] * len(cols)
    elif np.isscalar(scale):
        scales = [float(scale)] * len(cols)
    else:
        scales = [float(scale[c]) for c in cols]
    out = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_esc(title or "heatmap")}">']
    if title:
        out.append(f'<text x="4" y="14" class="t">{_esc(title)}</text>')
    for j, c in enumerate(cols):
        out.append(f'<text x="{ml + cell * j + cell / 2}" y="{mt - 6}" class="l" text-anchor="middle">{_esc(c)}</text>')
    for i, r in enumerate(rows):
        y = mt + rh * i
        out.append(f'<text x="{ml - 6}" y="{y + 16}" class="l" text-anchor="end">latent {_esc(r)}</text>')
        for j, c in enumerate(cols):
            v = vals[i, j]
            x = ml + cell * j
            strong = marks is not None and r in marks.get(c, [])
            tip = f"latent {r}, {c}: {_fmt(v)}"
            if ci is not None:
                tip += f" (CI {_fmt(ci[0].iloc[i, j])} to {_fmt(ci[1].iloc[i, j])})"
            colour = _diverging(v, scales[j])
            dark = np.isfinite(v) and abs(v) > 0.6 * scales[j]
            out.append(f'<g><title>{_esc(tip)}</title><rect x="{x}" y="{y}" width="{cell - 2}" height="{rh - 2}" '
                       f'fill="{colour}"' + (' stroke="#000" stroke-width="2"' if strong else '') + '/>'
                       f'<text x="{x + cell / 2 - 1}" y="{y + 16}" class="l" text-anchor="middle" '
                       f'fill="{"#fff" if dark else "#222"}">{_fmt(v)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def svg_lines(x: np.ndarray, series: dict, *, title: str, xlabel: str, ylabel: str = "",
              bands: Optional[dict] = None, width: int = 360, height: int = 220) -> str:
    """Line plot of several series over the same x, legend to the right of the plot (never over it).

    Parameters
    ----------
    x : array_like, shape (S,)
    series : dict
        ``{name: values (S,)}``.
    bands : dict, optional
        ``{name: (low (S,), high (S,))}`` shaded around each line.
    """
    x = np.asarray(x, float)
    names = list(series)
    legend_w = 80
    ml, mr, mt, mb = 46, 8 + legend_w, 24, 34
    pw, ph = width - ml - mr, height - mt - mb
    allv = [np.asarray(v, float) for v in series.values()]
    if bands:
        allv += [np.asarray(b, float) for pair in bands.values() for b in pair]
    flat = np.concatenate([a[np.isfinite(a)] for a in allv]) if allv else np.array([])
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_esc(title)}"><text x="{ml}" y="14" class="t">{_esc(title)}</text>']
    if flat.size == 0 or len(x) == 0:
        out.append(f'<text x="{ml}" y="{mt + ph / 2}" class="l">no measurable values</text></svg>')
        return "".join(out)
    lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x0, x1 = float(x.min()), float(x.max())
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    X = lambda v: ml + (v - x0) / (x1 - x0) * pw  # noqa: E731
    Y = lambda v: mt + ph - (v - lo) / (hi - lo) * ph  # noqa: E731
    for k, name in enumerate(names):
        col = _PALETTE[k % len(_PALETTE)]
        v = np.asarray(series[name], float)
        if bands and name in bands:
            bl, bh = (np.asarray(b, float) for b in bands[name])
            ok = np.isfinite(bl) & np.isfinite(bh)
            if ok.sum() >= 2:
                poly = [f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[ok], bh[ok])] + \
                       [f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[ok][::-1], bl[ok][::-1])]
                out.append(f'<polygon points="{" ".join(poly)}" fill="{col}" opacity="0.15"/>')
        ok = np.isfinite(v)
        pts = " ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[ok], v[ok]))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.6"/>')
        for a, b in zip(x[ok], v[ok]):
            out.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="2.2" fill="{col}"/>')
        ly = mt + 12 * k + 6
        if ly < height - 4:
            out.append(f'<line x1="{width - legend_w + 2}" y1="{ly - 3}" x2="{width - legend_w + 14}" y2="{ly - 3}" '
                       f'stroke="{col}" stroke-width="2"/><text x="{width - legend_w + 18}" y="{ly}" class="l">'
                       f'{_esc(name)}</text>')
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" class="ax"/>'
               f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" class="ax"/>')
    for t in _nice_ticks(x0, x1):
        out.append(f'<text x="{X(t):.1f}" y="{mt + ph + 14}" class="k" text-anchor="middle">{_fmt(t)}</text>')
    for t in _nice_ticks(lo, hi, 4):
        out.append(f'<text x="{ml - 4}" y="{Y(t) + 3:.1f}" class="k" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 4}" class="k" text-anchor="middle">{_esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="9" y="{mt + ph / 2}" class="k" text-anchor="middle" '
                   f'transform="rotate(-90 9 {mt + ph / 2})">{_esc(ylabel)}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.verdict{font-size:1.08em;padding:10px 14px;border-left:5px solid #888;background:#f6f6f6}
.verdict.differs{border-color:#b2182b}.verdict.same{border-color:#2166ac}
table{border-collapse:collapse;font-size:.86em;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;
text-align:right}th{background:#f3f3f3}td.s,th.s{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:10px}
svg .t{font-size:12px;font-weight:600}svg .l{font-size:10px}svg .k{font-size:9.5px}svg .ax{stroke:#555;stroke-width:1}
.muted{color:#666;font-size:.88em}code{background:#f3f3f3;padding:0 3px}
"""


def _table(df: pd.DataFrame, *, left: Sequence[str] = (), index: bool = False, formats: Optional[dict] = None) -> str:
    formats = formats or {}
    cols = list(df.columns)
    head = ("<th class='s'>" + _esc(df.index.name or "") + "</th>" if index else "") + "".join(
        f"<th class='{'s' if c in left else ''}'>{_esc(c)}</th>" for c in cols)
    body = []
    for idx, row in df.iterrows():
        cells = [f"<td class='s'>{_esc(idx)}</td>"] if index else []
        for c in cols:
            v = row[c]
            if c in formats:
                text = formats[c](v)
            elif isinstance(v, (float, np.floating)):
                text = _fmt(float(v))
            else:
                text = str(v)
            cells.append(f"<td class='{'s' if c in left else ''}'>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dl(d: dict) -> str:
    if not d:
        return "<p class='muted'>none given</p>"
    rows = "".join(f"<tr><th class='s'>{_esc(k)}</th><td class='s'>{_esc(v)}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}"
            f"<p class='muted'>Morphometrics and diagnostics after {_esc(_CITATION)}</p></body></html>\n")


def comparison_html(report) -> str:
    """The HTML text of a :class:`core.analysis.ComparisonReport`."""
    format_p_cell = report.format_p_cell
    metrics = list(dict.fromkeys(report.distances["metric"]))
    units = {"area": "px²", "length": "px", "thickness": "px", "slant": "rad", "width": "px", "height": "px"}
    parts = ["<h1>Morpho-MNIST comparison: samples vs reference data</h1>",
             f"<p class='muted'>Created {_esc(report.created)} · {report.n_samples:,} samples vs "
             f"{report.n_reference:,} reference digits</p>",
             f"<p class='verdict {'differs' if report.differs else 'same'}'>{_esc(report.verdict)}</p>"]
    parts += _effects_html(report)
    # tests
    rows = []
    for name, r in (("quadratic", report.mmd_quadratic), ("linear", report.mmd_linear)):
        if r is None:
            continue
        rows.append({"test": f"{r.test_name}{' (verdict)' if report.verdict_test in (name, 'both') else ''}",
                     "statistic": r.statistic, "estimate": r.mmd2, "standard error": r.sem, "z": r.z,
                     "p-value": r.p_text + (f" ({r.n_permutations:,} permutations)" if not r.linear else " (asymptotic)"),
                     "n samples": r.n_x, "n reference": r.n_y})
    if rows:
        parts += ["<h2>Kernel two-sample tests</h2>",
                  f"<p>Gaussian kernel on {_esc(', '.join(report.mmd.columns))} (bandwidth per metric: "
                  "standard deviation × Scott's factor from each side, combined). The quadratic-time test's "
                  "p-value is a permutation p-value; the linear-time test's is asymptotic.</p>",
                  _table(pd.DataFrame(rows), left=("test", "statistic", "p-value"))]
    if report.per_label is not None and len(report.per_label):
        pl = report.per_label.copy()
        pl["differs"] = np.where(pl["differs"], "yes", "no")
        pl = pl[["label", "n_samples", "n_reference", "mmd2", "sem", "p_text", "p_holm_text", "differs"]]
        pl.columns = ["label", "n samples", "n reference", "MMD²_u", "standard error", "p-value",
                      "Holm-adjusted", "differs"]
        parts += ["<h2>Per label</h2>",
                  "<p>Quadratic-time test within each digit label; p-values adjusted over labels by Holm's "
                  "method.</p>", _table(pl, left=("label", "p-value", "Holm-adjusted", "differs"))]
    # histograms
    if report.sample_metrics is not None and report.reference_metrics is not None:
        figs = []
        for m in metrics:
            if m in report.sample_metrics.columns and m in report.reference_metrics.columns:
                figs.append(svg_histogram(report.sample_metrics[m].to_numpy(float),
                                          report.reference_metrics[m].to_numpy(float),
                                          title=m, unit=units.get(m, "")))
        parts += ["<h2>Distributions</h2>", f"<div class='figs'>{''.join(figs)}</div>"]
    # distances
    d = report.distances.copy()
    d["label"] = d["label"].astype(str)
    d = d[["label", "metric", "n_samples", "n_reference", "sample_mean", "reference_mean", "wasserstein",
           "wasserstein_std", "ci_low", "ci_high", "ks_statistic", "ks_p_value"]]
    d.columns = ["label", "metric", "n samples", "n reference", "mean samples", "mean reference", "W1",
                 "W1 / sd", "95% low", "95% high", "KS", "KS p"]
    parts += ["<h2>Per-metric distances</h2>",
              "<p>W1: Wasserstein-1 distance in the metric's units (and in reference standard deviations); "
              "KS: largest difference of the two cumulative distributions, with its two-sided p-value.</p>",
              _table(d, left=("label", "metric"), formats={"KS p": format_p_cell})]
    if report.notes:
        parts += ["<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in report.notes) + "</ul>"]
    parts += ["<h2>Settings</h2>", _dl(report.settings),
              "<h2>Data provenance</h2>", _dl(report.provenance),
              "<h2>Versions</h2>", _dl(versions())]
    return _page("Morpho-MNIST comparison report", "".join(parts))


def _effects_html(report) -> list:
    """The effect-size table (W1/sd with interval, baseline, resolution) and the sample quality."""
    parts = []
    e = report.effects
    if len(e):
        t = e[["metric", "w1_sd", "ci_low", "ci_high", "baseline_sd", "resolution_sd", "beyond_baseline"]].copy()
        t["beyond_baseline"] = np.where(t["beyond_baseline"], "yes", "no")
        t.columns = ["metric", "W1 / sd", "95% low", "95% high", "real digits (baseline)", "resolves (sd)",
                     "beyond real digits"]
        parts += ["<h2>Effect sizes</h2>",
                  "<p>Distance of each metric from the reference in reference standard deviations (W1 / sd) "
                  "with its bootstrap 95% interval; the same distance for "
                  f"{_esc(report.baseline_source or 'no baseline')}; and the smallest shift this comparison "
                  "detects with 80% power at these sizes (simulated on the reference). “Beyond real digits”: "
                  "the interval's low end lies above the baseline's high end.</p>",
                  _table(t, left=("metric", "beyond real digits"))]
    q = report.quality
    if q is not None:
        sh = q.shares.copy()
        sh["matters"] = np.where(sh["matters"], "yes", "no")
        sh = sh[["flag", "meaning", "count", "share", "reference_share", "matters"]]
        sh.columns = ["flag", "meaning", "samples", "share", "reference share", "matters"]
        pct = lambda v: "–" if not np.isfinite(v) else f"{v:.1%}"  # noqa: E731
        parts += ["<h2>Sample quality</h2>",
                  "<p>" + (_esc("; ".join(q.findings)) if q.matters else "Nothing unusual: the samples look like "
                           "digits by these checks.") + "</p>",
                  _table(sh, left=("flag", "meaning", "matters"), formats={"share": pct, "reference share": pct})]
        if q.labels is not None:
            lt = q.labels.copy()
            lt.columns = ["label", "samples", "reference", "difference"]
            parts += [f"<p>Label proportions (total variation {q.label_distance:.3f}, chi-square "
                      f"p = {q.label_p_value:.2g}):</p>",
                      _table(lt, left=("label",), formats={c: pct for c in ("samples", "reference", "difference")})]
    return parts


def traversal_html(effects) -> str:
    """The HTML text of a :class:`core.analysis.TraversalEffects`."""
    e = effects
    metrics = e.metrics
    parts = ["<h1>Morpho-MNIST latent traversal effects</h1>",
             f"<p class='muted'>Created {_esc(e.created)} · {len(e.latents)} latents × {len(e.values)} steps × "
             f"{e.n_bases} base code{'s' if e.n_bases != 1 else ''}</p>",
             f"<p class='verdict'>Strongest latent per metric (by effect size, the mean slope; ties listed): "
             f"{_esc(e.strongest_text())}</p>"]
    if e.method == "spearman":
        scale = 1.0
        note = "Spearman correlation of each metric with the step (colour −1 to 1)."
    elif e.slope_sd is not None:
        scale = None
        note = "Mean slope in reference standard deviations per latent unit (one colour scale for all metrics)."
    else:
        scale = e.table.abs().max().replace(0, 1.0)
        note = ("Mean slope in the metric's units per latent unit; colours scaled per metric (no reference "
                "data was given, so metrics in different units are not comparable).")
    parts += ["<h2>Effects</h2>", f"<p>{_esc(note)} Outlined: the strongest latent(s) for each metric. "
              f"Hover a cell for its {int(e.confidence * 100)}% confidence interval over bases.</p>",
              svg_heatmap(e.table, scale=scale, marks=e.strongest, ci=(e.ci_low, e.ci_high))]
    # per-step lines: mean over bases of each metric along each latent
    ps = e.per_step
    figs = []
    L = len(e.latents)
    shown_note = ""
    for m in metrics:
        order = list(range(L))
        if L > _MAX_LINES:   # many latents: the ones with the largest effect on this metric
            size = e.slope[m].abs().to_numpy()
            order = sorted(np.argsort(-np.nan_to_num(size, nan=-1.0), kind="stable")[:_MAX_LINES])
            shown_note = (f" With {L} latents, each plot shows the {_MAX_LINES} with the largest effect on "
                          "its metric.")
        series, bands = {}, {}
        cube = ps[m].to_numpy(float).reshape(e.n_bases, L, len(e.values))
        for lat_i in order:
            lat = e.latents[lat_i]
            block = cube[:, lat_i, :]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # steps no base could measure: NaN
                mean = np.nanmean(block, 0)
                sd = np.nanstd(block, 0)
            series[f"latent {lat}"] = mean
            if 1 < e.n_bases and len(order) <= 3:   # bands only where they stay readable
                bands[f"latent {lat}"] = (mean - sd, mean + sd)
        figs.append(svg_lines(e.values, series, bands=bands or None, title=m,
                              xlabel="latent value" if e.values_known else "step", ylabel=m))
    parts += ["<h2>Metrics along each traversal</h2>",
              "<p>Mean over base codes" + (" (with three latents or fewer, the band is ± one standard deviation "
                                           "over bases)" if e.n_bases > 1 else "") + "." + _esc(shown_note) + "</p>", f"<div class='figs'>{''.join(figs)}</div>"]
    parts += ["<h2>Tables</h2>", f"<p>Effect ({_esc(e.units)}), mean over bases:</p>",
              _table(e.table, index=True),
              f"<p>{int(e.confidence * 100)}% confidence interval, low / high:</p>",
              _table(e.ci_low, index=True), _table(e.ci_high, index=True),
              "<p>Sign agreement (fraction of bases whose own effect has the sign of the mean):</p>",
              _table(e.sign_agreement, index=True),
              "<p>Slope in the metric's units (px, rad) per " + ("latent unit" if e.values_known else "step") + ":</p>",
              _table(e.slope, index=True)]
    if e.reference_sd is not None:
        parts += ["<p>Reference standard deviations used for scaling:</p>",
                  _table(e.reference_sd.to_frame().T)]
    if e.n_bases > 1:
        st = e.stability()
        st = st[["metric", "strongest", "text"]]
        st.columns = ["metric", "strongest latent", "stability over resampled bases"]
        parts += ["<h2>Stability of the strongest latent</h2>",
                  "<p>The bases drawn again with replacement: how often each metric's strongest latent is still "
                  "the strongest.</p>", _table(st, left=("metric", "stability over resampled bases"))]
    if e.encoder is not None:
        enc = e.encoder
        t = enc.table.copy()
        t["active"] = np.where(t["active"], "yes", "no")
        t.columns = ["latent", "metric", "decoder (traversal)", "encoder (codes)", "agreement", "active"]
        inactive = [str(v) for v, a in zip(enc.active.index, enc.active) if not a]
        parts += ["<h2>Both sides: traversal and encoder</h2>",
                  f"<p>Per latent unit, in standard deviations of each metric: the traversal's mean slope (what "
                  f"the decoder does) beside the coefficient of the metric on the encoder codes of "
                  f"{enc.n_digits:,} real digits (all latents jointly). Inactive latents (codes varying by "
                  f"less than 0.1) get meaningless coefficients"
                  + (f": {_esc(', '.join(inactive))}" if inactive else "") + ".</p>",
                  _table(t, left=("latent", "metric", "agreement", "active"))]
    parts += ["<h2>Settings</h2>", _dl(e.settings), "<h2>Data provenance</h2>", _dl(e.provenance),
              "<h2>Versions</h2>", _dl(versions())]
    return _page("Morpho-MNIST traversal effects", "".join(parts))
