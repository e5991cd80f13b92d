"""Explorer data layer and shared state, on real MNIST digits from the bundled sample and real files."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from core.io import load_idx, save_idx
from core.measure import measure_batch
from explorer.data import (METRICS, SAMPLE_PATH, DataError, cache_dir, export_dataset, load, load_sample)
from explorer import data as data_module
from explorer.state import ExplorerState


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own metrics cache (measured metrics are kept there, never beside the data)."""
    monkeypatch.setenv("MORPHO_EXPLORER_CACHE", str(tmp_path / "explorer-cache"))


def write_idx_folder(folder, images, labels, split="train", gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    save_idx(images, folder / f"{split}-images-idx3-ubyte{ext}")
    if labels is not None:
        save_idx(labels.astype(np.uint8), folder / f"{split}-labels-idx1-ubyte{ext}")
    return folder


def test_sample_is_real_mnist_with_released_metrics(sample):
    assert len(sample) == 5000
    assert sample.images.dtype == np.uint8 and sample.images.shape == (5000, 28, 28)
    assert np.bincount(sample.labels).min() > 400  # all ten digits, sorted by label
    assert (np.diff(sample.labels) >= 0).all()
    table = pd.read_csv(SAMPLE_PATH / "train-morpho.csv")
    assert list(table.columns) == ["index", *METRICS]
    # The stored metrics are what core measures on these digits (released mode).
    fresh = measure_batch(sample.images[::500], progress=False)
    np.testing.assert_allclose(sample.metrics.iloc[::500].to_numpy(), fresh.to_numpy(), rtol=1e-9)


def test_idx_folder_measures_and_caches_metrics(sample, tmp_path):
    pick = np.r_[0:6, 2500:2506]
    folder = write_idx_folder(tmp_path / "mnist", sample.images[pick[:12]], sample.labels[pick[:12]])
    write_idx_folder(folder, sample.images[4990:], sample.labels[4990:], split="t10k", gz=False)
    seen = []
    ds = load(folder, progress=lambda d, t: seen.append((d, t)))
    assert len(ds) == 22 and ds.parts == [("train", 12), ("t10k", 10)]
    np.testing.assert_array_equal(ds.labels[-10:], sample.labels[4990:])
    np.testing.assert_allclose(ds.metrics.iloc[-10:].to_numpy(), sample.metrics.iloc[4990:].to_numpy())
    assert seen and seen[-1][0] == seen[-1][1]
    # Nothing written into the data folder; the metrics are kept in the cache.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"])
    cached = sorted(cache_dir().glob("*/*-morpho.csv"))
    assert sorted(p.name for p in cached) == ["t10k-morpho.csv", "train-morpho.csv"]
    assert list(pd.read_csv(cached[0]).columns) == ["index", *METRICS]
    # Second opening (a new process: the shared copy is gone) reads the cache instead of measuring again.
    mtimes = [p.stat().st_mtime_ns for p in cached]
    data_module._SHARED.clear()
    again = load(folder, progress=lambda d, t: pytest.fail("measured again"))
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    np.testing.assert_allclose(again.metrics.to_numpy(), ds.metrics.to_numpy())
    assert again.metrics_source == "measured earlier (explorer cache)"
    # A changed file is measured again, never given stale metrics.
    write_idx_folder(folder, sample.images[4980:4990], sample.labels[4980:4990], split="t10k", gz=False)
    changed = load(folder)
    np.testing.assert_allclose(changed.metrics.iloc[-10:].to_numpy(), sample.metrics.iloc[4980:4990].to_numpy())


def test_morpho_mnist_folder_uses_csv_and_pert(sample, tmp_path):
    n = 30
    folder = tmp_path / "morpho"
    export_dataset(folder, sample.images[:n], sample.labels[:n], sample.metrics.iloc[:n],
                   perturbations=np.arange(n) % 5)
    ds = load(folder, progress=lambda d, t: pytest.fail("metrics present, nothing to measure"))
    np.testing.assert_array_equal(ds.perturbations, np.arange(n) % 5)
    np.testing.assert_array_equal(ds.images, sample.images[:n])
    np.testing.assert_allclose(ds.metrics.to_numpy(), sample.metrics.iloc[:n].to_numpy())
    assert load_idx(folder / "train-images-idx3-ubyte.gz").shape == (n, 28, 28)


def test_npy_and_npz_arrays(sample, tmp_path):
    floats = sample.images[100:108].astype(np.float32) / 255
    np.save(tmp_path / "digits.npy", floats)
    ds = load(tmp_path / "digits.npy")
    np.testing.assert_array_equal(ds.images, sample.images[100:108])
    assert ds.labels is None and not (tmp_path / "digits-morpho.csv").exists()
    assert [p.name for p in cache_dir().glob("*/*.csv")] == ["digits-morpho.csv"]
    np.savez(tmp_path / "model.npz", x=sample.images[:5].reshape(5, 784), y=sample.labels[:5])
    ds = load(tmp_path / "model.npz")
    assert ds.images.shape == (5, 28, 28) and list(ds.labels) == list(sample.labels[:5])


@pytest.mark.parametrize("case, message", [
    ("empty", "no MNIST digits here"),
    ("corrupt", "corrupt images IDX file"),
    ("truncated_gz", "corrupt images IDX file"),
    ("wrong_shape", "images of 20x20 pixels"),
    ("pickled", "never loaded"),
    ("label_count", "labels of shape (3,) for 4 digits"),
    ("missing", "no such file or folder"),
    ("text", "a text file starting with '1,2,3'"),
    ("bad_csv", "lacks column(s) thickness"),
])
def test_bad_input_gives_clear_message(sample, tmp_path, case, message):
    target = tmp_path / case
    if case == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("no digits")
    elif case == "corrupt":
        target.mkdir()
        (target / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 7)
    elif case == "truncated_gz":
        target.mkdir()
        data = gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c" + bytes(100))
        (target / "t10k-images-idx3-ubyte.gz").write_bytes(data[:-9])
    elif case == "wrong_shape":
        target = tmp_path / "wrong.npy"
        np.save(target, np.zeros((4, 20, 20), np.uint8))
    elif case == "pickled":
        target = tmp_path / "objects.npy"
        np.save(target, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif case == "label_count":
        write_idx_folder(target, sample.images[:4], sample.labels[:3])
    elif case == "text":
        target = tmp_path / "digits.txt"
        target.write_text("1,2,3")
    elif case == "bad_csv":
        write_idx_folder(target, sample.images[:4], sample.labels[:4])
        sample.metrics.iloc[:4].drop(columns="thickness").to_csv(target / "train-morpho.csv")
    with pytest.raises(DataError) as info:
        load(target)
    text = str(info.value)
    assert message in text
    assert str(target.name) in text  # says where


def test_state_filters_sort_and_scatter_selection(sample):
    s = ExplorerState(dataset=sample)
    assert len(s.selection) == 5000
    s.labels = [1, 7]
    assert set(np.unique(sample.labels[s.selection])) == {1, 7}
    s.ranges = {"thickness": [2.0, 3.0]}
    th = sample.metrics["thickness"].to_numpy()[s.selection]
    assert th.min() >= 2.0 and th.max() <= 3.0
    expected = np.flatnonzero(np.isin(sample.labels, [1, 7]) & (sample.metrics["thickness"].between(2, 3)))
    np.testing.assert_array_equal(np.sort(s.selection), expected)
    s.sort_by, s.descending = "slant", True
    assert (np.diff(sample.metrics["slant"].to_numpy()[s.selection]) <= 0).all()
    s.scatter_selection = expected[:7]
    assert sorted(s.selection) == sorted(expected[:7])
    s.reset_filters()
    assert len(s.selection) == 5000


def test_studio_batch_is_reproducible(sample, tmp_path):
    from explorer.perturbing import perturb_batch, perturbation_specs

    specs = perturbation_specs()
    assert {"thinning", "thickening", "swelling", "fracture", "set_thickness", "set_slant", "set_width"} <= set(specs)
    imgs = sample.images[[3, 1200, 2600]]
    a, ma = perturb_batch(imgs, specs["fracture"], {"num_frac": 2}, seed=5)
    b, mb = perturb_batch(imgs, specs["fracture"], {"num_frac": 2}, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, imgs)
    thick, mt = perturb_batch(imgs, specs["thickening"], {"amount": 1.0}, seed=0)
    assert (mt["thickness"].to_numpy() > sample.metrics["thickness"].to_numpy()[[3, 1200, 2600]]).all()


def test_data_opens_when_the_cache_cannot_take_the_metrics(sample, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MORPHO_EXPLORER_CACHE", str(blocked))
    folder = write_idx_folder(tmp_path / "data", sample.images[10:20], sample.labels[10:20])
    ds = load(folder)
    assert any("could not keep the metrics" in note for note in ds.notes)
    assert not any(str(tmp_path) in note for note in ds.notes)  # notes are shown to users: no server paths
    assert ds.metrics_source == "measured here (released mode)" and "measured here" in ds.description
    np.testing.assert_allclose(ds.metrics.to_numpy(), sample.metrics.iloc[10:20].to_numpy())
