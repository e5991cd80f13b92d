"""The one layer that reads user files: folders of MNIST / Morpho-MNIST files, IDX files, arrays (.npy, .npz,
PyTorch tensor files), images and metrics tables.

:mod:`core.datasets`, :mod:`core.samples`, the command line and the explorer all read through this module
(and the IDX primitives of :mod:`core.io`), so the same guarantees hold everywhere:

- **Only regular files are read.** FIFOs, devices (``/dev/zero``), sockets and folders where a file is wanted
  are refused from :func:`os.stat` before the file is opened (:func:`check_regular_file`).
- **Bounded work.** Sizes are checked from headers before data is read or inflated, against
  :class:`ReadLimits` (generous library default :data:`DEFAULT_LIMITS`; servers pass smaller ones): an IDX
  header, a ``.npy`` header (also inside an ``.npz``: a member is never inflated past the size it declares),
  the width and height of a PNG/JPEG before decoding, the stored sizes of a PyTorch file.
- **Nothing is unpickled.** NumPy files are read with their header parsed here and ``allow_pickle`` never
  set; object arrays are refused. PyTorch tensor files (``.pt``/``.pth``) are read with
  ``torch.load(weights_only=True)`` -- PyTorch's restricted loader that builds tensors and plain containers
  only -- and only when PyTorch is installed (it is an optional dependency).
- **Clear errors.** :class:`UnreadableFileError` (a ValueError) names the file and the problem; a missing
  file raises FileNotFoundError; :func:`read_dataset` raises :class:`core.datasets.DatasetError` for files
  that do not agree with one another.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Optional

import numpy as np
import pandas as pd

from core.digit_arrays import SampleFormatError, as_digit_images
from core.io import (DEFAULT_LIMITS, ReadLimits, UnreadableFileError, as_limits, check_regular_file,
                     check_size, load_idx, open_regular_file, read_idx_header)

__all__ = [
    "ReadLimits", "DEFAULT_LIMITS", "UnreadableFileError", "check_regular_file", "open_regular_file",
    "DigitData", "read_dataset", "read_metrics_table", "METRICS", "sniff", "ArrayFile", "open_arrays",
    "read_image", "check_digit_count", "is_image_file", "read_peak_bytes", "check_memory",
]

#: The six released morphometrics (area in px², length/thickness/width/height in px, slant in radians).
METRICS = ("area", "length", "thickness", "slant", "width", "height")

_IMAGES_RE = re.compile(r"^(?P<split>.+?)[-.]images[-.]idx3[-.]ubyte(?P<gz>\.gz)?$")
_SPLIT_ORDER = {"train": 0, "t10k": 1, "test": 1}
_DATASET_IMAGE_KEYS = ("images", "x", "X", "x_train", "x_test", "imgs", "digits", "samples", "data", "arr_0")
_DATASET_LABEL_KEYS = ("labels", "y", "Y", "y_train", "y_test", "targets", "arr_1")
_TORCH_LEGACY_MAGIC = bytes.fromhex("8a0a6cfc9c46f9206aa85019")  # pickle LONG1 of torch's magic number
_MAX_NPY_HEADER = 10_000  # bytes; numpy's own default limit for untrusted headers
_MAX_NPZ_ARRAYS = 1_000  # every member's header is read: bound that work


# ---------------------------------------------------------------------------------------------------------
# Sniffing
# ---------------------------------------------------------------------------------------------------------

def _head(path: Path, n: int, display_name: Optional[str]) -> bytes:
    with open_regular_file(path, display_name=display_name) as f:
        try:
            return f.read(n)
        except OSError as e:
            raise UnreadableFileError(f"{display_name or path}: cannot read ({e.strerror or e})") from None


def sniff(path, *, display_name: Optional[str] = None) -> str:
    """Recognise a file's format from its first bytes (never from its name).

    Returns
    -------
    str
        ``'npy'``, ``'npz'``, ``'torch'`` (a PyTorch file: zip with ``data.pkl``, or the legacy pickle
        format), ``'zip'`` (another zip archive), ``'idx'``, ``'gzip'`` (gzip not holding IDX), ``'png'``,
        ``'jpeg'``, ``'pickle'``, ``'text'``, ``'empty'`` or ``'unknown'``.

    Raises
    ------
    FileNotFoundError, UnreadableFileError
        Missing, or not a regular file.
    """
    path = Path(path)
    head = _head(path, 64, display_name)
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with open_regular_file(path, display_name=display_name) as f, zipfile.ZipFile(f) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "zip"
        if any(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        return "zip"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"\x1f\x8b"):
        import gzip
        import zlib
        try:
            with open_regular_file(path, display_name=display_name) as f, gzip.GzipFile(fileobj=f) as gz:
                inner = gz.read(4)
        except (OSError, EOFError, zlib.error):
            return "gzip"
        return "idx" if len(inner) == 4 and inner[:2] == b"\x00\x00" else "gzip"
    if len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] in (8, 9, 11, 12, 13, 14):
        return "idx"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "torch" if head[2:14] == _TORCH_LEGACY_MAGIC else "pickle"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample still counts as text.
        with contextlib.suppress(UnicodeDecodeError):
            head[:-3].decode("utf-8")
            if len(head) > 3:
                return "text"
        return "unknown"


def check_digit_count(n: int, limits: Optional[ReadLimits], name: str, error=UnreadableFileError) -> None:
    """Raise `error` when `n` digits exceed ``limits.max_digits``."""
    limits = as_limits(limits)
    if n > limits.max_digits:
        raise error(f"{name}: holds {n:,} digits, over the limit of {limits.max_digits:,} digits for one file")


# ---------------------------------------------------------------------------------------------------------
# Arrays: .npy, .npz, PyTorch tensor files
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrayHeader:
    """Shape and type of a stored array, read from its header (nothing else read yet)."""

    shape: tuple
    dtype: np.dtype
    fortran_order: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_peak_bytes(shape: tuple, dtype) -> int:
    """Peak memory of reading an array of `shape` and `dtype` and converting it to digits, in bytes.

    The array itself, plus (unless it is uint8 already) one float64 working copy and the uint8 result, which
    is what :func:`_to_uint8_digits` allocates at most (its arithmetic runs in place).
    """
    count = math.prod(shape)
    dtype = np.dtype(dtype)
    return count * dtype.itemsize + (0 if dtype == np.uint8 else 9 * count)


def check_memory(shape: tuple, dtype, limits: ReadLimits, name: str, what: str) -> None:
    """Refuse, before anything is read, an array whose read would peak above ``limits.max_memory``."""
    peak = read_peak_bytes(shape, dtype)
    if peak > limits.max_memory:
        raise UnreadableFileError(f"{name}: {what} of shape {tuple(shape)} ({np.dtype(dtype)}) would take "
                                  f"{peak:,} bytes of memory to read, over the limit of {limits.max_memory:,} "
                                  "(ReadLimits.max_memory); not read")


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.hasobject:
        raise UnreadableFileError(f"{name}: holds a NumPy array of Python objects, which needs unpickling and "
                                  "is never loaded; expected a numeric array")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise UnreadableFileError(f"{name}: holds an array of type {dtype}; expected numbers (bool, integers "
                                  "or floats)")


def _npy_header(fp: BinaryIO, name: str) -> ArrayHeader:
    """Parse a .npy header at the current position of `fp` (magic, version, dict) without reading data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp, max_header_size=_MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp, max_header_size=_MAX_NPY_HEADER)
        else:
            shape, fortran, dtype = fmt._read_array_header(fp, version, max_header_size=_MAX_NPY_HEADER)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, KeyError) as e:
        raise UnreadableFileError(f"{name}: damaged .npy header ({e})") from None
    except Exception as e:  # zip member streams raise their own kinds for damaged data
        raise UnreadableFileError(f"{name}: damaged .npy data ({type(e).__name__}: {e})") from None
    dtype = np.dtype(dtype)
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise UnreadableFileError(f"{name}: damaged .npy header (shape {shape})")
    return ArrayHeader(tuple(int(s) for s in shape), dtype, bool(fortran))


def _read_npy_data(fp: BinaryIO, header: ArrayHeader, name: str) -> np.ndarray:
    """Read the data a header announced, refusing a short read; memory = the array only."""
    _check_dtype(header.dtype, name)
    count = math.prod(header.shape)
    out = np.empty(count, dtype=header.dtype)
    view = memoryview(out).cast("B") if out.nbytes else memoryview(b"")
    done = 0
    try:
        while done < len(view):
            n = fp.readinto(view[done:done + (1 << 24)])
            if not n:
                break
            done += n
    except MemoryError:
        raise
    except Exception as e:  # damaged compressed member (zlib.error, BadZipFile CRC, EOFError, ...)
        raise UnreadableFileError(f"{name}: damaged data ({type(e).__name__}: {e})") from None
    if done < len(view):
        raise UnreadableFileError(f"{name}: truncated data: shape {header.shape} of {header.dtype} needs "
                                  f"{len(view):,} bytes, found {done:,}")
    if header.fortran_order and len(header.shape) > 1:
        return out.reshape(header.shape[::-1]).transpose()
    return out.reshape(header.shape)


class ArrayFile:
    """The arrays of a ``.npy``, ``.npz`` or PyTorch tensor file: headers known, data read on demand.

    Use :func:`open_arrays`. ``headers`` maps each array's name (``"arr_0"`` for a ``.npy`` file, the
    member name for an ``.npz``, the dict key for a PyTorch file) to its :class:`ArrayHeader`; :meth:`read`
    reads one array, checking the total read against ``limits.max_bytes``.
    """

    def __init__(self, kind: str, name: str, headers: dict, reader: Callable[[str], np.ndarray],
                 limits: ReadLimits, closer: Callable[[], None] = lambda: None):
        self.kind = kind
        self.name = name
        self.headers = headers
        self._reader = reader
        self._limits = limits
        self._closer = closer
        self._read_bytes = 0

    @property
    def names(self) -> list:
        return list(self.headers)

    def read(self, key: str) -> np.ndarray:
        """Read array `key` (UnreadableFileError when damaged, or over the limit with what was read)."""
        header = self.headers[key]
        what = self.name if self.kind == "npy" else f"{self.name} [{key}]"
        _check_dtype(header.dtype, what)
        check_size(self._read_bytes + header.nbytes, self._limits.max_bytes, self.name,
                   f"array {key!r} of shape {header.shape} ({header.dtype})" if self.kind != "npy"
                   else f"the array of shape {header.shape} ({header.dtype})")
        check_memory(header.shape, header.dtype, self._limits, self.name,
                     f"array {key!r}" if self.kind != "npy" else "the array")
        self._read_bytes += header.nbytes
        return self._reader(key)

    def close(self) -> None:
        self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_arrays(path, *, limits: Optional[ReadLimits] = None, display_name: Optional[str] = None,
                kind: Optional[str] = None) -> ArrayFile:
    """Open a ``.npy``, ``.npz`` or PyTorch tensor file and read its array headers.

    Parameters
    ----------
    path : str or os.PathLike
    limits : ReadLimits, optional
        ``max_bytes`` bounds the data read (and a PyTorch file's stored size).
    display_name : str, optional
        Name used in messages instead of `path`.
    kind : {'npy', 'npz', 'torch'}, optional
        The format, when already sniffed.

    Returns
    -------
    ArrayFile
        Close it (``with open_arrays(...) as arrays:``).

    Raises
    ------
    FileNotFoundError, UnreadableFileError
    """
    path = Path(path)
    limits = as_limits(limits)
    name = display_name or str(path)
    kind = kind or sniff(path, display_name=display_name)
    if kind == "npy":
        f = open_regular_file(path, "NumPy file", display_name=display_name)
        try:
            header = _npy_header(f, name)
            _check_dtype(header.dtype, name)
            have = os.fstat(f.fileno()).st_size - f.tell()
            if have < header.nbytes:
                raise UnreadableFileError(f"{name}: truncated data: shape {header.shape} of {header.dtype} needs "
                                          f"{header.nbytes:,} bytes, the file has {have:,}")
        except BaseException:
            f.close()
            raise
        return ArrayFile("npy", name, {"arr_0": header}, lambda key: _read_npy_data(f, header, name), limits,
                         f.close)
    if kind == "npz":
        return _open_npz(path, name, limits, display_name)
    if kind == "torch":
        return _open_torch(path, name, limits, display_name)
    raise UnreadableFileError(f"{name}: {describe_kind(path, kind, display_name)}; expected a .npy/.npz array "
                              "or a PyTorch tensor file")


def _open_npz(path: Path, name: str, limits: ReadLimits, display_name) -> ArrayFile:
    f = open_regular_file(path, "NumPy archive", display_name=display_name)
    try:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise UnreadableFileError(f"{name}: damaged zip/npz archive ({e})") from None
        members = {}
        for info in zf.infolist():
            if info.filename.endswith(".npy") and not info.is_dir():
                members[info.filename[:-4]] = info
        if len(members) > _MAX_NPZ_ARRAYS:
            raise UnreadableFileError(f"{name}: an archive of {len(members):,} arrays; expected an .npz of a few "
                                      f"arrays (at most {_MAX_NPZ_ARRAYS:,})")
        if not members:
            names = zf.namelist()
            raise UnreadableFileError(
                f"{name}: a zip archive without NumPy arrays (members: {names[:5]}{'...' if len(names) > 5 else ''})"
                "; expected an .npz of arrays saved with numpy.savez")
        headers = {}
        for key, info in members.items():
            what = f"{name} [{key}]"
            try:
                with zf.open(info) as m:
                    header = _npy_header(m, what)
                    offset = m.tell() if hasattr(m, "tell") else None
            except UnreadableFileError:
                raise
            except Exception as e:  # encrypted, unsupported compression, damaged local header, ...
                raise UnreadableFileError(f"{what}: cannot read this archive member ({type(e).__name__}: {e})"
                                          ) from None
            if offset is not None and info.file_size - offset < header.nbytes:
                # The zip directory's size bounds what the member stream yields: inflating stops there.
                raise UnreadableFileError(f"{what}: truncated data: shape {header.shape} of {header.dtype} "
                                          f"needs {header.nbytes:,} bytes, the member holds "
                                          f"{max(info.file_size - offset, 0):,}")
            headers[key] = header
    except BaseException:
        f.close()
        raise

    def reader(key):
        what = f"{name} [{key}]"
        try:
            with zf.open(members[key]) as m:
                header = _npy_header(m, what)
                return _read_npy_data(m, header, what)
        except (UnreadableFileError, MemoryError):
            raise
        except Exception as e:
            raise UnreadableFileError(f"{what}: cannot read this archive member ({type(e).__name__}: {e})") from None

    def closer():
        with contextlib.suppress(Exception):
            zf.close()
        f.close()

    return ArrayFile("npz", name, headers, reader, limits, closer)


def _torch_arrays(obj, name: str, limits: ReadLimits) -> dict:
    import torch

    def to_numpy(t, what):
        if t.is_sparse or t.is_quantized or t.is_complex():
            raise UnreadableFileError(f"{what}: a {t.dtype} {'sparse ' if t.is_sparse else ''}tensor; expected a "
                                      "dense real tensor")
        # The tensor's logical size, not its storage: a stride-0 view of one value may declare any shape.
        # Checked before any conversion materialises it.
        itemsize = max(t.element_size(), 4) if t.dtype in (torch.bfloat16, torch.float16) else t.element_size()
        check_size(t.numel() * itemsize, limits.max_bytes, name, f"tensor of shape {tuple(t.shape)}")
        as_numpy = (np.uint8 if t.dtype == torch.uint8 else np.bool_ if t.dtype == torch.bool
                    else f"{'f' if t.is_floating_point() else 'i'}{itemsize}")
        check_memory(tuple(t.shape), as_numpy, limits, name, "a tensor")
        t = t.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.numpy()

    if isinstance(obj, torch.Tensor):
        return {"arr_0": to_numpy(obj, name)}
    if isinstance(obj, dict):
        out = {str(k): to_numpy(v, f"{name} [{k}]") for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if out:
            return out
    if isinstance(obj, (list, tuple)):
        out = {f"arr_{i}": to_numpy(v, f"{name} [{i}]") for i, v in enumerate(obj) if isinstance(v, torch.Tensor)}
        if out:
            return out
    raise UnreadableFileError(f"{name}: a PyTorch file holding {type(obj).__name__} without tensors; expected a "
                              "tensor, or a dict / list of tensors")


def _open_torch(path: Path, name: str, limits: ReadLimits, display_name) -> ArrayFile:
    try:
        import torch
    except ImportError:
        raise UnreadableFileError(
            f"{name}: a PyTorch tensor file; reading it needs PyTorch, which is not installed (pip install torch), "
            "or save the tensor with numpy.save(path, tensor.numpy())") from None
    with open_regular_file(path, "PyTorch file", display_name=display_name) as f:
        size = os.fstat(f.fileno()).st_size
        stored = size
        with contextlib.suppress(zipfile.BadZipFile, OSError, ValueError):
            with zipfile.ZipFile(f) as zf:
                # Sizes as the archive declares them: what torch.load would allocate.
                stored = sum(i.file_size for i in zf.infolist())
        check_size(stored, limits.max_bytes, name, "the tensors")
        f.seek(0)
        try:
            # weights_only=True: PyTorch's restricted unpickler, which builds tensors and plain containers
            # only and refuses any other object; the file's code is never run.
            obj = torch.load(f, map_location="cpu", weights_only=True)
        except MemoryError:
            raise
        except Exception as e:
            # Not torch's own advice (it suggests weights_only=False, which would run the file's code):
            # only the name of the refused object, when it says one.
            m = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = f" ({m.group(1)})" if m else ""
            damaged = "" if m else f", or it is damaged ({type(e).__name__})"
            raise UnreadableFileError(f"{name}: a PyTorch file that holds objects other than tensors{what}, which are "
                                      f"never unpickled{damaged}; save plain tensors (torch.save(tensor, path)) "
                                      "or a NumPy array") from None
    arrays = _torch_arrays(obj, name, limits)
    headers = {}
    for k, a in arrays.items():
        _check_dtype(a.dtype, f"{name} [{k}]")
        headers[k] = ArrayHeader(a.shape, a.dtype)
    return ArrayFile("torch", name, headers, lambda key: arrays[key], limits)


# ---------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------

def is_image_file(p: Path) -> bool:
    return p.suffix.lower() in (".png", ".jpg", ".jpeg")


def _check_pixels(w: int, h: int, limits: ReadLimits, name: str) -> None:
    if w * h > limits.max_image_pixels:
        raise UnreadableFileError(f"{name}: a {w}x{h} image ({w * h:,} pixels), over the limit of "
                                  f"{limits.max_image_pixels:,} pixels; not decoded")


def read_image(path, *, limits: Optional[ReadLimits] = None, display_name: Optional[str] = None) -> np.ndarray:
    """Read a PNG or JPEG image as a grayscale 2-D array, checking its size before decoding.

    Returns
    -------
    numpy.ndarray, shape (H, W)
        uint8 (16-bit images scaled to 8 bits; colour converted to luminance), or float32 for
        floating-point images.

    Raises
    ------
    FileNotFoundError
    UnreadableFileError
        Not a regular file, not a PNG/JPEG, over ``limits.max_image_pixels`` (judged from the header,
        before any pixel is decoded), truncated or damaged.
    """
    from PIL import Image, UnidentifiedImageError

    limits = as_limits(limits)
    path = Path(path)
    name = display_name or str(path)
    with open_regular_file(path, "image", display_name=display_name) as f:
        head = f.read(24)
        f.seek(0)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            # The size is in the PNG header: refuse before PIL (whose own bomb check would only warn).
            w, h = struct.unpack(">II", head[16:24])
            _check_pixels(w, h, limits, name)
        try:
            im = Image.open(f, formats=["PNG", "JPEG"])
        except Image.DecompressionBombError as e:
            raise UnreadableFileError(f"{name}: image too large ({e}); limit {limits.max_image_pixels:,} pixels"
                                      ) from None
        except UnidentifiedImageError:
            raise UnreadableFileError(f"{name}: not a readable PNG or JPEG image") from None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise UnreadableFileError(f"{name}: damaged image header ({e})") from None
        with im:
            w, h = im.size
            _check_pixels(w, h, limits, name)
            if w == 0 or h == 0:
                raise UnreadableFileError(f"{name}: an empty {w}x{h} image")
            try:
                if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                    a = np.asarray(im).astype(np.float64)
                    top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
                    return np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
                if im.mode == "F":
                    return np.asarray(im, dtype=np.float32)
                return np.asarray(im.convert("L"))
            except MemoryError:
                raise
            except Exception as e:  # truncated or corrupt pixel data: OSError, SyntaxError, zlib errors, ...
                raise UnreadableFileError(f"{name}: truncated or damaged image data ({e})") from None


# ---------------------------------------------------------------------------------------------------------
# Metrics tables
# ---------------------------------------------------------------------------------------------------------

def _dataset_error():
    from core.datasets import DatasetError
    return DatasetError


def read_metrics_table(path, *, n: Optional[int] = None, limits: Optional[ReadLimits] = None,
                       display_name: Optional[str] = None) -> pd.DataFrame:
    """Read a morphometrics CSV: the six :data:`METRICS` columns, plus optional index / label columns.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file with a header row naming at least the six METRICS columns (the released
        ``{split}-morpho.csv`` layout: ``index,area,length,thickness,slant,width,height``).
    n : int, optional
        Required number of rows (the number of digits it describes).
    limits : ReadLimits, optional
        The file size is checked against ``max_bytes`` and the row count against ``max_digits``.
    display_name : str, optional
        Name used in messages instead of `path`.

    Returns
    -------
    pandas.DataFrame
        One row per digit, index 0..N-1 (rows ordered by the ``index`` column when there is one); every
        column of the file kept (``index``, ``label``, ...), the METRICS columns as float64 (NaN where a
        digit could not be measured).

    Raises
    ------
    FileNotFoundError
    UnreadableFileError
        Not a regular file, or over a limit.
    core.datasets.DatasetError
        Not a CSV, a missing or non-numeric metric column, a wrong row count, or an ``index`` column that
        is not 0..N-1.
    """
    limits = as_limits(limits)
    path = Path(path)
    name = display_name or str(path)
    DatasetError = _dataset_error()
    with open_regular_file(path, "metrics table", display_name=display_name) as f:
        check_size(os.fstat(f.fileno()).st_size, limits.max_bytes, name, "the table")
        try:
            df = pd.read_csv(f, nrows=limits.max_digits + 1, low_memory=False)
        except MemoryError:
            raise
        except Exception as e:  # pandas raises many kinds for a broken CSV
            raise DatasetError(f"{name}: not a readable CSV metrics table ({type(e).__name__}: {e})") from None
    check_digit_count(len(df), limits, name, DatasetError)
    df.columns = [str(c) for c in df.columns]
    missing = [m for m in METRICS if m not in df.columns]
    if missing:
        raise DatasetError(f"{name}: metrics table lacks column(s) {', '.join(missing)} (found "
                           f"{', '.join(df.columns[:10])}; expected index,{','.join(METRICS)})")
    for m in METRICS:
        if not pd.api.types.is_numeric_dtype(df[m]):
            converted = pd.to_numeric(df[m], errors="coerce")
            bad = df[m][converted.isna() & df[m].notna()]
            if len(bad):
                raise DatasetError(f"{name}: column {m} holds non-numeric values (row {bad.index[0]}: "
                                   f"{str(bad.iloc[0])[:40]!r})")
            df[m] = converted
        df[m] = df[m].astype("float64")
    if n is not None and len(df) != n:
        raise DatasetError(f"{name}: metrics table has {len(df):,} rows for {n:,} digits")
    if "index" in df.columns:
        idx = pd.to_numeric(df["index"], errors="coerce")
        if idx.isna().any() or not np.array_equal(np.sort(idx.to_numpy()), np.arange(len(df))):
            raise DatasetError(f"{name}: its index column is not a permutation of 0..{len(df) - 1}")
        df = df.iloc[np.argsort(idx.to_numpy(), kind="stable")]
    elif str(df.columns[0]).startswith("Unnamed"):
        df = df.rename(columns={df.columns[0]: "index"})
    return df.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------

@dataclass
class DigitData:
    """Digits read from a dataset folder, an IDX file or an array file.

    Attributes
    ----------
    images : numpy.ndarray
        uint8, shape (N, 28, 28), light digits on a dark background as in MNIST.
    labels : numpy.ndarray or None
        int64 digit labels, shape (N,) (-1 for digits of a split without labels).
    metrics : pandas.DataFrame or None
        N rows, the six :data:`METRICS` columns (float64), from a metrics table found beside the digits; None
        when no table covers every digit (the caller measures them).
    perturbations : numpy.ndarray or None
        int64 perturbation codes (the ``-pert`` files of Morpho-MNIST's global/local datasets), shape (N,).
    name : str
        Short display name (the folder or file name).
    split : str or None
        ``"train"``, ``"t10k"`` (or another file-name prefix) when one split was read; None for several or
        for an array file.
    path : pathlib.Path
        The folder or file read.
    metrics_source : str or None
        Where the metrics came from, e.g. ``"CSV t10k-morpho.csv"``.
    notes : list of str
        What happened while reading (conversions, crops, missing tables).
    parts : list of (str, int)
        The splits read, in order, with their digit counts.
    """

    images: np.ndarray
    labels: Optional[np.ndarray]
    metrics: Optional[pd.DataFrame]
    perturbations: Optional[np.ndarray]
    name: str
    split: Optional[str]
    path: Path
    metrics_source: Optional[str] = None
    notes: list = field(default_factory=list)
    parts: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def _as_labels(array: np.ndarray, n: int, name: str) -> np.ndarray:
    DatasetError = _dataset_error()
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] > 1 and array.shape[0] == n:  # one-hot labels
        array = array.argmax(axis=1)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or len(array) != n:
        raise DatasetError(f"{name}: labels of shape {array.shape} for {n:,} digits")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)) \
                or not np.array_equal(array, np.rint(array)):
            raise DatasetError(f"{name}: labels of type {array.dtype} that are not whole numbers")
    return array.astype(np.int64)


def _to_uint8_digits(array: np.ndarray, name: str, notes: list) -> np.ndarray:
    """uint8 (N, 28, 28) from a numeric image array: uint8 as is; float in [0, 1] (or [-1, 1]) scaled;
    whole numbers in [0, 255] kept; 32x32 digits with a blank 2-pixel border cropped (see core.samples)."""
    DatasetError = _dataset_error()
    try:
        images, note = as_digit_images(array, name)
    except SampleFormatError as e:
        raise DatasetError(str(e)) from None
    if note:
        notes.append(note)
    if len(images) == 0:
        raise DatasetError(f"{name}: holds no digits (shape {array.shape})")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    # one float64 working copy, modified in place (ReadLimits.max_memory counts on it: read_peak_bytes)
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        raise DatasetError(f"{name}: images hold NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if lo >= -1 - 1e-3 and lo < -1e-3 and hi <= 1 + 1e-3:
        notes.append(f"{name}: values in [{lo:.3g}, {hi:.3g}] read as the range [-1, 1], mapped to [0, 255]")
        values += 1
        values *= 127.5
    elif hi <= 1 + 1e-3 and lo >= -1e-3:
        values *= 255.0
    elif lo < 0 or hi > 255:
        raise DatasetError(f"{name}: pixel values range over [{lo:g}, {hi:g}]; expected [0, 1], [-1, 1] or "
                           "[0, 255]")
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _split_files(folder: Path) -> dict:
    found = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise UnreadableFileError(f"{folder}: cannot list the folder ({e.strerror or e})") from None
    for p in entries:
        m = _IMAGES_RE.match(p.name)
        if m and not p.is_dir():
            split = m.group("split")
            if split not in found or p.name.endswith(".gz"):  # prefer the gzip file when both exist
                found[split] = p
    return found


def _beside(folder: Path, split: str, kind: str) -> Optional[Path]:
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            p = folder / f"{split}-{kind}{sep}idx1-ubyte{suffix}"
            if os.path.lexists(p) and not p.is_dir():
                return p
    return None


def _read_idx_digits(path: Path, limits: ReadLimits, notes: list, name: Optional[str] = None) -> np.ndarray:
    DatasetError = _dataset_error()
    name = name or str(path)
    dtype, shape = read_idx_header(path, display_name=name)
    if len(shape) != 3:
        raise DatasetError(f"{name}: expected images of shape (N, 28, 28), found shape {shape}")
    check_digit_count(shape[0], limits, name)
    if shape[1:] not in ((28, 28), (32, 32)):
        raise DatasetError(f"{name}: expected 28x28 digits, found {shape[1]}x{shape[2]} images")
    check_memory(shape, dtype, limits, name, "the images")
    data = load_idx(path, max_bytes=limits.max_bytes, display_name=name)
    if data.dtype != np.uint8 or data.shape[1:] != (28, 28):
        return _to_uint8_digits(data, name, notes)
    return data


def _read_idx_vector(path: Path, n: int, what: str, limits: ReadLimits) -> np.ndarray:
    DatasetError = _dataset_error()
    dtype, shape = read_idx_header(path)
    if len(shape) != 1 or shape[0] != n:
        raise DatasetError(f"{path}: {what} of shape {shape} for {n:,} digits")
    return _as_labels(load_idx(path, max_bytes=limits.max_bytes), n, str(path))


def _read_folder(folder: Path, split: Optional[str], limits: ReadLimits, only: Optional[Path] = None) -> DigitData:
    DatasetError = _dataset_error()
    found = _split_files(folder)
    if only is not None:
        m = _IMAGES_RE.match(only.name)
        found = {m.group("split"): only}
    if split is not None:
        if split not in found:
            have = ", ".join(sorted(found)) or "none"
            raise DatasetError(f"{folder}: no {split} images (expected {split}-images-idx3-ubyte.gz or "
                               f"{split}-images-idx3-ubyte; splits here: {have})")
        found = {split: found[split]}
    if not found:
        subs = []
        with contextlib.suppress(OSError):
            subs = sorted(p.name for p in folder.iterdir() if p.is_dir() and _split_files(p))
        hint = f"; these sub-folders hold digits: {', '.join(subs[:8])}" if subs else ""
        raise DatasetError(f"{folder}: no MNIST digits here (expected files like train-images-idx3-ubyte.gz or "
                           f"t10k-images-idx3-ubyte){hint}")
    splits = sorted(found, key=lambda s: (_SPLIT_ORDER.get(s, 2), s))
    images, labels, perts, metrics, parts, notes, sources = [], [], [], [], [], [], []
    # The splits together stay within the limits: their headers are checked before any is read.
    total = total_bytes = 0
    for s in splits:
        _, shape = read_idx_header(found[s])
        total += shape[0] if shape else 0
        total_bytes += math.prod(shape)
        check_digit_count(total, limits, str(folder))
        check_size(total_bytes, limits.max_bytes, str(folder), f"the images of {', '.join(splits)}")
    for s in splits:
        img_path = found[s]
        imgs = _read_idx_digits(img_path, limits, notes)
        n = len(imgs)
        lab_path = _beside(folder, s, "labels")
        labels.append(None if lab_path is None else _read_idx_vector(lab_path, n, "labels", limits))
        if lab_path is None:
            notes.append(f"{img_path.name}: no label file beside it")
        pert_path = _beside(folder, s, "pert")
        perts.append(None if pert_path is None else _read_idx_vector(pert_path, n, "perturbation codes", limits))
        csv = folder / f"{s}-morpho.csv"
        if os.path.lexists(csv):
            metrics.append(read_metrics_table(csv, n=n, limits=limits).loc[:, list(METRICS)])
            sources.append(csv.name)
        else:
            metrics.append(None)
            notes.append(f"{img_path.name}: no metrics table ({csv.name}) beside it")
        images.append(imgs)
        parts.append((s, n))

    def concat(arrays):
        if all(a is None for a in arrays):
            return None
        # A split without labels gets -1, so that concatenated labels stay aligned with the digits.
        return np.concatenate([a if a is not None else np.full(k, -1, np.int64) for a, (_, k) in zip(arrays, parts)])

    have_metrics = all(m is not None for m in metrics)
    return DigitData(
        images=np.concatenate(images) if len(images) > 1 else images[0], labels=concat(labels),
        metrics=pd.concat(metrics, ignore_index=True) if have_metrics else None, perturbations=concat(perts),
        name=folder.name or str(folder), split=splits[0] if len(splits) == 1 else None,
        path=only if only is not None else folder,
        metrics_source=("CSV " + ", ".join(sources)) if have_metrics else None, notes=notes, parts=parts)


def _read_array_dataset(path: Path, kind: str, limits: ReadLimits, display_name: Optional[str]) -> DigitData:
    DatasetError = _dataset_error()
    name = display_name or str(path)
    notes: list = []
    with open_arrays(path, limits=limits, kind=kind, display_name=name) as arrays:
        heads = arrays.headers
        img_key = next((k for k in _DATASET_IMAGE_KEYS if k in heads), None)
        if img_key is None:
            candidates = [k for k, h in heads.items() if len(h.shape) >= 2]
            img_key = candidates[0] if len(candidates) == 1 else None
        if img_key is None:
            raise DatasetError(f"{name}: no image array among {', '.join(heads) or 'no arrays'} (name it 'images' "
                               "or 'x')")
        shape = heads[img_key].shape
        check_digit_count(shape[0] if len(shape) >= 2 else 0, limits, name)  # digits lie along the first axis
        what = name if arrays.kind == "npy" else f"{name} [{img_key}]"
        images = _to_uint8_digits(arrays.read(img_key), what, notes)
        labels = perts = None
        lab_key = next((k for k in _DATASET_LABEL_KEYS if k in heads and k != img_key), None)
        if lab_key is not None:
            labels = _as_labels(arrays.read(lab_key), len(images), f"{name} [{lab_key}]")
        if "perturbations" in heads:
            perts = _as_labels(arrays.read("perturbations"), len(images), f"{name} [perturbations]")
    metrics = source = None
    shown = Path(display_name) if display_name else path
    csv = path.parent / f"{path.stem}-morpho.csv"
    if os.path.lexists(csv):
        csv_name = str(shown.parent / f"{shown.stem}-morpho.csv")
        metrics = read_metrics_table(csv, n=len(images), limits=limits, display_name=csv_name).loc[:, list(METRICS)]
        source = f"CSV {csv.name}"
    return DigitData(images=images, labels=labels, metrics=metrics, perturbations=perts, name=shown.name, split=None,
                     path=path, metrics_source=source, notes=notes, parts=[(shown.stem, len(images))])


def read_dataset(path, *, split: Optional[str] = None, limits: Optional[ReadLimits] = None,
                 display_name: Optional[str] = None) -> DigitData:
    """Read digits: an MNIST / Morpho-MNIST folder, one IDX images file, or a .npy/.npz (or PyTorch) array.

    Parameters
    ----------
    path : str or os.PathLike
        - a folder holding ``{split}-images-idx3-ubyte[.gz]`` files (every split, ``train`` first, then
          ``t10k``, then others by name), each with its ``-labels-idx1-ubyte``, ``-pert-idx1-ubyte`` and
          ``-morpho.csv`` when present;
        - one IDX images file (its labels, perturbation codes and metrics table found beside it when it has
          an MNIST-style name);
        - a ``.npy``/``.npz`` array (or PyTorch tensor file) of digits (N, 28, 28) / (N, 784) / (N, 1, 28,
          28), uint8 or float in [0, 1] / [-1, 1], an ``.npz`` optionally with ``labels`` and
          ``perturbations``; metrics from ``<stem>-morpho.csv`` beside it when present.
    split : str, optional
        Read only this split of a folder.
    limits : ReadLimits, optional
        Bounds on bytes and digits read (default :data:`DEFAULT_LIMITS`).
    display_name : str, optional
        For a single file (e.g. an upload saved to a temporary file): its name in messages and in
        ``DigitData.name``, instead of `path`.

    Returns
    -------
    DigitData

    Raises
    ------
    FileNotFoundError
        Nothing at `path`.
    UnreadableFileError
        A file that is not a regular file, over a limit, truncated, or in no supported format (IDX errors are
        :class:`core.io.IDXError`, a subclass).
    core.datasets.DatasetError
        Files that do not agree (label or metrics counts), a folder without digits, unusable arrays.
    """
    limits = as_limits(limits)
    if not str(path).strip():
        raise _dataset_error()("no path given")
    path = Path(os.path.expanduser(str(path)))
    name = display_name or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file or folder") from None
    except OSError as e:
        raise UnreadableFileError(f"{name}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        return _read_folder(path, split, limits)
    check_regular_file(path, "data file", display_name=display_name)
    kind = sniff(path, display_name=display_name)
    if kind in ("npy", "npz", "torch"):
        return _read_array_dataset(path, kind, limits, display_name)
    if kind == "idx":
        if _IMAGES_RE.match(path.name) and display_name is None:
            return _read_folder(path.parent, split, limits, only=path)
        notes: list = []
        images = _read_idx_digits(path, limits, notes, name)
        shown = Path(name).name
        return DigitData(images=images, labels=None, metrics=None, perturbations=None, name=shown, split=None,
                         path=path, notes=notes + [f"{shown}: no labels (not an MNIST-style file name beside its "
                                                   "label file)"],
                         parts=[(shown, len(images))])
    raise UnreadableFileError(f"{name}: {describe_kind(path, kind, display_name)}; open a folder of MNIST IDX files, "
                              "a Morpho-MNIST dataset folder, an IDX images file or a .npy/.npz array")


def describe_kind(path: Path, kind: str, display_name: Optional[str] = None) -> str:
    """What a sniffed file is, in words (for messages)."""
    if kind == "pickle":
        return ("a Python pickle, which is never loaded (unpickling can run arbitrary code); save the array with "
                "numpy.save instead")
    if kind == "empty":
        return "an empty file (0 bytes)"
    if kind == "text":
        first = _head(path, 60, display_name).decode("utf-8", "replace").splitlines()
        return f"a text file starting with {first[0][:40]!r}" if first else "a text file"
    if kind == "gzip":
        return "a gzip file that does not hold an IDX array"
    if kind == "zip":
        return "a zip archive that is neither an .npz of NumPy arrays nor a PyTorch file"
    if kind == "torch":
        return "a PyTorch file"
    return f"a file of unknown format (first bytes {_head(path, 8, display_name).hex(' ')})"
