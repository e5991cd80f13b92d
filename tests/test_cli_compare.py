"""``morpho compare`` and ``morpho traverse`` (issue 12 items 2, 5, 7): every reference form, inputs checked
before measuring, reports written in the format of their extension; multi-base traversals from a file or a
decoder. Real digits from the bundled sample; a PCA decoder fitted on them."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.measure
from core.cli import main
from core.io import load_idx

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def mnist():
    return load_idx(ASSETS / "train-images-idx3-ubyte.gz"), load_idx(ASSETS / "train-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def released():
    return pd.read_csv(ASSETS / "train-morpho.csv", index_col="index")


@pytest.fixture
def samples(tmp_path, mnist):
    """120 real digits (every 41st: all classes) with labels, as a model's .npz output."""
    images, labels = mnist
    pick = np.arange(7, 5000, 41)[:120]
    path = tmp_path / "samples.npz"
    np.savez(path, images=images[pick], labels=labels[pick])
    return path, pick


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.external = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and re.match(r"(https?:)?//", v):
                self.external.append(v)


def _valid_html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    assert "html" in checker.tags and "table" in checker.tags and "svg" in checker.tags
    assert checker.external == []  # standalone: opens offline
    return text


def _no_measuring(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("measured before every input was checked")
    monkeypatch.setattr(core.measure, "measure_batch", refuse)


# ---- compare --reference in every form ------------------------------------------------------------------

def test_reference_npz_with_labels(samples, mnist, tmp_path, capsys):
    path, pick = samples
    images, labels = mnist
    ref_pick = np.arange(3, 5000, 17)[:250]
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=images[ref_pick], labels=labels[ref_pick])
    out = tmp_path / "report.json"
    assert main(["compare", str(path), "--reference", str(ref), "-o", str(out), "--workers", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "Samples: 120   reference: 250" in text and "not distinguishable" in text
    report = json.loads(out.read_text())
    assert report["n_samples"] == 120 and report["n_reference"] == 250
    assert report["per_label"] is not None and len(report["per_label"]) == 10  # both sides' labels were used
    assert "ref.npz" in report["provenance"]["reference"]
    assert report["provenance"]["reference metrics"].startswith("measured here")


def test_reference_folder_uses_its_released_table(samples, released, tmp_path, monkeypatch, capsys):
    path, pick = samples
    sample_table = tmp_path / "samples-morpho.csv"  # the samples pre-measured: nothing is measured at all
    released.iloc[pick].reset_index(drop=True).assign(label=np.load(path)["labels"]).to_csv(sample_table)
    _no_measuring(monkeypatch)
    out = tmp_path / "r.html"
    assert main(["compare", str(sample_table), "--reference", str(ASSETS), "-o", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "reference: 5000" in text and "Per-label" in text
    html = _valid_html(out)
    assert "train-morpho.csv" in html  # provenance: the released table of the folder


def test_reference_metrics_csv_keeps_its_labels(samples, released, mnist, tmp_path, capsys):
    path, _ = samples
    table = released.reset_index(drop=True).assign(label=mnist[1])
    thin = table[table["label"].isin([1, 7])].iloc[::2]  # a reference of ones and sevens only
    ref = tmp_path / "ones-and-sevens.csv"
    thin.to_csv(ref, index=False)
    out = tmp_path / "r.json"
    assert main(["compare", str(path), "--reference", str(ref), "-o", str(out), "--workers", "1", "-q"]) == 0
    report = json.loads(out.read_text())
    per_label = {row["label"]: row for row in report["per_label"]}
    assert set(per_label) >= {1, 7}  # the labels of the CSV were kept and matched with the samples'
    assert per_label[1]["n_reference"] == int((thin["label"] == 1).sum())
    assert report["differs"]  # all digits vs ones and sevens only
    assert "label" in report["provenance"]["reference"]


def test_missing_or_bad_inputs_fail_before_measuring(samples, tmp_path, monkeypatch, capsys):
    path, _ = samples
    _no_measuring(monkeypatch)
    assert main(["compare", str(path), "--reference", str(tmp_path / "nowhere"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "nowhere: no such file or folder" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["compare", str(path), "--reference", str(bad), "-q"]) == 1
    assert "bad.csv" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "none.npy"), "-q"]) == 1
    assert "none.npy" in capsys.readouterr().err
    assert main(["compare", str(path), "-o", str(tmp_path / "no-such-folder" / "r.html"), "-q"]) == 1
    assert "output folder does not exist" in capsys.readouterr().err
    existing = tmp_path / "r.json"
    existing.write_text("precious")
    assert main(["compare", str(path), "-o", str(existing), "-q"]) == 1
    assert "--force" in capsys.readouterr().err and existing.read_text() == "precious"
    assert main(["compare", str(path), "-o", str(tmp_path / "r.pdf"), "-q"]) == 2


def test_json_to_stdout(samples, released, tmp_path, capsys):
    path, pick = samples
    table = tmp_path / "s.csv"
    released.iloc[pick].to_csv(table)  # an index column that is not 0..n-1 is fine for a samples table
    assert main(["compare", str(table), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "morpho-mnist comparison report" and report["n_samples"] == 120


# ---- traverse: multi-base traversals --------------------------------------------------------------------

D = 6


@pytest.fixture(scope="module")
def pca(mnist):
    """A PCA decoder fitted on the bundled digits: codes (N, 6) in prior units -> images (N, 28, 28)."""
    x = mnist[0][::2].reshape(-1, 784).astype(np.float64) / 255
    mean = x.mean(0)
    xc = x - mean
    var, vec = np.linalg.eigh(xc.T @ xc / len(x))  # ascending: the last D are the principal components
    comp = (vec[:, ::-1][:, :D] * np.sqrt(np.clip(var[::-1][:D], 0, None))).T  # one prior sd per latent unit

    def decode(z):
        return np.clip(mean + np.asarray(z, dtype=np.float64) @ comp, 0, 1).reshape(-1, 28, 28)
    decode.latent_dim = D
    return decode


@pytest.fixture
def pca_module(pca, tmp_path, monkeypatch):
    """The decoder importable as ``pca_decoder_for_test:decode`` (the --decoder package.module:function form)."""
    import sys
    import types
    mod = types.ModuleType("pca_decoder_for_test")
    mod.decode = pca
    monkeypatch.setitem(sys.modules, "pca_decoder_for_test", mod)
    return "pca_decoder_for_test:decode"


def test_traverse_multi_base_grid_file(pca, tmp_path, capsys):
    from core.decoders import traversal_values, traverse
    codes = np.random.default_rng(1).standard_normal((5, D))
    grid = traverse(pca, codes, steps=5)
    assert grid.shape == (5, D, 5, 28, 28)
    path = tmp_path / "grid.npz"
    np.savez(path, images=grid, values=traversal_values(2.0, 5))
    out = tmp_path / "effects.json"
    assert main(["traverse", str(path), "-o", str(out), "--workers", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "mean over 5 base codes [95% confidence interval]" in text
    assert "Strongest latent per metric" in text
    assert re.search(r"[+-][0-9.]+ \[[+-][0-9.e-]+, [+-][0-9.e-]+\] \d+%", text)  # effect [CI] agreement
    report = json.loads(out.read_text())
    assert report["n_bases"] == 5 and report["values_known"]
    assert report["units"] == "reference standard deviations per latent unit"
    for metric, latents in report["strongest"].items():
        col = {int(k): abs(v) for k, v in report["slope"][metric].items()}
        assert col[latents[0]] == max(col.values())  # the strongest is the largest mean effect


def test_traverse_from_a_decoder_agrees_with_the_saved_grid(pca_module, tmp_path, capsys):
    grid = tmp_path / "g.npz"
    html = tmp_path / "t.html"
    assert main(["traverse", "--decoder", pca_module, "--bases", "3", "--steps", "5", "--latents", "1-3",
                 "--save-grid", str(grid), "-o", str(html), "--workers", "1", "-q"]) == 0
    first = capsys.readouterr().out
    saved = np.load(grid)
    assert saved["images"].shape == (3, 3, 5, 28, 28) and list(saved["latents"]) == [1, 2, 3]
    assert saved["codes"].shape == (3, D)
    _valid_html(html)
    assert main(["traverse", str(grid), "--workers", "1", "-q"]) == 0
    again = capsys.readouterr().out
    # same effects from the file (latents renumbered 0..2 in the file, values stored)
    assert first.splitlines()[3].split()[1:] == again.splitlines()[3].split()[1:]


def test_traverse_inputs_checked_before_decoding(pca_module, tmp_path, monkeypatch, capsys):
    _no_measuring(monkeypatch)
    assert main(["traverse", "--decoder", pca_module, "--latents", "9", "-q"]) == 2
    assert "latents 0..5" in capsys.readouterr().err
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((4, D + 1)))
    assert main(["traverse", "--decoder", pca_module, "--codes", str(codes), "-q"]) == 1
    assert "codes of shape (4, 7)" in capsys.readouterr().err
    assert main(["traverse", "--decoder", pca_module, "--reference", str(tmp_path / "nowhere"), "-q"]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert main(["traverse", "--decoder", "no_such_module_xyz:decode", "-q"]) == 1
    assert "no_such_module_xyz" in capsys.readouterr().err
    assert main(["traverse", "-q"]) == 2
    assert "GRID" in capsys.readouterr().err


def test_compare_samples_drawn_from_a_decoder(pca_module, tmp_path, monkeypatch, capsys):
    out = tmp_path / "pca.json"
    assert main(["compare", "--decoder", pca_module, "--n", "200", "--seed", "3", "--reference", str(ASSETS),
                 "-o", str(out), "--workers", "1", "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["n_samples"] == 200
    assert "decoder" in report["provenance"]["samples"] and "seed 3" in report["provenance"]["samples"]
    assert report["differs"]  # a 6-component PCA's blurry digits are not MNIST's
    capsys.readouterr()
    _no_measuring(monkeypatch)
    assert main(["compare", "--decoder", pca_module, "--reference", str(tmp_path / "nowhere"), "-q"]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert main(["compare", str(out), "--decoder", pca_module, "-q"]) == 2
    assert "either SAMPLES or --decoder" in capsys.readouterr().err
