"""Latent traversals: measure the grid, summarise each latent's effect on each metric over base codes."""
from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ._common import DIAGNOSTIC_METRICS, json_safe

__all__ = ["measure_traversal", "traversal_effects", "TraversalEffects", "encoder_effects", "EncoderEffects"]

#: Relative tolerance under which two effect sizes are reported as a tie.
TIE_RTOL = 1e-6
#: A latent whose encoder codes (posterior means over real digits) vary by less than this standard
#: deviation is inactive (collapsed onto the prior: the decoder ignores it, and a regression on its
#: nearly constant codes gives large, meaningless slopes).
INACTIVE_CODE_SD = 0.1
#: Effects (sd per latent unit) below this on both sides are "none" in the agreement column.
NEGLIGIBLE_SD = 0.05
#: Resamples of the bases for the strongest latent's stability.
STABILITY_RESAMPLES = 200


def measure_traversal(grid, *, progress=False, workers=None, **measure_kwargs) -> pd.DataFrame:
    """Measure every image of a latent traversal grid.

    Parameters
    ----------
    grid : array_like, shape (L, S, H, W) or (B, L, S, H, W)
        Images for L latents x S steps (from B base codes); uint8 in [0, 255] or float in [0, 1].
    progress, workers, **measure_kwargs
        Passed to ``core.measure.measure_batch``.

    Returns
    -------
    pandas.DataFrame
        One row per image with the six metric columns; index (latent, step) for a 4-D grid,
        (base, latent, step) for a 5-D one.
    """
    from core.measure import measure_batch

    grid = np.asarray(grid)
    if grid.ndim not in (4, 5):
        raise ValueError(f"a traversal grid has shape (latents, steps, H, W) or (bases, latents, steps, "
                         f"H, W); got {grid.shape}")
    lead = grid.shape[:-2]
    df = measure_batch(grid.reshape(-1, *grid.shape[-2:]), progress=progress, workers=workers,
                       **measure_kwargs)
    names = ["latent", "step"] if grid.ndim == 4 else ["base", "latent", "step"]
    df.index = pd.MultiIndex.from_product([range(k) for k in lead], names=names)
    return df


def _per_step_array(per_step: pd.DataFrame, metrics) -> tuple[np.ndarray, list, np.ndarray]:
    """(B, L, S, M) array of a per-step table, the latent labels and the step labels."""
    names = list(per_step.index.names)
    if names == ["latent", "step"]:
        per_step = pd.concat({0: per_step}, names=["base"])
    elif names != ["base", "latent", "step"]:
        raise ValueError(f"per-step metrics need a (latent, step) or (base, latent, step) MultiIndex, as "
                         f"from measure_traversal; got index levels {names}")
    bases = sorted(per_step.index.get_level_values("base").unique())
    latents = sorted(per_step.index.get_level_values("latent").unique())
    steps = sorted(per_step.index.get_level_values("step").unique())
    full = pd.MultiIndex.from_product([bases, latents, steps], names=["base", "latent", "step"])
    arr = per_step[list(metrics)].reindex(full).to_numpy(dtype=np.float64)
    return arr.reshape(len(bases), len(latents), len(steps), len(metrics)), latents, np.asarray(steps)


def _slopes(E: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of E (B, L, S, M) against x (S,) per (b, l, m), NaN-aware."""
    w = np.isfinite(E)
    y = np.where(w, E, 0.0)
    X = np.broadcast_to(x[None, None, :, None], E.shape)
    n = w.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * X).sum(2) / n
        ym = y.sum(2) / n
        dx = np.where(w, X - xm[:, :, None, :], 0.0)
        sxx = (dx * dx).sum(2)
        sxy = (dx * (y - ym[:, :, None, :])).sum(2)
        out = sxy / sxx
    out[(n < 2) | (sxx <= 0)] = np.nan
    return out


def _spearman(E: np.ndarray) -> np.ndarray:
    """Spearman correlation of E (B, L, S, M) with the step order per (b, l, m), NaN-aware.

    A metric that is constant along the traversal has correlation 0 (no effect)."""
    w = np.isfinite(E)
    ry = stats.rankdata(E, axis=2, nan_policy="omit")
    rx = np.cumsum(w, axis=2).astype(np.float64)   # ranks of the (increasing) steps among finite ones
    n = w.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ry = np.where(w, ry, 0.0)
        rx = np.where(w, rx, 0.0)
        mx = rx.sum(2) / n
        my = ry.sum(2) / n
        dx = np.where(w, rx - mx[:, :, None, :], 0.0)
        dy = np.where(w, ry - my[:, :, None, :], 0.0)
        sxx, syy = (dx * dx).sum(2), (dy * dy).sum(2)
        rho = (dx * dy).sum(2) / np.sqrt(sxx * syy)
    rho[(syy <= 1e-12) & (n >= 2)] = 0.0
    rho[n < 2] = np.nan
    return np.clip(rho, -1.0, 1.0)


def _summarise(P: np.ndarray, confidence: float):
    """Mean over bases, t confidence interval, sign agreement and counts of P (B, L, M)."""
    n = np.isfinite(P).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # latents with < 2 valid bases: NaN interval
        mean = np.nanmean(P, axis=0)
        sd = np.nanstd(P, axis=0, ddof=1)
        half = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        half = np.where(n >= 2, half, np.nan)
        half = np.where((n >= 2) & (sd == 0), 0.0, half)
        agree = np.where(np.isfinite(P), np.sign(P) == np.sign(mean)[None], False).sum(0) / n
        agree = np.where((n > 0) & (mean != 0), agree, np.nan)
    return mean, mean - half, mean + half, agree, n


@dataclass
class TraversalEffects:
    """Each latent's effect on each metric, summarised over the base codes of a traversal.

    Attributes
    ----------
    method : {'slope', 'spearman'}
        What :attr:`table` holds.
    table : pandas.DataFrame, shape (L, M)
        Mean effect over bases (index ``latent``, one column per metric). ``'slope'``: least-squares
        change of the metric per latent unit, in reference standard deviations when
        ``reference_metrics`` was given (else in the metric's units; see :attr:`units`).
        ``'spearman'``: Spearman correlation of the metric with the step, in [-1, 1].
    ci_low, ci_high : pandas.DataFrame, shape (L, M)
        Confidence interval of the mean over bases (Student t, ``confidence``); NaN with one base.
    sign_agreement : pandas.DataFrame, shape (L, M)
        Fraction of bases whose own effect has the sign of the mean (NaN where the mean is 0).
    n_bases : int
        B, the number of base codes.
    slope : pandas.DataFrame, shape (L, M)
        Mean slope in the metric's units per latent unit (px, rad; per step if the latent values
        were unknown), whatever ``method``.
    slope_sd : pandas.DataFrame or None
        ``slope`` in reference standard deviations per latent unit (None without reference).
    spearman : pandas.DataFrame, shape (L, M)
        Mean Spearman correlation, whatever ``method``.
    reference_sd : pandas.Series or None
        Standard deviation of each metric in the reference data (the scale of ``slope_sd``).
    per_base : dict
        ``{'slope': array (B, L, M), 'spearman': array (B, L, M)}``; slope in :attr:`units` units.
    per_step : pandas.DataFrame
        The measured grid, index (base, latent, step).
    values : numpy.ndarray, shape (S,)
        Latent offset of each step (step indices if unknown: ``values_known`` False).
    strongest : dict
        Per metric: the list of latents with the largest absolute effect size (mean slope); several
        when tied (within a relative 1e-6), empty when no latent changes the metric.
    encoder : EncoderEffects or None
        The same latents read from the encoder side (:meth:`with_encoder`), shown beside the traversal's
        in the reports.
    """

    method: str
    table: pd.DataFrame
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame
    sign_agreement: pd.DataFrame
    n_bases: int
    slope: pd.DataFrame
    slope_sd: Optional[pd.DataFrame]
    spearman: pd.DataFrame
    reference_sd: Optional[pd.Series]
    per_base: dict = field(repr=False)
    per_step: pd.DataFrame = field(repr=False)
    values: np.ndarray = field(repr=False)
    values_known: bool = True
    strongest: dict = field(default_factory=dict)
    confidence: float = 0.95
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
                         .strftime("%Y-%m-%d %H:%M:%S UTC"))
    encoder: Optional["EncoderEffects"] = None

    def with_encoder(self, codes, metrics: pd.DataFrame, **kwargs) -> "TraversalEffects":
        """The same analysis with the encoder side attached (:func:`encoder_effects` of ``codes`` of real
        digits and their ``metrics``; keyword arguments passed on)."""
        return replace(self, encoder=encoder_effects(codes, metrics, self, **kwargs))

    # ---- what the numbers mean
    @property
    def units(self) -> str:
        """Units of :attr:`table`."""
        per = "per latent unit" if self.values_known else "per step"
        if self.method == "spearman":
            return "Spearman ρ with the step (−1 to 1)"
        if self.slope_sd is not None:
            return f"reference standard deviations {per}"
        return f"metric units (px, rad) {per}"

    @property
    def metrics(self) -> list:
        return list(self.table.columns)

    @property
    def latents(self) -> list:
        return list(self.table.index)

    def with_method(self, method: str) -> "TraversalEffects":
        """The same analysis with :attr:`table` (and its interval and sign agreement) by ``method``,
        without measuring again."""
        if method == self.method:
            return self
        _check_method(method)
        tables = _tables(self.per_base[method] if method == "spearman" else self._slope_scaled(),
                         self.table.index, self.table.columns, self.confidence)
        return replace(self, method=method, **tables)

    def _slope_scaled(self) -> np.ndarray:
        P = self.per_base["slope"]
        if self.reference_sd is not None:
            return P / self.reference_sd.to_numpy()[None, None, :]
        return P

    def strongest_text(self) -> str:
        """E.g. ``'thickness ← latent 4; slant ← latents 2 = 3 (tie)'``."""
        parts = []
        for m, lats in self.strongest.items():
            if not lats:
                parts.append(f"{m} ← none")
            elif len(lats) == 1:
                parts.append(f"{m} ← latent {lats[0]}")
            else:
                parts.append(f"{m} ← latents {' = '.join(map(str, lats))} (tie)")
        return "; ".join(parts)

    def stability(self, n_resamples: int = STABILITY_RESAMPLES, seed: int = 0) -> pd.DataFrame:
        """How often each metric's strongest latent stays the strongest when the bases are resampled.

        The B base codes are drawn with replacement ``n_resamples`` times and the strongest latent (largest
        |mean slope|) found again each time, from the per-base slopes (nothing is measured again).

        Returns
        -------
        pandas.DataFrame
            One row per metric: ``metric``, ``strongest`` (the latent, or None when tied or none),
            ``holds`` (k resamples where it is still the strongest), ``of`` (m), ``text``
            (``'holds in k of m'``; NaN-free). With one base there is nothing to resample (``of`` = 0).
        """
        P = self.per_base["slope"]
        B = P.shape[0]
        rng = np.random.default_rng(seed)
        rows = []
        draws = rng.integers(0, B, (n_resamples, B)) if B > 1 else np.zeros((0, B), int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.stack([np.nanmean(P[d], axis=0) for d in draws]) if len(draws) else np.zeros((0,) + P.shape[1:])
        for j, m in enumerate(self.metrics):
            lats = self.strongest.get(m, [])
            top = lats[0] if len(lats) == 1 else None
            k = 0
            if top is not None and len(means):
                i = self.latents.index(top)
                size = np.abs(np.nan_to_num(means[:, :, j], nan=-np.inf))
                k = int((size.argmax(1) == i).sum())
            n = len(means) if top is not None else 0
            rows.append({"metric": m, "strongest": top, "holds": k, "of": n,
                         "text": f"holds in {k} of {n} resamples of the bases" if n else
                         ("one base: nothing to resample" if top is not None else "no single strongest latent")})
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        lines = [f"Traversal effects ({self.method}; {self.units}), mean over {self.n_bases} base code"
                 f"{'s' if self.n_bases != 1 else ''}:",
                 self.table.to_string(float_format=lambda v: f"{v:.3g}"),
                 f"Strongest (by effect size, the mean slope): {self.strongest_text()}"]
        if self.n_bases > 1:
            lines.append(f"Stability of the strongest latent: {self.stability_text()}")
        if self.encoder is not None:
            lines += ["", self.encoder.to_text()]
        return "\n".join(lines)

    def stability_text(self) -> str:
        """E.g. ``'thickness ← latent 4 holds in 200 of 200 resamples of the bases; ...'`` (:meth:`stability`)."""
        st = self.stability()
        return "; ".join(f"{r['metric']} ← latent {r['strongest']} {r['text']}" for _, r in st.iterrows()
                         if r["strongest"] is not None)

    def to_dict(self) -> dict:
        from core.report import versions

        def frame(df):
            return None if df is None else {str(c): {str(i): v for i, v in df[c].items()} for c in df.columns}

        return json_safe({
            "kind": "morpho-mnist traversal effects",
            "created": self.created,
            "method": self.method, "units": self.units, "n_bases": self.n_bases,
            "latents": self.latents, "metrics": self.metrics,
            "values": self.values, "values_known": self.values_known,
            "confidence": self.confidence,
            "table": frame(self.table), "ci_low": frame(self.ci_low), "ci_high": frame(self.ci_high),
            "sign_agreement": frame(self.sign_agreement),
            "slope": frame(self.slope), "slope_sd": frame(self.slope_sd), "spearman": frame(self.spearman),
            "reference_sd": self.reference_sd,
            "strongest": self.strongest,
            "stability": self.stability(),
            "encoder": self.encoder.to_dict() if self.encoder is not None else None,
            "per_step": self.per_step.reset_index(),
            "settings": self.settings, "provenance": self.provenance, "versions": versions(),
        })

    def to_json(self, path=None, *, indent: int = 2) -> str:
        """The analysis as strict JSON (NaN written as null); written atomically to ``path`` if given."""
        from core.report import dumps_json, write_text

        text = dumps_json(self.to_dict(), indent=indent)
        if path is not None:
            write_text(path, text)
        return text

    def to_html(self, path=None) -> str:
        """A standalone, offline HTML page (heatmap, per-step plots, tables, settings, versions);
        written atomically to ``path`` if given. Returns the HTML text."""
        from core.report import traversal_html, write_text

        text = traversal_html(self)
        if path is not None:
            write_text(path, text)
        return text

    def __str__(self) -> str:
        return self.to_text()

    # ---- code written against the former DataFrame return value keeps working
    @property
    def attrs(self) -> dict:
        """``{'per_step': ..., 'method': ...}`` as the former DataFrame's ``.attrs``."""
        return {"per_step": self.per_step, "method": self.method}

    def __getitem__(self, key):
        return self.table[key]

    def __getattr__(self, name):
        # Only reached for names the class lacks: delegate DataFrame-like access (columns, loc,
        # to_numpy, ...) to .table, the former return value of traversal_effects.
        if name.startswith("_") or "table" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["table"], name)


def _plain(v):
    """numpy scalar -> Python scalar (readable reprs, JSON)."""
    return v.item() if isinstance(v, np.generic) else v


def _check_method(method):
    if method not in ("spearman", "slope"):
        raise ValueError(f"method must be 'slope' or 'spearman'; got {method!r}")


def _tables(P, index, columns, confidence) -> dict:
    mean, lo, hi, agree, _ = _summarise(P, confidence)
    mk = lambda a: pd.DataFrame(a, index=index, columns=columns)  # noqa: E731
    return {"table": mk(mean), "ci_low": mk(lo), "ci_high": mk(hi), "sign_agreement": mk(agree)}


def traversal_effects(grid, *, method: str = "slope", reference_metrics: Optional[pd.DataFrame] = None,
                      values=None, metrics: Sequence[str] = DIAGNOSTIC_METRICS,
                      latents: Optional[Sequence] = None, confidence: float = 0.95,
                      provenance: Optional[dict] = None, progress=False, workers=None) -> TraversalEffects:
    """Each latent's effect on each metric along a latent traversal, over one or more base codes.

    Parameters
    ----------
    grid : array_like, shape (L, S, H, W) or (B, L, S, H, W), or pandas.DataFrame
        The traversal images (latent l varied over S increasing steps around each of B base codes,
        as from :func:`core.decoders.traverse`), or their per-step metrics as returned by
        :func:`measure_traversal` (index (latent, step) or (base, latent, step)).
    method : {'slope', 'spearman'}
        What :attr:`TraversalEffects.table` holds (both are always computed; see
        :meth:`TraversalEffects.with_method`). ``'slope'`` (default): least-squares slope of the
        metric against the latent value, an effect size, in reference standard deviations per latent
        unit when ``reference_metrics`` is given (else in the metric's units). ``'spearman'``:
        Spearman rank correlation of the metric with the step, in [-1, 1]; it measures monotonicity,
        not size (any monotone change, however small, scores ±1). Per base, a metric constant along
        the traversal has effect 0; unmeasurable digits (NaN) are ignored.
    reference_metrics : pandas.DataFrame, optional
        Metrics of the data (e.g. the test set): their standard deviations scale the slopes, so that
        "1.5" means 1.5 data standard deviations per latent unit.
    values : array_like, shape (S,), optional
        Latent offset of each step (e.g. ``np.linspace(-2, 2, 9)``, as ``Traversal.values``). If
        None, slopes are per step.
    metrics : sequence of str
        Metric columns (:data:`DIAGNOSTIC_METRICS` by default).
    latents : sequence, optional
        Labels of the L latents (e.g. the latent indices that were traversed); default 0..L-1.
    confidence : float
        Level of the confidence interval over bases.
    provenance : dict, optional
        Where the traversal came from, copied into the reports.
    progress, workers
        Passed to :func:`measure_traversal` when ``grid`` holds images.

    Returns
    -------
    TraversalEffects
        ``.table`` (mean over bases), ``.ci_low``/``.ci_high``, ``.sign_agreement``, ``.strongest``
        (chosen by effect size, the mean slope, whatever ``method``; ties listed), ``.to_html()``.
    """
    _check_method(method)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if isinstance(grid, pd.DataFrame):
        per_step = grid
    else:
        per_step = measure_traversal(grid, progress=progress, workers=workers)
    metrics = [m for m in metrics if m in per_step.columns]
    if not metrics:
        raise ValueError(f"the per-step table has none of the metrics; it has {list(per_step.columns)}")
    E, latent_ids, steps = _per_step_array(per_step, metrics)
    B, L, S, M = E.shape
    if values is None:
        x, values_known = steps.astype(np.float64), False
    else:
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.shape != (S,):
            raise ValueError(f"values must give one latent value per step ({S}); got shape {x.shape}")
        if not np.all(np.diff(x) > 0):
            raise ValueError("values must increase along the steps")
        values_known = True
    if latents is not None:
        latents = list(latents)
        if len(latents) != L:
            raise ValueError(f"latents must name the {L} traversed latents; got {len(latents)} names")
        index = pd.Index(latents, name="latent")
    else:
        index = pd.Index(latent_ids, name="latent")
    columns = pd.Index(metrics)
    slope_pb = _slopes(E, x)
    rho_pb = _spearman(E)
    ref_sd = None
    if reference_metrics is not None:
        missing = [m for m in metrics if m not in reference_metrics.columns]
        if missing:
            raise ValueError(f"reference_metrics has no column(s) {missing}")
        ref = reference_metrics[metrics].to_numpy(dtype=np.float64)
        sd = np.array([np.nanstd(ref[:, j], ddof=1) if np.isfinite(ref[:, j]).sum() > 1 else np.nan
                       for j in range(M)])
        if not np.all(np.isfinite(sd) & (sd > 0)):
            raise ValueError("reference_metrics must have at least 2 distinct finite values per metric")
        ref_sd = pd.Series(sd, index=columns, name="reference_sd")
    mk = lambda a: pd.DataFrame(a, index=index, columns=columns)  # noqa: E731
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns: mean NaN, said in the table
        slope_mean = np.nanmean(slope_pb, axis=0)
        rho_mean = np.nanmean(rho_pb, axis=0)
    slope_sd = mk(slope_mean / ref_sd.to_numpy()[None, :]) if ref_sd is not None else None
    main = rho_pb if method == "spearman" else (
        slope_pb / ref_sd.to_numpy()[None, None, :] if ref_sd is not None else slope_pb)
    tables = _tables(main, index, columns, confidence)
    strongest = {}
    size = np.abs(slope_mean)
    for j, m in enumerate(metrics):
        col = size[:, j]
        if not np.isfinite(col).any() or np.nanmax(col) <= 0:
            strongest[m] = []
            continue
        top = np.nanmax(col)
        strongest[m] = [_plain(index[i]) for i in np.flatnonzero(col >= top * (1 - TIE_RTOL))]
    settings = {"method": method, "metrics": metrics, "confidence": confidence, "bases": B, "latents": L,
                "steps": S, "values": "given" if values_known else "unknown (slopes per step)",
                "reference": "given: slopes in its standard deviations" if ref_sd is not None else "none"}
    if per_step.index.names == ["latent", "step"]:
        per_step = pd.concat({0: per_step}, names=["base"])
    return TraversalEffects(method=method, n_bases=B, slope=mk(slope_mean), slope_sd=slope_sd,
                            spearman=mk(rho_mean), reference_sd=ref_sd,
                            per_base={"slope": slope_pb, "spearman": rho_pb}, per_step=per_step,
                            values=x, values_known=values_known, strongest=strongest,
                            confidence=confidence, settings=settings, provenance=dict(provenance or {}),
                            **tables)


@dataclass
class EncoderEffects:
    """Traversals read from both sides: the decoder's effect of each latent beside the encoder's.

    Attributes
    ----------
    encoder : pandas.DataFrame, shape (L, M)
        Per latent (index ``latent``) and metric: the least-squares coefficient of the metric on the
        encoder codes of real digits (all latents jointly, with an intercept), in standard deviations of
        the metric per latent unit.
    decoder : pandas.DataFrame or None, shape (L, M)
        The traversal's mean slope in the same units (None without a traversal).
    code_sd : pandas.Series
        Standard deviation of each latent's codes over the real digits.
    active : pandas.Series of bool
        ``code_sd >= INACTIVE_CODE_SD`` (0.1): an inactive latent's codes hardly vary, so its regression
        coefficient is large and meaningless.
    agreement : pandas.DataFrame or None, shape (L, M)
        ``'agree'`` (same sign, sizes within a factor 2), ``'size differs'``, ``'opposite'``,
        ``'none'`` (both below 0.05 sd per unit) or ``'inactive latent'``.
    metric_sd : pandas.Series
        The standard deviations used as units.
    n_digits : int
        Real digits in the regression.
    """

    encoder: pd.DataFrame
    code_sd: pd.Series
    active: pd.Series
    metric_sd: pd.Series
    n_digits: int
    decoder: Optional[pd.DataFrame] = None
    agreement: Optional[pd.DataFrame] = None

    @property
    def table(self) -> pd.DataFrame:
        """Long form, one row per (latent, metric): ``decoder_sd``, ``encoder_sd``, ``agreement``,
        ``active``."""
        rows = []
        for lat in self.encoder.index:
            for m in self.encoder.columns:
                rows.append({"latent": _plain(lat), "metric": m,
                             "decoder_sd": self.decoder.loc[lat, m] if self.decoder is not None else np.nan,
                             "encoder_sd": self.encoder.loc[lat, m],
                             "agreement": self.agreement.loc[lat, m] if self.agreement is not None else "",
                             "active": bool(self.active[lat])})
        return pd.DataFrame(rows)

    @property
    def per_latent(self) -> pd.DataFrame:
        """One row per latent: ``latent``, ``code_sd``, ``active``, ``agree`` (metrics where the two sides
        agree, of those where either side has an effect), ``of``."""
        rows = []
        for lat in self.encoder.index:
            a = self.agreement.loc[lat] if self.agreement is not None else pd.Series(dtype=object)
            some = a[~a.isin(["none", "inactive latent"])]
            rows.append({"latent": _plain(lat), "code_sd": float(self.code_sd[lat]), "active": bool(self.active[lat]),
                         "agree": int((some == "agree").sum()), "of": int(len(some))})
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        t = self.table
        inactive = [str(_plain(i)) for i in self.active.index[~self.active.to_numpy()]]
        lines = [f"Both sides ({self.n_digits:,} real digits' codes; sd of each metric per latent unit):",
                 t.to_string(index=False, float_format=lambda v: f"{v:.3g}")]
        if inactive:
            lines.append(f"Inactive latents (codes vary by less than {INACTIVE_CODE_SD:g}): {', '.join(inactive)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return json_safe({"n_digits": self.n_digits, "table": self.table, "per_latent": self.per_latent,
                          "metric_sd": self.metric_sd, "inactive_code_sd": INACTIVE_CODE_SD,
                          "negligible_sd": NEGLIGIBLE_SD})


def _agreement(d: float, e: float, active: bool) -> str:
    if not active:
        return "inactive latent"
    if not (np.isfinite(d) and np.isfinite(e)):
        return "n/a"
    big = max(abs(d), abs(e))
    if big < NEGLIGIBLE_SD:
        return "none"
    if np.sign(d) != np.sign(e):
        return "opposite"
    small = min(abs(d), abs(e))
    return "agree" if small > 0 and big / small <= 2 else "size differs"


def encoder_effects(codes, metrics: pd.DataFrame, effects: Optional[TraversalEffects] = None, *,
                    reference_metrics: Optional[pd.DataFrame] = None,
                    metric_names: Optional[Sequence[str]] = None) -> EncoderEffects:
    """Each latent's effect read from the encoder side, aligned with a traversal's (the decoder side).

    Parameters
    ----------
    codes : array_like, shape (N, D), or pandas.DataFrame
        Encoder codes (posterior means) of N real digits; column ``j`` is latent ``j`` (a DataFrame's
        column names are the latent labels).
    metrics : pandas.DataFrame, N rows
        The same digits' morphometrics.
    effects : TraversalEffects, optional
        The traversal of the same model: its latents (labels matching the code columns) are aligned with
        the codes, its slopes put in the same units, and an agreement column computed.
    reference_metrics : pandas.DataFrame, optional
        Whose standard deviations are the units (default: the traversal's reference, else ``metrics``).
    metric_names : sequence of str, optional
        Metrics (default: the traversal's, else :data:`DIAGNOSTIC_METRICS`).

    Returns
    -------
    EncoderEffects
    """
    if isinstance(codes, pd.DataFrame):
        labels = [_plain(c) for c in codes.columns]
        Z = codes.to_numpy(dtype=np.float64)
    else:
        Z = np.asarray(codes, dtype=np.float64)
        if Z.ndim != 2:
            raise ValueError(f"codes must have shape (N, D); got {Z.shape}")
        labels = list(range(Z.shape[1]))
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(f"metrics must be a pandas DataFrame; got {type(metrics).__name__}")
    if len(metrics) != len(Z):
        raise ValueError(f"codes and metrics must have one row per digit; got {len(Z)} codes and "
                         f"{len(metrics)} metric rows")
    names = list(metric_names) if metric_names is not None else (
        effects.metrics if effects is not None else list(DIAGNOSTIC_METRICS))
    missing = [m for m in names if m not in metrics.columns]
    if missing:
        raise ValueError(f"metrics has no column(s) {missing}")
    Y = metrics[names].to_numpy(dtype=np.float64)
    ok = np.isfinite(Y).all(1) & np.isfinite(Z).all(1)
    Y, Zc = Y[ok], Z[ok]
    if len(Y) <= Z.shape[1] + 1:
        raise ValueError(f"need more real digits than latents + 1 for the regression; got {len(Y)} measurable "
                         f"digits for {Z.shape[1]} latents")
    if reference_metrics is not None:
        sd = reference_metrics[names].std(ddof=1)
    elif effects is not None and effects.reference_sd is not None:
        sd = effects.reference_sd[names]
    else:
        sd = pd.Series(Y.std(0, ddof=1), index=names)
    sd = sd.astype(float)
    X = np.column_stack([np.ones(len(Zc)), Zc])
    coef, *_ = np.linalg.lstsq(X, Y / sd.to_numpy()[None, :], rcond=None)
    index = pd.Index(labels, name="latent")
    enc = pd.DataFrame(coef[1:], index=index, columns=names)
    code_sd = pd.Series(Zc.std(0, ddof=1), index=index, name="code_sd")
    active = code_sd >= INACTIVE_CODE_SD
    dec = agree = None
    if effects is not None:
        if not effects.values_known:
            raise ValueError("the traversal's latent values are unknown (slopes per step): give values= to "
                             "traversal_effects so that its slopes are per latent unit, like the codes'")
        unknown = [lat for lat in effects.latents if lat not in labels]
        if unknown:
            raise ValueError(f"traversed latent(s) {unknown} have no code column; the codes have latents "
                             f"{labels[:5]}{'...' if len(labels) > 5 else ''}")
        lat_idx = pd.Index(effects.latents, name="latent")
        enc, code_sd, active = enc.loc[lat_idx], code_sd.loc[lat_idx], active.loc[lat_idx]
        dec = effects.slope[names].div(sd, axis=1)
        dec.index = lat_idx
        agree = pd.DataFrame([[_agreement(dec.loc[lat, m], enc.loc[lat, m], bool(active[lat])) for m in names]
                              for lat in lat_idx], index=lat_idx, columns=names)
    return EncoderEffects(encoder=enc, code_sd=code_sd, active=active, metric_sd=sd, n_digits=int(len(Y)),
                          decoder=dec, agreement=agree)
