"""core.measure: the published numbers, both modes, input validation and batch behaviour."""
import concurrent.futures as cf
import warnings

import numpy as np
import pandas as pd
import pytest
from skimage import morphology, transform

from core.measure import (METRICS, MeasurementWarning, Morphometrics, measure_batch, measure_details,
                          measure_image)
from core.morpho import ImageMorphology

# Released train-morpho.csv, MNIST training digit 0 (row 2500 of the bundled sample)
TRAIN_0 = dict(area=107.3125, length=50.26650429449552, thickness=2.4606583773939543,
               slant=0.23107446620980754, width=14.539571782767355, height=19.849053691610763)


@pytest.fixture(scope="module")
def digit0(sample_images):
    return sample_images[2500]


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_training_digit_0_matches_released_table(digit0, engine):
    m = measure_image(digit0, engine=engine)
    assert isinstance(m, Morphometrics)
    for name, value in TRAIN_0.items():
        assert getattr(m, name) == pytest.approx(value, abs=1e-12), name


def test_float_digit_is_measured_like_uint8(digit0):
    as_uint8 = measure_image(digit0)
    assert measure_image(digit0 / 255.0) == as_uint8
    assert measure_image((digit0 / 255.0).astype(np.float32)) == as_uint8
    assert measure_image(digit0.astype(np.int64)) == as_uint8


def test_float_digit_off_the_uint8_grid(digit0):
    rng = np.random.default_rng(0)
    noisy = np.clip(digit0 / 255.0 + rng.normal(0, 0.01, digit0.shape), 0, 1)
    m = measure_image(noisy)
    assert all(np.isfinite(m))
    assert m.area == pytest.approx(TRAIN_0["area"], rel=0.1)


def test_upstream_mode_matches_scikit_image_today(sample_images):
    # upstream mode = the original pipeline with today's scikit-image calls
    for image in sample_images[::500]:
        ours = ImageMorphology(image, mode="upstream")
        hires = (255. * transform.pyramid_expand(image, upscale=4, order=3)).astype(np.uint8)
        np.testing.assert_array_equal(ours.hires_image, hires)
        binary = hires >= hires.min() + (hires.max() - hires.min()) * .5
        skeleton, distance = morphology.medial_axis(binary, return_distance=True, rng=42)
        np.testing.assert_array_equal(ours.skeleton, skeleton)
        np.testing.assert_array_equal(ours.distance_map, distance)


def test_modes_differ_where_scikit_image_changed(sample_images):
    released = measure_batch(sample_images[:50], progress=False)
    upstream = measure_batch(sample_images[:50], mode="upstream", progress=False)
    assert (np.abs(released["length"] - upstream["length"]) > 1e-6).any()
    np.testing.assert_allclose(released["slant"], upstream["slant"], atol=0.05)


def test_measure_image_prints_nothing(digit0, capsys):
    measure_image(digit0)
    measure_image(digit0, engine="reference")
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("image, message", [
    (np.zeros((28, 28), np.uint8), "blank"),
    (np.full((28, 28), 0.5), "blank"),
    (np.zeros((1, 28, 28), np.uint8), "2-D"),
    (np.zeros(784, np.uint8), "2-D"),
    (np.linspace(-1, 1, 784).reshape(28, 28), r"\[-1, 1\]"),
    (np.arange(784).reshape(28, 28), r"\[0, 255\]"),
])
def test_bad_images_raise_value_error(image, message):
    with pytest.raises(ValueError, match=message):
        measure_image(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(digit0, bad):
    image = digit0 / 255.0
    image[3, 4] = bad
    with pytest.raises(ValueError, match=r"NaN/inf pixel.*\(3, 4\)"):
        measure_image(image)


def test_details_agree_with_metrics(digit0):
    details = measure_details(digit0)
    assert details.metrics == measure_image(digit0, engine="reference")
    top_left, top_right, bottom_right, bottom_left = details.corners
    assert (top_right[0] - top_left[0]) / 4 == pytest.approx(TRAIN_0["width"], abs=1e-12)
    assert details.morph.hires_image.shape == (112, 112)


def test_batch_columns_and_rows_match_single_measurements(sample_images, capsys):
    images = sample_images[::250]
    df = measure_batch(images, progress=False)
    assert list(df.columns) == list(METRICS) and len(df) == len(images)
    for k, image in enumerate(images):
        assert tuple(df.iloc[k]) == measure_image(image)
    assert capsys.readouterr().err == ""


def test_batch_parallel_and_executors_are_identical(sample_images):
    images = sample_images[::50]
    serial = measure_batch(images, progress=False)
    pd.testing.assert_frame_equal(measure_batch(images, workers=2, progress=False, chunksize=7), serial)
    with cf.ThreadPoolExecutor(2) as pool:
        pd.testing.assert_frame_equal(measure_batch(images, executor=pool, progress=False), serial)
    calls = []
    measure_batch(images, progress=lambda done, total: calls.append((done, total)), chunksize=30)
    assert calls[-1] == (len(images), len(images)) and len(calls) == 4


def test_batch_progress_bar(sample_images, capsys):
    measure_batch(sample_images[:20], progress=True)
    assert "20/20" in capsys.readouterr().err


def test_70000_digits_with_a_few_bad_ones(sample_images):
    images = np.tile(sample_images, (14, 1, 1)).astype(np.float64) / 255.0
    bad = [3, 41_000, 69_999]
    images[3] = 0.0
    images[41_000, 5, 5] = np.nan
    images[69_999] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = measure_batch(images, workers=2, progress=False)
    ours = [w for w in caught if issubclass(w.category, MeasurementWarning)]
    assert len(ours) == 1
    assert "3 of 70000" in str(ours[0].message) and "[3, 41000, 69999]" in str(ours[0].message)
    assert df.iloc[bad].isna().all(axis=None)
    good = np.setdiff1d(np.arange(70_000), bad)
    assert not df.iloc[good].isna().any(axis=None)
    expected = measure_batch(sample_images, progress=False).to_numpy()
    np.testing.assert_array_equal(df.to_numpy()[good], np.tile(expected, (14, 1))[good])


def test_batch_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, rows, cols\)"):
        measure_batch(np.zeros((28, 28)))


# The original morphomnist.measure signatures (dccastro/Morpho-MNIST, morphomnist/measure.py): parameter
# names in order, then defaults. verbose defaulted to True there; here it stays off (a library prints nothing).
ORIGINAL_SIGNATURES = {
    "measure_image": (["image", "threshold", "scale", "bound_frac", "verbose"], [.5, 4, .02, True]),
    "measure_batch": (["images", "threshold", "scale", "bound_frac", "pool", "chunksize"], [.5, 4, .02, None, 100]),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_SIGNATURES))
def test_signatures_match_the_original(name):
    import inspect

    import core.measure

    names, defaults = ORIGINAL_SIGNATURES[name]
    params = list(inspect.signature(getattr(core.measure, name)).parameters.values())
    positional = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == names
    ours = [p.default for p in positional[1:]]
    expected = [False if n == "verbose" else d for n, d in zip(names[1:], defaults)]
    assert ours == expected


def test_positional_calls_as_in_the_original(digit0, sample_images):
    assert measure_image(digit0, .5, 4, .02, False) == measure_image(digit0)
    thin = measure_image(digit0, .7, 4, .02, False)
    assert thin.area < measure_image(digit0).area  # a higher threshold binarises less ink
    images = sample_images[::500]
    pd.testing.assert_frame_equal(measure_batch(images, .5, 4, .02, None, 3, progress=False),
                                  measure_batch(images, progress=False))


def test_verbose_prints_as_the_original(digit0, capsys):
    m = measure_image(digit0, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Area: {m.area:.1f}", f"Length: {m.length:.1f}", f"Thickness: {m.thickness:.2f}",
                   f"Slant: {np.rad2deg(m.slant):.0f}°", f"Dimensions: {m.width:.1f} x {m.height:.1f}"]


def test_batch_progress_granularity_follows_chunksize(sample_images):
    calls = []
    measure_batch(sample_images[:250], progress=lambda done, total: calls.append(done))
    assert calls == [100, 200, 250]  # the original's default chunksize of 100


def test_the_mode_environment_variable_governs_measurement_too(sample_images, monkeypatch):
    """MORPHO_MNIST_MODE=upstream makes unchanged morphomnist-style code measure as the original does
    today, as it already does for ImageMorphology and the perturbations; an explicit mode always wins."""
    from core.measure import measure_batch, measure_image

    digits = sample_images[2495:2505]
    released = [measure_image(d, mode="released") for d in digits]
    upstream = [measure_image(d, mode="upstream") for d in digits]
    assert released != upstream
    monkeypatch.delenv("MORPHO_MNIST_MODE", raising=False)
    assert [measure_image(d) for d in digits] == released
    monkeypatch.setenv("MORPHO_MNIST_MODE", "upstream")
    assert [measure_image(d) for d in digits] == upstream
    assert measure_batch(digits, progress=False).to_numpy().tolist() == [list(m) for m in upstream]
    assert [measure_image(d, mode="released") for d in digits] == released
    monkeypatch.setenv("MORPHO_MNIST_MODE", "2018")
    with pytest.raises(ValueError, match="MORPHO_MNIST_MODE"):
        measure_image(digits[0])
