"""core.samples: loading a model's output from real files (real MNIST digits written to tmp_path)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.io import load_idx, save_idx
from core.samples import SampleFormatError, load_codes, load_samples, load_traversal, normalise_range

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """24 real MNIST digits (uint8, (24, 28, 28)), several of each label."""
    images = load_idx(ASSETS / "train-images-idx3-ubyte.gz")
    return np.ascontiguousarray(images[::209][:24])


def test_npy_uint8_is_read_unchanged(tmp_path, digits):
    np.save(tmp_path / "s.npy", digits)
    s = load_samples(tmp_path / "s.npy")
    assert s.source_range == "uint8"
    assert s.images.dtype == np.uint8 and s.images.shape == (24, 28, 28)
    np.testing.assert_array_equal(s.images, digits)
    assert "24 samples" in s.description and "uint8" in s.description


def test_npy_channel_axis_float01(tmp_path, digits):
    np.save(tmp_path / "s.npy", (digits / 255.0).astype(np.float32)[:, None])
    s = load_samples(tmp_path / "s.npy")
    assert s.source_range == "[0,1]"
    assert s.images.dtype == np.float32 and s.images.shape == (24, 28, 28)
    np.testing.assert_allclose(s.images, digits / 255.0, atol=1e-6)


def test_flat_float_minus1_1_is_detected_and_mapped(tmp_path, digits):
    flat = (digits.reshape(24, 784) / 127.5 - 1.0).astype(np.float64)
    np.save(tmp_path / "tanh.npy", flat)
    s = load_samples(tmp_path / "tanh.npy")
    assert s.source_range == "[-1,1]"
    assert "[-1,1]" in s.description and "(x + 1) / 2" in s.description
    np.testing.assert_allclose(s.images, digits / 255.0, atol=1e-6)


def test_declared_range_must_match_values(tmp_path, digits):
    np.save(tmp_path / "u.npy", digits)
    with pytest.raises(SampleFormatError, match=r"declared range \[0,1\] but found values in \[0, 255\]"):
        load_samples(tmp_path / "u.npy", value_range="[0,1]")


def test_float_0_255_is_refused_unless_declared(tmp_path, digits):
    np.save(tmp_path / "f.npy", digits.astype(np.float32))
    with pytest.raises(SampleFormatError) as e:
        load_samples(tmp_path / "f.npy")
    msg = str(e.value)
    assert "found float values with values in [0, 255]" in msg
    assert "expected float in [0,1] or [-1,1]" in msg and "value_range='uint8'" in msg
    s = load_samples(tmp_path / "f.npy", value_range="uint8")
    assert s.source_range == "uint8"
    np.testing.assert_array_equal(s.images, digits)


def test_nan_is_refused(tmp_path, digits):
    a = digits / 255.0
    a[3, 4, 5] = np.nan
    np.save(tmp_path / "nan.npy", a)
    with pytest.raises(SampleFormatError, match="found 1 NaN/infinite values"):
        load_samples(tmp_path / "nan.npy")


def test_npz_with_labels_and_key_choice(tmp_path, digits):
    labels = np.arange(24) % 10
    np.savez(tmp_path / "a.npz", samples=digits, labels=labels)
    s = load_samples(tmp_path / "a.npz")
    np.testing.assert_array_equal(s.images, digits)
    np.testing.assert_array_equal(s.labels, labels)
    assert "npz key 'samples'" in s.description

    np.savez(tmp_path / "b.npz", real=digits, fake=255 - digits)
    with pytest.raises(SampleFormatError, match=r"found arrays real \(24, 28, 28\) uint8, fake"):
        load_samples(tmp_path / "b.npz")
    with pytest.warns(UserWarning, match="dark on a light background"):
        inverted = load_samples(tmp_path / "b.npz", key="fake")
    np.testing.assert_array_equal(inverted.images, 255 - digits)
    assert "WARNING" in inverted.description


def test_idx_gz_and_plain(tmp_path, digits):
    save_idx(digits, tmp_path / "samples-idx3-ubyte.gz")
    save_idx(digits, tmp_path / "samples.idx")
    for name in ("samples-idx3-ubyte.gz", "samples.idx"):
        s = load_samples(tmp_path / name)
        assert s.description.split(": ", 1)[1].startswith("IDX uint8 array (24, 28, 28)")
        np.testing.assert_array_equal(s.images, digits)


def test_folder_of_pngs_in_natural_order(tmp_path, digits):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, d in enumerate(digits):
        Image.fromarray(d).save(folder / f"sample_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    s = load_samples(folder)
    np.testing.assert_array_equal(s.images, digits)  # sample_2 before sample_10
    assert "folder of 24 images" in s.description


def test_folder_with_wrong_size_image(tmp_path, digits):
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(digits[0]).save(folder / "a.png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(folder / "b.png")
    with pytest.raises(SampleFormatError, match=r"b.png: found a 30x30 image; expected 28x28"):
        load_samples(folder)


def _grid(cells: np.ndarray, pad: int, outer: bool, fill: int = 0) -> np.ndarray:
    rows, cols = cells.shape[:2]
    off = pad if outer else 0
    H = rows * 28 + (rows + 1 if outer else rows - 1) * pad
    W = cols * 28 + (cols + 1 if outer else cols - 1) * pad
    img = np.full((H, W), fill, np.uint8)
    for i in range(rows):
        for j in range(cols):
            y, x = off + i * (28 + pad), off + j * (28 + pad)
            img[y:y + 28, x:x + 28] = cells[i, j]
    return img


def test_png_grid_inferred_torchvision_padding(tmp_path, digits):
    cells = digits.reshape(4, 6, 28, 28)
    Image.fromarray(_grid(cells, 2, True, fill=0)).save(tmp_path / "grid.png")
    s = load_samples(tmp_path / "grid.png")
    np.testing.assert_array_equal(s.images, digits)
    assert "4 rows x 6 columns" in s.description


def test_png_grid_with_rows_cols_and_inner_gaps(tmp_path, digits):
    cells = digits.reshape(3, 8, 28, 28)
    Image.fromarray(_grid(cells, 5, False)).save(tmp_path / "grid.png")
    t = load_traversal(tmp_path / "grid.png", rows=3, cols=8)
    assert t.shape == (3, 8) and t.images.shape == (1, 3, 8, 28, 28)
    np.testing.assert_array_equal(t.images[0], cells)
    with pytest.raises(SampleFormatError, match=r"expected a grid of 4 rows x 8 columns"):
        load_traversal(tmp_path / "grid.png", rows=4, cols=8)


def test_rgb_jpeg_is_read_as_grayscale(tmp_path, digits):
    rgb = np.repeat(digits[0][..., None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "d.jpg", quality=100)
    s = load_samples(tmp_path / "d.jpg")
    assert s.images.shape == (1, 28, 28) and s.source_range == "uint8"
    assert np.abs(s.images[0].astype(int) - digits[0]).max() <= 8  # JPEG is lossy


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_pickles_are_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "samples.pkl", "wb") as f:
        pickle.dump([_Evil(str(marker))], f)
    with pytest.raises(SampleFormatError, match="found a Python pickle, which is never loaded"):
        load_samples(tmp_path / "samples.pkl")
    np.save(tmp_path / "obj.npy", np.array([_Evil(str(marker)), 1], dtype=object), allow_pickle=True)
    with pytest.raises(SampleFormatError, match="array of Python objects"):
        load_samples(tmp_path / "obj.npy")
    # a pickle named .npy is still sniffed as a pickle
    os.replace(tmp_path / "samples.pkl", tmp_path / "disguised.npy")
    with pytest.raises(SampleFormatError, match="pickle"):
        load_samples(tmp_path / "disguised.npy")
    assert not marker.exists()


def test_wrong_shape_message_says_found_and_expected(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((5, 30, 30), np.float32))
    with pytest.raises(SampleFormatError) as e:
        load_samples(tmp_path / "big.npy")
    assert "found an array of shape (5, 30, 30)" in str(e.value)
    assert "expected (N,28,28), (N,1,28,28) or (N,784)" in str(e.value)
    assert "resize='area'" in str(e.value)


def test_unknown_files(tmp_path):
    (tmp_path / "notes.txt").write_text("these are my samples\n")
    with pytest.raises(SampleFormatError) as e:
        load_samples(tmp_path / "notes.txt")
    assert "found a text file starting with 'these are my samples'" in str(e.value)
    assert "expected a .npy/.npz array" in str(e.value)
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(SampleFormatError, match="found an empty file"):
        load_samples(tmp_path / "empty.npy")
    with pytest.raises(FileNotFoundError):
        load_samples(tmp_path / "missing.npy")


def test_traversal_arrays(tmp_path, digits):
    grid = digits[:20].reshape(4, 5, 28, 28)
    np.save(tmp_path / "t.npy", grid)
    np.save(tmp_path / "t1.npy", (grid / 127.5 - 1)[:, :, None])
    np.save(tmp_path / "flat.npy", digits[:20])
    t = load_traversal(tmp_path / "t.npy")
    np.testing.assert_array_equal(t.images, grid[None])
    t1 = load_traversal(tmp_path / "t1.npy")
    assert t1.source_range == "[-1,1]" and t1.shape == (4, 5) and t1.n_bases == 1
    np.testing.assert_allclose(t1.images, grid[None] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(load_traversal(tmp_path / "flat.npy", rows=4, cols=5).images, grid[None])
    with pytest.raises(SampleFormatError, match="give rows and cols"):
        load_traversal(tmp_path / "flat.npy")
    with pytest.raises(SampleFormatError, match=r"found 20 images; expected rows x cols = 3 x 5 = 15"):
        load_traversal(tmp_path / "flat.npy", rows=3, cols=5)


def test_codes_from_npy_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(30, 3))
    np.save(tmp_path / "c.npy", codes)
    df = load_codes(tmp_path / "c.npy")
    assert list(df.columns) == ["z0", "z1", "z2"]
    np.testing.assert_array_equal(df.to_numpy(), codes)

    pd.DataFrame(codes, columns=["c1", "c2", "c3"]).to_csv(tmp_path / "h.csv")  # with index column
    df = load_codes(tmp_path / "h.csv")
    assert list(df.columns) == ["c1", "c2", "c3"]
    np.testing.assert_allclose(df.to_numpy(), codes, rtol=1e-12)

    np.savetxt(tmp_path / "n.csv", codes, delimiter=",")
    df = load_codes(tmp_path / "n.csv")
    assert list(df.columns) == ["z0", "z1", "z2"]
    np.testing.assert_allclose(df.to_numpy(), codes, rtol=1e-12)

    (tmp_path / "bad.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(SampleFormatError, match=r"found non-numeric column\(s\) \['b'\]"):
        load_codes(tmp_path / "bad.csv")


def test_normalise_range_integer_types():
    out, rng, _ = normalise_range(np.array([[0, 128, 255]], dtype=np.int64))
    assert rng == "uint8" and out.dtype == np.uint8
    with pytest.raises(SampleFormatError, match="found integers of type int16 with values in"):
        normalise_range(np.array([-3, 300], dtype=np.int16))
