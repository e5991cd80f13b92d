"""NoEffectWarning: a thickness perturbation whose disk rounds to radius 0 says so; an effective one never does."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from core import io
from core.morpho import ImageMorphology
from core.perturb import NoEffectWarning, SetThickness, Thickening, Thinning

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def morphs():
    images = io.load_idx(ASSETS / "train-images-idx3-ubyte.gz")
    return [ImageMorphology(images[i], scale=4) for i in (0, 777, 1500, 2500, 4999)]


def _run(pert, morph):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pert(morph)
    warned = [w for w in caught if issubclass(w.category, NoEffectWarning)]
    return out, warned


def test_no_effect_warning_is_a_public_user_warning():
    import core.perturb as perturb
    assert issubclass(NoEffectWarning, UserWarning) and "NoEffectWarning" in perturb.__all__


@pytest.mark.parametrize("cls", [Thinning, Thickening])
@pytest.mark.parametrize("amount", [0.0, 0.05, 0.1, 0.15, 0.18, 0.19, 0.2, 0.25, 0.3, 0.5, 1.0])
def test_warns_exactly_when_the_binary_image_is_unchanged(morphs, cls, amount):
    for morph in morphs:
        out, warned = _run(cls(amount=amount), morph)
        unchanged = np.array_equal(out, morph.binary_image)
        assert bool(warned) == unchanged, (cls.__name__, amount, morph.mean_thickness)
        if warned:
            assert f"amount={amount:g}" in str(warned[0].message)


def test_thickening_below_its_radius_threshold_is_a_no_op_and_above_is_not(morphs):
    # radius int(amount * 4 * t / 2) is 0 below amount = 1 / (2 t): both sides of it on each digit
    for morph in morphs:
        edge = 1.0 / (2 * morph.mean_thickness)
        _, below = _run(Thickening(amount=edge * 0.98), morph)
        out, above = _run(Thickening(amount=edge * 1.02), morph)
        assert below and not above and not np.array_equal(out, morph.binary_image)


@pytest.mark.parametrize("change", [-0.49, -0.3, -0.1, 0.0, 0.1, 0.3, 0.49, 0.5, 0.6, -0.6, 1.0, -1.0])
def test_set_thickness_warns_for_changes_under_half_a_pixel(morphs, change):
    for morph in morphs:
        out, warned = _run(SetThickness(target_thickness=morph.mean_thickness + change), morph)
        unchanged = np.array_equal(out, morph.binary_image)
        assert bool(warned) == unchanged == (abs(change) < 0.5), (change, morph.mean_thickness)
