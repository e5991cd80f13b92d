"""core.perturb: each perturbation does what it says, seeded randomness, no crash near the border."""
import numpy as np
import pytest

from core import perturb
from core.measure import measure_image
from core.morpho import ImageMorphology
from core.perturb import (PERTURBATIONS, Fracture, SetSlant, SetThickness, SetWidth, Swelling, Thickening,
                          Thinning, perturb_image)


@pytest.fixture(scope="module")
def digits(sample_images):
    return sample_images[[2500, 7, 1010, 3333, 4999]]


def _build(name, **overrides):
    cls, specs = PERTURBATIONS[name]
    kwargs = {s.name: s.default for s in specs}
    kwargs.update(overrides)
    return cls(**kwargs)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
@pytest.mark.parametrize("mode", ["released", "upstream"])
def test_every_perturbation_returns_a_hires_image_and_a_digit(digits, name, mode):
    morph = ImageMorphology(digits[0], mode=mode)
    extra = {"rng": 0} if name in ("swelling", "fracture") else {}
    hires = _build(name, **extra)(morph)
    assert hires.shape == (112, 112)
    low = morph.downscale(hires)
    assert low.shape == (28, 28) and low.dtype == np.uint8 and low.max() > 0


def test_thinning_and_thickening_move_thickness(digits):
    for image in digits:
        before = measure_image(image).thickness
        assert measure_image(perturb_image(image, Thinning(.7))).thickness < before
        assert measure_image(perturb_image(image, Thickening(1.))).thickness > before


def test_interventions_reach_their_targets(digits):
    for image in digits:
        # the original's rule (anti-aliased disk, radius rounded down) lands up to ~1.5 px past the target
        # (mean over real digits: tests/test_upstream.py pins it against the original's)
        before = measure_image(image).thickness
        after = measure_image(perturb_image(image, SetThickness(5.0))).thickness
        assert after > before and after == pytest.approx(5.0, abs=1.5)
        assert measure_image(perturb_image(image, SetSlant(0.3))).slant == pytest.approx(0.3, abs=0.06)
        assert measure_image(perturb_image(image, SetSlant(-0.3))).slant == pytest.approx(-0.3, abs=0.06)
        assert measure_image(perturb_image(image, SetWidth(10.0))).width == pytest.approx(10.0, abs=1.0)


@pytest.mark.parametrize("cls", [Swelling, Fracture])
def test_same_seed_same_image(digits, cls):
    image = digits[1]
    a = perturb_image(image, cls(rng=123))
    b = perturb_image(image, cls(rng=123))
    np.testing.assert_array_equal(a, b)
    others = [perturb_image(image, cls(rng=s)) for s in range(5)]
    assert any(not np.array_equal(a, o) for o in others)
    gen = np.random.default_rng(7)
    assert perturb_image(image, cls(rng=gen)).shape == (28, 28)


def test_fracture_breaks_and_swelling_swells(digits):
    for k, image in enumerate(digits):
        plain = measure_image(image)
        assert measure_image(perturb_image(image, Fracture(num_frac=3, rng=k))).area < plain.area
        assert measure_image(perturb_image(image, Swelling(3, 7, rng=k))).area > plain.area


def test_fracture_near_the_border_does_not_crash(sample_images):
    digit = sample_images[2500]
    cols = np.nonzero(digit.any(0))[0]
    rows = np.nonzero(digit.any(1))[0]
    shifted = np.roll(np.roll(digit, -cols[0], axis=1), -rows[0], axis=0)  # top-left corner
    line = np.zeros((28, 28), np.uint8)
    line[0:28, 0] = 255  # a stroke along the very edge
    for image in (shifted, line):
        for seed in range(30):
            out = perturb_image(image, Fracture(thickness=3, prune=0, num_frac=4, rng=seed))
            assert out.shape == (28, 28)


def test_released_warps_are_bilinear_upstream_nearest(digits):
    released = Swelling(rng=1)(ImageMorphology(digits[0]))
    upstream = Swelling(rng=1)(ImageMorphology(digits[0], mode="upstream"))
    assert released.dtype == np.float64 and ((released > 0) & (released < 1)).any()
    assert upstream.dtype == bool


def test_registry_defaults_are_the_papers(digits):
    assert _build("thinning").amount == .7 and _build("thickening").amount == 1.
    swelling = _build("swelling")
    assert (swelling.strength, swelling.radius) == (3, 7)
    fracture = _build("fracture")
    assert (fracture.thickness, fracture.prune, fracture.num_frac) == (1.5, 2, 3)
    assert perturb.PERTURBATION_LABELS[4] == "fractured"
