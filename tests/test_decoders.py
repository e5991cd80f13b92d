"""core.decoders with a real model: a PCA decoder fitted here on the bundled 5,000 MNIST digits,
as a numpy function, an ONNX file (built with the onnx helper API) and a torch module."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.decoders import DecoderError, as_decoder, sample, traversal_values, traverse

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"
D = 8


@pytest.fixture(scope="module")
def pca():
    """Mean (784,) and the first D principal directions scaled by their standard deviations (D, 784),
    so that codes ~ N(0, I) decode to digits with the data's spread along each component."""
    from core.io import load_idx

    x = load_idx(ASSETS / "train-images-idx3-ubyte.gz").reshape(5000, -1).astype(np.float64) / 255
    mu = x.mean(0)
    var, vec = np.linalg.eigh(np.cov(x, rowvar=False))          # ascending eigenvalues
    order = np.argsort(var)[::-1][:D]
    w = (vec[:, order] * np.sqrt(var[order])).T                   # (D, 784): direction x its sd
    w *= np.sign(w.sum(1, keepdims=True))                          # a fixed sign per component
    return mu.astype(np.float32), w.astype(np.float32)


@pytest.fixture(scope="module")
def decode(pca):
    mu, w = pca

    def pca_decode(z):
        return np.clip(mu + z @ w, 0.0, 1.0)      # float images (N, 784) in [0, 1]
    return pca_decode


@pytest.fixture(scope="module")
def reference_metrics():
    return pd.read_csv(ASSETS / "train-morpho.csv")


def test_sample_draws_prior_codes_and_decodes_them(decode):
    dec = as_decoder(decode, D)
    assert dec.latent_dim == D and dec.name == "pca_decode" and dec.kind == "numpy"
    calls = []
    images, codes = sample(dec, 600, seed=3, batch_size=256, progress=lambda d, t: calls.append((d, t)))
    assert images.shape == (600, 28, 28) and images.dtype == np.uint8
    assert codes.shape == (600, D) and codes.dtype == np.float32
    assert abs(codes.mean()) < 0.05 and abs(codes.std() - 1) < 0.05
    assert calls == [(256, 600), (512, 600), (600, 600)]
    assert dec.value_range == "[0,1]" and "[0,1]" in dec.note
    assert images.max() == 255 and images.min() == 0 and 10 < images.mean() < 60   # bright digits on black
    np.testing.assert_array_equal(images[:5], np.rint(decode(codes[:5]) * 255).reshape(5, 28, 28))
    again, codes2 = sample(dec, 600, seed=3)
    np.testing.assert_array_equal(codes, codes2)
    np.testing.assert_array_equal(images, again)


def test_traverse_grid_shape_and_codes(decode):
    dec = as_decoder(decode, D)
    base = np.random.default_rng(0).standard_normal((3, D))
    grid = traverse(dec, base, latents=[1, 4], span=1.5, steps=4)
    assert grid.shape == (3, 2, 4, 28, 28) and grid.dtype == np.uint8
    vals = traversal_values(1.5, 4)
    np.testing.assert_allclose(vals, [-1.5, -0.5, 0.5, 1.5])
    z = base[2].astype(np.float32).copy()
    z[4] += vals[3]
    np.testing.assert_array_equal(grid[2, 1, 3], dec(z)[0])
    one = traverse(dec, np.zeros(D), steps=3)
    assert one.shape == (1, D, 3, 28, 28)
    np.testing.assert_array_equal(one[0, 0, 1], one[0, 5, 1])   # the middle step is the base itself
    with pytest.raises(ValueError, match="latents must be indices"):
        traverse(dec, np.zeros(D), latents=[D])
    with pytest.raises(ValueError, match=r"shape \(B, 8\)"):
        traverse(dec, np.zeros(D + 1))


def test_pca_traversal_reads_back_its_slant_and_thickness_components(decode, reference_metrics):
    from core.analysis import traversal_effects

    base = 0.5 * np.random.default_rng(1).standard_normal((8, D))
    grid = traverse(as_decoder(decode, D), base, span=2.0, steps=5)
    eff = traversal_effects(grid, values=traversal_values(2.0, 5), reference_metrics=reference_metrics)
    assert eff.n_bases == 8 and eff.table.shape == (D, 5)
    # slant: the third component (a shear of the mean digit), for every base digit
    assert eff.strongest["slant"] == [2]
    lo, hi = eff.ci_low.loc[2, "slant"], eff.ci_high.loc[2, "slant"]
    assert eff.sign_agreement.loc[2, "slant"] == 1.0 and (hi < -0.3 or lo > 0.3)
    # thickness: a later component (stroke width), not the first three (size/shape of the mean digit)
    (thick,) = eff.strongest["thickness"]
    assert thick >= 3 and abs(eff.table.loc[thick, "thickness"]) > 0.25
    assert eff.ci_low.loc[thick, "thickness"] * eff.ci_high.loc[thick, "thickness"] > 0   # excludes 0
    # the first component changes length most (a '1'-like vs a '0'-like mean digit)
    assert eff.strongest["length"] == [0]


def test_output_layouts_and_ranges_are_normalised(decode):
    def tanh_784(z):
        return decode(z) * 2 - 1                                   # [-1, 1], (N, 784)

    def uint8_nchw(z):
        return np.rint(decode(z) * 255).astype(np.uint8).reshape(-1, 1, 28, 28)

    def padded_32(z):
        out = np.zeros((len(z), 32, 32), np.float32)
        out[:, 2:30, 2:30] = decode(z).reshape(-1, 28, 28)
        return out

    z = np.random.default_rng(2).standard_normal((7, D))
    want = as_decoder(decode, D)(z)
    for f in (tanh_784, uint8_nchw, padded_32):
        dec = as_decoder(f, D)
        got = dec(z)
        assert got.shape == (7, 28, 28) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want).max() <= 1, f.__name__
    padded = as_decoder(padded_32, D)
    padded(z)
    assert "cropped" in padded.note and "28x28" in padded.note


def test_bad_outputs_and_inputs_say_what_was_found(decode):
    z = np.zeros((3, D))
    with pytest.raises(DecoderError, match=r"shape \(3, 30, 30\)"):
        as_decoder(lambda c: np.zeros((len(c), 30, 30)), D)(z)
    with pytest.raises(DecoderError, match="returned 1 images for 3 codes"):
        as_decoder(lambda c: np.zeros((1, 28, 28)), D)(z)
    with pytest.raises(DecoderError, match="0-255 intensities"):
        as_decoder(lambda c: np.full((len(c), 28, 28), 200.0), D)(z)
    border = np.zeros((3, 32, 32), np.float32)
    border[:, 0, :] = 1.0
    with pytest.raises(DecoderError, match="border is not blank"):
        as_decoder(lambda c: border, D)(z)
    dec = as_decoder(decode, D)
    with pytest.raises(DecoderError, match=r"codes must have shape \(N, 8\)"):
        dec(np.zeros((2, 3)))
    with pytest.raises(DecoderError, match="NaN"):
        dec(np.full((1, D), np.nan))
    # the range found in the first batch is required of later ones
    flip = {"n": 0}

    def drifting(c):
        flip["n"] += 1
        return decode(c) * (2 if flip["n"] > 1 else 1) - (1 if flip["n"] > 1 else 0)

    d2 = as_decoder(drifting, D)
    d2(np.random.default_rng(0).standard_normal((4, D)))
    with pytest.raises(DecoderError, match="declared range"):
        d2(np.random.default_rng(1).standard_normal((4, D)))
    with pytest.raises(DecoderError, match="pass latent_dim"):
        as_decoder(decode)
    with pytest.raises(DecoderError, match="cannot use a int"):
        as_decoder(3)


def test_files_and_import_specs(decode, pca, tmp_path, monkeypatch):
    mu, w = pca
    np.save(tmp_path / "pca_w.npy", w)
    np.save(tmp_path / "pca_mu.npy", mu)
    (tmp_path / "my_pca_model.py").write_text(
        "import numpy as np, pathlib\n"
        "_here = pathlib.Path(__file__).parent\n"
        "_w, _mu = np.load(_here / 'pca_w.npy'), np.load(_here / 'pca_mu.npy')\n"
        "def decode(z):\n    return np.clip(_mu + z @ _w, 0, 1)\n"
        "decode.latent_dim = _w.shape[0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    dec = as_decoder("my_pca_model:decode")
    assert dec.latent_dim == D
    z = np.random.default_rng(4).standard_normal((5, D))
    np.testing.assert_array_equal(dec(z), as_decoder(decode, D)(z))
    with pytest.raises(DecoderError, match="has no attribute 'nope'"):
        as_decoder("my_pca_model:nope", D)
    with pytest.raises(DecoderError, match="cannot import module"):
        as_decoder("no_such_module_here:decode", D)
    with pytest.raises(FileNotFoundError, match="decoder file not found"):
        as_decoder(tmp_path / "missing.onnx")
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"PK\x03\x04" + b"\0" * 64)   # torch.save writes a zip archive
    with pytest.raises(DecoderError, match="never unpickled"):
        as_decoder(ckpt)
    sys.modules.pop("my_pca_model", None)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
                    reason="onnx / onnxruntime not installed (pip install .[onnx] onnx)")
def test_onnx_export_of_the_pca_decoder(decode, pca, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mu, w = pca
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["z", "W"], ["zw"]), helper.make_node("Add", ["zw", "mu"], ["lin"]),
         helper.make_node("Clip", ["lin", "lo", "hi"], ["images"])],
        "pca_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", D])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 784])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(mu, "mu"),
                     numpy_helper.from_array(np.array(0, np.float32), "lo"),
                     numpy_helper.from_array(np.array(1, np.float32), "hi")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "pca.onnx"
    onnx.save(model, str(path))

    dec = as_decoder(path)
    assert dec.latent_dim == D and dec.kind == "onnx" and dec.name == "pca.onnx"
    images, codes = sample(dec, 300, seed=0, batch_size=128)
    want, _ = sample(as_decoder(decode, D), 300, seed=0)
    assert np.abs(images.astype(int) - want).max() <= 1
    grid = traverse(str(path), np.zeros((2, D)), latents=[2], steps=3)
    assert grid.shape == (2, 1, 3, 28, 28)
    with pytest.raises(DecoderError, match="not a readable ONNX model"):
        (tmp_path / "bad.onnx").write_bytes(b"not a model")
        as_decoder(tmp_path / "bad.onnx")


def test_torch_modules(decode, pca):
    torch = pytest.importorskip("torch")
    mu, w = pca
    lin = torch.nn.Linear(D, 784)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
        lin.bias.copy_(torch.from_numpy(mu))
    model = torch.nn.Sequential(lin, torch.nn.Hardtanh(0.0, 1.0))
    dec = as_decoder(model)                          # latent size read from the Linear layer
    assert dec.latent_dim == D and dec.kind == "torch"
    z = np.random.default_rng(5).standard_normal((50, D))
    assert np.abs(dec(z).astype(int) - as_decoder(decode, D)(z)).max() <= 1
    assert not model.training and all(p.grad is None for p in model.parameters())

    class ConvGenerator(torch.nn.Module):           # DCGAN-style: codes as (N, D, 1, 1), tanh output
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(D, 1, 28)

        def forward(self, z):
            return torch.tanh(self.up(z))

    conv = as_decoder(ConvGenerator())
    out = conv(z[:4])
    assert out.shape == (4, 28, 28) and conv.value_range == "[-1,1]"
    # a plain function returning tensors (with gradients) works too; a class is refused
    fn = as_decoder(lambda c: model(torch.from_numpy(c)), D)
    assert np.abs(fn(z[:3]).astype(int) - dec(z[:3])).max() <= 1
    with pytest.raises(DecoderError, match="is a class"):
        as_decoder(ConvGenerator, D)
