"""core.analysis on real MNIST digits (the bundled 5,000-digit sample in assets/mnist-5k)."""
from __future__ import annotations

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
