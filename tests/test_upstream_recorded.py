"""Upstream mode against the original code's recorded outputs (tests/data/upstream/, scripts/record_upstream.py):
float digits measured and perturbed, and digits whose ink touches the border under SetSlant / SetWidth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.io import load_idx
from core.measure import measure_batch, measure_image
from core.morpho import ImageMorphology
from core.perturb import Fracture, SetSlant, SetThickness, SetWidth, Swelling, Thickening, Thinning

DATA = Path(__file__).parent / "data" / "upstream"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample():
    return load_idx(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def floats(sample):
    rec = np.load(DATA / "floats.npz", allow_pickle=False)
    digits = sample[rec["sample_index"]]
    noisy = np.clip(digits.astype(np.float32) / np.float32(255)
                    + rec["noise"].astype(np.float32) / np.float32(rec["noise_divisor"]), np.float32(0), np.float32(1))
    inputs = {"exact": digits.astype(np.float32) / np.float32(255), "noisy": noisy,
              "exact64": digits[:20].astype(np.float64) / 255.0, "range255": digits[20:40].astype(np.float32)}
    return rec, inputs


@pytest.mark.parametrize("case", ["exact", "noisy", "exact64", "range255"])
def test_float_digits_measured_as_the_original(floats, case):
    rec, inputs = floats
    images, expected = inputs[case], rec[f"metrics_{case}"]
    assert len(images) == len(expected) >= 20
    ours = np.array([tuple(measure_image(img, mode="upstream")) for img in images])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    batch = measure_batch(images, mode="upstream", progress=False).to_numpy()
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-9)


def test_float_digit_hires_image_keeps_its_dtype(floats):
    _, inputs = floats
    morph = ImageMorphology(inputs["noisy"][0], mode="upstream")
    assert morph.hires_image.dtype == np.float32 and morph.hires_image.shape == (112, 112)
    # not on the uint8 grid: the original does not quantise
    assert not np.array_equal(morph.hires_image, np.floor(morph.hires_image))


def test_released_mode_quantises_floats(floats):
    # released mode measures a /255 float digit exactly as its uint8 digit (documented in docs/upstream.md)
    _, inputs = floats
    img = inputs["exact"][3]
    assert measure_image(img, mode="released") == measure_image(np.rint(img * 255).astype(np.uint8), mode="released")
    with pytest.raises(ValueError, match=r"\[0, 255\].*upstream"):
        measure_image(inputs["range255"][0], mode="released")


def test_float_digits_perturbed_as_the_original(floats):
    rec, inputs = floats
    makers = {"thinning": lambda: Thinning(.7), "thickening": lambda: Thickening(1.),
              "swelling": lambda: Swelling(3, 7), "fracture": lambda: Fracture(1.5, 2, 3),
              "set_thickness": lambda: SetThickness(4.), "set_slant": lambda: SetSlant(.3),
              "set_width": lambda: SetWidth(14.)}
    expected = rec["perturbed_noisy"]
    names = [str(n) for n in rec["perturbation_names"]]
    assert names == list(makers)
    for i, img in enumerate(inputs["noisy"][:len(expected)]):
        for j, name in enumerate(names):
            np.random.seed(1000 * i + j)
            morph = ImageMorphology(img, mode="upstream")
            np.testing.assert_array_equal(morph.downscale(makers[name]()(morph)), expected[i, j],
                                          err_msg=f"noisy digit {i}, {name}")


def _border_outputs(img, slants, widths):
    morph = ImageMorphology(img, mode="upstream")
    return np.array([morph.downscale(SetSlant(float(t))(morph)) for t in slants]
                    + [morph.downscale(SetWidth(float(t))(morph)) for t in widths])


@pytest.mark.parametrize("which", ["test", "sample"])
def test_border_digits_byte_identical(sample, which):
    rec = np.load(DATA / "border.npz", allow_pickle=False)
    images = rec["test_images"] if which == "test" else sample[rec["sample_index"]]
    outputs = rec[f"{which}_outputs"]
    assert len(images) == len(outputs) >= 10
    for img in images:  # every one really touches the border
        assert img[0].any() or img[-1].any() or img[:, 0].any() or img[:, -1].any()
    for k, (img, expected) in enumerate(zip(images, outputs)):
        np.testing.assert_array_equal(_border_outputs(img, rec["slants"], rec["widths"]), expected,
                                      err_msg=f"{which} border digit {k}")
