"""core.datasets: folder discovery, IDX streaming, atomic chunked writing and dataset generation, on real
MNIST digits from the bundled sample (assets/mnist-5k)."""
from __future__ import annotations

import gzip
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import datasets
from core.datasets import (DATASETS, INTERLEAVED, DatasetError, GenerateParams, IdxWriter, check_split, find_split,
                           find_splits, generate, iter_idx_chunks, map_ordered, output_paths, perturb_chunk)
from core.io import IDXError, load_idx, save_idx
from core.measure import measure_batch
from core.morpho import ImageMorphology
from core.perturb import Fracture, Swelling, Thickening, Thinning

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def mnist():
    """The bundled 5,000 real training digits and labels."""
    return load_idx(ASSETS / "train-images-idx3-ubyte.gz"), load_idx(ASSETS / "train-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory, mnist):
    """An MNIST_DIR of 20 train and 10 t10k real digits, every class present (the sample is sorted by label)."""
    images, labels = mnist
    folder = tmp_path_factory.mktemp("mnist")
    pick = np.arange(0, 5000, 167)[:30]
    save_idx(images[pick[:20]], folder / "train-images-idx3-ubyte.gz")
    save_idx(labels[pick[:20]], folder / "train-labels-idx1-ubyte.gz")
    save_idx(images[pick[20:]], folder / "t10k-images-idx3-ubyte")  # uncompressed names are found too
    save_idx(labels[pick[20:]], folder / "t10k-labels-idx1-ubyte")
    return folder


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_mnist):
    out = tmp_path_factory.mktemp("gen") / "seed5"
    generate(tiny_mnist, out, seed=5, chunksize=6, progress=False)
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- discovery ------------------------------------------------------------------------------------------

def test_find_split_and_splits(tiny_mnist):
    files = find_split(tiny_mnist, "train")
    assert files.images.name == "train-images-idx3-ubyte.gz" and files.labels.name == "train-labels-idx1-ubyte.gz"
    assert files.metrics is None and files.perturbations is None
    assert [f.split for f in find_splits(tiny_mnist)] == ["train", "t10k"]
    assert find_split(tiny_mnist, "t10k").images.name == "t10k-images-idx3-ubyte"
    assert check_split(find_split(tiny_mnist, "t10k")) == (10, (28, 28))


def test_find_split_errors_name_the_problem(tmp_path, mnist):
    with pytest.raises(DatasetError, match="no such folder"):
        find_split(tmp_path / "nope", "train")
    with pytest.raises(DatasetError, match="no train images"):
        find_split(tmp_path, "train")
    with pytest.raises(DatasetError, match="no IDX image file"):
        find_splits(tmp_path)
    save_idx(mnist[0][:5], tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match="has no label file"):
        find_split(tmp_path, "train")
    assert find_split(tmp_path, "train", require_labels=False).labels is None


def test_check_split_counts_disagree(tmp_path, mnist):
    images, labels = mnist
    save_idx(images[:12], tmp_path / "train-images-idx3-ubyte.gz")
    save_idx(labels[:11], tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="12 images but train-labels-idx1-ubyte.gz holds 11 labels"):
        check_split(find_split(tmp_path, "train"))
    save_idx(labels[:12], tmp_path / "train-labels-idx1-ubyte.gz")
    pd.DataFrame({"index": range(10), "area": 1.}).to_csv(tmp_path / "train-morpho.csv", index=False)
    with pytest.raises(DatasetError, match="train-morpho.csv has 10 rows"):
        check_split(find_split(tmp_path, "train"))


# ---- streaming ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x-images-idx3-ubyte.gz", "x-images-idx3-ubyte"])
def test_iter_idx_chunks_matches_load_idx(tmp_path, mnist, name):
    images = mnist[0][:53]
    save_idx(images, tmp_path / name)
    chunks = list(iter_idx_chunks(tmp_path / name, 10))
    assert [s for s, _ in chunks] == [0, 10, 20, 30, 40, 50]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), images)
    part = list(iter_idx_chunks(tmp_path / name, 4, start=17, stop=27))
    assert [s for s, _ in part] == [17, 21, 25]
    np.testing.assert_array_equal(np.concatenate([c for _, c in part]), images[17:27])


def test_iter_idx_chunks_truncated(tmp_path, mnist):
    save_idx(mnist[0][:20], tmp_path / "t-images-idx3-ubyte")
    data = (tmp_path / "t-images-idx3-ubyte").read_bytes()
    (tmp_path / "t-images-idx3-ubyte").write_bytes(data[:-300])
    with pytest.raises(IDXError, match="truncated data"):
        list(iter_idx_chunks(tmp_path / "t-images-idx3-ubyte", 8))


@pytest.mark.parametrize("name", ["w-images-idx3-ubyte.gz", "w-images-idx3-ubyte"])
def test_idx_writer_equals_save_idx(tmp_path, mnist, name):
    images = mnist[0][100:137]
    save_idx(images, tmp_path / ("ref-" + name))
    with IdxWriter(tmp_path / name, images.shape) as w:
        for s in range(0, len(images), 5):
            w.write(images[s:s + 5])
    assert (tmp_path / name).read_bytes() == (tmp_path / ("ref-" + name)).read_bytes()
    if name.endswith(".gz"):
        header = (tmp_path / name).read_bytes()[:10]
        assert header[4:8] == b"\0\0\0\0"  # gzip mtime 0: the same bytes whatever the time of day
        assert gzip.decompress((tmp_path / name).read_bytes())[:4] == bytes([0, 0, 8, 3])


def test_idx_writer_is_atomic(tmp_path, mnist):
    images = mnist[0][:10]
    target = tmp_path / "a-images-idx3-ubyte.gz"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError):
        with IdxWriter(target, images.shape) as w:
            w.write(images[:5])
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old content"
    w = IdxWriter(target, images.shape)
    w.write(images[:7])
    with pytest.raises(IDXError, match="7 items written, 10 declared"):
        w.close()
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-images-idx3-ubyte.gz"]


def _square(x, y=0):
    return x * x + y


def test_map_ordered_keeps_order_with_any_executor():
    tasks = [(i, 1) for i in range(23)]
    expected = [i * i + 1 for i in range(23)]
    assert list(map_ordered(_square, iter(tasks))) == expected
    with ThreadPoolExecutor(3) as ex:
        assert list(map_ordered(_square, iter(tasks), ex, max_pending=2)) == expected
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as ex:
        assert list(map_ordered(_square, iter(tasks), ex)) == expected


# ---- generation -----------------------------------------------------------------------------------------

def test_generate_layout(generated, tiny_mnist):
    expected = {str(p.relative_to(generated)) for p in output_paths(generated)}
    assert set(_tree(generated)) == expected
    assert len(expected) == 7 * 2 * 3 + 2 * 2 + 7
    for name in DATASETS + tuple(INTERLEAVED):
        for split, n in (("train", 20), ("t10k", 10)):
            images = load_idx(generated / name / f"{split}-images-idx3-ubyte.gz")
            assert images.shape == (n, 28, 28) and images.dtype == np.uint8
            np.testing.assert_array_equal(load_idx(generated / name / f"{split}-labels-idx1-ubyte.gz"),
                                          load_idx(find_split(tiny_mnist, split).labels))
            metrics = pd.read_csv(generated / name / f"{split}-morpho.csv")
            assert list(metrics.columns) == ["index", "area", "length", "thickness", "slant", "width", "height"]
            assert metrics["index"].tolist() == list(range(n))
        readme = (generated / name / "README.md").read_text()
        assert "seed 5" in readme and "morpho generate MNIST_DIR -o OUTDIR --seed 5" in readme


def test_generate_matches_the_paper_recipe(generated, tiny_mnist):
    """plain/thin/thic equal morph.downscale(...) of the paper's recipe, computed here independently; swel and
    frac equal the recipe with the per-digit generators; the metrics are measure_batch of the images."""
    for split, split_id in (("train", 0), ("t10k", 1)):
        raw = load_idx(find_split(tiny_mnist, split).images)
        out = {name: load_idx(generated / name / f"{split}-images-idx3-ubyte.gz") for name in DATASETS}
        for i, img in enumerate(raw):
            morph = ImageMorphology(img, .5, 4)
            np.testing.assert_array_equal(out["plain"][i], morph.downscale(morph.binary_image))
            np.testing.assert_array_equal(out["thin"][i], morph.downscale(Thinning(.7)(morph)))
            np.testing.assert_array_equal(out["thic"][i], morph.downscale(Thickening(1.)(morph)))
            swel = Swelling(3, 7, rng=np.random.default_rng([5, split_id, i, 3]))
            np.testing.assert_array_equal(out["swel"][i], morph.downscale(swel(morph)))
            frac = Fracture(num_frac=3, rng=np.random.default_rng([5, split_id, i, 4]))
            np.testing.assert_array_equal(out["frac"][i], morph.downscale(frac(morph)))
        for name in DATASETS:
            assert not (name != "plain" and np.array_equal(out[name], out["plain"]))
            table = pd.read_csv(generated / name / f"{split}-morpho.csv", index_col="index")
            expected = measure_batch(out[name], workers=1, progress=False)
            np.testing.assert_array_equal(table.to_numpy(), expected.to_numpy())


def test_generate_interleaving(generated):
    for split in ("train", "t10k"):
        for name, sources in INTERLEAVED.items():
            folder = generated / name
            pert = load_idx(folder / f"{split}-pert-idx1-ubyte.gz")
            codes = [datasets.PERT_CODES[s] for s in sources]
            assert set(np.unique(pert)) <= set(codes)
            images = load_idx(folder / f"{split}-images-idx3-ubyte.gz")
            metrics = pd.read_csv(folder / f"{split}-morpho.csv", index_col="index")
            for source in sources:
                src_images = load_idx(generated / source / f"{split}-images-idx3-ubyte.gz")
                src_metrics = pd.read_csv(generated / source / f"{split}-morpho.csv", index_col="index")
                rows = pert == datasets.PERT_CODES[source]
                np.testing.assert_array_equal(images[rows], src_images[rows])
                np.testing.assert_array_equal(metrics.to_numpy()[rows], src_metrics.to_numpy()[rows])
        # over 30 digits every source is chosen at least once (probability of a miss < 1e-5 for any seed)
    allp = np.concatenate([load_idx(generated / "local" / f"{s}-pert-idx1-ubyte.gz") for s in ("train", "t10k")])
    assert set(np.unique(allp)) == {0, 3, 4}


def test_generate_is_byte_identical_whatever_the_workers(generated, tiny_mnist, tmp_path):
    out = tmp_path / "again"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        generate(tiny_mnist, out, seed=5, chunksize=4, executor=pool, progress=False)
    assert _tree(out) == _tree(generated)


def test_generate_other_seed_changes_only_random_datasets(generated, tiny_mnist, tmp_path):
    out = tmp_path / "seed6"
    generate(tiny_mnist, out, seed=6, splits=["t10k"], progress=False, measure=False)
    for name in ("plain", "thin", "thic"):
        assert (out / name / "t10k-images-idx3-ubyte.gz").read_bytes() == \
               (generated / name / "t10k-images-idx3-ubyte.gz").read_bytes()
    for name in ("swel", "frac"):
        assert (out / name / "t10k-images-idx3-ubyte.gz").read_bytes() != \
               (generated / name / "t10k-images-idx3-ubyte.gz").read_bytes()
    assert not (out / "plain" / "t10k-morpho.csv").exists() and not (out / "plain" / "train-images-idx3-ubyte.gz").exists()


def test_perturb_chunk_reproduces_generate(generated, tiny_mnist):
    raw = load_idx(find_split(tiny_mnist, "t10k").images)
    swel = perturb_chunk(raw, 0, 1, 5, "swelling", {"strength": 3., "radius": 7.})
    np.testing.assert_array_equal(swel, load_idx(generated / "swel" / "t10k-images-idx3-ubyte.gz"))
    frac = np.concatenate([perturb_chunk(raw[s:s + 3], s, 1, 5, "fracture", {}) for s in range(0, 10, 3)])
    np.testing.assert_array_equal(frac, load_idx(generated / "frac" / "t10k-images-idx3-ubyte.gz"))


def test_generate_refuses_to_overwrite(generated, tiny_mnist):
    before = _tree(generated)
    with pytest.raises(DatasetError, match="exist already.*--force"):
        generate(tiny_mnist, generated, seed=9, progress=False)
    assert _tree(generated) == before


def test_generate_input_errors(tmp_path, mnist):
    images, labels = mnist
    src = tmp_path / "src"
    src.mkdir()
    save_idx(images[:8], src / "train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match="has no label file"):
        generate(src, tmp_path / "out", splits=["train"], progress=False)
    save_idx(labels[:9], src / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="8 images but train-labels-idx1-ubyte.gz holds 9 labels"):
        generate(src, tmp_path / "out", splits=["train"], progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetError, match="non-negative"):
        generate(src, tmp_path / "out", seed=-1, progress=False)


def test_generate_interrupted_leaves_no_file(tmp_path, tiny_mnist, monkeypatch):
    calls = []
    real = datasets.generate_chunk

    def interrupted(*args):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(datasets, "generate_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(tiny_mnist, tmp_path / "out", seed=1, chunksize=5, progress=False)
    assert calls == [0, 5, 10]
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_generate_params_defaults_are_the_papers():
    p = GenerateParams()
    assert (p.threshold, p.scale, p.thin_amount, p.thick_amount) == (.5, 4, .7, 1.)
    assert (p.swel_strength, p.swel_radius, p.frac_num, p.frac_thickness, p.frac_prune) == (3, 7, 3, 1.5, 2)


# ---- the reading layer (core.reading) over dataset folders ----------------------------------------------

def test_read_dataset_folder_of_two_splits_with_metrics(tmp_path, tiny_mnist, generated):
    from core.reading import read_dataset

    data = read_dataset(tiny_mnist)
    assert data.images.shape == (30, 28, 28) and data.parts == [("train", 20), ("t10k", 10)]
    assert data.split is None and data.metrics is None and data.metrics_source is None
    assert any("no metrics table (train-morpho.csv)" in n for n in data.notes)
    t10k = read_dataset(tiny_mnist, split="t10k")
    assert t10k.split == "t10k" and len(t10k) == 10
    np.testing.assert_array_equal(t10k.labels, load_idx(tiny_mnist / "t10k-labels-idx1-ubyte"))
    with pytest.raises(DatasetError, match="no test images .* splits here: t10k, train"):
        read_dataset(tiny_mnist, split="test")

    glob = read_dataset(generated / "global", split="train")
    assert glob.metrics.shape == (20, 6) and glob.metrics_source == "CSV train-morpho.csv"
    assert set(np.unique(glob.perturbations)) <= {0, 1, 2}
    one_file = read_dataset(generated / "global" / "t10k-images-idx3-ubyte.gz")
    assert one_file.split == "t10k" and len(one_file) == 10 and one_file.metrics is not None
    with pytest.raises(DatasetError, match="these sub-folders hold digits: frac, global"):
        read_dataset(generated)


def test_read_dataset_files_that_disagree(tmp_path, mnist):
    from core.reading import read_dataset

    images, labels = mnist
    save_idx(images[:10], tmp_path / "train-images-idx3-ubyte.gz")
    save_idx(labels[:9], tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz: labels of shape \(9,\) for 10 digits"):
        read_dataset(tmp_path)
    save_idx(labels[:10], tmp_path / "train-labels-idx1-ubyte.gz")
    pd.DataFrame({"index": range(8), **{m: 1.0 for m in datasets.METRIC_COLUMNS}}).to_csv(
        tmp_path / "train-morpho.csv", index=False)
    with pytest.raises(DatasetError, match="metrics table has 8 rows for 10 digits"):
        read_dataset(tmp_path)


def test_read_dataset_arrays(tmp_path, mnist):
    from core.reading import read_dataset

    images, labels = mnist
    np.savez(tmp_path / "d.npz", x=(images[:50] / 255.0).astype(np.float32), y=np.eye(10)[labels[:50]])
    data = read_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.images, images[:50])
    np.testing.assert_array_equal(data.labels, labels[:50])  # one-hot labels
    assert data.metrics is None
    pd.DataFrame({"index": np.arange(50)[::-1], **{m: np.arange(50.0)[::-1] for m in datasets.METRIC_COLUMNS}}).to_csv(
        tmp_path / "d-morpho.csv", index=False)
    data = read_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.metrics["area"], np.arange(50.0))  # ordered by the index column
    np.save(tmp_path / "p.npy", np.pad(images[:5], ((0, 0), (2, 2), (2, 2))))
    data = read_dataset(tmp_path / "p.npy")
    np.testing.assert_array_equal(data.images, images[:5])
    assert any("cropped" in n for n in data.notes)


def test_read_metrics_table(tmp_path):
    from core.reading import read_metrics_table

    cols = list(datasets.METRIC_COLUMNS)
    df = pd.DataFrame(np.arange(18.0).reshape(3, 6), columns=cols)
    df.insert(0, "label", [7, 2, 1])
    df.to_csv(tmp_path / "m.csv", index=False)
    table = read_metrics_table(tmp_path / "m.csv", n=3)
    assert list(table.columns) == ["label"] + cols and list(table["label"]) == [7, 2, 1]
    with pytest.raises(DatasetError, match="has 3 rows for 4 digits"):
        read_metrics_table(tmp_path / "m.csv", n=4)
    df.drop(columns="slant").to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(DatasetError, match="lacks column.s. slant"):
        read_metrics_table(tmp_path / "missing.csv")
    bad = df.astype({"area": object})
    bad.loc[1, "area"] = "big"
    bad.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DatasetError, match="column area holds non-numeric values .row 1: 'big'"):
        read_metrics_table(tmp_path / "text.csv")
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DatasetError, match="not a readable CSV"):
        read_metrics_table(tmp_path / "bin.csv")


def test_split_files_that_are_not_regular_are_reported_not_skipped(tmp_path, mnist):
    import os

    images, _ = mnist
    save_idx(images[:5], tmp_path / "train-images-idx3-ubyte.gz")
    os.mkfifo(tmp_path / "train-labels-idx1-ubyte.gz")
    files = find_split(tmp_path, "train")  # found, not silently "missing"
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz: is a FIFO"):
        check_split(files)
