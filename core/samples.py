"""Loading a model's output: samples, latent traversals and latent codes.

Accepted sample files (the format is sniffed from the file's first bytes, not trusted from its name):

- ``.npy`` / ``.npz`` arrays shaped (N, 28, 28), (N, 1, 28, 28), (N, 28, 28, 1) or (N, 784);
- IDX files (``*-ubyte``, ``*.idx``, optionally ``.gz``), as MNIST itself;
- a folder of PNG/JPEG images, each 28x28 (read in natural name order);
- one PNG/JPEG image: a single 28x28 digit, or a grid of them (``rows``/``cols``, padding inferred).

Intensities may be uint8 in [0, 255], or float in [0, 1] or [-1, 1] (e.g. a tanh generator). The range
is detected from the values and reported in :attr:`Samples.source_range` and
:attr:`Samples.description`; anything else is refused with a message, never guessed. Pickles are never
loaded (``np.load(..., allow_pickle=False)``): a pickled file is refused with a message saying so.

Images are returned as :mod:`core.measure` expects them: uint8 in [0, 255] (from uint8 sources) or
float32 in [0, 1] (from float sources), bright digits on a dark background.
"""
from __future__ import annotations

import gzip
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

__all__ = ["SampleFormatError", "Samples", "Traversal", "load_samples", "load_traversal",
           "load_codes", "normalise_range", "SOURCE_RANGES", "IMAGE_SUFFIXES"]

#: Intensity ranges that :func:`normalise_range` recognises.
SOURCE_RANGES = ("uint8", "[0,1]", "[-1,1]")
#: Image file suffixes read from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SIDE = 28
_TOL = 1e-3  # tolerance for float outputs slightly outside their nominal range
_EXPECTED = ("expected a .npy/.npz array shaped (N,28,28), (N,1,28,28) or (N,784) (uint8, or float in "
             "[0,1] or [-1,1]), an IDX file, a PNG/JPEG image or a folder of 28x28 PNG/JPEG images")


class SampleFormatError(ValueError):
    """A file is not a model output this module can read. The message says what was found and what
    was expected."""


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
        -> range [-1,1], mapped to [0, 1]"``.
    path : str
        The file or folder read.
    labels : numpy.ndarray of int, shape (N,), optional
        Labels stored beside the images (an npz ``labels``/``y`` array), if any.
    """

    images: np.ndarray
    source_range: str
    description: str
    path: str = ""
    labels: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Traversal:
    """A latent traversal grid.

    Attributes
    ----------
    images : numpy.ndarray, shape (L, S, 28, 28)
        Row l: latent l varied over S increasing steps; uint8 or float32 in [0, 1].
    source_range : {'uint8', '[0,1]', '[-1,1]'}
    description : str
    path : str
    """

    images: np.ndarray
    source_range: str
    description: str
    path: str = ""

    @property
    def shape(self) -> tuple:
        """(L latents, S steps)."""
        return self.images.shape[:2]


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


def _as_images(a: np.ndarray, what: str) -> np.ndarray:
    """(N, 28, 28) view of an array shaped (28,28), (N,28,28), (N,1,28,28), (N,28,28,1) or (N,784)."""
    s = a.shape
    if s == (_SIDE, _SIDE):
        return a[None]
    if a.ndim == 3 and s[1:] == (_SIDE, _SIDE):
        return a
    if a.ndim == 4 and s[1:] == (1, _SIDE, _SIDE):
        return a[:, 0]
    if a.ndim == 4 and s[1:] == (_SIDE, _SIDE, 1):
        return a[..., 0]
    if a.ndim == 2 and s[1] == _SIDE * _SIDE:
        return a.reshape(-1, _SIDE, _SIDE)
    hint = ""
    if a.ndim == 4 and s[1] == 3 or (a.ndim == 4 and s[-1] == 3):
        hint = " (colour images: convert to grayscale first)"
    elif a.ndim >= 2 and s[-1] != _SIDE and s[-1] != _SIDE * _SIDE:
        hint = f" (images of {s[-2]}x{s[-1]} pixels: Morpho-MNIST measures 28x28 digits)"
    raise SampleFormatError(f"{what}: found an array of shape {s}{hint}; expected (N,28,28), "
                            "(N,1,28,28) or (N,784)")


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
# Sniffing and reading files
# --------------------------------------------------------------------------------------------

def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _head(path: Path, n: int = 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _sniff(path: Path) -> str:
    """'npy' | 'npz' | 'idx' | 'png' | 'jpeg' | 'pickle' | 'gzip-other' | 'text' | 'unknown'."""
    head = _head(path)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as f:
                inner = f.read(4)
        except (OSError, EOFError):
            return "gzip-other"
        return "idx" if len(inner) == 4 and inner[:2] == b"\x00\x00" else "gzip-other"
    if len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] in (8, 9, 11, 12, 13, 14):
        return "idx"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown"


def _describe_found(path: Path, kind: str) -> str:
    if kind == "pickle":
        return ("found a Python pickle, which is never loaded (unpickling can run arbitrary code); "
                "save the array with numpy.save instead")
    if kind == "text":
        first = _head(path, 60).decode("utf-8", "replace").splitlines()
        return f"found a text file starting with {first[0][:40]!r}" if first else "found an empty file"
    if kind == "gzip-other":
        return "found a gzip file that does not hold an IDX array"
    if path.stat().st_size == 0:
        return "found an empty file"
    return f"found a file of unknown format (first bytes {_head(path, 8).hex(' ')})"


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise SampleFormatError(
                f"{path.name}: found a NumPy array of Python objects, which needs unpickling and is "
                "never loaded; expected a numeric array") from None
        raise SampleFormatError(f"{path.name}: found a damaged .npy file ({e})") from None


_GRID = "__grid__"  # marker in _read_raw's extras: the array is (rows, cols, 28, 28) grid cells
_IMAGE_KEYS = ("images", "samples", "x", "imgs", "data", "arr_0")
_LABEL_KEYS = ("labels", "y", "targets")
_CODE_KEYS = ("codes", "z", "latents", "c")


def _load_npz(path: Path, key: Optional[str], keys_pref=_IMAGE_KEYS, want=None
              ) -> tuple[np.ndarray, str, dict]:
    """(array, key, all arrays) from an npz; ``want(array) -> bool`` filters candidates."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as e:
        raise SampleFormatError(f"{path.name}: found a damaged zip/npz archive ({e})") from None
    if not any(n.endswith(".npy") for n in names):
        raise SampleFormatError(
            f"{path.name}: found a zip archive without NumPy arrays (members: {names[:5]}"
            f"{'...' if len(names) > 5 else ''}; a PyTorch checkpoint or other pickle-based file is "
            "never loaded); expected an .npz of arrays saved with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise SampleFormatError(f"{path.name}: found an .npz holding Python objects, which need "
                                f"unpickling and are never loaded ({e}); expected numeric arrays"
                                ) from None
    if key is not None:
        if key not in arrays:
            raise SampleFormatError(f"{path.name}: found arrays {sorted(arrays)}; no array named {key!r}")
        return arrays[key], key, arrays
    candidates = [k for k in arrays if want is None or want(arrays[k])]
    for k in keys_pref:
        if k in candidates:
            return arrays[k], k, arrays
    if len(candidates) == 1:
        return arrays[candidates[0]], candidates[0], arrays
    found = ", ".join(f"{k} {arrays[k].shape} {arrays[k].dtype}" for k in arrays)
    raise SampleFormatError(f"{path.name}: found arrays {found}; expected one of them to be the images "
                            f"(named one of {list(keys_pref)}), or pass key=")


def _read_image(path: Path) -> np.ndarray:
    """Grayscale 2-D array of an image file (uint8, or uint16 for 16-bit PNGs)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im).astype(np.float64)
                return np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
            if im.mode in ("F",):
                return np.asarray(im)
            return np.asarray(im.convert("L"))
    except UnidentifiedImageError:
        raise SampleFormatError(f"{path.name}: found a file that is not a readable image; expected "
                                "PNG or JPEG") from None


def _split_grid(img: np.ndarray, rows: Optional[int], cols: Optional[int], what: str) -> np.ndarray:
    """Cut a grid image (H, W) into (rows, cols, 28, 28) cells, inferring uniform padding.

    Supported layouts: cells with no gaps, gaps only between cells, or gaps also around the grid
    (torchvision's ``make_grid``), the gap ``p`` the same in both directions.
    """
    H, W = img.shape

    def layouts(size, n):
        res = []
        if n is not None:
            for outer in (True, False):
                gaps = n + 1 if outer else n - 1
                rest = size - _SIDE * n
                if rest == 0:
                    res.append((0, False))
                elif gaps > 0 and rest > 0 and rest % gaps == 0:
                    res.append((rest // gaps, outer))
        return res

    if rows is None and cols is None:
        for pad, outer in ((0, False), (2, True), (2, False)):
            shift = -pad if outer else pad  # outer gaps: n + 1 of them; inner only: n - 1
            r = (H + shift) / (_SIDE + pad)
            c = (W + shift) / (_SIDE + pad)
            if r.is_integer() and c.is_integer() and r >= 1 and c >= 1:
                rows, cols = int(r), int(c)
                break
        else:
            raise SampleFormatError(f"{what}: found a {W}x{H} image that is not an obvious grid of "
                                    "28x28 cells; give its rows and cols")
    elif rows is None or cols is None:
        raise ValueError("give both rows and cols of the grid, or neither")
    rl, cl = layouts(H, rows), layouts(W, cols)
    common = [lay for lay in rl if lay in cl] or [(p, o) for p, o in rl if p == 0 and (0, False) in cl]
    if not common:
        raise SampleFormatError(
            f"{what}: found a {W}x{H} (width x height) image; expected a grid of {rows} rows x {cols} "
            f"columns of 28x28 cells with equal gaps (height = 28*{rows} + gaps, width = 28*{cols} + "
            "gaps)")
    pad, outer = common[0]
    off = pad if outer else 0
    cells = np.empty((rows, cols, _SIDE, _SIDE), dtype=img.dtype)
    for i in range(rows):
        for j in range(cols):
            y0 = off + i * (_SIDE + pad)
            x0 = off + j * (_SIDE + pad)
            cells[i, j] = img[y0:y0 + _SIDE, x0:x0 + _SIDE]
    return cells


def _read_folder(path: Path) -> tuple[np.ndarray, str]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=lambda p: _natural_key(p.name))
    if not files:
        others = sorted(p.name for p in path.iterdir())[:5]
        raise SampleFormatError(f"{path.name}/: found no PNG/JPEG images (entries: {others}); "
                                "expected a folder of 28x28 PNG/JPEG images")
    imgs = []
    for f in files:
        a = _read_image(f)
        if a.shape != (_SIDE, _SIDE):
            raise SampleFormatError(f"{path.name}/{f.name}: found a {a.shape[1]}x{a.shape[0]} image; "
                                    "expected 28x28 images in the folder")
        imgs.append(a)
    return np.stack(imgs), f"folder of {len(files)} images"


def _read_raw(path: Path, key: Optional[str], rows=None, cols=None) -> tuple[np.ndarray, str, dict]:
    """Raw array and a description of what was read; extras (npz arrays) in the dict."""
    if path.is_dir():
        arr, desc = _read_folder(path)
        return arr, desc, {}
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    kind = _sniff(path)
    if kind == "npy":
        arr = _load_npy(path)
        return arr, f"{arr.dtype} array {arr.shape}", {}
    if kind == "npz":
        arr, k, arrays = _load_npz(path, key, want=lambda a: a.ndim >= 2)
        return arr, f"{arr.dtype} array {arr.shape} (npz key {k!r})", arrays
    if kind == "idx":
        from core.io import IDXError, load_idx

        try:
            arr = load_idx(path)
        except IDXError as e:
            raise SampleFormatError(f"found a damaged IDX file: {e}") from None
        return arr, f"IDX {arr.dtype} array {arr.shape}", {}
    if kind in ("png", "jpeg"):
        img = _read_image(path)
        if img.shape == (_SIDE, _SIDE) and rows is None and cols is None:
            return img[None], f"{kind.upper()} image 28x28", {}
        cells = _split_grid(img, rows, cols, path.name)
        desc = (f"{kind.upper()} grid {img.shape[1]}x{img.shape[0]} of {cells.shape[0]} rows x "
                f"{cells.shape[1]} columns")
        return cells, desc, {_GRID: True}
    raise SampleFormatError(f"{path.name}: {_describe_found(path, kind)}; {_EXPECTED}")


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------

def load_samples(path, *, value_range: Optional[str] = None, key: Optional[str] = None,
                 rows: Optional[int] = None, cols: Optional[int] = None) -> Samples:
    """Load a model's samples for measuring.

    Parameters
    ----------
    path : str or os.PathLike
        A .npy/.npz/IDX file, a PNG/JPEG image (one digit, or a grid of digits), or a folder of
        PNG/JPEG images.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declare the intensity range instead of detecting it.
    key : str, optional
        Array name in an .npz (default: ``images``/``samples``/``x``/... or the only image array).
    rows, cols : int, optional
        Grid layout of a single image holding several digits (inferred when the image is an exact
        grid of 28x28 cells, with no gaps or torchvision's 2-pixel gaps).

    Returns
    -------
    Samples
        ``.images`` (N, 28, 28) uint8 or float32 in [0, 1], ``.source_range``, ``.description``.

    Raises
    ------
    SampleFormatError
        The file is none of the above; the message says what was found and what was expected.
    FileNotFoundError
    """
    path = Path(path)
    raw, desc, extras = _read_raw(path, key, rows, cols)
    if extras.get(_GRID):
        raw = raw.reshape(-1, _SIDE, _SIDE)
    imgs = _as_images(raw, path.name)
    imgs, source_range, note = normalise_range(imgs, value_range, what=path.name)
    labels = None
    for k in _LABEL_KEYS:
        if k in extras and hasattr(extras[k], "shape") and extras[k].shape == (len(imgs),) and np.issubdtype(extras[k].dtype, np.integer):
            labels = extras[k].astype(np.int64)
            break
    note += _check_polarity(imgs, path.name)
    description = f"{len(imgs)} samples from {path.name}: {desc}, {note}"
    if labels is not None:
        description += "; with labels"
    return Samples(np.ascontiguousarray(imgs), source_range, description, str(path), labels)


def load_traversal(path, rows: Optional[int] = None, cols: Optional[int] = None, *,
                   value_range: Optional[str] = None, key: Optional[str] = None) -> Traversal:
    """Load a latent traversal grid.

    Parameters
    ----------
    path : str or os.PathLike
        An array file shaped (L, S, 28, 28), (L, S, 1, 28, 28) or (L, S, 784); or any sample file
        (array (N, 28, 28), folder, IDX) with ``rows * cols == N``; or one PNG/JPEG grid image.
    rows, cols : int, optional
        Number of latents L (grid rows) and steps S (grid columns). Needed for flat sample files and
        grid images that are not exact grids of 28x28 cells.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declared intensity range (default: detected).
    key : str, optional
        Array name in an .npz.

    Returns
    -------
    Traversal
        ``.images`` (L, S, 28, 28).
    """
    path = Path(path)
    raw, desc, _ = _read_raw(path, key, rows, cols)
    s = raw.shape
    if raw.ndim == 4 and s[2:] == (_SIDE, _SIDE) and (rows is None or s[0] == rows) and \
            (cols is None or s[1] == cols) and (s[1] > 1 or cols == 1):
        grid = raw
    elif raw.ndim == 5 and s[2:] == (1, _SIDE, _SIDE):
        grid = raw[:, :, 0]
    elif raw.ndim == 5 and s[2:] == (_SIDE, _SIDE, 1):
        grid = raw[..., 0]
    elif raw.ndim == 3 and s[2] == _SIDE * _SIDE:
        grid = raw.reshape(s[0], s[1], _SIDE, _SIDE)
    else:
        flat = _as_images(raw.reshape(-1, *s[-2:]) if raw.ndim == 4 and s[2:] == (_SIDE, _SIDE)
                          else raw, path.name)
        if rows is None or cols is None:
            raise SampleFormatError(f"{path.name}: found {desc}; expected a traversal array shaped "
                                    "(L,S,28,28), (L,S,1,28,28) or (L,S,784), or give rows and cols")
        if rows * cols != len(flat):
            raise SampleFormatError(f"{path.name}: found {len(flat)} images; expected rows x cols = "
                                    f"{rows} x {cols} = {rows * cols}")
        grid = flat.reshape(rows, cols, _SIDE, _SIDE)
    if rows is not None and grid.shape[0] != rows or cols is not None and grid.shape[1] != cols:
        raise SampleFormatError(f"{path.name}: found a traversal of {grid.shape[0]} latents x "
                                f"{grid.shape[1]} steps; expected {rows} x {cols}")
    grid, source_range, note = normalise_range(grid, value_range, what=path.name)
    note += _check_polarity(grid.reshape(-1, _SIDE, _SIDE), path.name)
    description = (f"traversal of {grid.shape[0]} latents x {grid.shape[1]} steps from {path.name}: "
                   f"{desc}, {note}")
    return Traversal(np.ascontiguousarray(grid), source_range, description, str(path))


def load_codes(path, *, key: Optional[str] = None) -> pd.DataFrame:
    """Load latent codes, one row per sample.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` / ``.npz`` array shaped (N,) or (N, C), or a CSV table (with or without a header
        row; an unnamed leading index column 0..N-1 is dropped).
    key : str, optional
        Array name in an .npz (default: ``codes``/``z``/``latents``/``c`` or the only array).

    Returns
    -------
    pandas.DataFrame, shape (N, C)
        float64 codes; columns from the CSV header, else ``z0``, ``z1``, ...
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise SampleFormatError(f"{path.name}/: found a folder; expected codes as .npy, .npz or .csv")
    kind = _sniff(path)
    expected = "expected latent codes as a numeric .npy/.npz array (N,) or (N, C) or a CSV table"
    if kind == "npy":
        arr = _load_npy(path)
    elif kind == "npz":
        arr, _, _ = _load_npz(path, key, keys_pref=_CODE_KEYS, want=lambda a: a.ndim in (1, 2))
    elif kind == "text":
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise SampleFormatError(f"{path.name}: found text that is not a CSV table ({e}); "
                                    f"{expected}") from None

        def numeric(name):
            try:
                float(name)
                return True
            except ValueError:
                return False

        if all(numeric(c) for c in df.columns):  # no header row
            df = pd.read_csv(path, header=None)
            df.columns = [f"z{i}" for i in range(df.shape[1])]
        first = df.columns[0]
        if str(first).startswith("Unnamed") or str(first) in ("", "index"):
            if np.array_equal(df[first].to_numpy(), np.arange(len(df))):
                df = df.drop(columns=first)
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        if bad:
            raise SampleFormatError(f"{path.name}: found non-numeric column(s) {bad}; {expected}")
        df = df.astype(np.float64)
        if not np.isfinite(df.to_numpy()).all():
            raise SampleFormatError(f"{path.name}: found missing or non-finite codes; {expected}")
        df.columns = [str(c) for c in df.columns]
        return df
    else:
        raise SampleFormatError(f"{path.name}: {_describe_found(path, kind)}; {expected}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise SampleFormatError(f"{path.name}: found a {arr.dtype} array of shape {arr.shape}; {expected}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise SampleFormatError(f"{path.name}: found non-finite codes; {expected}")
    return pd.DataFrame(arr, columns=[f"z{i}" for i in range(arr.shape[1])])
