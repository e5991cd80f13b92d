"""Loading a model's output: samples, latent traversals and latent codes.

Accepted sample files (the format is sniffed from the file's first bytes, not trusted from its name):

- ``.npy`` / ``.npz`` arrays shaped (N, 28, 28), (N, 1, 28, 28), (N, 28, 28, 1) or (N, 784);
- PyTorch tensor files (``.pt`` / ``.pth``: a tensor, or a dict / list of tensors), read with
  ``torch.load(weights_only=True)`` when PyTorch is installed (an optional dependency);
- IDX files (``*-ubyte``, ``*.idx``, optionally gzip), as MNIST itself;
- a folder of PNG/JPEG images, each 28x28 (read in natural name order);
- one PNG/JPEG image: a single digit, or a grid of them -- cells without gaps, or torchvision's
  ``make_grid`` layout (2-pixel padding around every cell, any cell size) detected from the padding; blank
  cells that ``make_grid`` leaves at the end of a partial last row are dropped, with a note.

32x32 digits (DCGAN-style padding of 28x28 digits) are cropped to their 28x28 centre when their 2-pixel
border is blank (the description says so); otherwise, and for any other size, the loader refuses with a
message naming the ``resize=`` option (``"area"`` or ``"bilinear"`` resampling to 28x28).

Intensities may be uint8 in [0, 255], or float in [0, 1] or [-1, 1] (e.g. a tanh generator). The range
is detected from the values and reported in :attr:`Samples.source_range` and
:attr:`Samples.description`; anything else is refused with a message, never guessed. Nothing is ever
unpickled: NumPy headers are parsed by :mod:`core.reading` (no ``allow_pickle``), object arrays and
pickles are refused with a message saying so.

Reading is bounded (:class:`core.reading.ReadLimits`: sizes checked from headers before any data is read
or decoded), only regular files are read, and :func:`load_samples`, :func:`load_traversal` and
:func:`load_codes` raise only :class:`SampleFormatError` (a ValueError) or FileNotFoundError whatever the
file holds -- or ValueError for invalid arguments. Pass ``display_name=`` (e.g. an upload's original name)
so that messages never show a temporary path.

Images are returned as :mod:`core.measure` expects them: uint8 in [0, 255] (from uint8 sources) or
float32 in [0, 1] (from float sources), bright digits on a dark background.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from core.io import IDXError, ReadLimits, UnreadableFileError, as_limits, load_idx, open_regular_file, read_idx_header
from core.digit_arrays import (_SIDE, RESIZE_METHODS, SampleFormatError, _resize_method, _to_stack,
                               as_digit_images, resize_images)
from core.reading import check_digit_count, check_memory, describe_kind, open_arrays, read_image, sniff

__all__ = ["SampleFormatError", "Samples", "Traversal", "load_samples", "load_traversal",
           "load_codes", "normalise_range", "as_digit_images", "resize_images", "SOURCE_RANGES",
           "IMAGE_SUFFIXES", "RESIZE_METHODS"]

#: Intensity ranges that :func:`normalise_range` recognises.
SOURCE_RANGES = ("uint8", "[0,1]", "[-1,1]")
#: Image file suffixes read from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TOL = 1e-3  # tolerance for float outputs slightly outside their nominal range
_EXPECTED = ("expected a .npy/.npz array shaped (N,28,28), (N,1,28,28) or (N,784) (uint8, or float in "
             "[0,1] or [-1,1]), a PyTorch tensor file, an IDX file, a PNG/JPEG image or a folder of 28x28 "
             "PNG/JPEG images")


@dataclass
class Samples:
    """A model's samples, normalised for :mod:`core.measure`.

    Attributes
    ----------
    images : numpy.ndarray, shape (N, 28, 28)
        uint8 in [0, 255] or float32 in [0, 1].
    source_range : {'uint8', '[0,1]', '[-1,1]'}
        Intensity range detected in (or declared for) the file.
    description : str
        What was read, e.g. ``"samples.npy: float32 array (1000, 1, 28, 28), values in [-1, 1]
        -> range [-1,1], mapped to [0, 1]"``, with the notes.
    path : str
        The file or folder read.
    labels : numpy.ndarray of int, shape (N,), optional
        Labels stored beside the images (an npz / PyTorch ``labels``/``y``/``targets`` array), if any.
    notes : list of str
        What was done to the data: 32x32 digits cropped or resized, blank grid cells dropped.
    """

    images: np.ndarray
    source_range: str
    description: str
    path: str = ""
    labels: Optional[np.ndarray] = None
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Traversal:
    """A latent traversal grid, over one or several base codes.

    Attributes
    ----------
    images : numpy.ndarray, shape (B, L, S, 28, 28)
        Base code b, latent l varied over S increasing steps; uint8 or float32 in [0, 1]. B = 1 for
        single-base files (shaped (L, S, ...) or a grid image).
    source_range : {'uint8', '[0,1]', '[-1,1]'}
    description : str
    path : str
    values : numpy.ndarray, shape (S,), optional
        The latent offsets of the steps, when the file stores them (an npz ``values``/``offsets``/``steps``
        array).
    notes : list of str
    """

    images: np.ndarray
    source_range: str
    description: str
    path: str = ""
    values: Optional[np.ndarray] = None
    notes: list = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        """(L latents, S steps)."""
        return tuple(self.images.shape[1:3])

    @property
    def n_bases(self) -> int:
        """B, the number of base codes."""
        return int(self.images.shape[0])


# --------------------------------------------------------------------------------------------
# Ranges and shapes
# --------------------------------------------------------------------------------------------

def normalise_range(array: np.ndarray, value_range: Optional[str] = None, *, what: str = "array"
                    ) -> tuple[np.ndarray, str, str]:
    """Detect (or check) the intensity range and map to what :mod:`core.measure` expects.

    Parameters
    ----------
    array : numpy.ndarray
        Intensities of any shape.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declared range; default: detected. ``'uint8'`` also accepts float arrays holding 0-255
        intensities.
    what : str
        Name used in messages.

    Returns
    -------
    images : numpy.ndarray
        uint8 (from ``'uint8'``) or float32 in [0, 1].
    source_range : str
    note : str
        Human-readable account, e.g. ``"values in [-1, 1] -> range [-1,1], mapped to [0, 1]"``.

    Raises
    ------
    SampleFormatError
        Non-numeric or non-finite values, or values in no recognised range.
    """
    a = np.asarray(array)
    if value_range is not None and value_range not in SOURCE_RANGES:
        raise ValueError(f"value_range must be one of {SOURCE_RANGES}; got {value_range!r}")
    if a.dtype == bool:
        a = a.astype(np.float32)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise SampleFormatError(f"{what}: found values of type {a.dtype}; expected numbers (uint8, or "
                                f"float in [0,1] or [-1,1])")
    if a.size == 0:
        raise SampleFormatError(f"{what}: found no values (shape {a.shape}); expected at least one image")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise SampleFormatError(f"{what}: found {bad} NaN/infinite values; expected finite intensities")
    lo, hi = float(a.min()), float(a.max())
    span = f"values in [{lo:.4g}, {hi:.4g}]"
    is_int = np.issubdtype(a.dtype, np.integer)
    if value_range is None:
        if a.dtype == np.uint8 or (is_int and lo >= 0 and hi <= 255):
            value_range = "uint8"
        elif is_int:
            raise SampleFormatError(f"{what}: found integers of type {a.dtype} with {span}; expected "
                                    "uint8 intensities in [0, 255]")
        elif lo >= -_TOL and hi <= 1 + _TOL:
            value_range = "[0,1]"
        elif lo >= -1 - _TOL and hi <= 1 + _TOL:
            value_range = "[-1,1]"
        elif lo >= 0 and hi <= 255:
            raise SampleFormatError(
                f"{what}: found float values with {span}; expected float in [0,1] or [-1,1], or uint8. "
                "They look like 0-255 intensities stored as float: pass value_range='uint8' to read "
                "them so")
        else:
            raise SampleFormatError(f"{what}: found float values with {span}; expected float in [0,1] "
                                    "or [-1,1], or uint8 in [0, 255]")
        how = "detected"
    else:
        bounds = {"uint8": (0, 255), "[0,1]": (0, 1), "[-1,1]": (-1, 1)}[value_range]
        tol = 0.5 if value_range == "uint8" else _TOL
        if lo < bounds[0] - tol or hi > bounds[1] + tol:
            raise SampleFormatError(f"{what}: declared range {value_range} but found {span}")
        how = "declared"
    if value_range == "uint8":
        out = a if a.dtype == np.uint8 else np.clip(np.rint(a), 0, 255).astype(np.uint8)
        note = f"{span} -> range uint8 ({how}), kept as uint8 [0, 255]"
    elif value_range == "[0,1]":
        out = np.clip(a, 0, 1).astype(np.float32)
        note = f"{span} -> range [0,1] ({how}), used as float [0, 1]"
    else:
        out = np.clip((a.astype(np.float32) + 1) / 2, 0, 1)
        note = f"{span} -> range [-1,1] ({how}), mapped to [0, 1] by (x + 1) / 2"
    return out, value_range, note


def _check_polarity(images: np.ndarray, what: str) -> str:
    """Warn (and return a note) when digits look dark on a light background."""
    border = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]],
                            axis=1).astype(np.float64)
    full = 255.0 if images.dtype == np.uint8 else 1.0
    level = border.mean() / full
    if level > 0.5:
        msg = (f"{what}: the image borders are bright (mean {level:.2f} of full scale): digits look "
               "dark on a light background, but Morpho-MNIST expects light digits on a dark one "
               "(invert them: 255 - x, or 1 - x)")
        warnings.warn(msg, UserWarning, stacklevel=3)
        return "; WARNING: " + msg.split(": ", 1)[1]
    return ""


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------

def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class _Layout:
    rows: int
    cols: int
    cell_h: int
    cell_w: int
    pad: int
    outer: bool  # padding also around the grid (torchvision's make_grid)


def _pad_lines(size: int, cell: int, lay: _Layout) -> np.ndarray:
    """True on the padding rows (or columns) of a layout."""
    pos = np.arange(size) % (cell + lay.pad)
    return pos < lay.pad if lay.outer else pos >= cell


@dataclass
class _LineStats:
    """Each row's and column's darkest and brightest value: every padding pixel lies on a padding row or
    column, so a layout's padding is checked in O(H + W) from these, whatever the number of candidates."""

    row_min: np.ndarray
    row_max: np.ndarray
    col_min: np.ndarray
    col_max: np.ndarray
    tol: float

    @classmethod
    def of(cls, img: np.ndarray) -> "_LineStats":
        a = img.astype(np.float64) if img.dtype.kind == "f" else img
        return cls(a.min(axis=1).astype(np.float64), a.max(axis=1).astype(np.float64),
                   a.min(axis=0).astype(np.float64), a.max(axis=0).astype(np.float64), _tolerance(img))


def _tolerance(img: np.ndarray) -> float:
    span = float(img.max()) - float(img.min()) if img.size else 0.0
    return 0.03 * span  # JPEG grids are lossy: the padding is uniform only up to a few levels


def _uniform_padding(stats: _LineStats, lay: _Layout) -> Optional[float]:
    """The padding value when every padding pixel has (nearly) the same value, else None."""
    if lay.pad == 0:
        return None
    rows = _pad_lines(len(stats.row_min), lay.cell_h, lay)
    cols = _pad_lines(len(stats.col_min), lay.cell_w, lay)
    if not rows.any() and not cols.any():
        return None
    lo = min(stats.row_min[rows].min(initial=np.inf), stats.col_min[cols].min(initial=np.inf))
    hi = max(stats.row_max[rows].max(initial=-np.inf), stats.col_max[cols].max(initial=-np.inf))
    if hi - lo > 2 * stats.tol:
        return None
    return (lo + hi) / 2


def _fixed_cell_layouts(size: int, n: int, cell: int) -> list:
    res = []
    rest = size - cell * n
    if rest == 0:
        res.append((0, False))
    for outer in (True, False):
        gaps = n + 1 if outer else n - 1
        if gaps > 0 and rest > 0 and rest % gaps == 0:
            res.append((rest // gaps, outer))
    return res


def _find_layout(img: np.ndarray, rows: Optional[int], cols: Optional[int], what: str) -> _Layout:
    H, W = img.shape
    if rows is None and cols is None:
        if img.size and img.max() == img.min():
            raise SampleFormatError(f"{what}: found a {W}x{H} image of one uniform value; expected digits")
        stats = _LineStats.of(img)
        candidates = []
        if H % _SIDE == 0 and W % _SIDE == 0:
            candidates.append(_Layout(H // _SIDE, W // _SIDE, _SIDE, _SIDE, 0, False))
        for c in (_SIDE, 32):
            if (H - 2) % (c + 2) == 0 and (W - 2) % (c + 2) == 0:
                candidates.append(_Layout((H - 2) // (c + 2), (W - 2) // (c + 2), c, c, 2, True))
            if (H + 2) % (c + 2) == 0 and (W + 2) % (c + 2) == 0:
                candidates.append(_Layout((H + 2) // (c + 2), (W + 2) // (c + 2), c, c, 2, False))
        if H % 32 == 0 and W % 32 == 0 and (H, W) != (32, 32):
            candidates.append(_Layout(H // 32, W // 32, 32, 32, 0, False))
        for lay in candidates:
            if lay.rows >= 1 and lay.cols >= 1 and (lay.pad == 0 or _uniform_padding(stats, lay) is not None):
                return lay
        # torchvision's make_grid with another cell size: the smallest period whose padding lines are all
        # uniform (a larger one would merge cells).
        for c in range(8, min(H, W) - 3):
            if (H - 2) % (c + 2) or (W - 2) % (c + 2):
                continue
            lay = _Layout((H - 2) // (c + 2), (W - 2) // (c + 2), c, c, 2, True)
            if lay.rows * lay.cols > 1 and _uniform_padding(stats, lay) is not None:
                return lay
        raise SampleFormatError(f"{what}: found a {W}x{H} image that is not an obvious grid of digit cells (cells "
                                "without gaps, or torchvision's make_grid with 2-pixel padding); give its rows "
                                "and cols")
    if rows is None or cols is None:
        raise ValueError("give both rows and cols of the grid, or neither")
    for c in (_SIDE, 32):
        common = [lay for lay in _fixed_cell_layouts(H, rows, c) if lay in _fixed_cell_layouts(W, cols, c)]
        if common:
            pad, outer = common[0]
            return _Layout(rows, cols, c, c, pad, outer)
    if H % rows == 0 and W % cols == 0:
        return _Layout(rows, cols, H // rows, W // cols, 0, False)
    if (H - 2) % rows == 0 and (W - 2) % cols == 0 and (H - 2) // rows > 2 and (W - 2) // cols > 2:
        return _Layout(rows, cols, (H - 2) // rows - 2, (W - 2) // cols - 2, 2, True)
    raise SampleFormatError(
        f"{what}: found a {W}x{H} (width x height) image; expected a grid of {rows} rows x {cols} columns "
        f"of 28x28 cells with equal gaps (height = 28*{rows} + gaps, width = 28*{cols} + gaps), of 32x32 "
        "cells, or of equal cells without gaps or with torchvision's 2-pixel padding")


def _split_grid(img: np.ndarray, rows: Optional[int], cols: Optional[int], what: str
                ) -> tuple[np.ndarray, _Layout, Optional[float]]:
    """Cut a grid image (H, W) into cells (rows, cols, cell_h, cell_w); also the layout and padding value."""
    lay = _find_layout(img, rows, cols, what)
    off = lay.pad if lay.outer else 0
    cells = np.empty((lay.rows, lay.cols, lay.cell_h, lay.cell_w), dtype=img.dtype)
    for i in range(lay.rows):
        for j in range(lay.cols):
            y0 = off + i * (lay.cell_h + lay.pad)
            x0 = off + j * (lay.cell_w + lay.pad)
            cells[i, j] = img[y0:y0 + lay.cell_h, x0:x0 + lay.cell_w]
    pad_value = _uniform_padding(_LineStats.of(img), lay) if lay.pad else None
    return cells, lay, pad_value


def _blank_tail(cells: np.ndarray, pad_value: Optional[float], tol: float) -> int:
    """Number of blank cells ending the last row (0 unless the row also holds a digit)."""
    rows, cols = cells.shape[:2]
    if rows < 2:
        return 0
    last = cells[-1].reshape(cols, -1).astype(np.float64)
    value = pad_value if pad_value is not None else float(cells.min())
    blank = np.abs(last - value).max(axis=1) <= tol
    k = 0
    while k < cols and blank[cols - 1 - k]:
        k += 1
    return k if k < cols else 0


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

_IMAGE_KEYS = ("images", "samples", "x", "imgs", "data", "arr_0")
_TRAVERSAL_KEYS = ("traversal", "traversals", "grid", "images", "samples", "x", "arr_0")
_LABEL_KEYS = ("labels", "y", "targets")
_VALUE_KEYS = ("values", "offsets", "steps", "deltas")
_CODE_KEYS = ("codes", "z", "latents", "c")


@dataclass
class _Raw:
    array: np.ndarray
    desc: str
    arrays: dict = field(default_factory=dict)  # other small arrays read beside (labels, values)
    layout: Optional[_Layout] = None  # set when the array is grid cells (rows, cols, h, w)
    pad_value: Optional[float] = None
    tol: float = 0.0


def _digit_count(shape: tuple) -> int:
    """How many images an array of this shape holds (for the max_digits limit, before reading it)."""
    if len(shape) <= 1:
        return 1
    if len(shape) == 2 and shape in ((_SIDE, _SIDE), (32, 32)):
        return 1
    if shape[-1] in (_SIDE * _SIDE, 32 * 32):  # flattened images: (..., 784)
        return math.prod(shape[:-1])
    if len(shape) == 2:
        return 1
    return math.prod(shape[:-2]) if shape[-1] != 1 else math.prod(shape[:-3])


def _choose_key(heads: dict, key: Optional[str], prefs, want, name: str, what: str = "the images") -> str:
    if key is not None:
        if key not in heads:
            found = ", ".join(f"{k} {h.shape} {h.dtype}" for k, h in heads.items())
            raise SampleFormatError(f"{name}: found arrays {found}; no array named {key!r}")
        return key
    candidates = [k for k, h in heads.items() if want(h)]
    for k in prefs:
        if k in candidates:
            return k
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(f"{k} {h.shape} {h.dtype}" for k, h in heads.items())
    raise SampleFormatError(f"{name}: found arrays {found}; expected one of them to be {what} "
                            f"(named one of {list(prefs)}), or pass key=")


def _read_arrays(path: Path, kind: str, key: Optional[str], prefs, name: str, limits: ReadLimits) -> _Raw:
    with open_arrays(path, limits=limits, display_name=name, kind=kind) as arrays:
        heads = arrays.headers
        if arrays.kind == "npy":
            k = "arr_0"
        else:
            k = _choose_key(heads, key, prefs, lambda h: len(h.shape) >= 2, name)
        check_digit_count(_digit_count(heads[k].shape), limits, name)
        arr = arrays.read(k)
        extras = {}
        n = arr.shape[0] if arr.ndim else 0
        for lk in _LABEL_KEYS:
            h = heads.get(lk)
            if lk != k and h is not None and h.shape == (n,) and h.dtype.kind in "iu":
                extras["labels"] = arrays.read(lk)
                break
        for vk in _VALUE_KEYS:
            h = heads.get(vk)
            if vk != k and h is not None and len(h.shape) == 1 and h.dtype.kind in "iuf" and h.shape[0] <= 100_000:
                extras["values"] = arrays.read(vk)
                break
    label = {"npy": "", "npz": f" (npz key {k!r})", "torch": f" (PyTorch {'tensor' if k == 'arr_0' else repr(k)})"}
    return _Raw(arr, f"{arr.dtype} array {arr.shape}{label[arrays.kind]}", extras)


def _read_idx_file(path: Path, name: str, limits: ReadLimits) -> _Raw:
    try:
        dtype, shape = read_idx_header(path, display_name=name)
        check_digit_count(_digit_count(shape), limits, name)
        check_memory(shape, dtype, limits, name, "the IDX array")
        arr = load_idx(path, max_bytes=limits.max_bytes, display_name=name)
    except IDXError as e:
        raise SampleFormatError(f"found a damaged IDX file: {e}") from None
    return _Raw(arr, f"IDX {arr.dtype} array {arr.shape}")


def _read_image_file(path: Path, kind: str, rows, cols, name: str, limits: ReadLimits, resize) -> _Raw:
    img = read_image(path, limits=limits, display_name=name)
    label = kind.upper()
    if rows is None and cols is None and img.shape in ((_SIDE, _SIDE), (32, 32)):
        return _Raw(img[None], f"{label} image {img.shape[1]}x{img.shape[0]}")
    try:
        cells, lay, pad_value = _split_grid(img, rows, cols, name)
    except SampleFormatError:
        if rows is None and cols is None and resize is not None:
            return _Raw(img[None], f"{label} image {img.shape[1]}x{img.shape[0]}")
        raise
    check_digit_count(lay.rows * lay.cols, limits, name)
    cell = f"{lay.cell_w}x{lay.cell_h} cells"
    gaps = f", {lay.pad}-pixel padding" if lay.pad else ""
    desc = f"{label} grid {img.shape[1]}x{img.shape[0]} of {lay.rows} rows x {lay.cols} columns ({cell}{gaps})"
    return _Raw(cells, desc, layout=lay, pad_value=pad_value, tol=_tolerance(img))


def _read_folder(path: Path, name: str, limits: ReadLimits) -> _Raw:
    try:
        entries = list(path.iterdir())
    except OSError as e:
        raise SampleFormatError(f"{name}/: cannot list the folder ({e.strerror or e})") from None
    files = sorted((p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()),
                   key=lambda p: _natural_key(p.name))
    if not files:
        others = sorted(p.name for p in entries)[:5]
        raise SampleFormatError(f"{name}/: found no PNG/JPEG images (entries: {others}); "
                                "expected a folder of 28x28 PNG/JPEG images")
    check_digit_count(len(files), limits, f"{name}/")
    imgs = []
    total = 0
    for f in files:
        where = f"{name}/{f.name}"
        a = read_image(f, limits=limits, display_name=where)
        if imgs and a.shape != imgs[0].shape:
            raise SampleFormatError(f"{where}: found a {a.shape[1]}x{a.shape[0]} image; expected "
                                    f"{imgs[0].shape[1]}x{imgs[0].shape[0]} images in the folder (as "
                                    f"{files[0].name})" if imgs[0].shape != (_SIDE, _SIDE) else
                                    f"{where}: found a {a.shape[1]}x{a.shape[0]} image; expected 28x28 "
                                    "images in the folder")
        total += a.nbytes
        if total > limits.max_bytes:
            raise SampleFormatError(f"{name}/: the images take more than the limit of {limits.max_bytes:,} bytes")
        if 2 * total > limits.max_memory:  # the images and their stacked copy
            raise SampleFormatError(f"{name}/: reading the images would take more than {limits.max_memory:,} bytes "
                                    "of memory (ReadLimits.max_memory)")
        imgs.append(a)
    return _Raw(np.stack(imgs), f"folder of {len(files)} images")


def _read_raw(path: Path, key: Optional[str], rows, cols, name: str, limits: ReadLimits, resize,
              prefs=_IMAGE_KEYS) -> _Raw:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file or folder") from None
    except OSError as e:
        raise SampleFormatError(f"{name}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        return _read_folder(path, name, limits)
    kind = sniff(path, display_name=name)
    if kind in ("npy", "npz", "torch"):
        return _read_arrays(path, kind, key, prefs, name, limits)
    if kind == "idx":
        return _read_idx_file(path, name, limits)
    if kind in ("png", "jpeg"):
        return _read_image_file(path, kind, rows, cols, name, limits, resize)
    raise SampleFormatError(f"{name}: found {describe_kind(path, kind, name)}; {_EXPECTED}")


def _scrub(message: str, path: Path, name: str) -> str:
    """Replace every spelling of `path` in `message` by the name the user knows."""
    spellings = {str(path), path.as_posix()}
    with contextlib.suppress(OSError, RuntimeError):
        if not path.is_symlink():  # a link's target is not the temporary path; keep it
            spellings.add(str(path.resolve()))
    for s in sorted(spellings, key=len, reverse=True):
        if s and s != name:
            message = message.replace(s, name)
    return message


def _guarded(fn: Callable, path: Path, name: str):
    """Run a loader so that only SampleFormatError or FileNotFoundError leave it, whatever the file holds,
    with messages naming the file as the user knows it."""
    try:
        return fn()
    except SampleFormatError as e:
        raise SampleFormatError(_scrub(str(e), path, name)) from None
    except FileNotFoundError as e:
        raise FileNotFoundError(_scrub(str(e) if str(e) else f"{name}: no such file or folder", path, name)) from None
    except UnreadableFileError as e:
        raise SampleFormatError(_scrub(str(e), path, name)) from None
    except MemoryError:
        raise SampleFormatError(f"{name}: too large to read into memory") from None
    except RecursionError:
        raise SampleFormatError(f"{name}: nested too deeply to read") from None
    except Exception as e:  # noqa: BLE001 - any other failure is a property of the file's content
        raise SampleFormatError(_scrub(f"{name}: could not be read ({type(e).__name__}: {e})", path, name)) from None


def _check_args(value_range, rows, cols, resize) -> Optional[str]:
    if value_range is not None and value_range not in SOURCE_RANGES:
        raise ValueError(f"value_range must be one of {SOURCE_RANGES}; got {value_range!r}")
    for n, v in (("rows", rows), ("cols", cols)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{n} must be a positive integer, not {v!r}")
    if (rows is None) != (cols is None):
        raise ValueError("give both rows and cols of the grid, or neither")
    return _resize_method(resize)


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------

def load_samples(path, *, value_range: Optional[str] = None, key: Optional[str] = None,
                 rows: Optional[int] = None, cols: Optional[int] = None, resize=None,
                 limits: Optional[ReadLimits] = None, display_name: Optional[str] = None) -> Samples:
    """Load a model's samples for measuring.

    Parameters
    ----------
    path : str or os.PathLike
        A .npy/.npz/IDX/PyTorch file, a PNG/JPEG image (one digit, or a grid of digits), or a folder of
        PNG/JPEG images.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declare the intensity range instead of detecting it.
    key : str, optional
        Array name in an .npz or a PyTorch dict (default: ``images``/``samples``/``x``/... or the only image
        array).
    rows, cols : int, optional
        Grid layout of a single image holding several digits (inferred for grids of cells without gaps and
        for torchvision's ``make_grid`` layout).
    resize : {None, True, 'area', 'bilinear'}, optional
        Resample images that are not 28x28 to 28x28 (True means 'area'). Without it, 32x32 digits with a
        blank 2-pixel border are cropped and other sizes refused.
    limits : core.reading.ReadLimits, optional
        Bounds on the bytes, digits and image pixels read (default: the generous library default).
    display_name : str, optional
        Name of the file in messages and the description (e.g. an upload's original name), instead of the
        file name of `path`.

    Returns
    -------
    Samples
        ``.images`` (N, 28, 28) uint8 or float32 in [0, 1], ``.source_range``, ``.description``,
        ``.labels``, ``.notes``.

    Raises
    ------
    SampleFormatError
        Whatever is wrong with the file's content (never another exception type); the message says what
        was found and what was expected.
    FileNotFoundError
        Nothing at `path`.
    ValueError
        Invalid arguments.
    """
    path = Path(path)
    name = display_name or path.name or str(path)
    method = _check_args(value_range, rows, cols, resize)
    limits = as_limits(limits)
    return _guarded(lambda: _load_samples(path, name, value_range, key, rows, cols, method, limits), path, name)


def _load_samples(path, name, value_range, key, rows, cols, method, limits) -> Samples:
    raw = _read_raw(path, key, rows, cols, name, limits, method)
    notes = []
    arr = raw.array
    if raw.layout is not None:
        tail = _blank_tail(arr, raw.pad_value, raw.tol)
        arr = arr.reshape(-1, *arr.shape[2:])
        if tail:
            arr = arr[:len(arr) - tail]
            notes.append(f"{name}: dropped {tail} blank cell{'s' if tail > 1 else ''} at the end of the grid's "
                         "last row (a partial last row, as torchvision's make_grid leaves)")
    found = f"a grid of {raw.layout.cell_w}x{raw.layout.cell_h} cells" if raw.layout is not None else None
    imgs, note = as_digit_images(arr, name, method, found=found)
    if note:
        notes.append(note)
    imgs, source_range, range_note = normalise_range(imgs, value_range, what=name)
    labels = None
    lab = raw.arrays.get("labels")
    if lab is not None and lab.shape == (len(imgs),):
        labels = lab.astype(np.int64)
    range_note += _check_polarity(imgs, name)
    description = f"{len(imgs)} samples from {name}: {raw.desc}, {range_note}"
    if notes:
        description += "; " + "; ".join(n.split(": ", 1)[1] if n.startswith(name + ": ") else n for n in notes)
    if labels is not None:
        description += "; with labels"
    return Samples(np.ascontiguousarray(imgs), source_range, description, str(path), labels, notes)


def _image_dims(h: int, w: int, method) -> bool:
    return (h, w) in ((_SIDE, _SIDE), (32, 32)) or (method is not None and h >= 4 and w >= 4)


def load_traversal(path, rows: Optional[int] = None, cols: Optional[int] = None, *,
                   value_range: Optional[str] = None, key: Optional[str] = None, bases: Optional[int] = None,
                   resize=None, limits: Optional[ReadLimits] = None, display_name: Optional[str] = None
                   ) -> Traversal:
    """Load a latent traversal grid, over one base code or several.

    Parameters
    ----------
    path : str or os.PathLike
        - an array file shaped (B, L, S, 28, 28) (B base codes, L latents, S steps), (B, L, S, 1, 28, 28),
          (B, L, S, 28, 28, 1) or (B, L, S, 784); or single-base (L, S, 28, 28), (L, S, 1, 28, 28),
          (L, S, 28, 28, 1) or (L, S, 784) (a 5-D array with a 1 before 28x28 is single-base with a
          channel axis);
        - any sample file (array (N, 28, 28), folder, IDX) with ``N = B * rows * cols``;
        - one PNG/JPEG grid image (rows = latents, columns = steps).
        32x32 cells are handled as by :func:`load_samples`. An ``.npz`` may store the steps' latent offsets
        as ``values`` (or ``offsets``/``steps``).
    rows, cols : int, optional
        Number of latents L (grid rows) and steps S (grid columns). Needed for flat sample files and
        grid images that are not exact grids.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declared intensity range (default: detected).
    key : str, optional
        Array name in an .npz / PyTorch dict.
    bases : int, optional
        Number of base codes B of a flat file (default: N / (rows * cols)).
    resize, limits, display_name
        As :func:`load_samples`.

    Returns
    -------
    Traversal
        ``.images`` (B, L, S, 28, 28), B = 1 for single-base files; ``.shape`` is (L, S).

    Raises
    ------
    SampleFormatError, FileNotFoundError, ValueError
        As :func:`load_samples`.
    """
    path = Path(path)
    name = display_name or path.name or str(path)
    method = _check_args(value_range, rows, cols, resize)
    if bases is not None and (isinstance(bases, bool) or not isinstance(bases, (int, np.integer)) or bases < 1):
        raise ValueError(f"bases must be a positive integer, not {bases!r}")
    limits = as_limits(limits)
    return _guarded(lambda: _load_traversal(path, name, rows, cols, value_range, key, bases, method, limits),
                    path, name)


def _traversal_grid(raw: np.ndarray, rows, cols, bases, method, name: str, desc: str) -> np.ndarray:
    """(B, L, S, H, W) from the array of a traversal file."""
    s = raw.shape
    flat_side = {_SIDE * _SIDE: _SIDE, 32 * 32: 32}
    grid = None
    if raw.ndim == 6 and s[3] == 1:
        grid = raw[:, :, :, 0]
    elif raw.ndim == 6 and s[-1] == 1:
        grid = raw[..., 0]
    elif raw.ndim == 5 and s[2] == 1 and _image_dims(s[3], s[4], method):
        grid = raw[:, :, 0][None]  # (L, S, 1, H, W): single base with a channel axis
    elif raw.ndim == 5 and s[-1] == 1 and _image_dims(s[2], s[3], method):
        grid = raw[..., 0][None]  # (L, S, H, W, 1)
    elif raw.ndim == 5 and _image_dims(s[3], s[4], method):
        grid = raw
    elif raw.ndim == 4 and s[-1] in flat_side:
        side = flat_side[s[-1]]
        grid = raw.reshape(*s[:3], side, side)
    elif raw.ndim == 4 and _image_dims(s[2], s[3], method) and (s[1] > 1 or cols == 1):
        grid = raw[None]
    elif raw.ndim == 3 and s[-1] in flat_side and not _image_dims(s[1], s[2], method):
        side = flat_side[s[-1]]
        grid = raw.reshape(1, s[0], s[1], side, side)
    if grid is not None:
        if rows is not None and grid.shape[1] != rows or cols is not None and grid.shape[2] != cols:
            raise SampleFormatError(f"{name}: found a traversal of {grid.shape[1]} latents x {grid.shape[2]} "
                                    f"steps; expected {rows} x {cols}")
        if bases is not None and grid.shape[0] != bases:
            raise SampleFormatError(f"{name}: found a traversal over {grid.shape[0]} base codes; expected {bases}")
        return grid
    flat = _to_stack(raw.reshape(-1, *s[-2:]) if raw.ndim == 4 else raw, name)
    if flat is None:
        raise SampleFormatError(f"{name}: found {desc}; expected a traversal array shaped (B,L,S,28,28), "
                                "(L,S,28,28), (L,S,1,28,28) or (L,S,784), or images with rows and cols")
    if rows is None or cols is None:
        raise SampleFormatError(f"{name}: found {desc}; expected a traversal array shaped (B,L,S,28,28), "
                                "(L,S,28,28), (L,S,1,28,28) or (L,S,784), or give rows and cols")
    n = len(flat)
    b = bases if bases is not None else (n // (rows * cols) if n % (rows * cols) == 0 and n else 1)
    if b * rows * cols != n:
        expected = f"{rows} x {cols} = {rows * cols}" if bases is None else \
            f"bases x rows x cols = {bases} x {rows} x {cols} = {bases * rows * cols}"
        raise SampleFormatError(f"{name}: found {n} images; expected rows x cols = {expected}"
                                + (" (or a multiple: several base codes)" if bases is None else ""))
    return flat.reshape(b, rows, cols, *flat.shape[1:])


def _load_traversal(path, name, rows, cols, value_range, key, bases, method, limits) -> Traversal:
    raw = _read_raw(path, key, rows, cols, name, limits, method, prefs=_TRAVERSAL_KEYS)
    check_digit_count(_digit_count(raw.array.shape), limits, name)
    if raw.layout is not None:  # a grid image: its rows are the latents, its columns the steps
        if bases not in (None, 1):
            raise SampleFormatError(f"{name}: found {raw.desc}, one base code; expected {bases}")
        grid = raw.array[None]
    else:
        grid = _traversal_grid(raw.array, rows, cols, bases, method, name, raw.desc)
    B, L, S = grid.shape[:3]
    found = f"a grid of {raw.layout.cell_w}x{raw.layout.cell_h} cells" if raw.layout is not None else None
    imgs, note = as_digit_images(grid.reshape(B * L * S, *grid.shape[3:]), name, method, found=found)
    notes = [note] if note else []
    imgs, source_range, range_note = normalise_range(imgs, value_range, what=name)
    range_note += _check_polarity(imgs, name)
    values = raw.arrays.get("values")
    if values is not None:
        if values.shape != (S,) or not np.all(np.isfinite(values.astype(np.float64))):
            notes.append(f"{name}: ignored the stored step values of shape {values.shape} (expected {S} finite "
                         "values)")
            values = None
        else:
            values = values.astype(np.float64)
    base = f"over {B} base codes " if B > 1 else ""
    description = f"traversal of {L} latents x {S} steps {base}from {name}: {raw.desc}, {range_note}"
    if notes:
        description += "; " + "; ".join(n.split(": ", 1)[1] if n.startswith(name + ": ") else n for n in notes)
    return Traversal(np.ascontiguousarray(imgs.reshape(B, L, S, _SIDE, _SIDE)), source_range, description,
                     str(path), values, notes)


def load_codes(path, *, key: Optional[str] = None, limits: Optional[ReadLimits] = None,
               display_name: Optional[str] = None) -> pd.DataFrame:
    """Load latent codes, one row per sample.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` / ``.npz`` / PyTorch array shaped (N,) or (N, C), or a CSV table (with or without a header
        row; an unnamed leading index column 0..N-1 is dropped).
    key : str, optional
        Array name in an .npz (default: ``codes``/``z``/``latents``/``c`` or the only array).
    limits, display_name
        As :func:`load_samples`.

    Returns
    -------
    pandas.DataFrame, shape (N, C)
        float64 codes; columns from the CSV header, else ``z0``, ``z1``, ...

    Raises
    ------
    SampleFormatError, FileNotFoundError
    """
    path = Path(path)
    name = display_name or path.name or str(path)
    limits = as_limits(limits)
    return _guarded(lambda: _load_codes(path, name, key, limits), path, name)


def _load_codes(path: Path, name: str, key, limits: ReadLimits) -> pd.DataFrame:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file") from None
    if stat.S_ISDIR(st.st_mode):
        raise SampleFormatError(f"{name}/: found a folder; expected codes as .npy, .npz or .csv")
    kind = sniff(path, display_name=name)
    expected = "expected latent codes as a numeric .npy/.npz array (N,) or (N, C) or a CSV table"
    if kind in ("npy", "npz", "torch"):
        with open_arrays(path, limits=limits, display_name=name, kind=kind) as arrays:
            k = "arr_0" if arrays.kind == "npy" else _choose_key(arrays.headers, key, _CODE_KEYS,
                                                                 lambda h: len(h.shape) in (1, 2), name,
                                                                 "the codes")
            arr = arrays.read(k)
    elif kind == "text":
        with open_regular_file(path, "CSV file", display_name=name) as f:
            from core.io import check_size
            check_size(os.fstat(f.fileno()).st_size, limits.max_bytes, name, "the table")
            try:
                df = pd.read_csv(f, nrows=limits.max_digits + 1)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
                raise SampleFormatError(f"{name}: found text that is not a CSV table ({e}); {expected}") from None
            check_digit_count(len(df), limits, name, SampleFormatError)

            def numeric(col):
                try:
                    float(col)
                    return True
                except ValueError:
                    return False

            if all(numeric(c) for c in df.columns):  # no header row
                f.seek(0)
                df = pd.read_csv(f, header=None, nrows=limits.max_digits + 1)
                df.columns = [f"z{i}" for i in range(df.shape[1])]
        first = df.columns[0]
        if str(first).startswith("Unnamed") or str(first) in ("", "index"):
            if np.array_equal(df[first].to_numpy(), np.arange(len(df))):
                df = df.drop(columns=first)
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        if bad:
            raise SampleFormatError(f"{name}: found non-numeric column(s) {bad}; {expected}")
        df = df.astype(np.float64)
        if not np.isfinite(df.to_numpy()).all():
            raise SampleFormatError(f"{name}: found missing or non-finite codes; {expected}")
        df.columns = [str(c) for c in df.columns]
        return df
    else:
        raise SampleFormatError(f"{name}: found {describe_kind(path, kind, name)}; {expected}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise SampleFormatError(f"{name}: found a {arr.dtype} array of shape {arr.shape}; {expected}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise SampleFormatError(f"{name}: found non-finite codes; {expected}")
    return pd.DataFrame(arr, columns=[f"z{i}" for i in range(arr.shape[1])])
