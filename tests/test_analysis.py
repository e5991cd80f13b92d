"""core.analysis on real MNIST digits (the bundled 5,000-digit sample in assets/mnist-5k)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.analysis import (DIAGNOSTIC_METRICS, MMD_COLUMNS, METRICS, bandwidth, compare_report,
                           gaussian_kernel, measure_traversal, metric_distances, mig, mmd_test,
                           partial_correlations, traversal_effects)
from core.io import load_idx

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_idx(ASSETS / "train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return load_idx(ASSETS / "train-labels-idx1-ubyte.gz").astype(np.int64)


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    """Precomputed morphometrics of the 5,000 digits (sorted by label, 500 each)."""
    df = pd.read_csv(ASSETS / "train-morpho.csv")
    return df[list(METRICS)].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# MMD test


def test_thickened_digits_are_told_apart_from_plain(images):
    from core.measure import measure_batch
    from core.perturb import Thickening, perturb_image

    # 240 digits, 24 per label; thicken one half and compare with the other (disjoint) half.
    idx = np.arange(0, 5000, 500)[:, None] + np.arange(0, 480, 20)[None, :]
    a, b = idx[:, :12].ravel(), idx[:, 12:].ravel()
    thick = np.stack([perturb_image(images[i], Thickening(amount=1.0)) for i in a])
    m_thick = measure_batch(thick, progress=False)
    m_plain = measure_batch(images[b], progress=False)
    assert (m_thick["thickness"].mean() - m_plain["thickness"].mean()) > 1.0

    lin = mmd_test(m_thick, m_plain, linear=True, seed=0)
    assert lin.linear and lin.columns == MMD_COLUMNS
    assert lin.n_x == lin.n_y == 120
    assert lin.p_value < 0.01, lin
    assert lin.mmd2 > 3 * lin.sem

    quad = mmd_test(m_thick, m_plain, linear=False, seed=0, n_permutations=300)
    assert quad.p_value < 0.01, quad
    assert quad.mmd2 > 0


def test_disjoint_plain_digits_are_not_told_apart(metrics):
    # Even and odd rows: two disjoint sets of 2,500 plain digits with the same label balance.
    x, y = metrics.iloc[0::2], metrics.iloc[1::2]
    lin = mmd_test(x, y, linear=True, seed=0)
    assert lin.p_value > 0.01, lin
    quad = mmd_test(x, y, linear=False, seed=0, n_permutations=200, chunksize=1000)
    assert quad.p_value > 0.01, quad
    assert abs(quad.mmd2) < 3 * quad.sem + 1e-4


def test_quadratic_statistic_matches_direct_formula(metrics):
    x = metrics.iloc[:700:5][list(MMD_COLUMNS)].to_numpy()   # 140 digits
    y = metrics.iloc[2600:3500:6][list(MMD_COLUMNS)].to_numpy()  # 150 other digits
    res = mmd_test(x, y, linear=False, chunksize=37, n_permutations=0)
    h = bandwidth(x, y)
    np.testing.assert_allclose(res.bandwidth, h)
    kxx = gaussian_kernel(x[:, None], x[None], h)
    kyy = gaussian_kernel(y[:, None], y[None], h)
    kxy = gaussian_kernel(x[:, None], y[None], h)
    m, n = len(x), len(y)
    direct = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
              - 2 * kxy.mean())
    assert res.mmd2 == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert np.isnan(res.p_value)
    # different digits (labels 0-1 vs 5-7) differ
    assert res.mmd2 > 0


def test_linear_statistic_is_mean_of_h_over_disjoint_pairs(metrics):
    x = metrics.iloc[:400][list(MMD_COLUMNS)].to_numpy()
    y = metrics.iloc[4000:4300][list(MMD_COLUMNS)].to_numpy()
    res = mmd_test(x, y, linear=True, seed=7)
    # Reproduce the documented procedure with the same generator.
    rng = np.random.default_rng(7)
    m = 300
    xs, ys = x[rng.permutation(400)[:m]], y[rng.permutation(300)[:m]]
    h = bandwidth(x, y)
    k = lambda a, b: gaussian_kernel(a, b, h)  # noqa: E731
    hv = k(xs[0::2], xs[1::2]) + k(ys[0::2], ys[1::2]) - k(xs[0::2], ys[1::2]) - k(xs[1::2], ys[0::2])
    assert res.mmd2 == pytest.approx(hv.mean(), rel=1e-12)
    assert res.sem == pytest.approx(hv.std(ddof=1) / np.sqrt(150), rel=1e-12)
    assert res.p_value == pytest.approx(stats.norm.sf(hv.mean() / res.sem), rel=1e-9)


def test_bandwidth_is_std_with_scotts_factor(metrics):
    x = metrics.iloc[:1000][list(MMD_COLUMNS)].to_numpy()
    y = metrics.iloc[1000:1600][list(MMD_COLUMNS)].to_numpy()
    expected = np.sqrt((x.std(0, ddof=1) * 1000 ** (-1 / 9)) ** 2 + (y.std(0, ddof=1) * 600 ** (-1 / 9)) ** 2)
    np.testing.assert_allclose(bandwidth(x, y), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="constant in every sample"):
        bandwidth(np.ones((5, 2)), np.ones((6, 2)))


def test_nan_rows_are_dropped_with_a_warning(metrics):
    x = metrics.iloc[:300].copy()
    x.iloc[[3, 50], 2] = np.nan
    with pytest.warns(RuntimeWarning, match="ignoring 2 of 300 rows"):
        res = mmd_test(x, metrics.iloc[300:600], seed=0)
    assert res.n_x == 298


# ------------------------------------------------------------------------------------------------
# distances and report


def test_metric_distances_known_shift(metrics, labels):
    ref = metrics.iloc[::10].reset_index(drop=True)
    lab = labels[::10]
    shifted = ref.copy()
    shifted["thickness"] += 0.5
    d = metric_distances(shifted, ref, sample_labels=lab, reference_labels=lab)
    assert len(d) == 6 * 11  # overall + 10 labels
    overall = d[d["label"] == "all"].set_index("metric")
    assert overall.loc["thickness", "wasserstein"] == pytest.approx(0.5, abs=1e-12)
    assert overall.loc["thickness", "wasserstein_std"] == pytest.approx(0.5 / ref["thickness"].std(), rel=1e-9)
    for m in ("area", "length", "slant", "width", "height"):
        assert overall.loc[m, "wasserstein"] == pytest.approx(0.0, abs=1e-12)
        assert overall.loc[m, "ks_statistic"] == 0.0 and overall.loc[m, "ks_p_value"] == 1.0
    assert overall.loc["thickness", "ks_p_value"] < 1e-6
    per3 = d[d["label"].astype(str) == "3"].set_index("metric")
    assert per3.loc["thickness", "n_samples"] == 50
    assert per3.loc["thickness", "wasserstein"] == pytest.approx(0.5, abs=1e-12)


def test_metric_distances_match_definitions(metrics):
    a = metrics["slant"].to_numpy()[:1000:2]
    b = metrics["slant"].to_numpy()[3000:4000:2]
    d = metric_distances(metrics.iloc[:1000:2], metrics.iloc[3000:4000:2]).set_index("metric")
    # equal sizes: W1 is the mean absolute difference of the sorted values
    assert d.loc["slant", "wasserstein"] == pytest.approx(np.abs(np.sort(a) - np.sort(b)).mean(), rel=1e-12)
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda v: np.searchsorted(np.sort(v), grid, side="right") / len(v)  # noqa: E731
    assert d.loc["slant", "ks_statistic"] == pytest.approx(np.abs(cdf(a) - cdf(b)).max(), abs=1e-12)


def test_compare_report_text(metrics, labels):
    rep = compare_report(metrics.iloc[0::2], metrics.iloc[1::2], sample_labels=labels[0::2],
                         reference_labels=labels[1::2])
    text = rep.to_text()
    assert "MMD²_l = " in text and "MMD²_u = " in text and "length, thickness, slant, width, height" in text
    assert "W1" in text and "KS p" in text
    assert rep.n_samples == rep.n_reference == 2500
    assert set(rep.distances["label"].astype(str)) == {"all", *map(str, range(10))}
    short = rep.to_text(per_label=False)
    # 60 per-label distance rows, 10 per-label test lines and their heading (with a blank line)
    assert len(short.splitlines()) == len(text.splitlines()) - 60 - 12


# ------------------------------------------------------------------------------------------------
# disentanglement


def test_partial_correlations_of_noisy_metrics(metrics):
    rng = np.random.default_rng(0)
    m = metrics[list(MMD_COLUMNS)]
    z = (m - m.mean()) / m.std()
    codes = pd.DataFrame(z.to_numpy() + 0.1 * rng.normal(size=z.shape),
                         columns=[f"c{i}" for i in range(5)])
    pc = partial_correlations(codes, m)
    assert pc.shape == (5, 5) and list(pc.columns) == list(MMD_COLUMNS)
    assert (np.diag(pc) > 0.95).all(), pc
    off = pc.to_numpy()[~np.eye(5, dtype=bool)]
    assert np.abs(off).max() < 0.2, pc
    # entry (0, 1) by its definition: correlate the residuals after regressing out the other codes
    others = np.column_stack([np.ones(len(codes)), codes.to_numpy()[:, 1:]])
    res = lambda v: v - others @ np.linalg.lstsq(others, v, rcond=None)[0]  # noqa: E731
    r = np.corrcoef(res(codes["c0"].to_numpy()), res(m["thickness"].to_numpy()))[0, 1]
    assert pc.loc["c0", "thickness"] == pytest.approx(r, abs=1e-10)


def test_mig_of_factors_and_of_random_codes(metrics):
    f = metrics[list(MMD_COLUMNS)]
    perfect = mig(f.to_numpy()[:, [2, 0, 1, 4, 3]], f)
    # Not exactly 1: real factors share information (length with width, ...), so the runner-up code
    # for a factor carries some of it too; slant and thickness are the most independent.
    assert perfect.score > 0.85, perfect.per_factor
    assert perfect.per_factor["slant"] > 0.9 and perfect.per_factor["thickness"] > 0.9
    # the most informative code for each factor is the one that equals it
    assert list(perfect.mutual_info.to_numpy().argmax(0)) == [1, 2, 0, 4, 3]
    random = mig(np.random.default_rng(0).normal(size=(len(f), 5)), f)
    assert random.score < 0.05
    assert float(random) == random.score
    with pytest.raises(ValueError, match="at least 2 codes"):
        mig(f[["length"]], f)


def test_code_diagnostics_use_the_diagnostic_metrics_and_skip_mig_for_one_code(metrics):
    from core.analysis import code_diagnostics

    rng = np.random.default_rng(1)
    codes = pd.DataFrame(metrics[["slant", "thickness"]].to_numpy() + 0.05 * rng.normal(size=(len(metrics), 2)),
                         columns=["z0", "z1"])
    pc, result = code_diagnostics(codes, metrics)   # area is not a diagnostic metric: left out
    pd.testing.assert_frame_equal(pc, partial_correlations(codes, metrics[list(MMD_COLUMNS)]))
    assert list(pc.columns) == list(MMD_COLUMNS) and result.score == mig(codes, metrics[list(MMD_COLUMNS)]).score
    assert pc.loc["z0", "slant"] > 0.9 and pc.loc["z1", "thickness"] > 0.9
    pc1, none = code_diagnostics(codes[["z0"]], metrics[["slant", "width"]])
    assert none is None and list(pc1.columns) == ["slant", "width"]


# ------------------------------------------------------------------------------------------------
# traversals


def test_traversal_reads_back_thickness_and_slant(images):
    from core.perturb import SetSlant, SetThickness, perturb_image

    base = images[1500 + 7]  # a real '3'
    steps = 6
    grid = np.stack([
        [perturb_image(base, SetThickness(t)) for t in np.linspace(1.5, 4.0, steps)],
        [perturb_image(base, SetSlant(s)) for s in np.linspace(-0.5, 0.5, steps)],
        [base] * steps,  # a latent that changes nothing
    ])
    eff = traversal_effects(grid, method="spearman")
    assert list(eff.index) == [0, 1, 2] and list(eff.columns) == list(DIAGNOSTIC_METRICS)
    assert eff.method == "spearman" and eff.n_bases == 1
    assert eff.loc[0, "thickness"] > 0.9 and eff.loc[1, "slant"] > 0.9
    assert eff["thickness"].abs().idxmax() == 0
    assert eff["slant"].abs().idxmax() == 1
    assert (eff.table.loc[2] == 0).all()
    # strongest by effect size (the slope), whatever the method shown
    assert eff.strongest["thickness"] == [0] and eff.strongest["slant"] == [1]
    per_step = eff.per_step
    assert per_step.shape == (3 * steps, 6)
    np.testing.assert_allclose(per_step.loc[(0, 1, steps - 1), "slant"], 0.5, atol=0.1)

    slope = traversal_effects(measure_traversal(grid), method="slope")
    assert slope.table["thickness"].abs().idxmax() == 0 and slope.table["slant"].abs().idxmax() == 1
    assert slope.table.loc[0, "thickness"] > 0 and slope.table.loc[1, "slant"] > 0


# ------------------------------------------------------------------------------------------------
# p-values, permutation resolution, verdict


def test_format_p_reads_as_people_write_it():
    from core.analysis import format_p

    assert format_p(0.5123) == "p = 0.51"
    assert format_p(4.6e-6) == "p = 4.6e-6"
    assert format_p(4.941e-324) == "p < 1e-300" and format_p(0.0) == "p < 1e-300"
    assert format_p(0.0123) == "p = 0.012" and format_p(0.0042) == "p = 0.0042"
    assert format_p(1.0) == "p = 1" and format_p(float("nan")) == "p = n/a"
    assert format_p(1e-4, resolution=1e-4) == "p ≤ 1e-4"
    assert format_p(0.0011, resolution=1e-3) == "p = 0.0011"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        format_p(1.5)
    from core.analysis import format_p_cell
    assert [format_p_cell(p) for p in (0.51, 4.6e-6, 0.0)] == ["0.51", "4.6e-6", "< 1e-300"]
    assert format_p_cell(1e-4, resolution=1e-4) == "≤ 1e-4"


def test_permutation_p_reaches_1e4_when_small_and_stops_early_when_not(metrics):
    cols = list(DIAGNOSTIC_METRICS)
    zeros, ones = metrics.iloc[:500:5][cols], metrics.iloc[500:1000:5][cols]   # 100 '0's vs 100 '1's
    far = mmd_test(zeros, ones, linear=False, seed=0)
    assert far.n_permutations == 9999 and far.p_value == pytest.approx(1e-4)
    assert far.p_text == "p ≤ 1e-4" and "9,999 permutations" in far.to_text()
    same = mmd_test(metrics.iloc[0:1000:5][cols], metrics.iloc[1:1000:5][cols], linear=False, seed=0)
    assert same.n_permutations == 999 and same.p_value > 0.02
    fixed = mmd_test(zeros, ones, linear=False, seed=0, n_permutations=99)
    assert fixed.n_permutations == 99 and fixed.p_value == pytest.approx(0.01)


def test_permutation_p_matches_exact_enumeration(metrics):
    from itertools import combinations

    cols = list(DIAGNOSTIC_METRICS)
    x = metrics.iloc[[3, 510, 1020, 2000, 2600, 4100]][cols].to_numpy()   # 6 real digits
    y = metrics.iloc[[7, 515, 1500, 2100, 3000, 4500]][cols].to_numpy() * [1, 1.15, 1, 1, 1]  # thicker
    h = bandwidth(x, y)
    z = np.concatenate([x, y])
    K = gaussian_kernel(z[:, None], z[None], h)
    np.fill_diagonal(K, 0.0)

    def stat(ix):
        iy = np.setdiff1d(np.arange(12), ix)
        return K[np.ix_(ix, ix)].sum() / 30 + K[np.ix_(iy, iy)].sum() / 30 - 2 * K[np.ix_(ix, iy)].sum() / 36

    obs = stat(np.arange(6))
    splits = [stat(np.array(c)) for c in combinations(range(12), 6)]
    exact = np.mean(np.array(splits) >= obs - 1e-12)
    res = mmd_test(x, y, linear=False, seed=1, n_permutations=9999)
    assert res.mmd2 == pytest.approx(obs, rel=1e-9)
    # Monte Carlo p from 9,999 permutations: within 4 standard errors of the exact p
    assert abs(res.p_value - exact) < 4 * np.sqrt(exact * (1 - exact) / 9999) + 1e-4, (res.p_value, exact)


def test_verdict_uses_quadratic_test_up_to_its_n_and_linear_beyond(metrics, labels):
    x, y = metrics.iloc[0:1000:4], metrics.iloc[1:1000:4]   # 250 vs 250, labels 0-1
    rep = compare_report(x, y, max_quadratic_n=300, n_permutations=199)
    assert rep.verdict_test == "quadratic" and rep.mmd is rep.mmd_quadratic and not rep.mmd.linear
    assert rep.mmd_linear.linear and rep.mmd_linear.n_x == 250
    assert "quadratic-time MMD" in rep.verdict and "not distinguishable" in rep.verdict
    big = compare_report(x, y, max_quadratic_n=100, n_permutations=199)
    assert big.verdict_test == "both" and big.mmd in (big.mmd_linear, big.mmd_quadratic)
    assert "Bonferroni" in big.verdict and big.differs == (min(big.mmd_linear.p_value, big.mmd_quadratic.p_value) < 0.005)
    assert big.mmd_quadratic.n_x == big.mmd_quadratic.n_y == 100
    assert any("random subset of 100" in n for n in big.notes)
    forced = compare_report(x, y, linear=True, n_permutations=0)
    assert forced.verdict_test == "linear"


def test_per_label_tests_find_the_one_changed_label(metrics, labels):
    rng = np.random.default_rng(0)
    idx = rng.permutation(5000)
    s_idx, r_idx = np.sort(idx[:1500]), np.sort(idx[1500:])
    samples = metrics.iloc[s_idx].reset_index(drop=True).copy()
    s_lab = labels[s_idx]
    samples.loc[s_lab == 7, "thickness"] += 1.0          # only the model's 7s are too thick
    rep = compare_report(samples, metrics.iloc[r_idx], sample_labels=s_lab, reference_labels=labels[r_idx],
                         n_permutations=999)
    pl = rep.per_label.set_index("label")
    assert list(pl.index) == list(range(10))
    assert pl.loc[7, "differs"] and pl.loc[7, "p_value"] <= 1e-3
    assert not pl.drop(index=7)["differs"].any(), pl
    assert (pl["p_holm"] >= pl["p_value"]).all()
    assert "label 7" in rep.verdict and "differ" in rep.verdict
    d = json.loads(rep.to_json())
    assert d["per_label"][7]["label"] == 7 and d["per_label"][7]["differs"] is True
    assert d["verdict"] == rep.verdict


def test_report_json_is_strict_and_complete(metrics):
    x = metrics.iloc[0:600:3].copy()
    x.iloc[5, 1] = np.nan                                     # an unmeasurable digit
    rep = compare_report(x, metrics.iloc[1:600:3], n_permutations=99,
                         provenance={"samples": "rows 0, 3, 6, ... of the bundled sample"})
    text = rep.to_json()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    assert d["n_samples"] == 200 and d["tests"]["quadratic"]["n_x"] == 199
    assert d["tests"]["linear"]["p_text"].startswith("p ")
    assert d["provenance"]["samples"].startswith("rows 0")
    assert {"numpy", "scipy", "python"} <= set(d["versions"])
    assert any("1 of 200 samples" in n for n in d["notes"])


# ------------------------------------------------------------------------------------------------
# the original analysis/ code's choices


def test_original_shuffle_and_standard_error_follow_the_original_procedure(metrics):
    cols = list(DIAGNOSTIC_METRICS)
    x = metrics.iloc[:400][cols].to_numpy()
    y = metrics.iloc[4000:4300][cols].to_numpy()
    res = mmd_test(x, y, seed=3, shuffle="original", sem="original")
    # the original: RandomState(seed).permutation of x then of y, cut to m = 300, pairs (2i, 2i+1)
    rs = np.random.RandomState(3)
    xs, ys = rs.permutation(x)[:300], rs.permutation(y)[:300]
    h = bandwidth(x, y)
    k = lambda a, b: gaussian_kernel(a, b, h)  # noqa: E731
    hv = k(xs[0::2], xs[1::2]) + k(ys[0::2], ys[1::2]) - k(xs[0::2], ys[1::2]) - k(ys[0::2], xs[1::2])
    assert res.mmd2 == pytest.approx(hv.mean(), rel=1e-12)
    assert res.sem == pytest.approx(np.sqrt(hv.var() / 150), rel=1e-12)   # ddof = 0
    assert res.mmd2 != pytest.approx(mmd_test(x, y, seed=3).mmd2, rel=1e-6)  # different pairs
    with pytest.raises(ValueError, match="int seed"):
        mmd_test(x, y, seed=np.random.default_rng(0), shuffle="original")


def test_original_quadratic_estimator_and_standard_error(metrics):
    cols = list(DIAGNOSTIC_METRICS)
    x = metrics.iloc[2000:2090][cols].to_numpy()
    y = metrics.iloc[3000:3060][cols].to_numpy()
    res = mmd_test(x, y, linear=False, seed=5, n_permutations=0, shuffle="original", sem="original",
                   estimator="original")
    rs = np.random.RandomState(5)
    xs, ys = rs.permutation(x)[:60], rs.permutation(y)[:60]
    h = bandwidth(x, y)
    k = lambda a, b: gaussian_kernel(a[:, None], b[None], h)  # noqa: E731
    H = k(xs, xs) + k(ys, ys) - k(xs, ys) - k(ys, xs)
    off = H[~np.eye(60, dtype=bool)]
    assert res.mmd2 == pytest.approx(off.mean(), rel=1e-10)
    assert res.sem == pytest.approx(np.sqrt(2 * off.var() / off.size), rel=1e-10)
    default = mmd_test(x, y, linear=False, n_permutations=0)
    assert default.mmd2 != pytest.approx(res.mmd2, rel=1e-6)


def test_mig_original_binning_keeps_integer_codes_as_categories(metrics):
    f = metrics[list(DIAGNOSTIC_METRICS)]
    z = ((f - f.mean()) / f.std()).to_numpy()
    few = np.rint(np.clip(z, -2, 2)).astype(np.int64)       # 5 values: binning changes nothing
    assert mig(few, f).score == pytest.approx(mig(few, f, binning="original").score, abs=1e-12)
    many = np.rint(z * 10).astype(np.int64)                 # ~60 values per code
    orig = mig(many, f, binning="original")
    # the original's MI: integer codes as categories, factors in 20 histogram bins
    fb = np.column_stack([np.clip(np.digitize(f.iloc[:, j], np.histogram_bin_edges(f.iloc[:, j], 20)[1:-1]),
                                  0, 19) for j in range(5)])

    def mi(a, b):
        joint = pd.crosstab(a, b).to_numpy() / len(a)
        pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
        nz = joint > 0
        return (joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum()

    assert orig.mutual_info.iloc[2, 1] == pytest.approx(mi(many[:, 2], fb[:, 1]), rel=1e-9)
    assert orig.score != pytest.approx(mig(many, f).score, abs=1e-3)


def test_mig_zero_entropy_factor_skipped_or_nan(metrics):
    f = metrics[list(DIAGNOSTIC_METRICS)].assign(perturbation=np.zeros(len(metrics), np.int64))
    codes = f.iloc[:, :5].to_numpy() + np.random.default_rng(0).normal(size=(len(f), 5))
    skip = mig(codes, f, columns=None)
    assert np.isnan(skip.per_factor["perturbation"]) and skip.entropy["perturbation"] == 0
    assert skip.score == pytest.approx(skip.per_factor.iloc[:5].mean())
    assert np.isnan(mig(codes, f, columns=None, zero_entropy="original").score)


def test_diagnostics_use_one_metric_set(metrics):
    codes = metrics[["thickness", "slant"]].to_numpy() + np.random.default_rng(1).normal(size=(5000, 2))
    six = mig(codes, metrics)                        # a six-metric table is cut to the five
    assert list(six.per_factor.index) == list(DIAGNOSTIC_METRICS)
    assert list(partial_correlations(codes, metrics).columns) == list(DIAGNOSTIC_METRICS)
    assert list(mig(codes, metrics, columns=None).per_factor.index) == list(METRICS)


def test_mutual_information_matches_the_plug_in_formula(metrics):
    from core.analysis import discretise, mutual_information

    a = discretise(metrics[["slant", "width"]].to_numpy(), 20)
    b = discretise(metrics[["height"]].to_numpy(), 7)
    got = mutual_information(a, b)
    for i in range(2):
        joint = np.histogram2d(a[:, i], b[:, 0], bins=[np.arange(21) - 0.5, np.arange(8) - 0.5])[0] / 5000
        pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
        nz = joint > 0
        assert got[i, 0] == pytest.approx((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum(), rel=1e-10)


# ------------------------------------------------------------------------------------------------
# multi-base traversals


@pytest.fixture(scope="module")
def multi_base_grid(images):
    from core.perturb import SetSlant, SetThickness, perturb_image

    steps = 5
    bases = [images[1500 + 7], images[3500 + 11], images[4000 + 3]]   # a '3', a '7', an '8'
    return np.stack([np.stack([
        [perturb_image(b, SetThickness(t)) for t in np.linspace(1.5, 3.5, steps)],
        [perturb_image(b, SetSlant(s)) for s in np.linspace(-0.4, 0.4, steps)],
        [b] * steps,
    ]) for b in bases])


def test_multi_base_effects_with_intervals_and_reference_units(multi_base_grid, metrics):
    values = np.linspace(-2, 2, 5)
    eff = traversal_effects(multi_base_grid, values=values, reference_metrics=metrics)
    assert eff.n_bases == 3 and eff.per_step.index.names == ["base", "latent", "step"]
    assert eff.units == "reference standard deviations per latent unit"
    sd = metrics[list(DIAGNOSTIC_METRICS)].std()
    # thickness goes 1.5 -> 3.5 px over 4 latent units: about 0.5 px per unit
    assert 0.3 < eff.slope.loc[0, "thickness"] < 0.7
    assert eff.table.loc[0, "thickness"] == pytest.approx(eff.slope.loc[0, "thickness"] / sd["thickness"])
    np.testing.assert_allclose(eff.slope_sd.to_numpy(), eff.table.to_numpy(), rtol=1e-12, atol=1e-15)
    # per base: the mean and the t interval over the 3 bases
    pb = eff.per_base["slope"][:, 0, 1] / sd["thickness"]
    half = stats.t.ppf(0.975, 2) * pb.std(ddof=1) / np.sqrt(3)
    assert eff.ci_low.loc[0, "thickness"] == pytest.approx(pb.mean() - half)
    assert eff.ci_high.loc[0, "thickness"] == pytest.approx(pb.mean() + half)
    assert eff.sign_agreement.loc[0, "thickness"] == 1.0 and eff.sign_agreement.loc[1, "slant"] == 1.0
    assert eff.ci_low.loc[1, "slant"] > 0
    assert (eff.table.loc[2] == 0).all() and eff.sign_agreement.loc[2].isna().all()
    assert eff.strongest["thickness"] == [0] and eff.strongest["slant"] == [1]
    # the same analysis by Spearman, without measuring again
    rho = eff.with_method("spearman")
    assert rho.method == "spearman" and rho.table.loc[1, "slant"] > 0.9
    assert rho.strongest == eff.strongest and rho.per_step is eff.per_step


def test_strongest_reports_ties_as_ties():
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([range(2), range(4), range(5)], names=["base", "latent", "step"])
    per_step = pd.DataFrame(rng.normal(size=(40, 6)), index=idx, columns=list(METRICS))
    ramp = np.tile(np.arange(5.0), 2)
    for lat in (1, 3):   # two latents with the same, largest effect on slant
        per_step.loc[(slice(None), lat, slice(None)), "slant"] = 0.1 * ramp
    per_step.loc[(slice(None), 0, slice(None)), "slant"] = 0.05 * ramp
    per_step.loc[(slice(None), 2, slice(None)), "slant"] = 0.0
    eff = traversal_effects(per_step, method="spearman")
    assert eff.strongest["slant"] == [1, 3]
    assert "slant ← latents 1 = 3 (tie)" in eff.strongest_text()
    # Spearman is 1 for latents 0, 1 and 3 alike; the effect size tells 0 apart
    assert eff.table.loc[[0, 1, 3], "slant"].tolist() == [1.0, 1.0, 1.0]


def test_traversal_inputs_are_checked(multi_base_grid):
    with pytest.raises(ValueError, match="one latent value per step"):
        traversal_effects(measure_traversal(multi_base_grid[:1]), values=[0, 1])
    with pytest.raises(ValueError, match="method"):
        traversal_effects(np.zeros((2, 3, 28, 28)), method="pearson")
    with pytest.raises(ValueError, match="MultiIndex"):
        traversal_effects(pd.DataFrame({"slant": [1.0, 2.0]}))


def test_discretise_matches_histogram_edges_per_column(metrics):
    from core.analysis import discretise

    x = np.column_stack([metrics.to_numpy(), np.ones(len(metrics)), np.arange(len(metrics)) % 7])
    for bins in (20, 7):
        loop = np.column_stack([
            np.clip(np.digitize(x[:, k], np.histogram_bin_edges(x[:, k], bins)[1:-1]), 0, bins - 1)
            for k in range(x.shape[1])])
        np.testing.assert_array_equal(discretise(x, bins), loop)
    assert discretise(x[:, :2], "auto").max() > 0


def test_tiny_p_values_are_never_printed_as_denormals(metrics):
    x = metrics.iloc[0:2000:2].copy()
    x["thickness"] += 5.0                                   # every sample far thicker
    rep = compare_report(x, metrics.iloc[1:2000:2], n_permutations=99)
    ks = rep.distances.set_index("metric").loc["thickness", "ks_p_value"]
    assert ks < 1e-300                                      # what scipy returns: 0 or a denormal
    text = rep.to_text() + rep.to_html()
    assert "e-324" not in text and "e-323" not in text and "< 1e-300" in text


def test_uncached_permutations_give_the_same_p(metrics, monkeypatch):
    import core.analysis.mmd as mmd_module

    cols = list(DIAGNOSTIC_METRICS)
    x, y = metrics.iloc[0:1500:10][cols], metrics.iloc[3:1500:10][cols]   # 150 vs 150, labels 0-2
    cached = mmd_test(x, y, linear=False, seed=4, n_permutations=499)
    monkeypatch.setattr(mmd_module, "_KERNEL_CACHE_N", 10)            # force block recomputation
    blocks = mmd_test(x, y, linear=False, seed=4, n_permutations=499, chunksize=64)
    assert blocks.mmd2 == pytest.approx(cached.mmd2, rel=1e-9)
    assert blocks.p_value == pytest.approx(cached.p_value, abs=2 / 500)   # same permutations; float32 ties aside


def test_compare_report_says_what_is_wrong_with_its_input(metrics):
    with pytest.raises(ValueError, match=r"no column\(s\) \['slant'\]"):
        compare_report(metrics.drop(columns="slant"), metrics)
    with pytest.raises(ValueError, match="3 labels for 100 rows"):
        compare_report(metrics.iloc[:100], metrics, sample_labels=[1, 2, 3])
    with pytest.raises(ValueError, match="at least 4 measurable digits"):
        compare_report(metrics.iloc[:3], metrics)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        compare_report(metrics.to_numpy(), metrics)


# ------------------------------------------------------------------------------------------------
# what a comparison computes from the reference alone: once per reference content


def test_content_key_follows_content_not_identity():
    from core.analysis._common import content_key

    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert content_key(a) == content_key(a.copy()) == content_key(np.asfortranarray(a))
    assert content_key(a) != content_key(a.astype(np.int64))  # same values, other dtype
    assert content_key(a) != content_key(a.reshape(4, 3))  # same bytes, other shape
    b = a.copy()
    b[2, 3] += 1
    assert content_key(a) != content_key(b)
    df = pd.DataFrame(a[:, :2].astype(float), columns=["x", "y"])
    assert content_key(df, 1) != content_key(df.rename(columns={"y": "z"}), 1)  # names are content too
    assert content_key(df, 1) != content_key(df, 2)


def test_reference_shares_are_computed_once_per_content(images, monkeypatch):
    from core.analysis import quality

    ref = images[:600]
    quality._REFERENCE_SHARES.clear()
    expected = {k: float(v.mean()) for k, v in quality.quality_flags(ref).items()}
    calls = []
    real = quality.quality_flags
    monkeypatch.setattr(quality, "quality_flags", lambda x: calls.append(len(x)) or real(x))
    first = quality.reference_shares(ref)
    assert first == expected
    first["blank"] = 99.0  # the caller's copy: the cache keeps its own
    assert quality.reference_shares(ref.copy()) == expected  # equal content, another array: a hit
    assert calls == [600]
    thick = ref.copy()
    thick[0] = 255  # one frame turned to full ink changes the content, and the shares
    assert quality.reference_shares(thick) != expected and calls == [600, 600]
    # the report reads them as before: the samples' flags beside the reference's shares
    rep = quality.sample_quality(images[600:700], reference_images=ref)
    assert rep.shares["reference_share"].tolist() == [expected[k] for k in quality.QUALITY_FLAGS]
    assert calls == [600, 600, 100]  # the samples flagged, the reference not again


def test_held_out_baseline_is_computed_once_per_reference(metrics, monkeypatch):
    from core.analysis import comparison

    comparison._BASELINES.clear()
    calls = []
    real = comparison._baseline_distances
    monkeypatch.setattr(comparison, "_baseline_distances", lambda *a: calls.append(1) or real(*a))
    ref = metrics.iloc[::2].reset_index(drop=True)
    d1, source = comparison._baseline(ref, None, 300, 0, 200)
    d1.loc[0, "wasserstein"] = -1.0  # the caller's copy
    d2, source2 = comparison._baseline(ref.copy(), None, 300, 0, 200)
    assert len(calls) == 1 and source2 == source and d2.loc[0, "wasserstein"] >= 0
    pd.testing.assert_frame_equal(d2, real(ref, None, 300, 0, 200)[0])  # what the uncached path gives
    comparison._baseline(ref, None, 301, 0, 200)  # another sample count, seed or reference: computed
    comparison._baseline(ref, None, 300, 1, 200)
    comparison._baseline(ref.iloc[1:], None, 300, 0, 200)
    assert len(calls) == 4
    comparison._baseline(ref, None, 300, np.random.default_rng(0), 200)  # a generator's stream: never kept
    comparison._baseline(ref, None, 300, np.random.default_rng(0), 200)
    assert len(calls) == 6
