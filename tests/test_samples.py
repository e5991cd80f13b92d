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


# ------------------------------------------------------------------------------------------------
# Formats of issue 12: PyTorch files, 32x32 digits, torchvision grids, multi-base traversals
# ------------------------------------------------------------------------------------------------

def test_torch_tensor_files(tmp_path, digits):
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(digits / 255.0).float().unsqueeze(1), tmp_path / "samples.pt")
    s = load_samples(tmp_path / "samples.pt")
    assert s.images.shape == (24, 28, 28) and s.source_range == "[0,1]"
    np.testing.assert_allclose(s.images, digits / 255.0, atol=1e-6)
    assert "PyTorch tensor" in s.description

    labels = torch.arange(24) % 10
    torch.save({"images": torch.from_numpy(digits), "labels": labels}, tmp_path / "dict.pth")
    s = load_samples(tmp_path / "dict.pth")
    np.testing.assert_array_equal(s.images, digits)
    np.testing.assert_array_equal(s.labels, labels.numpy())

    torch.save(torch.from_numpy(digits), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    np.testing.assert_array_equal(load_samples(tmp_path / "legacy.pt").images, digits)

    grid = torch.from_numpy(digits[:20].reshape(1, 4, 5, 28, 28))
    torch.save(grid, tmp_path / "traversal.pt")
    t = load_traversal(tmp_path / "traversal.pt")
    assert t.images.shape == (1, 4, 5, 28, 28)


def test_torch_files_holding_other_objects_are_never_unpickled(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    torch.save({"images": torch.zeros(2, 28, 28), "payload": _Evil(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(SampleFormatError, match=r"holds objects other than tensors \(\w+\), which are never unpickled"):
        load_samples(tmp_path / "evil.pt")
    assert not marker.exists()


def test_torch_file_without_torch_gives_a_hint(tmp_path):
    import subprocess
    import sys
    import zipfile

    with zipfile.ZipFile(tmp_path / "model_samples.pt", "w") as zf:  # the layout torch.save writes
        zf.writestr("model_samples/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("model_samples/version", b"3\n")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from core.samples import load_samples, SampleFormatError\n"
            "try:\n    load_samples('model_samples.pt')\nexcept SampleFormatError as e:\n    print(e)\n")
    env = dict(os.environ, PYTHONPATH=str(ASSETS.parent.parent))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "model_samples.pt: a PyTorch tensor file; reading it needs PyTorch, which is not installed" in out.stdout
    assert "numpy.save" in out.stdout


def test_32x32_digits_with_blank_border_are_cropped(tmp_path, digits):
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    np.save(tmp_path / "dcgan.npy", (padded / 127.5 - 1).astype(np.float32)[:, None])  # tanh output, NCHW
    s = load_samples(tmp_path / "dcgan.npy")
    assert s.images.shape == (24, 28, 28) and s.source_range == "[-1,1]"
    np.testing.assert_allclose(s.images, digits / 255.0, atol=1e-6)
    assert any("32x32 digits cropped to their 28x28 centre (the 2-pixel border is blank" in n for n in s.notes)
    assert "cropped to their 28x28 centre" in s.description
    save_idx(padded, tmp_path / "p-images-idx3-ubyte")
    np.testing.assert_array_equal(load_samples(tmp_path / "p-images-idx3-ubyte").images, digits)
    np.save(tmp_path / "flat.npy", padded.reshape(24, 1024))
    np.testing.assert_array_equal(load_samples(tmp_path / "flat.npy").images, digits)


def test_32x32_digits_with_ink_on_the_border_need_resize(tmp_path, digits):
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    padded[3, 0, 10] = 180
    np.save(tmp_path / "ink.npy", padded)
    with pytest.raises(SampleFormatError) as e:
        load_samples(tmp_path / "ink.npy")
    assert "2-pixel border is not blank" in str(e.value) and "resize='area'" in str(e.value)
    s = load_samples(tmp_path / "ink.npy", resize="area")
    assert s.images.shape == (24, 28, 28) and s.images.dtype == np.uint8
    assert any("resized to 28x28 (area resampling" in n for n in s.notes)


@pytest.mark.parametrize("method", ["area", "bilinear", True])
def test_resize_halves_a_doubled_digit_exactly(tmp_path, digits, method):
    doubled = np.kron(digits, np.ones((2, 2), np.uint8))  # 56x56, each pixel a 2x2 block
    np.save(tmp_path / "big.npy", doubled)
    with pytest.raises(SampleFormatError, match="images of 56x56 pixels"):
        load_samples(tmp_path / "big.npy")
    np.testing.assert_array_equal(load_samples(tmp_path / "big.npy", resize=method).images, digits)
    with pytest.raises(ValueError, match="resize must be"):
        load_samples(tmp_path / "big.npy", resize="cubic")


def _torchvision_grid_png(images01: np.ndarray, path: Path, nrow: int = 8, padding: int = 2,
                          pad_value: float = 0.0) -> None:
    """torchvision.utils.save_image(images, path, nrow=nrow) (make_grid, then x * 255 + 0.5 clamped, RGB),
    written with numpy: images (B, H, W) float in [0, 1]."""
    n, h, w = images01.shape
    xmaps = min(nrow, n)
    ymaps = -(-n // xmaps)
    height, width = h + padding, w + padding
    grid = np.full((3, height * ymaps + padding, width * xmaps + padding), pad_value, np.float32)
    for k in range(n):
        y, x = divmod(k, xmaps)
        grid[:, y * height + padding:(y + 1) * height, x * width + padding:(x + 1) * width] = images01[k]
    array = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(array).save(path)


def test_torchvision_grid_of_32x32_cells_with_partial_last_row(tmp_path, digits):
    padded = np.pad(digits[:21], ((0, 0), (2, 2), (2, 2))) / 255.0
    _torchvision_grid_png(padded, tmp_path / "samples.png")  # 3 rows of 8, the last holding 5
    assert Image.open(tmp_path / "samples.png").size == (8 * 34 + 2, 3 * 34 + 2)
    s = load_samples(tmp_path / "samples.png")
    assert len(s) == 21
    np.testing.assert_array_equal(s.images, digits[:21])
    assert any("dropped 3 blank cells at the end of the grid's last row" in n for n in s.notes)
    assert "3 rows x 8 columns (32x32 cells, 2-pixel padding)" in s.description


def test_torchvision_grid_of_28x28_cells_and_other_sizes(tmp_path, digits):
    _torchvision_grid_png(digits[:20] / 255.0, tmp_path / "g28.png", nrow=6)  # 4 rows, last holds 2
    s = load_samples(tmp_path / "g28.png")
    np.testing.assert_array_equal(s.images, digits[:20])
    assert any("dropped 4 blank cells" in n for n in s.notes)

    big = np.kron(digits[:12], np.ones((2, 2), np.uint8)) / 255.0  # 56x56 cells
    _torchvision_grid_png(big, tmp_path / "g56.png", nrow=4)
    with pytest.raises(SampleFormatError, match=r"images of 56x56 pixels.*resize='area'"):
        load_samples(tmp_path / "g56.png")
    s = load_samples(tmp_path / "g56.png", resize="area")
    np.testing.assert_array_equal(s.images, digits[:12])

    _torchvision_grid_png(digits[:8] / 255.0, tmp_path / "row.png", nrow=8)  # one full row, nothing dropped
    s = load_samples(tmp_path / "row.png")
    assert len(s) == 8 and s.notes == []


def test_full_grid_keeps_a_blank_digit_that_is_not_at_the_tail(tmp_path, digits):
    cells = digits[:12].copy()
    cells[5] = 0  # a blank sample in the middle is the model's output: kept
    _torchvision_grid_png(cells / 255.0, tmp_path / "g.png", nrow=4)
    s = load_samples(tmp_path / "g.png")
    assert len(s) == 12 and s.notes == []


def test_multi_base_traversals(tmp_path, digits):
    grid = digits[:24].reshape(2, 3, 4, 28, 28)  # B=2 base codes, L=3 latents, S=4 steps
    np.save(tmp_path / "multi.npy", grid)
    t = load_traversal(tmp_path / "multi.npy")
    assert t.images.shape == (2, 3, 4, 28, 28) and t.shape == (3, 4) and t.n_bases == 2
    np.testing.assert_array_equal(t.images, grid)
    assert "traversal of 3 latents x 4 steps over 2 base codes" in t.description

    np.save(tmp_path / "multi_c.npy", (grid / 255.0).astype(np.float32)[:, :, :, None])
    np.testing.assert_allclose(load_traversal(tmp_path / "multi_c.npy").images, grid / 255.0, atol=1e-6)

    np.save(tmp_path / "single_c.npy", grid[0][:, :, None])  # (L, S, 1, 28, 28): one base, channel axis
    assert load_traversal(tmp_path / "single_c.npy").images.shape == (1, 3, 4, 28, 28)

    np.savez(tmp_path / "t.npz", traversal=grid, values=np.linspace(-2, 2, 4))
    t = load_traversal(tmp_path / "t.npz")
    np.testing.assert_allclose(t.values, [-2, -2 / 3, 2 / 3, 2])

    np.save(tmp_path / "flat.npy", digits[:24])
    t = load_traversal(tmp_path / "flat.npy", rows=3, cols=4)
    np.testing.assert_array_equal(t.images, grid)
    with pytest.raises(SampleFormatError, match=r"bases x rows x cols = 3 x 3 x 4 = 36"):
        load_traversal(tmp_path / "flat.npy", rows=3, cols=4, bases=3)
    np.save(tmp_path / "odd.npy", digits[:23])
    with pytest.raises(SampleFormatError, match=r"found 23 images; expected rows x cols = 3 x 4 = 12 \(or a multiple"):
        load_traversal(tmp_path / "odd.npy", rows=3, cols=4)


def test_traversal_grid_image_is_one_base(tmp_path, digits):
    _torchvision_grid_png(digits[:15] / 255.0, tmp_path / "trav.png", nrow=5)
    t = load_traversal(tmp_path / "trav.png")
    assert t.images.shape == (1, 3, 5, 28, 28)
    np.testing.assert_array_equal(t.images[0], digits[:15].reshape(3, 5, 28, 28))


def test_folder_of_32x32_pngs_is_cropped(tmp_path, digits):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, d in enumerate(np.pad(digits[:5], ((0, 0), (2, 2), (2, 2)))):
        Image.fromarray(d).save(folder / f"{i}.png")
    s = load_samples(folder)
    np.testing.assert_array_equal(s.images, digits[:5])


def test_display_name_replaces_the_path_in_messages(tmp_path):
    hidden = tmp_path / "tmpq8z1x" / "upload"
    hidden.parent.mkdir()
    hidden.write_text("hello\n")
    with pytest.raises(SampleFormatError) as e:
        load_samples(hidden, display_name="my_samples.npz")
    assert str(e.value).startswith("my_samples.npz: found a text file") and "tmpq8z1x" not in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        load_samples(hidden.parent / "gone", display_name="my_samples.npz")
    assert "tmpq8z1x" not in str(e.value)
