"""Samples vs reference data: per-metric distances, the kernel test verdict, per-label tests, atypical samples."""
from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ._common import (ALPHA, DIAGNOSTIC_METRICS, METRICS, ContentCache, content_key, format_p, format_p_cell,
                      json_safe)
from .mmd import PERMUTATION_STAGES, QUADRATIC_MAX_N, MMDResult, mmd_test
from .quality import SampleQuality, sample_quality
from .resolution import POWER, resolution, w1_sd_interval

__all__ = ["metric_distances", "ComparisonReport", "compare_report", "distance_to_data"]

_DIST_COLUMNS = ["label", "metric", "n_samples", "n_reference", "sample_mean", "reference_mean",
                 "wasserstein", "wasserstein_std", "ks_statistic", "ks_p_value"]

#: Bootstrap resamples of the W1/sd intervals.
N_BOOTSTRAP = 200
#: Level of the W1/sd intervals.
CONFIDENCE = 0.95

#: Fewest rows per side for a per-label kernel test.
MIN_PER_LABEL = 10


def metric_distances(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                     sample_labels=None, reference_labels=None,
                     metrics: Sequence[str] = METRICS, n_bootstrap: int = N_BOOTSTRAP,
                     seed=0) -> pd.DataFrame:
    """Per-metric Wasserstein-1 and two-sample Kolmogorov-Smirnov distances.

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Morphometrics (columns of :data:`METRICS`) of the samples and of the reference data.
    sample_labels, reference_labels : array_like, shape (N,), optional
        Digit labels. When both are given, rows per label follow the overall rows.
    metrics : sequence of str
        Metrics to compare (those missing from either table are skipped). All six by default:
        these are per-metric descriptions, so area is informative here, unlike in the joint tests.
    n_bootstrap : int
        Resamples of the W1/sd interval (0: no interval, NaN).
    seed : int or numpy.random.Generator
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per (label, metric); ``label`` is ``'all'`` or the digit label (int). Columns:
        ``n_samples``, ``n_reference`` (finite values used), ``sample_mean``, ``reference_mean``,
        ``wasserstein`` (W1, in the metric's units), ``wasserstein_std`` (W1 divided by the
        reference standard deviation), ``ks_statistic`` (sup-distance of the CDFs, in [0, 1]),
        ``ks_p_value`` (two-sided), ``ci_low`` and ``ci_high`` (95% percentile-bootstrap interval of
        ``wasserstein_std``, both sides resampled).
    """
    metrics = [m for m in metrics if m in sample_metrics.columns and m in reference_metrics.columns]
    if not metrics:
        raise ValueError(f"no metric in common: samples have {list(sample_metrics.columns)}, "
                         f"reference has {list(reference_metrics.columns)}")
    groups = [("all", np.ones(len(sample_metrics), bool), np.ones(len(reference_metrics), bool))]
    if sample_labels is not None and reference_labels is not None:
        sl = np.asarray(sample_labels)
        rl = np.asarray(reference_labels)
        if len(sl) != len(sample_metrics) or len(rl) != len(reference_metrics):
            raise ValueError(f"labels must have one entry per row of their metrics table; got "
                             f"{len(sl)} labels for {len(sample_metrics)} samples and {len(rl)} for "
                             f"{len(reference_metrics)} reference rows")
        for lab in np.union1d(np.unique(sl), np.unique(rl)):
            lab_py = lab.item() if hasattr(lab, "item") else lab
            groups.append((lab_py, sl == lab, rl == lab))
    rng = np.random.default_rng(seed)
    rows = []
    for lab, smask, rmask in groups:
        for m in metrics:
            s = sample_metrics[m].to_numpy(dtype=np.float64)[smask]
            r = reference_metrics[m].to_numpy(dtype=np.float64)[rmask]
            s, r = s[np.isfinite(s)], r[np.isfinite(r)]
            row = {"label": lab, "metric": m, "n_samples": len(s), "n_reference": len(r),
                   "sample_mean": s.mean() if len(s) else np.nan,
                   "reference_mean": r.mean() if len(r) else np.nan,
                   "wasserstein": np.nan, "wasserstein_std": np.nan,
                   "ks_statistic": np.nan, "ks_p_value": np.nan}
            if len(s) and len(r):
                w = stats.wasserstein_distance(s, r)
                sd = r.std(ddof=1) if len(r) > 1 else np.nan
                ks = stats.ks_2samp(s, r)
                row.update(wasserstein=w, wasserstein_std=w / sd if sd and sd > 0 else np.nan,
                           ks_statistic=float(ks.statistic), ks_p_value=float(ks.pvalue))
            row["ci_low"], row["ci_high"] = w1_sd_interval(s, r, n_bootstrap=n_bootstrap, confidence=CONFIDENCE,
                                                           rng=rng)
            rows.append(row)
    out = pd.DataFrame(rows, columns=_DIST_COLUMNS + ["ci_low", "ci_high"])
    out["label"] = out["label"].astype(object)
    return out


def _sd(v) -> str:
    """An effect size in sd for sentences: 2 significant digits (1.5, 0.089), 'n/a' for NaN."""
    v = float(v)
    if not np.isfinite(v):
        return "n/a" if np.isnan(v) else "more than 4"
    return f"{v:.2g}"


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN kept)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok) == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    k = len(order)
    adj = np.maximum.accumulate((k - np.arange(k)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


@dataclass
class ComparisonReport:
    """Samples vs reference data: kernel two-sample tests, per-label tests and per-metric distances.

    Attributes
    ----------
    mmd : MMDResult
        The test the verdict rests on (``verdict_test`` says which; with ``'both'``, the one with the
        smaller p-value).
    distances : pandas.DataFrame
        :func:`metric_distances` (overall rows, then per label when both sides have labels).
    n_samples, n_reference : int
        Rows of the two tables (before dropping unmeasurable digits).
    mmd_linear : MMDResult or None
        Linear-time test on all rows.
    mmd_quadratic : MMDResult or None
        Quadratic-time test with permutation p-value, on at most ``settings['max_quadratic_n']``
        rows per side (random subset beyond).
    verdict_test : {'quadratic', 'linear', 'both'}
        ``'both'``: either test below ``alpha / 2`` (when the quadratic test ran on subsets).
    per_label : pandas.DataFrame or None
        One row per label when both sides have labels: ``label``, ``n_samples``, ``n_reference``,
        ``mmd2``, ``sem``, ``p_value``, ``p_holm`` (Holm-adjusted over labels), ``p_text``,
        ``p_holm_text``, ``n_permutations``, ``differs`` (``p_holm < alpha``).
    alpha : float
        Significance level of the verdict (0.01).
    settings : dict
        Parameters of the analysis (seed, permutations, subsampling, columns).
    provenance : dict
        Where the data came from (names, paths, metric sources), given by the caller.
    sample_metrics, reference_metrics : pandas.DataFrame
        The compared tables (for histograms).
    sample_labels, reference_labels : numpy.ndarray or None
    notes : list of str
        What was dropped or subsampled.
    baseline : pandas.DataFrame or None
        Per metric, the same distances for real digits against the reference: ``metric``,
        ``wasserstein``, ``wasserstein_std``, ``ci_low``, ``ci_high``, ``ks_statistic``, ``n_control``,
        ``n_reference``; ``baseline_source`` says which real digits (the ``control`` given, or a
        held-out part of the reference compared with the rest).
    baseline_source : str
        E.g. ``'real held-out digits (1,000 of the 5,000 reference digits, seed 0, against the other
        4,000)'``.
    resolution : pandas.DataFrame or None
        Per metric, the smallest shift (``resolution_sd``, in reference standard deviations) that this
        comparison detects with 80% power at these sizes (:func:`core.analysis.resolution.resolution`).
    quality : SampleQuality or None
        Shares of blank, border-touching, background-less and speckled samples, and label
        proportions against the reference (:func:`core.analysis.quality.sample_quality`).
    """

    mmd: MMDResult
    distances: pd.DataFrame
    n_samples: int
    n_reference: int
    mmd_linear: Optional[MMDResult] = None
    mmd_quadratic: Optional[MMDResult] = None
    verdict_test: str = "linear"
    per_label: Optional[pd.DataFrame] = None
    alpha: float = ALPHA
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    sample_metrics: Optional[pd.DataFrame] = field(default=None, repr=False)
    reference_metrics: Optional[pd.DataFrame] = field(default=None, repr=False)
    sample_labels: Optional[np.ndarray] = field(default=None, repr=False)
    reference_labels: Optional[np.ndarray] = field(default=None, repr=False)
    notes: list = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
                         .strftime("%Y-%m-%d %H:%M:%S UTC"))
    baseline: Optional[pd.DataFrame] = None
    baseline_source: str = ""
    resolution: Optional[pd.DataFrame] = None
    quality: Optional[SampleQuality] = None

    #: Table-cell p-values (for the reports rendered by :mod:`core.report`, which never imports this package).
    format_p_cell = staticmethod(format_p_cell)

    @property
    def baseline_name(self) -> str:
        """Short name of the baseline's real digits, for sentences."""
        return "real control digits" if self.baseline_source.startswith("control") else "real held-out digits"

    @property
    def effects(self) -> pd.DataFrame:
        """Per metric (overall rows): the answer in effect sizes.

        Columns: ``metric``, ``w1_sd`` (W1 in reference sd) with ``ci_low``/``ci_high``,
        ``baseline_sd`` (the same for real digits, :attr:`baseline`) with ``baseline_high``,
        ``resolution_sd`` (:attr:`resolution`), ``beyond_baseline`` (the interval's low end above the
        baseline's high end: further from the reference than real digits are) and ``resolved``
        (``w1_sd`` at least the resolution).
        """
        d = self.distances[self.distances["label"].astype(str) == "all"].set_index("metric")
        out = pd.DataFrame({"metric": d.index, "w1_sd": d["wasserstein_std"].to_numpy(),
                            "ci_low": d["ci_low"].to_numpy(), "ci_high": d["ci_high"].to_numpy()})
        nan = pd.Series(np.nan, index=d.index)
        b = self.baseline.set_index("metric") if self.baseline is not None else None
        r = self.resolution.set_index("metric") if self.resolution is not None else None
        out["baseline_sd"] = (b["wasserstein_std"] if b is not None else nan).reindex(d.index).to_numpy()
        out["baseline_high"] = (b["ci_high"] if b is not None else nan).reindex(d.index).to_numpy()
        out["resolution_sd"] = (r["resolution_sd"] if r is not None else nan).reindex(d.index).to_numpy()
        out["beyond_baseline"] = (out["ci_low"] > out["baseline_high"]).to_numpy()
        out["resolved"] = (out["w1_sd"] >= out["resolution_sd"]).to_numpy()
        return out

    @property
    def answer(self) -> str:
        """The comparison in effect sizes, e.g. ``'thickness differs by 1.5 sd [1.4, 1.6]; real held-out
        digits: 0.05; this comparison resolves 0.09 sd.'``, and what matters of the samples' quality."""
        e = self.effects
        if not len(e) or not np.isfinite(e["w1_sd"]).any():
            return ""
        name = self.baseline_name

        def one(r, verb):
            res = (f"; this comparison resolves {_sd(r['resolution_sd'])} sd" if np.isfinite(r["resolution_sd"])
                   else "")
            return (f"{r['metric']} {verb} {_sd(r['w1_sd'])} sd [{_sd(r['ci_low'])}, {_sd(r['ci_high'])}]; "
                    f"{name}: {_sd(r['baseline_sd'])}{res}")

        e = e.sort_values("w1_sd", ascending=False, kind="stable")
        big = e[e["beyond_baseline"]]
        if len(big):
            text = "; ".join(one(r, "differs by") for _, r in big.head(3).iterrows()) + "."
            text = text[0].upper() + text[1:]
            if len(big) > 3:
                text += f" {len(big) - 3} more metric{'s' if len(big) > 4 else ''} beyond real digits."
        elif self.baseline is not None:
            text = (f"No metric is further from the reference than {name} are (W1 in reference sd): largest, "
                    + one(e.iloc[0], "at") + ".")
        else:
            text = "Largest distance: " + one(e.iloc[0], "at") + "."
        if self.quality is not None and self.quality.matters:
            text += " Sample quality: " + "; ".join(self.quality.findings) + "."
        return text

    @property
    def differs(self) -> bool:
        """Whether the verdict rejects "same distribution" at ``alpha`` (with ``verdict_test='both'``:
        either test's p below ``alpha / 2``, Bonferroni)."""
        if self.verdict_test == "both":
            ps = [r.p_value for r in (self.mmd_quadratic, self.mmd_linear) if r is not None]
            return bool(min(ps) < self.alpha / 2)
        return bool(self.mmd.p_value < self.alpha)

    @staticmethod
    def _how(r: MMDResult) -> str:
        rows = f"{r.n_x:,} vs {r.n_y:,} rows"
        return f"{r.test_name} MMD on {rows}: {'permutation ' if not r.linear else ''}{r.p_text}"

    @property
    def verdict(self) -> str:
        """One sentence: the decision, the test(s) it rests on and the p-value(s)."""
        r = self.mmd
        cols = ", ".join(r.columns)
        if self.verdict_test == "both":
            q, lin = self.mmd_quadratic, self.mmd_linear
            how = (f"kernel tests on {cols}: {self._how(q)}; {self._how(lin)}; each at {self.alpha / 2:g} "
                   f"(Bonferroni)")
        else:
            how = f"{self._how(r)}, on {cols}"
        if self.differs:
            text = f"The samples' morphometrics differ from the reference data's ({how}, below {self.alpha:g})."
            if self.verdict_test == "both":
                text = f"The samples' morphometrics differ from the reference data's ({how})."
        else:
            text = (f"The samples' morphometrics are not distinguishable from the reference data's "
                    f"at the {self.alpha:.0%} level ({how}).")
        other = {"quadratic": self.mmd_linear, "linear": self.mmd_quadratic}.get(self.verdict_test)
        if other is not None and np.isfinite(other.p_value) and (other.p_value < self.alpha) != self.differs:
            why = ("the more powerful one at this sample size (the linear-time test uses each digit in one "
                   "pair only)" if self.verdict_test == "quadratic" else "as asked")
            text += (f" The {other.test_name} test disagrees ({other.p_text}); the verdict follows the "
                     f"{r.test_name} test, {why}.")
        if self.per_label is not None:
            bad = self.per_label.loc[self.per_label["differs"].astype(bool), "label"].tolist()
            if bad:
                text += (f" Per label (Holm-adjusted), they differ for label{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(map(str, bad))}.")
            elif len(self.per_label):
                text += " No single label differs (Holm-adjusted per-label tests)."
        answer = self.answer
        return f"{text} {answer}" if answer else text

    def to_text(self, per_label: bool = True) -> str:
        """Printable report: the verdict, both tests, per-label tests and the distances table.

        Parameters
        ----------
        per_label : bool
            Include the per-label rows when present.
        """
        d = self.distances
        if not per_label:
            d = d[d["label"].astype(str) == "all"]
        table = d[["label", "metric", "sample_mean", "reference_mean", "wasserstein",
                   "wasserstein_std", "ci_low", "ci_high", "ks_statistic", "ks_p_value"]].rename(columns={
                       "sample_mean": "mean(samples)", "reference_mean": "mean(reference)",
                       "wasserstein": "W1", "wasserstein_std": "W1/std", "ci_low": "95% low",
                       "ci_high": "95% high",
                       "ks_statistic": "KS", "ks_p_value": "KS p"})
        table["KS p"] = [format_p_cell(p) for p in table["KS p"]]    # never 4.941e-324
        lines = [f"Samples: {self.n_samples}   reference: {self.n_reference}",
                 f"Verdict: {self.verdict}",
                 f"Kernel two-sample tests on {', '.join(self.mmd.columns)}:"]
        for name, r in (("quadratic", self.mmd_quadratic), ("linear", self.mmd_linear)):
            if r is not None:
                mark = "  (verdict)" if self.verdict_test in (name, "both") else ""
                lines.append(f"  {r.to_text()}{mark}")
        if self.mmd_linear is None and self.mmd_quadratic is None:
            lines.append(f"  {self.mmd.to_text()}")
        if per_label and self.per_label is not None and len(self.per_label):
            lines += ["", "Per-label quadratic-time MMD (p adjusted over labels by Holm's method):"]
            for _, row in self.per_label.iterrows():
                lines.append(f"  label {row['label']}: MMD²_u = {row['mmd2']:.4g} "
                             f"(n = {row['n_samples']} vs {row['n_reference']}), {row['p_text']}, "
                             f"Holm {row['p_holm_text']}")
        for note in self.notes:
            lines.append(f"Note: {note}")
        e = self.effects
        if len(e):
            t = e.assign(beyond_baseline=np.where(e["beyond_baseline"], "yes", "no"))
            t = t.rename(columns={"w1_sd": "W1/sd", "ci_low": "95% low", "ci_high": "95% high",
                                  "baseline_sd": "baseline", "baseline_high": "baseline high",
                                  "resolution_sd": "resolves", "beyond_baseline": "beyond real"})
            t = t.drop(columns=["resolved"])
            lines += ["", f"Effect sizes (W1 in reference sd, bootstrap {CONFIDENCE:.0%} interval); baseline: "
                          f"{self.baseline_source or 'none'}; resolves: smallest shift (sd) detected with "
                          f"{POWER:.0%} power at these sizes:",
                      t.to_string(index=False, float_format=lambda v: f"{v:.3g}")]
        if self.quality is not None:
            q = self.quality.shares
            lines += ["", "Sample quality (share of samples" +
                      (", reference" if np.isfinite(q["reference_share"]).any() else "") + "):"]
            for _, r in q.iterrows():
                ref = f" (reference {r['reference_share']:.1%})" if np.isfinite(r["reference_share"]) else ""
                lines.append(f"  {r['flag']}: {r['share']:.1%}{ref}{'  <- matters' if r['matters'] else ''}")
            if self.quality.labels is not None:
                lines.append(f"  label proportions: total variation {self.quality.label_distance:.3f} from "
                             "the reference's")
        lines += ["", "Per-metric distances (W1 in the metric's units; KS = max CDF difference):",
                  table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Everything in the report as JSON-ready Python objects (NaN -> None)."""
        from core.report import versions

        d = {
            "kind": "morpho-mnist comparison report",
            "created": self.created,
            "verdict": self.verdict,
            "differs": self.differs,
            "alpha": self.alpha,
            "verdict_test": self.verdict_test,
            "n_samples": self.n_samples,
            "n_reference": self.n_reference,
            "tests": {"verdict": self.mmd.to_dict(),
                      "quadratic": self.mmd_quadratic.to_dict() if self.mmd_quadratic else None,
                      "linear": self.mmd_linear.to_dict() if self.mmd_linear else None},
            "answer": self.answer,
            "per_label": self.per_label if self.per_label is not None else None,
            "distances": self.distances,
            "effects": self.effects,
            "baseline": self.baseline,
            "baseline_source": self.baseline_source,
            "resolution": self.resolution,
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "settings": self.settings,
            "provenance": self.provenance,
            "notes": list(self.notes),
            "versions": versions(),
        }
        return json_safe(d)

    def to_json(self, path=None, *, indent: int = 2) -> str:
        """The report as JSON text (strict JSON: NaN written as null); written atomically to ``path`` if given."""
        from core.report import dumps_json, write_text

        text = dumps_json(self.to_dict(), indent=indent)
        if path is not None:
            write_text(path, text)
        return text

    def to_html(self, path=None) -> str:
        """A standalone, offline HTML report (inline SVG histograms, tables, verdict, settings,
        provenance, versions); written atomically to ``path`` if given. Returns the HTML text."""
        from core.report import comparison_html, write_text

        text = comparison_html(self)
        if path is not None:
            write_text(path, text)
        return text

    def __str__(self) -> str:
        return self.to_text()


def _clean(metrics: pd.DataFrame, labels, name: str, columns) -> tuple[pd.DataFrame, Optional[np.ndarray], int]:
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame with the columns {list(columns)}; got "
                        f"{type(metrics).__name__}")
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; it has {list(metrics.columns)}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(metrics),):
            raise ValueError(f"{name}: got {labels.shape[0] if labels.ndim else 0} labels for "
                             f"{len(metrics)} rows; expected one label per row")
    ok = np.isfinite(metrics[list(columns)].to_numpy(dtype=np.float64)).all(1)
    dropped = int((~ok).sum())
    if dropped:
        metrics = metrics[ok]
        labels = labels[ok] if labels is not None else None
    return metrics.reset_index(drop=True), labels, dropped


def compare_report(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                   sample_labels=None, reference_labels=None, linear: Optional[bool] = None, seed=0,
                   max_quadratic_n: int = QUADRATIC_MAX_N, n_permutations="auto", per_label: bool = True,
                   alpha: float = ALPHA, columns: Sequence[str] = DIAGNOSTIC_METRICS,
                   provenance: Optional[dict] = None, shuffle: str = "default", sem: str = "default",
                   estimator: str = "default", control: Optional[pd.DataFrame] = None,
                   sample_images=None, reference_images=None,
                   n_bootstrap: int = N_BOOTSTRAP) -> ComparisonReport:
    """Compare a model's sample morphometrics with reference data (``morpho compare``, the app's Compare view).

    Two kernel two-sample tests on ``columns`` (:data:`DIAGNOSTIC_METRICS`), both reported:

    - the quadratic-time test (unbiased MMD²_u, permutation p-value with up to 9,999 permutations,
      resolution 1e-4) on at most ``max_quadratic_n`` rows per side (a seeded random subset of a
      bigger side);
    - the linear-time test (MMD²_l, asymptotic p-value, the paper's) on all rows.

    The verdict uses the quadratic test when the smaller side has at most ``max_quadratic_n`` rows:
    it then uses the smaller side whole and is far more powerful than the linear test (which uses each
    row once, in ``n/2`` pairs): on real digits with thickness x 1.1, 500 per side, the quadratic test
    rejects at 1% in every trial, the linear one rarely (benchmarks/bench_diagnostics.py --power).
    Beyond, the quadratic test runs on random subsets of ``max_quadratic_n`` rows per side and the
    linear one on all rows, and the verdict says "differ" when either p-value is below ``alpha / 2``
    (Bonferroni: the level stays ``alpha``, the power is that of the better test). When both sides
    have labels, each label is also tested on its own (quadratic, Holm-adjusted over labels) and the
    distances are given per label.

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Tables with (at least) the ``columns``; the distances use all six :data:`METRICS` present.
        Rows with NaN in ``columns`` (unmeasurable digits) are left out, with a note.
    sample_labels, reference_labels : array_like, shape (N,), optional
        Digit labels, one per row.
    linear : bool, optional
        Force the verdict test: True linear (on all rows), False quadratic (on at most
        ``max_quadratic_n`` rows per side); None (default) by the rule above.
    seed : int
        Seed for shuffling, subsampling and permutations (the report is reproducible).
    max_quadratic_n : int
        Rows per side of the quadratic test (:data:`QUADRATIC_MAX_N`, 1,000).
    n_permutations : int or 'auto'
        Permutations of the quadratic tests (see :func:`mmd_test`).
    per_label : bool
        Run the per-label tests when both sides have labels. They use the adaptive permutation count
        (resolution 1e-4) unless ``n_permutations`` is 0 or at least 9,999, since Holm's correction
        over ten labels needs p-values below 1e-3.
    alpha : float
        Significance level of the verdict.
    columns : sequence of str
        Columns of the joint tests.
    provenance : dict, optional
        Where the data came from, copied into the report (e.g. ``{"samples": "vae.npy (1,000 digits,
        range [0,1])", "reference": "MNIST t10k, metrics: released CSV"}``).
    shuffle, sem, estimator : {'default', 'original'}
        Passed to :func:`mmd_test` (the original analysis/ code's choices). With
        ``shuffle='original'``, ``seed`` must be an int or None.
    control : pandas.DataFrame, optional
        Metrics of real digits not in the reference (e.g. the test set when the reference is the
        training set): the baseline compares them with the reference. Without it, a held-out part of
        the reference (as many rows as the samples, at most half, seeded) is compared with the rest.
    sample_images, reference_images : array_like, shape (N, 28, 28), optional
        The digits themselves, for :attr:`ComparisonReport.quality` (blank, border, background,
        speckle); the reference's shares are given beside the samples' when its images are given.
        Label proportions are compared whenever both sides have labels.
    n_bootstrap : int
        Resamples of the W1/sd intervals (0: none).

    Returns
    -------
    ComparisonReport
    """
    columns = tuple(columns)
    n_s, n_r = len(sample_metrics), len(reference_metrics)
    s_df, s_lab, s_drop = _clean(sample_metrics, sample_labels, "sample_metrics", columns)
    r_df, r_lab, r_drop = _clean(reference_metrics, reference_labels, "reference_metrics", columns)
    notes = []
    if s_drop:
        notes.append(f"{s_drop} of {n_s} samples have no finite metrics (unmeasurable digits) and are left out")
    if r_drop:
        notes.append(f"{r_drop} of {n_r} reference digits have no finite metrics and are left out")
    if len(s_df) < 4 or len(r_df) < 4:
        raise ValueError(f"need at least 4 measurable digits per side to compare; got {len(s_df)} samples "
                         f"and {len(r_df)} reference digits")
    if max_quadratic_n < 4:
        raise ValueError(f"max_quadratic_n must be at least 4; got {max_quadratic_n}")
    lin = mmd_test(s_df, r_df, linear=True, seed=seed, columns=columns, shuffle=shuffle, sem=sem)
    rng = np.random.default_rng(seed)

    def subset(df, lab, what):
        if len(df) <= max_quadratic_n:
            return df, lab
        idx = np.sort(rng.choice(len(df), max_quadratic_n, replace=False))
        notes.append(f"the quadratic-time test uses a random subset of {max_quadratic_n:,} of the "
                     f"{len(df):,} {what} (seed {seed})")
        return df.iloc[idx], (lab[idx] if lab is not None else None)

    qs, _ = subset(s_df, s_lab, "samples")
    qr, _ = subset(r_df, r_lab, "reference digits")
    quad = mmd_test(qs, qr, linear=False, seed=rng if shuffle == "default" else seed, columns=columns,
                    n_permutations=n_permutations, shuffle=shuffle, sem=sem, estimator=estimator)
    if linear is None:
        verdict_test = "quadratic" if min(len(s_df), len(r_df)) <= max_quadratic_n else "both"
    else:
        verdict_test = "linear" if linear else "quadratic"
    if verdict_test == "both":
        main = quad if quad.p_value <= lin.p_value else lin
    else:
        main = quad if verdict_test == "quadratic" else lin
    have_labels = s_lab is not None and r_lab is not None
    if (s_lab is None) != (r_lab is None):
        notes.append(f"only the {'samples' if s_lab is not None else 'reference digits'} have labels: no "
                     "per-label tests or distances (they need labels on both sides)")
    labelled = None
    if have_labels and per_label:
        labelled = _per_label(s_df, s_lab, r_df, r_lab, columns, rng, max_quadratic_n, n_permutations,
                              alpha, notes)
    distances = metric_distances(s_df, r_df, sample_labels=s_lab if have_labels else None,
                                 reference_labels=r_lab if have_labels else None, n_bootstrap=n_bootstrap,
                                 seed=seed)
    baseline, baseline_source = _baseline(r_df, control, len(s_df), seed, n_bootstrap)
    res = resolution(r_df, len(s_df), len(r_df), metrics=list(distances.loc[distances["label"].astype(str) == "all",
                                                                              "metric"]),
                     alpha=alpha, seed=seed if isinstance(seed, (int, np.integer)) else 0)
    quality = None
    if sample_images is not None or have_labels:
        quality = sample_quality(sample_images, reference_images=reference_images,
                                 sample_labels=s_lab if have_labels else None,
                                 reference_labels=r_lab if have_labels else None)
    settings = {"columns": list(columns), "seed": seed, "alpha": alpha,
                "max_quadratic_n": max_quadratic_n, "n_permutations": n_permutations,
                "verdict_rule": ("quadratic-time test when the smaller side has at most max_quadratic_n "
                                 "rows; beyond, the quadratic-time test on random subsets of max_quadratic_n "
                                 "rows per side and the linear-time test on all rows, each at alpha / 2"
                                 if linear is None else f"forced: {verdict_test}"),
                "kernel": "Gaussian, per-metric bandwidth = sd x Scott's factor of each side, combined",
                "shuffle": shuffle, "sem": sem, "estimator": estimator,
                "intervals": f"W1/sd: bootstrap {CONFIDENCE:.0%}, {n_bootstrap} resamples of both sides, "
                             "bias-corrected",
                "resolution": f"smallest shift detected with {POWER:.0%} power by a two-sided KS test at alpha, "
                              "simulated on the reference"}
    return ComparisonReport(main, distances, n_s, n_r,
                            mmd_linear=lin, mmd_quadratic=quad, verdict_test=verdict_test,
                            per_label=labelled, alpha=alpha, settings=settings,
                            provenance=dict(provenance or {}), sample_metrics=s_df,
                            reference_metrics=r_df, sample_labels=s_lab, reference_labels=r_lab,
                            notes=notes, baseline=baseline, baseline_source=baseline_source,
                            resolution=res, quality=quality)


#: Held-out baselines by reference content: they depend on the reference alone (with the sample count and
#: seed), and a dataset is compared against many times (every model's samples, every session of the app).
_BASELINES = ContentCache(size=16)


def _baseline(r_df: pd.DataFrame, control: Optional[pd.DataFrame], n_samples: int, seed,
              n_bootstrap: int) -> tuple[pd.DataFrame, str]:
    """The same distances for real digits: ``control`` against the reference, or a held-out part of
    the reference (as many rows as the samples, at most half) against the rest. Without a control and
    with an integer seed the result is a function of the reference's content, and is computed once."""
    if control is None and isinstance(seed, (int, np.integer)):
        key = content_key(r_df, int(n_samples), int(seed), int(n_bootstrap))
        d, source = _BASELINES.get(key, lambda: _baseline_distances(r_df, None, n_samples, seed, n_bootstrap))
        return d.copy(), source
    return _baseline_distances(r_df, control, n_samples, seed, n_bootstrap)


def _baseline_distances(r_df: pd.DataFrame, control: Optional[pd.DataFrame], n_samples: int, seed,
                        n_bootstrap: int) -> tuple[pd.DataFrame, str]:
    if control is not None:
        if not isinstance(control, pd.DataFrame):
            raise TypeError(f"control must be a pandas DataFrame of metrics; got {type(control).__name__}")
        metrics = [m for m in METRICS if m in control.columns and m in r_df.columns]
        ctrl = control[metrics].astype(np.float64)
        ctrl = ctrl[np.isfinite(ctrl.to_numpy()).all(1)]
        if len(ctrl) < 4:
            raise ValueError(f"control must have at least 4 measurable rows; got {len(ctrl)}")
        held, rest = ctrl, r_df
        source = f"control digits ({len(ctrl):,}) against the reference ({len(r_df):,})"
    else:
        rng = np.random.default_rng(seed if isinstance(seed, (int, np.integer)) else 0)
        k = max(2, min(n_samples, len(r_df) // 2))
        order = rng.permutation(len(r_df))
        held, rest = r_df.iloc[np.sort(order[:k])], r_df.iloc[np.sort(order[k:])]
        source = (f"real held-out digits ({k:,} of the {len(r_df):,} reference digits, chosen with seed "
                  f"{seed if isinstance(seed, (int, np.integer)) else 0}, against the other {len(r_df) - k:,})")
    d = metric_distances(held, rest, n_bootstrap=n_bootstrap, seed=seed)
    d = d.rename(columns={"n_samples": "n_control"})
    return d[["metric", "wasserstein", "wasserstein_std", "ci_low", "ci_high", "ks_statistic", "n_control",
              "n_reference"]].reset_index(drop=True), source


def _per_label(s_df, s_lab, r_df, r_lab, columns, rng, max_n, n_permutations, alpha, notes):
    # Holm over ~10 labels needs p-values well below alpha / 10: a fixed count of permutations too
    # small for that (999 gives p >= 1e-3, Holm-adjusted >= 0.01) is replaced by the adaptive one.
    label_perms = n_permutations
    if not isinstance(n_permutations, str) and 0 < n_permutations < PERMUTATION_STAGES[-1]:
        label_perms = "auto"
    rows = []
    for lab in np.union1d(np.unique(s_lab), np.unique(r_lab)):
        sm, rm = s_lab == lab, r_lab == lab
        ns, nr = int(sm.sum()), int(rm.sum())
        lab_py = lab.item() if hasattr(lab, "item") else lab
        row = {"label": lab_py, "n_samples": ns, "n_reference": nr, "mmd2": np.nan, "sem": np.nan,
               "p_value": np.nan, "n_permutations": 0}
        if ns >= MIN_PER_LABEL and nr >= MIN_PER_LABEL:
            a, b = s_df[sm], r_df[rm]
            if len(a) > max_n:
                a = a.iloc[np.sort(rng.choice(len(a), max_n, replace=False))]
            if len(b) > max_n:
                b = b.iloc[np.sort(rng.choice(len(b), max_n, replace=False))]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = mmd_test(a, b, linear=False, seed=rng, columns=columns, n_permutations=label_perms)
                row.update(mmd2=r.mmd2, sem=r.sem, p_value=r.p_value, n_permutations=r.n_permutations)
            except ValueError as e:  # e.g. a metric constant within the label
                notes.append(f"label {lab_py}: no kernel test ({e})")
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_holm"] = _holm(out["p_value"].to_numpy())
    res = [1.0 / (k + 1) if k else None for k in out["n_permutations"]]
    out["p_text"] = [format_p(p, resolution=r) for p, r in zip(out["p_value"], res)]
    # a p at its resolution is an upper bound, and so is its adjusted value
    out["p_holm_text"] = [("p ≤ " + format_p(ph)[4:]) if (r is not None and p <= r * (1 + 1e-9)) else format_p(ph)
                          for p, ph, r in zip(out["p_value"], out["p_holm"], res)]
    out["differs"] = out["p_holm"] < alpha
    skipped = out.loc[out["n_permutations"] == 0, "label"].tolist()
    if skipped:
        notes.append(f"no per-label test for label(s) {', '.join(map(str, skipped))}: fewer than "
                     f"{MIN_PER_LABEL} digits on a side")
    return out


def distance_to_data(sample_metrics: pd.DataFrame, reference_metrics: pd.DataFrame, *,
                     columns: Sequence[str] = DIAGNOSTIC_METRICS, k: int = 5) -> np.ndarray:
    """How far each sample lies from the reference data in morphometric space.

    The mean Euclidean distance from a sample to its ``k`` nearest reference digits, in the
    reference data's standard deviations per column (so 1 means "one standard deviation away
    along one metric"). Used to show the samples furthest from the data.

    Parameters
    ----------
    sample_metrics, reference_metrics : pandas.DataFrame
        Morphometric tables.
    columns : sequence of str
        Columns used (default: :data:`DIAGNOSTIC_METRICS`).
    k : int
        Number of nearest reference digits averaged.

    Returns
    -------
    numpy.ndarray, shape (N_samples,)
        Distance in standard deviations; NaN for samples with a NaN metric.
    """
    from scipy.spatial import cKDTree

    ref = reference_metrics[list(columns)].to_numpy(dtype=np.float64)
    ref = ref[np.isfinite(ref).all(1)]
    if len(ref) < 1:
        raise ValueError("the reference data has no finite metrics")
    mu, sd = ref.mean(0), ref.std(0, ddof=1) if len(ref) > 1 else np.ones(ref.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    tree = cKDTree((ref - mu) / sd)
    s = sample_metrics[list(columns)].to_numpy(dtype=np.float64)
    out = np.full(len(s), np.nan)
    ok = np.isfinite(s).all(1)
    if ok.any():
        kk = min(k, len(ref))
        dist, _ = tree.query((s[ok] - mu) / sd, k=kk)
        out[ok] = dist.reshape(len(dist), -1).mean(1)
    return out
