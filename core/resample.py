"""Up- and downsampling of digits between 28x28 and the hi-res grid, and warps of binary images.

Two modes, as in :mod:`core.morpho`:

``"released"``
    What scikit-image 0.13/0.14 did in 2018 when the Morpho-MNIST tables were computed:
    ``pyramid_expand`` resized through ``warp``'s own Catmull-Rom bicubic (Keys, 1981) of the affine
    pixel-centre mapping with mirrored borders and clipping to the input range, then smoothed with a
    Gaussian (sigma = 2 * scale / 6, scipy.ndimage mode 'reflect'); ``pyramid_reduce`` the same in reverse
    order; warps of binary images interpolated bilinearly. Owned here, so no scikit-image release can
    change it.
``"upstream"``
    What the original code gives with current scikit-image: resizing with ``scipy.ndimage.zoom`` (cubic
    spline, mode 'mirror', ``grid_mode=True``) instead of the legacy bicubic.

Every function takes ``engine="fast"`` (compiled kernels of :mod:`core._kernels`) or ``"reference"``
(plain numpy/scipy, written for reading); both give the same numbers.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from ._lazy import lazy_module

_kernels = lazy_module("core._kernels")  # numba: imported at the first compiled call

__all__ = ["MODES", "ENGINES", "gaussian_weights", "upscale", "upscale_float", "downscale", "to_uint8",
           "legacy_bicubic_resize_reference", "bilinear_warp"]

MODES = ("released", "upstream")
ENGINES = ("fast", "reference")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    return engine


@lru_cache(maxsize=32)
def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian correlation weights of radius ``int(truncate * sigma + .5)``.

    Computed as scipy.ndimage.gaussian_filter1d does: ``exp(-0.5 / sigma**2 * x**2)`` normalised to sum 1.

    Returns
    -------
    numpy.ndarray
        float64, shape (2 * radius + 1,), symmetric. Read-only (cached).
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    phi = phi / phi.sum()
    phi.setflags(write=False)
    return phi


def _gaussian(img: np.ndarray, sigma: float, engine: str) -> np.ndarray:
    weights = gaussian_weights(sigma)
    if engine == "fast":
        return _kernels.gaussian_smooth(img, weights, False)
    out = ndi.correlate1d(img, weights, axis=0, mode="reflect")
    return ndi.correlate1d(out, weights, axis=1, mode="reflect")


def _cubic(x, f0, f1, f2, f3):
    # Catmull-Rom cubic convolution in scikit-image's legacy operation order (keep it: see module doc)
    return f1 + 0.5 * x * (f2 - f0 + x * (2.0 * f0 - 5.0 * f1 + 4.0 * f2 - f3 + x * (3.0 * (f1 - f2) + f3 - f0)))


def _mirror(coords: np.ndarray, size: int) -> np.ndarray:
    # scikit-image 'reflect' for a warp: mirror about the edge pixels (d c b | a b c d | c b a)
    if size == 1:
        return np.zeros_like(coords)
    period = 2 * (size - 1)
    c = np.mod(coords, period)
    return np.where(c > size - 1, period - c, c)


def legacy_bicubic_resize_reference(img: np.ndarray, out_shape: tuple[int, int], clip: bool = True) -> np.ndarray:
    """Resize with scikit-image's legacy bicubic warp (plain numpy reference).

    Output pixel (i, j) samples the input at ``(f * i + (f / 2 - 1/2))`` with ``f = in / out`` per axis (the
    pixel-centre mapping), interpolating first along columns (4 rows), then along rows.

    Parameters
    ----------
    img : numpy.ndarray
        float64 (rows, cols).
    out_shape : (int, int)
    clip : bool
        Clip to the range of `img` (as ``warp(clip=True)``).

    Returns
    -------
    numpy.ndarray
        float64, `out_shape`.
    """
    rows, cols = img.shape
    out_rows, out_cols = out_shape

    def taps(n_in, n_out):
        f = n_in / n_out
        pos = f * np.arange(n_out) + (0.5 * f - 0.5)
        base = np.floor(pos)
        frac = pos - base
        idx = _mirror(base.astype(np.int64)[:, None] - 1 + np.arange(4)[None, :], n_in)
        return frac, idx

    xc, ic = taps(cols, out_cols)
    xr, ir = taps(rows, out_rows)
    g = img[:, ic]  # (rows, out_cols, 4)
    along_cols = _cubic(xc[None, :], g[..., 0], g[..., 1], g[..., 2], g[..., 3])  # (rows, out_cols)
    h = along_cols[ir]  # (out_rows, 4, out_cols)
    out = _cubic(xr[:, None], h[:, 0], h[:, 1], h[:, 2], h[:, 3])
    if clip:
        out = np.clip(out, img.min(), img.max())
    return out


def _resize(img: np.ndarray, out_shape: tuple[int, int], mode: str, engine: str) -> np.ndarray:
    if mode == "released":
        if engine == "fast":
            return _kernels.legacy_bicubic_resize(img, out_shape[0], out_shape[1], True)
        return legacy_bicubic_resize_reference(img, out_shape, clip=True)
    # upstream: scikit-image >= 0.19 resizes with ndimage.zoom, then clips to the input range
    if engine == "fast":  # the same arithmetic, compiled
        return _kernels.spline_zoom(np.ascontiguousarray(img, dtype=np.float64), out_shape[0], out_shape[1])
    zoom = (out_shape[0] / img.shape[0], out_shape[1] / img.shape[1])
    out = ndi.zoom(img, zoom, order=3, mode="mirror", grid_mode=True)
    return np.clip(out, img.min(), img.max(), out=out)


def upscale(image: np.ndarray, scale: int, mode: str = "released", engine: str = "fast") -> np.ndarray:
    """``pyramid_expand(image, upscale=scale, order=3)``: resize, then Gaussian smoothing.

    Parameters
    ----------
    image : numpy.ndarray
        float64 (rows, cols) with values in [0, 1].
    scale : int
        Upsampling factor (Morpho-MNIST uses 4: 28x28 -> 112x112).

    Returns
    -------
    numpy.ndarray
        float64 (rows * scale, cols * scale), values in [0, 1].
    """
    out_shape = (math.ceil(scale * image.shape[0]), math.ceil(scale * image.shape[1]))
    return _gaussian(_resize(image, out_shape, mode, engine), 2 * scale / 6.0, engine)


def upscale_float(image: np.ndarray, scale: int) -> np.ndarray:
    """The original's hi-res image of a float digit with today's scikit-image, in the digit's own precision.

    ``(255. * pyramid_expand(image, upscale=scale, order=3)).astype(image.dtype)``: scikit-image >= 0.19
    keeps float32 (and float64) through ``resize`` (``ndimage.zoom``, cubic spline, mode 'mirror',
    ``grid_mode=True``, clipped to the input's range) and ``gaussian`` (``ndimage.gaussian_filter``, mode
    'reflect', sigma ``2 * scale / 6``), so every step rounds where the original's rounds (float16 is
    computed in float32). The values are kept, not quantised: the original thresholds this float image.

    Parameters
    ----------
    image : numpy.ndarray
        (rows, cols) float16/32/64, any non-negative range (e.g. [0, 1] or [0, 255]).
    scale : int
        Upsampling factor, > 1.

    Returns
    -------
    numpy.ndarray
        (ceil(rows * scale), ceil(cols * scale)), dtype of `image`.
    """
    img = image.astype(np.float32) if image.dtype == np.float16 else image
    out_shape = (math.ceil(scale * img.shape[0]), math.ceil(scale * img.shape[1]))
    zoom = [1 / f for f in np.divide(img.shape, out_shape)]  # as resize computes its zoom factors
    resized = ndi.zoom(img, zoom, order=3, mode="mirror", cval=0.0, grid_mode=True)
    np.clip(resized, np.asarray(img.min()), np.asarray(img.max()), out=resized)
    smoothed = np.empty_like(resized)
    ndi.gaussian_filter(resized, 2 * scale / 6.0, output=smoothed, mode="reflect", cval=0.0, truncate=4.0)
    return (255. * smoothed).astype(image.dtype)


def downscale(image: np.ndarray, scale: int, mode: str = "released", engine: str = "fast") -> np.ndarray:
    """``pyramid_reduce(image, downscale=scale, order=3)``: Gaussian smoothing, then resize.

    Parameters
    ----------
    image : numpy.ndarray
        (rows, cols), bool or float in [0, 1] (e.g. a perturbed hi-res binary image).

    Returns
    -------
    numpy.ndarray
        float64 (ceil(rows / scale), ceil(cols / scale)), values in [0, 1].
    """
    img = np.ascontiguousarray(image, dtype=np.float64)
    out_shape = (math.ceil(img.shape[0] / scale), math.ceil(img.shape[1] / scale))
    if engine == "fast":  # the same arithmetic, on the box where the image is non-zero
        lowres = _kernels.released_lowres if mode == "released" else _kernels.upstream_lowres
        return lowres(img, out_shape[0], out_shape[1], gaussian_weights(2 * scale / 6.0))
    smoothed = _gaussian(img, 2 * scale / 6.0, engine)
    return _resize(smoothed, out_shape, mode, engine)


def to_uint8(image: np.ndarray, engine: str = "fast") -> np.ndarray:
    """``(255. * image).astype(np.uint8)``: truncation, as the original code (not rounding)."""
    if engine == "fast":
        return _kernels.to_uint8_truncate(np.ascontiguousarray(image, dtype=np.float64))
    return (255.0 * np.clip(image, 0.0, None)).astype(np.uint8)


def bilinear_warp(image: np.ndarray, coords_r: np.ndarray, coords_c: np.ndarray, engine: str = "fast") -> np.ndarray:
    """Sample `image` bilinearly at (coords_r, coords_c), zero outside (the legacy warp of a binary image).

    Parameters
    ----------
    image : numpy.ndarray
        (rows, cols), bool or float.
    coords_r, coords_c : numpy.ndarray
        float64 (out_rows, out_cols): the source row and column of each output pixel.

    Returns
    -------
    numpy.ndarray
        float64 (out_rows, out_cols).
    """
    img = np.ascontiguousarray(image, dtype=np.float64)
    if engine == "fast":
        return _kernels.bilinear_warp(img, np.ascontiguousarray(coords_r, np.float64),
                                      np.ascontiguousarray(coords_c, np.float64))
    padded = np.pad(img, 1)  # zero border, so points in (-1, 0) blend with 0 as the kernel does
    inside = (coords_r > -1) & (coords_r < img.shape[0]) & (coords_c > -1) & (coords_c < img.shape[1])
    out = ndi.map_coordinates(padded, [coords_r + 1, coords_c + 1], order=1, mode="constant", cval=0.0)
    return np.where(inside, out, 0.0)
