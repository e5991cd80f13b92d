"""The compiled fast path equals the plain reference path on real digits and edge cases."""
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import morphology

from core import _kernels, resample, skeleton
from core.measure import measure_image
from core.morpho import ImageMorphology, bounding_parallelogram

MODES = ["released", "upstream"]


def _edge_cases(sample_images):
    digit = sample_images[2500]
    cases = {
        "touching left border": np.roll(digit, -np.nonzero(digit.any(0))[0][0], axis=1),
        "touching bottom border": np.roll(digit, 27 - np.nonzero(digit.any(1))[0][-1], axis=0),
        "in a corner": np.roll(np.roll(digit, 10, axis=0), 12, axis=1),
        "filling the frame": np.pad(np.full((26, 26), 255, np.uint8), 1),
    }
    line = np.zeros((28, 28), np.uint8)
    line[4:24, 14] = 255
    cases["one-pixel stroke"] = line
    diagonal = np.zeros((28, 28), np.uint8)
    np.fill_diagonal(diagonal, 255)
    cases["one-pixel diagonal to the corners"] = diagonal
    blob = np.zeros((28, 28), np.uint8)
    blob[12:15, 12:15] = 200
    cases["single blob"] = blob
    dot = np.zeros((28, 28), np.uint8)
    dot[0, 0] = 255
    cases["single pixel in the corner"] = dot
    return cases


@pytest.fixture(scope="module")
def digits(sample_images):
    chosen = {f"digit {i}": sample_images[i] for i in range(7, 5000, 125)}
    chosen.update(_edge_cases(sample_images))
    return chosen


@pytest.mark.parametrize("mode", MODES)
def test_morphology_arrays_identical(digits, mode):
    for name, image in digits.items():
        fast = ImageMorphology(image, mode=mode)
        ref = ImageMorphology(image, mode=mode, engine="reference")
        for attr in ("hires_image", "binary_image", "skeleton", "distance_map"):
            np.testing.assert_array_equal(getattr(fast, attr), getattr(ref, attr), err_msg=f"{name}: {attr}")


@pytest.mark.parametrize("mode", MODES)
def test_metrics_within_1e12(digits, mode):
    for name, image in digits.items():
        fast = np.array(measure_image(image, mode=mode))
        ref = np.array(measure_image(image, mode=mode, engine="reference"))
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12, err_msg=name)


def test_downscale_identical(digits):
    for name, image in list(digits.items())[::3]:
        for mode in MODES:
            morph = ImageMorphology(image, mode=mode)
            np.testing.assert_array_equal(resample.downscale(morph.binary_image, 4, mode, "fast"),
                                          resample.downscale(morph.binary_image, 4, mode, "reference"))


def test_upstream_downscale_identical_on_perturbed(sample_images):
    # upstream_lowres (Gaussian on the box, prefilter skipping zero columns, clipping range from the box)
    # equals scipy's path bit for bit on hi-res binary and perturbed images of a few hundred digits
    from core import perturb
    perturbations = (perturb.Thinning(), perturb.Thickening(), perturb.Fracture(rng=0))
    for k in range(0, 5000, 20):
        morph = ImageMorphology(sample_images[k], mode="upstream")
        for hires in (morph.binary_image, *(p(morph) for p in perturbations)):
            np.testing.assert_array_equal(resample.downscale(hires, 4, "upstream", "fast"),
                                          resample.downscale(hires, 4, "upstream", "reference"), err_msg=str(k))


def test_bounding_parallelogram_identical(digits):
    for name, image in digits.items():
        hires = ImageMorphology(image).hires_image
        for fast, ref in zip(bounding_parallelogram(hires, .02), bounding_parallelogram(hires, .02, engine="reference")):
            np.testing.assert_array_equal(fast, ref, err_msg=name)


def test_exact_distance_transform_matches_scipy():
    rng = np.random.default_rng(3)
    for _ in range(200):
        shape = tuple(rng.integers(1, 60, size=2))
        binary = rng.random(shape) < rng.uniform(0.2, 0.99)
        if binary.all():
            continue
        ours = np.where(binary, np.sqrt(_kernels.squared_edt(binary)), 0.0)
        np.testing.assert_array_equal(ours, ndi.distance_transform_edt(binary))


def test_legacy_permutation_matches_numpy():
    for n in [0, 1, 2, 3, 17, 255, 256, 257, 1000, 4096, 12544]:
        np.testing.assert_array_equal(_kernels.legacy_permutation(n, 0), np.random.RandomState(0).permutation(n))


def test_disk_morphology_matches_scikit_image(digits):
    for name, image in list(digits.items())[::2]:
        binary = ImageMorphology(image).binary_image
        for r in (1, 4, 9):
            np.testing.assert_array_equal(skeleton.dilate_disk(binary, r), morphology.dilation(binary, morphology.disk(r)))
            np.testing.assert_array_equal(skeleton.erode_disk(binary, r), morphology.erosion(binary, morphology.disk(r)))


def test_bilinear_warp_identical():
    rng = np.random.default_rng(5)
    image = rng.random((40, 30))
    rr = rng.uniform(-3, 43, size=(40, 30))
    cc = rng.uniform(-3, 33, size=(40, 30))
    np.testing.assert_allclose(resample.bilinear_warp(image, rr, cc, "fast"),
                               resample.bilinear_warp(image, rr, cc, "reference"), rtol=0, atol=1e-15)


def test_squared_edt_thin_matches_scipy():
    rng = np.random.default_rng(4)
    for _ in range(200):
        shape = tuple(rng.integers(1, 60, size=2))
        binary = rng.random(shape) < rng.uniform(0.2, 0.99)
        if binary.all():
            continue
        ours = np.where(binary, np.sqrt(_kernels.squared_edt_thin(binary)), 0.0)
        np.testing.assert_array_equal(ours, ndi.distance_transform_edt(binary))


def test_pcg_permutation_matches_numpy():
    for n in [0, 1, 2, 3, 17, 255, 256, 257, 1000, 4096, 12544]:
        np.testing.assert_array_equal(skeleton.tiebreaker(n, "upstream", "fast"),
                                      np.random.default_rng(42).permutation(n))


def test_spline_zoom_matches_scipy():
    # upstream mode's resize: ndimage.zoom(order=3, mode="mirror", grid_mode=True), clipped; to the last bit
    rng = np.random.default_rng(6)
    for shape, out_shape in [((28, 28), (112, 112)), ((112, 112), (28, 28)), ((5, 7), (13, 30)), ((3, 2), (9, 9)),
                             ((28, 28), (84, 56))]:
        image = rng.random(shape)
        zoom = (out_shape[0] / shape[0], out_shape[1] / shape[1])
        expected = np.clip(ndi.zoom(image, zoom, order=3, mode="mirror", grid_mode=True), image.min(), image.max())
        np.testing.assert_array_equal(_kernels.spline_zoom(image, *out_shape), expected)


def _unusual_inputs(sample_images):
    digit = sample_images[1300]
    return {
        "grey background (no zero pixel)": np.maximum(digit, 12).astype(np.uint8),
        "float off the uint8 grid": np.clip(digit / 255.0 + 0.003 * np.sin(np.arange(784)).reshape(28, 28), 0, 1),
        "larger canvas": np.pad(digit, ((3, 5), (0, 9))),
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("threshold, scale", [(.5, 4), (.05, 4), (.9, 4), (.5, 1), (.5, 3)])
def test_options_and_unusual_inputs_match_reference(digits, sample_images, mode, threshold, scale):
    cases = dict(list(digits.items())[::4])
    cases.update(_unusual_inputs(sample_images))
    for name, image in cases.items():
        fast = np.array(measure_image(image, threshold, scale, mode=mode))
        ref = np.array(measure_image(image, threshold, scale, mode=mode, engine="reference"))
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12, err_msg=f"{name}, threshold {threshold}, scale {scale}")
        morph = ImageMorphology(image, threshold, scale, mode)
        ref_morph = ImageMorphology(image, threshold, scale, mode, engine="reference")
        for attr in ("hires_image", "binary_image", "skeleton", "distance_map"):
            np.testing.assert_array_equal(getattr(morph, attr), getattr(ref_morph, attr), err_msg=f"{name}: {attr}")


@pytest.mark.parametrize("mode", MODES)
def test_batch_kernel_matches_reference(digits, mode):
    from core.measure import measure_batch

    stack = np.stack([d for d in digits.values() if d.shape == (28, 28)])
    fast = measure_batch(stack, mode=mode, progress=False).to_numpy()
    ref = measure_batch(stack, mode=mode, engine="reference", progress=False).to_numpy()
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


def test_tiebreak_streams_are_the_generators_words():
    pcg_state, mt_words, pcg_words = skeleton.TIEBREAK_DATA
    np.testing.assert_array_equal(mt_words, _kernels.mt_stream(0, len(mt_words)))
    np.testing.assert_array_equal(pcg_words, _kernels.pcg_stream(pcg_state, len(pcg_words)))
    for n in (5, 1543, 12544):
        for upstream, expected in ((False, np.random.RandomState(0).permutation(n)),
                                   (True, np.random.default_rng(42).permutation(n))):
            np.testing.assert_array_equal(_kernels._tiebreaker(n, upstream, skeleton.TIEBREAK_DATA), expected)
    # a permutation longer than the streams generates its own words
    np.testing.assert_array_equal(_kernels._tiebreaker(70_000, False, skeleton.TIEBREAK_DATA),
                                  np.random.RandomState(0).permutation(70_000))


def test_distance_transform_on_the_foreground_box_matches_scipy():
    # squared_edt works on the foreground's box grown by a pixel: shapes placed anywhere, borders included
    rng = np.random.default_rng(8)
    for _ in range(200):
        shape = tuple(rng.integers(1, 60, size=2))
        binary = np.zeros(shape, bool)
        a, b = sorted(rng.integers(0, shape[0], 2))
        c, d = sorted(rng.integers(0, shape[1], 2))
        binary[a:b + 1, c:d + 1] = rng.random((b + 1 - a, d + 1 - c)) < rng.uniform(0.2, 0.99)
        if binary.all() or not binary.any():
            continue
        ours = np.where(binary, np.sqrt(_kernels.squared_edt(binary)), 0.0)
        np.testing.assert_array_equal(ours, ndi.distance_transform_edt(binary))


def test_image_moments_of_integer_images_equal_the_numpy_sums(digits):
    from core.morpho import ImageMoments, raw_moments_reference

    for name, image in list(digits.items())[::3]:
        morph = ImageMorphology(image)
        for arr in (morph.hires_image, morph.binary_image, morph.skeleton, image):
            fast = ImageMoments(arr)
            ref = ImageMoments.from_raw(*raw_moments_reference(arr))
            assert (fast.m00, fast.m10, fast.m01, fast.u20, fast.u11, fast.u02) == \
                   (ref.m00, ref.m10, ref.m01, ref.u20, ref.u11, ref.u02), name


def test_parallelogram_counts_on_the_box_match_the_full_loop(digits):
    # the box version computes each row's count in closed form; shears putting t + offset at x + .5 exactly
    # are the cases where a rounding slip would show
    rng = np.random.default_rng(9)
    for name, image in digits.items():
        hires = ImageMorphology(image).hires_image
        box = _kernels._nonzero_box(hires)
        for shear, y_mid in [(rng.normal(0, .5), rng.uniform(20, 90)), (.5, 50.), (.25, 51.), (1., 50.5), (0., 0.),
                             (-.5, 40.), (-1.5, 56.)]:
            fast = _kernels._box_parallelogram_cdfs(hires, box, shear, y_mid)
            full = _kernels.parallelogram_cdfs(hires, shear, y_mid)
            np.testing.assert_array_equal(fast[0], full[0], err_msg=name)
            np.testing.assert_array_equal(fast[1], full[1], err_msg=name)


def test_numba_is_imported_at_the_first_compiled_call_not_at_import():
    """``import core.measure`` / ``core.perturb`` leave numba alone (the explorer's first page uses the
    reference path); the first fast measurement imports it, and the lazy stand-in hands out the real kernels."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from core import measure, perturb\n"
            "print('numba' in sys.modules)\n"
            "import numpy as np\n"
            "digit = np.zeros((28, 28), np.uint8); digit[6:22, 12:16] = 255\n"
            "measure.measure_image(digit, engine='reference')\n"
            "print('numba' in sys.modules)\n"
            "measure.measure_image(digit, engine='fast')\n"
            "print('numba' in sys.modules)\n"
            "from core import _kernels, resample\n"
            "print(resample._kernels.mirror_index is _kernels.mirror_index)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True", "True"]


def test_the_skeleton_tables_are_built_at_first_use_not_at_import():
    """``import core`` and its measuring modules build nothing: the medial axis's lookup tables and random
    streams (about 0.1 s) are built at the first call that needs them, once, and keep their public names."""
    import subprocess
    import sys

    code = ("from core import measure, morpho, perturb, skeleton\n"
            "print(skeleton.kernel_tables.cache_info().currsize)\n"
            "table = skeleton.SKELETON_TABLE\n"
            "print(skeleton.kernel_tables.cache_info().currsize)\n"
            "print(table is skeleton.kernel_tables()[1] and skeleton.TIEBREAK_DATA is skeleton.kernel_tables()[0])\n"
            "print(int(table.sum()), int(skeleton.CORNERNESS_TABLE.max()), skeleton.UPSTREAM_PCG_STATE.dtype)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["0", "1", "True"]
    assert out[3] == str(int(skeleton.kernel_tables()[1].sum())) and out[4:] == ["9", "uint64"]
