"""IDX file I/O (the MNIST format) and atomic file writing.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number of dimensions -- then one
big-endian uint32 per dimension, then the elements in C order, big-endian. Files whose name ends in ``.gz``
are gzip-compressed.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import IO, Iterator

import numpy as np

__all__ = ["IDXError", "load_idx", "save_idx", "read_idx_header", "atomic_write", "atomic_write_csv"]

# IDX type code -> big-endian numpy dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}
_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
_DTYPE_CODES = {np.dtype(dt).newbyteorder("="): code for code, dt in _IDX_TYPES.items()}


class IDXError(ValueError):
    """A file is not a valid IDX file, or an array cannot be written as one. The message names the file."""


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _read_bytes(path: Path) -> bytes:
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError as e:
        raise IDXError(f"{path}: is a folder, not an IDX file") from e
    except (OSError, EOFError, zlib.error) as e:
        raise IDXError(f"{path}: not a readable gzip file ({e})") from e


def _parse_header(data: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (big-endian dtype, shape, header size) of IDX bytes, validating the magic number."""
    if len(data) == 0:
        raise IDXError(f"{path}: file is empty")
    if len(data) < 4:
        raise IDXError(f"{path}: truncated header ({len(data)} bytes, the magic number needs 4)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IDXError(f"{path}: wrong magic number 0x{data[:4].hex()} (an IDX file starts with two zero "
                       f"bytes); is it an IDX file, or a gzip file without a .gz name?")
    if type_code not in _IDX_TYPES:
        raise IDXError(f"{path}: unknown IDX type code 0x{type_code:02x} (expected one of "
                       + ", ".join(f"0x{c:02x} {n}" for c, n in _TYPE_NAMES.items()) + ")")
    if ndim == 0:
        raise IDXError(f"{path}: header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(f"{path}: truncated header ({len(data)} bytes, {ndim} dimensions need {header_size})")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return _IDX_TYPES[type_code], tuple(int(s) for s in shape), header_size


def read_idx_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """Read only the element type and shape of an IDX file.

    Returns
    -------
    dtype : numpy.dtype
        Native-endian element type.
    shape : tuple of int
    """
    path = Path(path)
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) == 4 and head[3] > 0:
                head += f.read(4 * head[3])
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise IDXError(f"{path}: not a readable file ({e})") from e
    dtype, shape, _ = _parse_header(head, path)
    return dtype.newbyteorder("="), shape


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Load an IDX file (gzip-compressed when the name ends in ``.gz``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray
        The array, native byte order; MNIST images load as uint8 of shape (N, 28, 28), labels as (N,).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    IDXError
        If the file is empty, truncated (header or data), has trailing bytes, a wrong magic number, an unknown
        type code or zero dimensions, or is not valid gzip. The message names the file and the problem.
    """
    path = Path(path)
    data = _read_bytes(path)
    dtype, shape, header_size = _parse_header(data, path)
    count = math.prod(shape)  # Python ints: a forged header cannot overflow
    expected = header_size + count * dtype.itemsize
    if len(data) < expected:
        raise IDXError(f"{path}: truncated data: shape {shape} of {_TYPE_NAMES[_code_of(dtype)]} needs "
                       f"{expected - header_size} bytes after the header, the file has {len(data) - header_size}")
    if len(data) > expected:
        raise IDXError(f"{path}: {len(data) - expected} trailing bytes after the data of shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _code_of(dtype: np.dtype) -> int:
    return _DTYPE_CODES[np.dtype(dtype).newbyteorder("=")]


def save_idx(array: np.ndarray, path: str | os.PathLike) -> None:
    """Save an array as an IDX file, atomically (gzip-compressed when the name ends in ``.gz``).

    The element type follows the array's dtype: uint8 -> ubyte (the MNIST layout), int8 -> byte,
    int16 -> short, int32 -> int, float32 -> float, float64 -> double. A saved MNIST array is byte-identical
    to the original (uncompressed) file; gzip output is reproducible (no timestamp, no file name stored).

    Parameters
    ----------
    array : numpy.ndarray
        At least 1-D, of one of the dtypes above (bool is saved as ubyte).
    path : str or os.PathLike
        Destination. Written to a temporary file in the same folder, then renamed: a failed save leaves an
        existing file untouched and no temporary file behind.

    Raises
    ------
    IDXError
        If the dtype has no IDX type, the array is 0-D, or a dimension exceeds 2**32 - 1.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    key = array.dtype.newbyteorder("=")
    if key not in _DTYPE_CODES:
        raise IDXError(f"{path}: cannot save dtype {array.dtype} as IDX (supported: uint8, int8, int16, int32, "
                       f"float32, float64)")
    if array.ndim == 0 or array.ndim > 255:
        raise IDXError(f"{path}: cannot save a {array.ndim}-D array as IDX (1 to 255 dimensions)")
    if any(s > 0xFFFFFFFF for s in array.shape):
        raise IDXError(f"{path}: dimension too large for IDX: {array.shape}")
    code = _DTYPE_CODES[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    with atomic_write(path, "wb") as f:
        if _is_gzip(path):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync and rename it to `path`.

    On any exception the temporary file is removed and an existing `path` is left untouched, so a final
    name never holds a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination; its folder must exist and be writable.
    mode : {"wb", "w"}
        Binary or text.
    **open_kwargs
        Passed to :func:`open` for text mode (e.g. ``newline=""``, ``encoding``).
    """
    path = Path(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        if mode == "w":
            open_kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_csv(df, path: str | os.PathLike, **to_csv_kwargs) -> None:
    """Write a pandas DataFrame as CSV atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", newline="") as f:
        df.to_csv(f, **to_csv_kwargs)
