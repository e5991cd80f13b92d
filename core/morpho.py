"""Image morphology of a digit: hi-res image, binarisation, skeleton, distance map, moments, bounding box.

Follows ``morphomnist.morpho`` (Castro et al., 2019): the 28x28 digit is upsampled `scale` times
(``pyramid_expand``, order 3) and stored as uint8 (``(255 * up).astype(uint8)``, truncating); it is binarised
at ``min + threshold * (max - min)``; the skeleton is its medial axis; lengths are then divided by `scale`
so that every figure is in pixels of the 28x28 image.
"""
from __future__ import annotations

import os

import numpy as np
from scipy import ndimage as ndi

from . import resample
from ._lazy import lazy_module
from .resample import check_engine, check_mode
from .skeleton import kernel_tables, medial_axis
from .validation import check_integer, check_number

_kernels = lazy_module("core._kernels")  # numba: imported at the first compiled call

__all__ = ["ImageMorphology", "ImageMoments", "bounding_parallelogram", "as_digit", "binarise", "default_mode",
           "MODE_ENV", "MAX_HIRES_PIXELS", "MAX_SCALE", "check_options"]

#: Environment variable that sets the default mode of ImageMorphology (and so of every perturbation)
MODE_ENV = "MORPHO_MNIST_MODE"


def default_mode() -> str:
    """The mode an ImageMorphology gets when none is given: ``$MORPHO_MNIST_MODE`` or "released".

    ``MORPHO_MNIST_MODE=upstream`` makes code written for the original ``morphomnist`` behave as the
    original does with today's scikit-image without changing a line (docs/upstream.md).
    """
    mode = os.environ.get(MODE_ENV, "").strip() or "released"
    if mode not in ("released", "upstream"):
        raise ValueError(f"environment variable {MODE_ENV}={mode!r}: expected 'released' or 'upstream'")
    return mode


_SKEL_LEN_MASK = np.array([[0., 0., 0.], [0., 0., 1.], [np.sqrt(2.), 1., np.sqrt(2.)]])
_GRID_TOL = 1e-6  # a float pixel this close to k/255 is that uint8 value

#: Largest image measured or perturbed, in hi-res pixels (rows x cols x scale²): 2**22, e.g. a 512x512 image at
#: scale 4 or 2048x2048 at scale 1 (a 28x28 digit at scale 4 is 12,544). Larger images are refused at once:
#: the hi-res arrays and the medial axis would take seconds to minutes and gigabytes.
MAX_HIRES_PIXELS = 1 << 22
#: Largest upsampling factor.
MAX_SCALE = 16


def check_options(threshold, scale) -> tuple[float, int]:
    """Validated (threshold, scale): a finite relative threshold in [0, 1], an integer scale in [1, MAX_SCALE]."""
    return (check_number("threshold", threshold, 0., 1.), check_integer("scale", scale, 1, MAX_SCALE))


def check_image_size(shape: tuple, scale: int = 1) -> None:
    """Refuse an image whose hi-res grid exceeds :data:`MAX_HIRES_PIXELS` (from its shape: before any work)."""
    if len(shape) < 2:
        return  # not an image: as_digit says so
    rows, cols = shape[-2:]
    if rows * cols * scale ** 2 > MAX_HIRES_PIXELS:
        raise ValueError(f"image of shape {tuple(shape)} at scale {scale} has {rows * cols * scale ** 2:,} hi-res "
                         f"pixels, over the limit of {MAX_HIRES_PIXELS:,} (core.morpho.MAX_HIRES_PIXELS); "
                         "Morpho-MNIST digits are 28x28")


def as_digit(image, *, keep_float: bool = False) -> np.ndarray:
    """Validate a digit and return it as uint8 (if it is on the 1/255 grid) or float64 in [0, 1].

    Accepts uint8 (or any integer type) in [0, 255], bool, and float in [0, 1] (as a model's samples usually
    are). A float digit equal to a uint8 digit / 255 comes back as that uint8 digit, so both are measured alike.

    With ``keep_float=True`` (upstream mode) a float digit is returned unchanged, in its own dtype, and may
    range over [0, 255] as well as [0, 1]: the original code measures floats as they are (see
    :func:`core.resample.upscale_float`).

    Raises
    ------
    ValueError
        If the image is not 2-D, smaller than 2x2, has NaN/inf pixels, is out of range, or is blank/constant.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image (rows, cols), got an array of shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"image of shape {img.shape} is too small (at least 2x2)")
    check_image_size(img.shape)
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.integer):
        lo, hi = int(img.min()), int(img.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"integer pixels must be in [0, 255], found values in [{lo}, {hi}]")
        img = img.astype(np.uint8, copy=False)
    elif np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float64, copy=False)
        finite = np.isfinite(img)
        if not finite.all():
            bad = np.argwhere(~finite)
            raise ValueError(f"image has {len(bad)} NaN/inf pixel(s), first at (row, col) = ({bad[0][0]}, {bad[0][1]})")
        lo, hi = float(img.min()), float(img.max())
        if keep_float:
            if lo < 0 or hi > 255:
                raise ValueError(f"float pixels must be in [0, 1] or [0, 255], found values in [{lo:.6g}, {hi:.6g}]")
            if lo == hi:
                raise ValueError(f"image is blank (constant, every pixel = {lo:g}): there is no digit to measure")
            return np.asarray(image)
        if lo < -_GRID_TOL or hi > 1 + _GRID_TOL:
            hint = " (values in [-1, 1]? rescale with (x + 1) / 2)" if lo >= -1 - _GRID_TOL else ""
            if lo >= 0 and hi <= 255:
                hint = (" (values in [0, 255]? divide by 255, or use mode='upstream', which measures floats as "
                        "the original code does)")
            raise ValueError(f"float pixels must be in [0, 1], found values in [{lo:.6g}, {hi:.6g}]{hint}")
        scaled = img * 255.0
        rounded = np.rint(scaled)
        if np.abs(scaled - rounded).max() <= _GRID_TOL * 255:
            img = rounded.astype(np.uint8)
        else:
            img = np.clip(img, 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {img.dtype} (expected uint8 in [0, 255] or float in [0, 1])")
    if img.min() == img.max():
        raise ValueError(f"image is blank (constant, every pixel = {img.flat[0]}): there is no digit to measure")
    return img


def _to_unit(img: np.ndarray) -> np.ndarray:
    # as scikit-image's img_as_float: uint8 * (1 / 255)
    if img.dtype == np.uint8:
        return np.multiply(img, 1.0 / 255, dtype=np.float64)
    return np.ascontiguousarray(img, dtype=np.float64)


def binarise(hires: np.ndarray, threshold: float) -> np.ndarray:
    """``hires >= min + (max - min) * threshold`` (the threshold is relative to the image's range)."""
    lo, hi = hires.min(), hires.max()
    return hires >= lo + (hi - lo) * threshold


class ImageMorphology:
    """Hi-res morphology of one digit.

    Parameters
    ----------
    image : numpy.ndarray
        (28, 28) digit, uint8 in [0, 255] or float in [0, 1] (see :func:`as_digit`); in upstream mode also
        float in [0, 255], and a float digit keeps its float hi-res image as in the original.
    threshold : float
        Binarisation level, relative to the hi-res image's range.
    scale : int
        Upsampling factor; hi-res arrays are (28 * scale, 28 * scale). The default is 4, as every
        Morpho-MNIST computation uses; the original class defaulted to 1 (no upsampling), which nothing in
        the original package relied on (its measure_image passes 4).
    mode : {"released", "upstream"}, optional
        ``"released"`` reproduces the published Morpho-MNIST tables; ``"upstream"`` what the original code
        gives with current scikit-image (see :mod:`core.resample`). Default: :func:`default_mode`
        ("released" unless the environment variable ``MORPHO_MNIST_MODE`` says "upstream").
    engine : {"fast", "reference"}
        Compiled kernels or the plain reference implementation (same numbers).

    Attributes
    ----------
    image : numpy.ndarray
        The validated input digit.
    hires_image : numpy.ndarray
        (H * scale, W * scale): uint8; in upstream mode, a float digit's hi-res image keeps the digit's float
        dtype and values (the original's ``(255. * up_img).astype(img.dtype)``), as the original thresholds it.
    binary_image, skeleton : numpy.ndarray
        bool, hi-res.
    distance_map : numpy.ndarray
        float64, hi-res: distance to the background in hi-res pixels.
    """

    def __init__(self, image: np.ndarray, threshold: float = .5, scale: int = 4, mode: str | None = None, *,
                 engine: str = "fast"):
        self.mode = mode = check_mode(default_mode() if mode is None else mode)
        self.engine = check_engine(engine)
        self.threshold, self.scale = check_options(threshold, scale)
        check_image_size(np.shape(image), self.scale)
        self.image = as_digit(image, keep_float=mode == "upstream")
        if self.image.dtype.kind == "f" and mode == "upstream":
            # the original keeps a float digit's hi-res image in float (no quantisation) and thresholds it
            self.hires_image = (resample.upscale_float(self.image, self.scale) if self.scale > 1
                                else self.image)
            self.binary_image = binarise(self.hires_image, self.threshold)
            self.skeleton, self.distance_map = medial_axis(self.binary_image, mode, engine)
            return
        unit = _to_unit(self.image)
        if engine == "fast":
            # upsampling, binarisation and medial axis in one compiled call, on the ink's box
            (self.hires_image, _, self.binary_image, _, self.skeleton,
             self.distance_map) = _kernels.morphology(unit, mode == "upstream", self.threshold, self.scale,
                                                      resample.gaussian_weights(2 * self.scale / 6.0),
                                                      *kernel_tables())
            return
        if self.scale > 1:
            self.hires_image = resample.to_uint8(resample.upscale(unit, self.scale, mode, engine), engine)
        else:
            self.hires_image = resample.to_uint8(unit, engine)
        self.binary_image = binarise(self.hires_image, self.threshold)
        self.skeleton, self.distance_map = medial_axis(self.binary_image, mode, engine)

    @property
    def area(self) -> float:
        """Area of the binarised digit, in 28x28 pixels squared."""
        return self.binary_image.sum() / self.scale ** 2

    @property
    def stroke_length(self) -> float:
        """Length of the skeleton (1 per horizontal/vertical link, sqrt(2) per diagonal), in pixels."""
        skel = self.skeleton.astype(float)
        conv = ndi.correlate(skel, _SKEL_LEN_MASK, mode="constant")
        return np.einsum("ij,ij->", conv, skel) / self.scale

    @property
    def mean_thickness(self) -> float:
        """Twice the mean distance to the boundary along the skeleton, in pixels."""
        return 2. * np.mean(self.distance_map[self.skeleton]) / self.scale

    @property
    def median_thickness(self) -> float:
        """Twice the median distance to the boundary along the skeleton, in pixels."""
        return 2. * np.median(self.distance_map[self.skeleton]) / self.scale

    def downscale(self, image: np.ndarray) -> np.ndarray:
        """Bring a hi-res image (e.g. a perturbation's output) back to the low-res grid as uint8.

        ``(255 * pyramid_reduce(image, downscale=scale, order=3)).astype(uint8)`` in this morphology's mode.
        """
        if self.scale == 1:
            return resample.to_uint8(np.asarray(image, dtype=np.float64), self.engine)
        return resample.to_uint8(resample.downscale(image, self.scale, self.mode, self.engine), self.engine)


def raw_moments_reference(img: np.ndarray) -> tuple:
    """(sum I, sum xI, sum yI, sum x^2 I, sum xyI, sum y^2 I) of an image, x = column, y = row (plain numpy;
    the specification of the compiled ``_kernels.raw_moments_uint8``)."""
    img = np.asarray(img).astype(float)
    x = np.arange(img.shape[1])[None, :]
    y = np.arange(img.shape[0])[:, None]
    return (img.sum(), (x * img).sum(), (y * img).sum(), (x ** 2 * img).sum(), (x * y * img).sum(),
            (y ** 2 * img).sum())


class ImageMoments:
    """Intensity moments of an image (x = column, y = row, pixel units).

    Parameters
    ----------
    img : numpy.ndarray
        (rows, cols), any real dtype; treated as a mass distribution.
    """

    def __init__(self, img: np.ndarray):
        img = np.asarray(img)
        if img.ndim == 2 and img.dtype.kind in "bu" and img.dtype.itemsize == 1 and img.size <= 1 << 20:
            # bool/uint8 images: every sum is of integers below 2**53, exact in any order, so the
            # compiled single pass gives the very numbers of the numpy expressions below
            self._set(*_kernels.raw_moments_uint8(np.ascontiguousarray(img).view(np.uint8)))
            return
        self._set(*raw_moments_reference(img))

    @classmethod
    def from_raw(cls, m00, mx, my, mxx, mxy, myy) -> "ImageMoments":
        """Moments from raw sums (sum I, sum xI, sum yI, sum x^2 I, sum xyI, sum y^2 I)."""
        self = cls.__new__(cls)
        self._set(m00, mx, my, mxx, mxy, myy)
        return self

    def _set(self, m00, mx, my, mxx, mxy, myy):
        # numpy scalars, as the original's sums are: a zero mass or variance gives nan/inf (with numpy's
        # RuntimeWarning), not ZeroDivisionError
        m00, mx, my, mxx, mxy, myy = (np.float64(v) for v in (m00, mx, my, mxx, mxy, myy))
        m10, m01 = mx / m00, my / m00
        m20, m11, m02 = mxx / m00, mxy / m00, myy / m00
        self.m00 = m00
        self.m10 = m10
        self.m01 = m01
        self.u20 = m20 - m10 ** 2
        self.u11 = m11 - m10 * m01
        self.u02 = m02 - m01 ** 2

    @property
    def centroid(self) -> tuple[float, float]:
        """(x, y) centre of mass."""
        return self.m10, self.m01

    @property
    def covariance(self) -> tuple[float, float, float]:
        """Central second moments (u20, u11, u02), normalised by the mass."""
        return self.u20, self.u11, self.u02

    @property
    def axis_lengths(self) -> tuple[float, float]:
        """Standard deviations along the principal axes (major, minor)."""
        delta = .5 * np.hypot(2. * self.u11, self.u20 - self.u02)
        eig1 = .5 * (self.u20 + self.u02) + delta
        eig2 = .5 * (self.u20 + self.u02) - delta
        return np.sqrt(eig1), np.sqrt(max(eig2, 0.0))

    @property
    def angle(self) -> float:
        """Orientation of the major axis (radians, from the x axis towards y)."""
        return .5 * np.arctan2(2. * self.u11, self.u20 - self.u02)

    @property
    def horizontal_shear(self) -> float:
        """u11 / u02: horizontal displacement per unit of height (slant = arctan(-shear))."""
        return self.u11 / self.u02

    @property
    def vertical_shear(self) -> float:
        return self.u11 / self.u20


def _horz_cdf(img, shear, x, y, y_mid):
    locs = np.arange(0, img.shape[1], step=1)
    counts = np.zeros(len(locs))
    for i, t in enumerate(locs):
        counts[i] = ((x + .5 < t + shear * (y - y_mid)) * img).sum()
    return locs, counts / img.sum()


def _vert_cdf(img, y):
    counts = np.zeros(img.shape[0])
    for t in range(img.shape[0]):
        counts[t] = ((y < t) * img).sum()
    return counts / img.sum()


def bounding_parallelogram(img: np.ndarray, frac: float, moments: ImageMoments | None = None, *,
                           engine: str = "fast"):
    """The sheared bounding box holding all but `frac` of the image's mass.

    Its vertical sides follow the digit's slant (the horizontal shear of `moments`, through the centroid);
    `frac` / 2 of the mass lies beyond each side, and likewise above the top and below the bottom.

    Parameters
    ----------
    img : numpy.ndarray
        (rows, cols) intensity image (Morpho-MNIST uses the hi-res image).
    frac : float
        Fraction of mass left outside, split equally on both sides of each axis.
    moments : ImageMoments, optional
        Moments of `img`, if already computed.

    Returns
    -------
    top_left, top_right, bottom_right, bottom_left : numpy.ndarray
        Corners as ``np.array([x, y])`` in pixels of `img`.
    """
    frac = check_number("frac", frac, 0., 1.)
    img = np.asarray(img)
    height, width = img.shape
    if moments is None:
        moments = ImageMoments(img)
    middle = moments.centroid[1]
    shear = moments.horizontal_shear
    # the compiled counts for the hi-res images core makes (uint8, bool, float64); other dtypes (an upstream
    # float32 hi-res image) take the original's expressions
    if check_engine(engine) == "fast" and img.dtype in (np.uint8, np.bool_, np.float64):
        hcount, vcount = _kernels.parallelogram_cdfs(np.ascontiguousarray(img), shear, middle)
        total = float(np.asarray(img, dtype=float).sum())
        hloc, hcdf, vcdf = np.arange(width), hcount / total, vcount / total
    else:
        imgf = np.asarray(img).astype(float)
        x = np.arange(width)[None, :]
        y = np.arange(height)[:, None]
        hloc, hcdf = _horz_cdf(imgf, shear, x, y, middle)
        vcdf = _vert_cdf(imgf, y)
    half = frac / 2  # two-sided
    left, right = np.interp([half, 1. - half], hcdf, hloc)
    top, bottom = np.interp([half, 1. - half], vcdf, np.arange(len(vcdf)))
    top_left = np.array([left + shear * (top - middle), top])
    top_right = np.array([right + shear * (top - middle), top])
    bottom_left = np.array([left + shear * (bottom - middle), bottom])
    bottom_right = np.array([right + shear * (bottom - middle), bottom])
    return top_left, top_right, bottom_right, bottom_left
