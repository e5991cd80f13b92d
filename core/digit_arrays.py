"""Digit image arrays brought to (N, 28, 28): the shapes model outputs come in, 32x32 crops and resizing.

The lowest layer of reading: :mod:`core.reading` (datasets) and :mod:`core.samples` (model outputs) both
shape their arrays here, so neither imports the other for it.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["SampleFormatError", "as_digit_images", "resize_images", "RESIZE_METHODS"]

#: Resampling methods of ``resize=``.
RESIZE_METHODS = ("area", "bilinear")
_SIDE = 28
_PAD32 = 2  # 32x32 digits: 28x28 digits padded by 2 pixels on every side (DCGAN-style)
_BLANK = 0.02  # a border is blank when no pixel exceeds the darkest value by 2% of the range


class SampleFormatError(ValueError):
    """A file is not a model output this module can read. The message says what was found and what
    was expected."""


def _resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """(n_out, n_in) weights resampling one axis: area (exact overlap averaging) or bilinear (half-pixel
    centres, edge clamped)."""
    w = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    if method == "area":
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(math.floor(lo)), min(int(math.ceil(hi)), n_in)):
                w[i, j] = min(hi, j + 1) - max(lo, j)
        w /= w.sum(axis=1, keepdims=True)
    else:
        for i in range(n_out):
            x = min(max((i + 0.5) * scale - 0.5, 0.0), n_in - 1.0)
            j = int(math.floor(x))
            f = x - j
            w[i, j] += 1 - f
            if f > 0:
                w[i, j + 1] += f
    return w


def resize_images(images: np.ndarray, method: str = "area", size: int = _SIDE) -> np.ndarray:
    """Resample images (N, H, W) to (N, size, size).

    Parameters
    ----------
    images : numpy.ndarray, shape (N, H, W)
        uint8 or float intensities.
    method : {'area', 'bilinear'}
        ``area`` averages the input pixels each output pixel covers (weighted by overlap: the right choice
        for shrinking); ``bilinear`` interpolates between the 4 nearest pixel centres.
    size : int
        Output side in pixels.

    Returns
    -------
    numpy.ndarray, shape (N, size, size)
        uint8 (rounded) for uint8 input, else float32.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize must be one of {RESIZE_METHODS} (or True for 'area'), not {method!r}")
    a = np.asarray(images)
    rows = _resize_matrix(a.shape[1], size, method).astype(np.float32)
    cols = _resize_matrix(a.shape[2], size, method).astype(np.float32)
    out = np.empty((len(a), size, size), np.float32)
    for k in range(0, len(a), 4096):  # bounded float32 temporaries
        out[k:k + 4096] = rows @ a[k:k + 4096].astype(np.float32) @ cols.T
    if a.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def _resize_method(resize) -> Optional[str]:
    if resize is None or resize is False:
        return None
    if resize is True:
        return "area"
    if isinstance(resize, str) and resize in RESIZE_METHODS:
        return resize
    raise ValueError(f"resize must be None/False, True (area), 'area' or 'bilinear', not {resize!r}")


def _to_stack(a: np.ndarray, what: str) -> Optional[np.ndarray]:
    """(N, H, W) view of (H, W), (N, H, W), (N, 1, H, W), (N, H, W, 1) or (N, 784 | 1024); else None."""
    s = a.shape
    if a.ndim == 2 and s[1] in (_SIDE * _SIDE, 32 * 32) and s != (_SIDE, _SIDE) and s != (32, 32):
        side = int(math.isqrt(s[1]))
        return a.reshape(-1, side, side)
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    if a.ndim == 4 and s[1] == 1:
        return a[:, 0]
    if a.ndim == 4 and s[-1] == 1:
        return a[..., 0]
    return None


def _fit_28(stack: np.ndarray, what: str, resize: Optional[str], shape_text: str) -> tuple[np.ndarray, str]:
    """Bring (N, H, W) images to 28x28: as they are, cropped (32x32 with a blank 2-pixel border) or resized.
    Returns the images and a note ('' when unchanged)."""
    h, w = stack.shape[1:]
    if (h, w) == (_SIDE, _SIDE):
        return stack, ""
    if resize is not None:
        if not (np.issubdtype(stack.dtype, np.number) or stack.dtype == bool) or stack.dtype.kind == "c":
            raise SampleFormatError(f"{what}: found values of type {stack.dtype}; expected numbers")
        return (resize_images(stack.astype(np.float32) if stack.dtype == bool else stack, resize),
                f"{what}: {h}x{w} images resized to 28x28 ({resize} resampling, resize={resize!r})")
    if (h, w) == (32, 32) and len(stack) and np.issubdtype(stack.dtype, np.number) and stack.dtype.kind != "c":
        p = _PAD32
        lo = np.nanmin(stack) if stack.size else 0
        hi = np.nanmax(stack) if stack.size else 0
        border = np.concatenate([stack[:, :p, :].reshape(len(stack), -1), stack[:, -p:, :].reshape(len(stack), -1),
                                 stack[:, p:-p, :p].reshape(len(stack), -1),
                                 stack[:, p:-p, -p:].reshape(len(stack), -1)], axis=1)
        level = float(np.nanmax(border)) if border.size else lo
        limit = float(lo) + _BLANK * max(float(hi) - float(lo), 0.0)
        if level <= limit:
            return (stack[:, p:-p, p:-p],
                    f"{what}: 32x32 digits cropped to their 28x28 centre (the 2-pixel border is blank: "
                    "DCGAN-style padding)")
        raise SampleFormatError(
            f"{what}: found {shape_text} of 32x32 images whose 2-pixel border is not blank (up to "
            f"{level:.4g}, the darkest value is {float(lo):.4g}), so they are not padded 28x28 digits; "
            "Morpho-MNIST measures 28x28 digits: pass resize='area' (or 'bilinear') to resize them to 28x28")
    raise SampleFormatError(
        f"{what}: found {shape_text} (images of {h}x{w} pixels: Morpho-MNIST measures 28x28 digits); expected "
        "(N,28,28), (N,1,28,28) or (N,784), or pass resize='area' (or 'bilinear') to resize them to 28x28")


def as_digit_images(a: np.ndarray, what: str, resize=None, *, found: Optional[str] = None
                    ) -> tuple[np.ndarray, str]:
    """(N, 28, 28) images from an array shaped (28,28), (N,H,W), (N,1,H,W), (N,H,W,1), (N,784) or (N,1024).

    28x28 images are returned as they are (a view); 32x32 images whose 2-pixel border is blank are
    cropped to their centre; other sizes need `resize`.

    Parameters
    ----------
    a : numpy.ndarray
    what : str
        Name used in messages.
    resize : {None, False, True, 'area', 'bilinear'}
        Resample images that are not 28x28 (True means 'area').
    found : str, optional
        What the images are, for messages (default: "an array of shape ...").

    Returns
    -------
    images : numpy.ndarray, shape (N, 28, 28)
        Same dtype as `a` (float32 after a resize of non-uint8 data).
    note : str
        What was done ('' when nothing).

    Raises
    ------
    SampleFormatError
        Any other shape, or 32x32 images with a border that is not blank (and no `resize`).
    """
    method = _resize_method(resize)
    a = np.asarray(a)
    stack = _to_stack(a, what)
    if stack is None:
        hint = ""
        s = a.shape
        if a.ndim == 4 and (s[1] == 3 or s[-1] == 3):
            hint = " (colour images: convert to grayscale first)"
        raise SampleFormatError(f"{what}: found an array of shape {s}{hint}; expected (N,28,28), "
                                "(N,1,28,28) or (N,784)")
    if stack.shape[1] < 4 or stack.shape[2] < 4:
        raise SampleFormatError(f"{what}: found an array of shape {a.shape}; expected (N,28,28), "
                                "(N,1,28,28) or (N,784)")
    return _fit_28(stack, what, method, found or f"an array of shape {a.shape}")
