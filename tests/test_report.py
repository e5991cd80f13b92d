"""core.report: the comparison and traversal reports as standalone HTML and strict JSON files."""
from __future__ import annotations

import html
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.analysis import DIAGNOSTIC_METRICS, METRICS, compare_report, traversal_effects

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def metrics():
    return pd.read_csv(ASSETS / "train-morpho.csv")[list(METRICS)]


@pytest.fixture(scope="module")
def labels():
    return np.repeat(np.arange(10), 500)


@pytest.fixture(scope="module")
def report(metrics, labels):
    """Samples: every 8th digit with thicker strokes; reference: 1,250 other digits."""
    s_idx = np.arange(0, 5000, 8)
    r_idx = np.arange(1, 5000, 4)
    samples = metrics.iloc[s_idx].reset_index(drop=True).copy()
    samples["thickness"] *= 1.2
    return compare_report(samples, metrics.iloc[r_idx], sample_labels=labels[s_idx],
                          reference_labels=labels[r_idx], n_permutations=999,
                          provenance={"samples": "bundled sample, every 8th digit, thickness x 1.2",
                                      "reference": "bundled sample, 1,250 other digits"})


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [v or "" for _, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _parse(text):
    p = _Collect()
    p.feed(text)
    p.close()
    return p


def test_comparison_html_is_standalone_and_says_the_verdict(report, tmp_path):
    path = tmp_path / "report.html"
    text = report.to_html(path)
    assert path.read_text(encoding="utf-8") == text
    p = _parse(text)
    body = " ".join(p.text)
    assert report.differs and "differ from the reference" in report.verdict
    assert report.verdict in html.unescape(body)
    # offline: no external URL anywhere, no script, no linked resources
    assert "http" not in text.lower() and "//" not in " ".join(p.attrs)
    assert "script" not in p.tags and "link" not in p.tags and "img" not in p.tags
    assert p.tags.count("svg") == 6                                  # one histogram per metric
    for needed in ("Per label", "Per-metric distances", "Settings", "Data provenance", "Versions",
                   "every 8th digit", "numpy", "quadratic-time (verdict)", "linear-time"):
        assert needed in html.unescape(body), needed
    assert "4.941e-324" not in text and "nan" not in body.lower().split()


def test_comparison_json_round_trips(report, tmp_path):
    path = tmp_path / "report.json"
    text = report.to_json(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d == json.loads(text)
    assert d["verdict"] == report.verdict and d["differs"] is True
    assert d["verdict_test"] == "quadratic" and d["tests"]["verdict"]["test"] == "quadratic-time"
    assert d["tests"]["quadratic"]["n_x"] == 625 and d["tests"]["linear"]["n_y"] == 1250
    assert d["tests"]["quadratic"]["n_permutations"] == report.mmd_quadratic.n_permutations
    assert len(d["distances"]) == 6 * 11 and len(d["per_label"]) == 10
    thick = [r for r in d["distances"] if r["label"] == "all" and r["metric"] == "thickness"][0]
    assert thick["sample_mean"] == pytest.approx(report.sample_metrics["thickness"].mean())
    assert d["settings"]["columns"] == list(DIAGNOSTIC_METRICS)


def test_writes_are_atomic_and_errors_clear(report, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("previous report")
    import core.report as rp

    def boom(_):
        raise RuntimeError("rendering failed")
    monkeypatch.setattr(rp, "comparison_html", boom)
    with pytest.raises(RuntimeError):
        report.to_html(path)
    assert path.read_text() == "previous report"
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.to_json(tmp_path / "no_such_folder" / "r.json")
    with pytest.raises(IsADirectoryError, match="give a file name"):
        report.to_json(tmp_path)
    report.to_json(path)          # replaces the old file whole
    assert json.loads(path.read_text())["verdict"] == report.verdict
    assert [f for f in os.listdir(tmp_path) if f.endswith(".part")] == []


def _per_step(n_bases=4, steps=5):
    """Per-step metrics of a synthetic multi-base traversal: latent 0 thickens, latent 1 slants."""
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([range(n_bases), range(3), range(steps)], names=["base", "latent", "step"])
    df = pd.DataFrame({m: rng.normal(10, 0.01, len(idx)) for m in METRICS}, index=idx)
    ramp = np.tile(np.linspace(-1, 1, steps), n_bases)
    df.loc[(slice(None), 0, slice(None)), "thickness"] = 2.5 + 0.4 * ramp
    df.loc[(slice(None), 1, slice(None)), "slant"] = 0.1 + 0.2 * ramp
    return df


def test_traversal_html_and_json(metrics, tmp_path):
    eff = traversal_effects(_per_step(), values=np.linspace(-2, 2, 5), reference_metrics=metrics,
                            provenance={"grid": "synthetic per-step table"})
    text = eff.to_html(tmp_path / "t.html")
    p = _parse(text)
    body = html.unescape(" ".join(p.text))
    assert "http" not in text.lower() and "script" not in p.tags
    assert "thickness ← latent 0" in body and "slant ← latent 1" in body
    assert p.tags.count("svg") == 1 + len(DIAGNOSTIC_METRICS)          # heatmap + one plot per metric
    assert "confidence interval" in body and "synthetic per-step table" in body
    d = json.loads(eff.to_json(tmp_path / "t.json"))
    assert d["n_bases"] == 4 and d["strongest"]["thickness"] == [0]
    assert d["table"]["thickness"]["0"] == pytest.approx(eff.table.loc[0, "thickness"])
    assert d["units"] == "reference standard deviations per latent unit"
    assert len(d["per_step"]) == 4 * 3 * 5
    sp = json.loads(eff.with_method("spearman").to_json())
    assert sp["method"] == "spearman" and sp["table"]["slant"]["1"] == pytest.approx(1.0)
