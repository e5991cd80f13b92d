"""From verdict to answer: effect sizes with a real-data baseline, intervals, resolution and sample quality.

Pinned on real digits (the bundled 5,000 MNIST training digits): a model-like shift (digits thickened by
the Thickening perturbation) is read as bigger than real digits are; real held-out digits are not.
"""
import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core import io
from core.analysis import QUADRATIC_MAX_N, compare_report
from core.analysis.quality import quality_flags, sample_quality
from core.analysis import resolution as resolution_module
from core.analysis.resolution import resolution, w1_sd_interval
from core.cli import main

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def data():
    images = io.load_idx(ASSETS / "train-images-idx3-ubyte.gz")
    labels = io.load_idx(ASSETS / "train-labels-idx1-ubyte.gz").astype(np.int64)
    metrics = pd.read_csv(ASSETS / "train-morpho.csv", index_col=0)
    order = np.random.default_rng(7).permutation(len(images))
    return images, labels, metrics, order[:400], order[400:]


@pytest.fixture(scope="module")
def thickened(data):
    from core.measure import measure_batch
    from core.perturb import Thickening, perturb_image
    images, _, _, held, _ = data
    out = np.stack([perturb_image(images[i], Thickening(amount=0.5)) for i in held])
    return out, measure_batch(out, workers=1)


def _report(data, sample_metrics, sample_labels=None, **kw):
    images, labels, metrics, held, ref = data
    return compare_report(sample_metrics.reset_index(drop=True), metrics.iloc[ref].reset_index(drop=True),
                          sample_labels=labels[held] if sample_labels is None else sample_labels,
                          reference_labels=labels[ref], **kw)


def test_real_held_out_digits_are_read_as_real(data):
    images, labels, metrics, held, ref = data
    rep = _report(data, metrics.iloc[held], sample_images=images[held], reference_images=images[ref])
    e = rep.effects
    assert list(e["metric"]) == ["area", "length", "thickness", "slant", "width", "height"]
    assert not e["beyond_baseline"].any(), e
    assert (e["ci_low"] <= e["w1_sd"]).all() and (e["w1_sd"] <= e["ci_high"]).all()
    assert (e["w1_sd"] < 0.3).all() and (e["baseline_sd"] < 0.3).all()
    assert "No metric is further from the reference than real held-out digits are" in rep.verdict
    assert "held-out" in rep.baseline_source and f"{len(held):,} of the {len(ref):,}" in rep.baseline_source
    assert not rep.quality.matters and "Sample quality" not in rep.verdict


def test_a_thickening_shift_is_read_as_bigger_than_real_digits(data, thickened):
    _, measured = thickened
    rep = _report(data, measured)
    e = rep.effects.set_index("metric")
    t = e.loc["thickness"]
    assert t["beyond_baseline"] and t["ci_low"] > 3 * t["baseline_sd"] and t["w1_sd"] > t["resolution_sd"]
    assert t["ci_low"] <= t["w1_sd"] <= t["ci_high"]
    assert rep.verdict.count("differs by") >= 1
    assert f"hickness differs by {t['w1_sd']:.2g} sd [{t['ci_low']:.2g}, {t['ci_high']:.2g}]" in rep.verdict
    assert f"real held-out digits: {t['baseline_sd']:.2g}" in rep.verdict
    assert f"this comparison resolves {t['resolution_sd']:.2g} sd" in rep.verdict
    # slant is untouched by a dilation: not read as beyond real digits
    assert not e.loc["slant", "beyond_baseline"]


def test_control_digits_are_the_baseline_when_given(data):
    images, labels, metrics, held, ref = data
    control = metrics.iloc[held[:200]]
    rep = _report(data, metrics.iloc[held[200:]], labels[held[200:]], control=control)
    assert rep.baseline_source.startswith("control digits (200)")
    assert (rep.baseline["n_control"] == 200).all()
    assert "real control digits:" in rep.verdict
    with pytest.raises(TypeError, match="control must be a pandas DataFrame"):
        _report(data, metrics.iloc[held], control=np.zeros((5, 6)), n_bootstrap=0)


def test_w1_interval_covers_the_true_shift(data):
    _, _, metrics, _, ref = data
    t = metrics["thickness"].to_numpy()[ref]
    sd = t.std(ddof=1)
    rng = np.random.default_rng(3)
    covered = 0
    for k in range(40):   # a pure shift of 0.5 sd: W1 of the populations is exactly 0.5 sd
        a = t[rng.integers(0, len(t), 500)] + 0.5 * sd
        b = t[rng.integers(0, len(t), 2000)]
        lo, hi = w1_sd_interval(a, b, rng=k)
        covered += lo <= 0.5 <= hi
    assert covered >= 34   # 95% nominal: at least 85% of 40


def test_resolution_is_the_shift_a_ks_test_detects_80_percent_of_the_time(data, monkeypatch):
    _, _, metrics, _, ref = data
    table = metrics.iloc[ref]
    res = resolution(table, 300, 2000, metrics=["thickness", "slant"]).set_index("metric")
    for m in ("thickness", "slant"):
        d = res.loc[m, "resolution_sd"]
        assert 0.1 < d < 0.6
        v = table[m].to_numpy()
        sd = v.std(ddof=1)
        rng = np.random.default_rng(11)

        def rate(shift):
            return np.mean([stats.ks_2samp(v[rng.integers(0, len(v), 300)] + shift * sd,
                                           v[rng.integers(0, len(v), 2000)]).pvalue < 0.01 for _ in range(150)])
        assert 0.6 <= rate(d) <= 0.95, (m, d)   # independent check with scipy's exact KS test
        assert rate(0.5 * d) < 0.6
    bigger = resolution(table, 1200, 2000, metrics=["thickness"])["resolution_sd"].iloc[0]
    assert bigger < res.loc["thickness", "resolution_sd"]   # more samples resolve smaller shifts
    simulations = []   # again, on a copy of the column: kept per content, not simulated twice
    simulate = resolution_module._simulated_resolution
    monkeypatch.setattr(resolution_module, "_simulated_resolution", lambda *a: simulations.append(a) or simulate(*a))
    again = resolution(table.copy(), 300, 2000, metrics=["thickness"])
    assert simulations == [] and again["resolution_sd"].iloc[0] == res.loc["thickness", "resolution_sd"]
    resolution(table, 300, 2001, metrics=["thickness"])   # other sizes: simulated
    assert len(simulations) == 1


def test_quality_flags_an_rbm_like_grey_frame(data):
    images, labels, metrics, held, ref = data
    real = images[held[:200]]
    grey = (90 + 0.6 * real).astype(np.uint8)        # mean-field-like: grey everywhere, the digit on top
    speck = real.copy()
    speck[:, 2, 20] = 255                            # a lone dot away from the stroke
    blank = np.zeros_like(real)
    flags = quality_flags(np.concatenate([grey[:1], speck[:1], blank[:1]]))
    assert flags.loc[0, "no_background"] and flags.loc[1, "speckle"] and flags.loc[2, "blank"]
    assert not flags.loc[1, ["blank", "no_background"]].any()
    q = sample_quality(grey, reference_images=images[ref])
    assert q.matters and q.shares.set_index("flag").loc["no_background", "share"] == 1.0
    from core.measure import measure_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grey_metrics = measure_batch(grey, workers=1)
    rep = _report(data, grey_metrics, labels[held[:200]], sample_images=grey, reference_images=images[ref])
    assert "Sample quality: 100.0% of samples: less than 50% of the frame is blank background" in rep.verdict
    assert sample_quality(real, reference_images=images[ref]).matters is False


def test_label_proportions_matter_only_when_they_differ(data):
    _, labels, _, held, ref = data
    assert not sample_quality(sample_labels=labels[held], reference_labels=labels[ref]).matters
    skew = np.concatenate([labels[held], np.ones(300, np.int64)])
    q = sample_quality(sample_labels=skew, reference_labels=labels[ref])
    assert q.matters and "label proportions differ" in q.findings[0] and q.label_distance > 0.1


def test_every_route_carries_baseline_interval_resolution_and_quality(data, thickened, tmp_path, capsys):
    images, labels, metrics, held, ref = data
    thick_images, measured = thickened
    rep = _report(data, measured, sample_images=thick_images, reference_images=images[ref])
    text = rep.to_text()
    assert "Effect sizes" in text and "resolves" in text and "Sample quality" in text and "95% low" in text
    d = json.loads(rep.to_json())
    assert d["answer"] == rep.answer and d["baseline_source"] == rep.baseline_source
    assert {r["metric"] for r in d["effects"]} == set(rep.effects["metric"])
    assert all("ci_low" in r and "ci_high" in r for r in d["distances"])
    assert d["resolution"][0]["resolution_sd"] > 0 and d["quality"]["shares"][0]["flag"] == "blank"
    html = rep.to_html()
    assert "<h2>Effect sizes</h2>" in html and "<h2>Sample quality</h2>" in html and "real digits (baseline)" in html
    # the CLI, on images: quality from the samples' pixels
    path = tmp_path / "thick.npz"
    np.savez(path, images=thick_images, labels=labels[held])
    out = tmp_path / "r.json"
    assert main(["compare", str(path), "-o", str(out), "--workers", "1", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "hickness differs by" in printed and "this comparison resolves" in printed
    report = json.loads(out.read_text())
    assert report["quality"]["n_samples"] == len(held) and report["effects"] and report["baseline"]


def test_cli_help_and_docs_state_the_verdict_rule_from_the_constant(capsys):
    assert main(["compare", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    n = f"{QUADRATIC_MAX_N:,}"
    assert f"at most {n} digits" in help_text and f"subsets of {n} per side" in help_text
    assert "alpha/2" in help_text and "1,500" not in help_text
    docs = " ".join((ROOT / "docs" / "cli.md").read_text().split())
    assert f"at most {n} digits" in docs and "alpha/2" in docs and "1,500" not in docs


def test_report_never_imports_analysis():
    tree = ast.parse((ROOT / "core" / "report.py").read_text())
    names = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [n for n in names if "analysis" in n], names
    code = "import sys, core.report; print('core.analysis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
