"""Every perturbation, intervention and measurement entry point refuses nonsense before any work:
a ValueError naming the parameter, the value and the valid range."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from core.measure import measure_batch, measure_image
from core.morpho import MAX_HIRES_PIXELS, ImageMoments, ImageMorphology, bounding_parallelogram
from core.perturb import Fracture, SetSlant, SetThickness, SetWidth, Swelling, Thickening, Thinning
from core.skeleton import LocationSampler


def _digit():
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255
    return img


@pytest.mark.parametrize("make, pattern", [
    (lambda: SetSlant(math.inf), r"SetSlant\(target_slant_rad\).*\(-1.5708, 1.5708\).*inf"),
    (lambda: SetSlant(np.pi / 2), r"SetSlant\(target_slant_rad\)"),
    (lambda: SetThickness(-1), r"SetThickness\(target_thickness\).*\(0, 28\].*-1"),
    (lambda: SetThickness(target=0), r"SetThickness\(target_thickness\).*\(0, 28\]"),
    (lambda: Fracture(thickness=2000), r"Fracture\(thickness\).*\(0, 28\].*2000"),
    (lambda: Fracture(num_frac=10 ** 6), r"Fracture\(num_frac\).*\[1, 1,000\].*1000000"),
    (lambda: Fracture(num_frac=2.5), r"Fracture\(num_frac\).*2.5"),
    (lambda: Fracture(prune=-1), r"Fracture\(prune\).*\[0, 28\]"),
    (lambda: Swelling(strength=math.nan), r"Swelling\(strength\).*\(0, 20\].*nan"),
    (lambda: Swelling(radius=1e6), r"Swelling\(radius\).*\(0, 100\].*1000000"),
    (lambda: Thinning(amount=-5), r"Thinning\(amount\).*\[0, 10\].*-5"),
    (lambda: Thickening(1e9), r"Thickening\(amount\).*\[0, 10\].*1000000000"),
    (lambda: SetWidth(0), r"SetWidth\(target_width\).*\(0, 100\]"),
    (lambda: SetWidth(math.inf), r"SetWidth\(target_width\)"),
    (lambda: LocationSampler(prune_tips=math.nan), r"LocationSampler\(prune_tips\)"),
])
def test_perturbation_parameters_refused(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_location_sampler_num_refused():
    morph = ImageMorphology(_digit())
    with pytest.raises(ValueError, match=r"sample\(num\).*-3"):
        LocationSampler().sample(morph, -3)


def test_huge_image_refused_at_once():
    big = np.zeros((4000, 4000), np.uint8)
    big[100:200, 100:200] = 255
    for call in (lambda: ImageMorphology(big), lambda: measure_image(big), lambda: measure_batch(big[None])):
        with pytest.raises(ValueError, match=f"{MAX_HIRES_PIXELS:,}"):
            call()


@pytest.mark.parametrize("workers", [0, -1, 10 ** 6, 2.5, True])
def test_measure_batch_workers_refused(workers):
    with pytest.raises(ValueError, match=r"workers must be a whole number in \[1, 256\]"):
        measure_batch(_digit()[None], workers=workers, progress=False)


@pytest.mark.parametrize("kwargs, name", [
    (dict(threshold=math.nan), "threshold"), (dict(threshold=2.), "threshold"), (dict(scale=0), "scale"),
    (dict(scale=1000), "scale"), (dict(bound_frac=1.), "bound_frac"), (dict(bound_frac=-.1), "bound_frac"),
])
def test_measure_options_refused(kwargs, name):
    for call in (lambda: measure_image(_digit(), **kwargs), lambda: measure_batch(_digit()[None], progress=False,
                                                                                  **kwargs)):
        with pytest.raises(ValueError, match=name):
            call()


def test_morphology_options_refused():
    with pytest.raises(ValueError, match="scale"):
        ImageMorphology(_digit(), scale=-2)
    with pytest.raises(ValueError, match="threshold"):
        ImageMorphology(_digit(), threshold=math.inf)
    with pytest.raises(ValueError, match="frac"):
        bounding_parallelogram(_digit(), frac=math.nan)


def test_one_pixel_high_stroke_gives_nan_like_the_original():
    stroke = np.zeros((5, 9), np.uint8)
    stroke[2, 1:8] = 1
    moments = ImageMoments(stroke)
    assert moments.u02 == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own, as the original's 0/0
        shear = moments.horizontal_shear
        assert isinstance(shear, np.float64) and np.isnan(shear)
        assert np.isnan(ImageMoments(np.zeros((3, 3))).centroid[0])


def test_metrics_are_numpy_scalars():
    for engine in ("fast", "reference"):
        metrics = measure_image(_digit(), engine=engine)
        assert all(type(v) is np.float64 for v in metrics), engine
