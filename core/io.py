"""Safe file reading primitives, IDX file I/O (the MNIST format) and atomic file writing.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number of dimensions -- then one
big-endian uint32 per dimension, then the elements in C order, big-endian. gzip-compressed IDX files (the
way MNIST is distributed, names ending in ``.gz``) are recognised from their first bytes.

Reading user files safely
-------------------------
Every reader of the project goes through this module's primitives, so that the same rules hold everywhere:

- only regular files are read: FIFOs, devices (``/dev/zero``, ``/dev/urandom``), sockets and folders are
  refused from :func:`os.stat` *before* the file is opened, and checked again with :func:`os.fstat` on the
  open descriptor (opened non-blocking, so a file swapped for a FIFO in between cannot block);
- compressed data is inflated as a stream and never past what the header declares (plus one byte to
  detect trailing data), and never past :attr:`ReadLimits.max_bytes`; a gzip member cannot inflate by more
  than 1032:1 (the deflate format's limit), so a header that declares more data than the file could hold is
  refused as truncated before anything is inflated.

The library default (:data:`DEFAULT_LIMITS`) is generous -- it admits the whole of MNIST and
Morpho-MNIST many times over; servers pass smaller :class:`ReadLimits`.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import math
import os
import re
import secrets
import socket
import stat
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Optional

import numpy as np

__all__ = ["ReadLimits", "DEFAULT_LIMITS", "UnreadableFileError", "check_regular_file", "open_regular_file",
           "IDXError", "load_idx", "iter_idx", "save_idx", "read_idx_header", "atomic_write",
           "atomic_write_csv", "remove_stale_parts", "fsync_folder"]


# --------------------------------------------------------------------------------------------------------
# Limits and regular files
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadLimits:
    """Upper bounds on what one read of a user file may cost.

    Attributes
    ----------
    max_bytes : int
        Largest decompressed size, or array size in memory, of one file's data, in bytes (default 4 GiB:
        MNIST's 60,000 training digits are 47 MB).
    max_digits : int
        Largest number of digits (images) in one file or folder (default 10,000,000).
    max_image_pixels : int
        Largest PNG/JPEG image, in pixels (width x height), checked from the image header before decoding
        (default 64,000,000: an 8000 x 8000 grid holds 80,000 28x28 digits).
    max_memory : int
        Largest peak memory of one array read, in bytes (default 1 GiB), estimated from the declared shape and
        type before anything is read or materialised: the array as stored plus the working copy that converts
        it to digits (:func:`core.reading.read_peak_bytes`). It bounds what declared sizes do not: a small
        file declaring a huge, highly compressible array, or a PyTorch tensor viewing one value through
        zero strides.
    """

    max_bytes: int = 4 * 2 ** 30
    max_digits: int = 10_000_000
    max_image_pixels: int = 64_000_000
    max_memory: int = 2 ** 30

    def __post_init__(self):
        for name in ("max_bytes", "max_digits", "max_image_pixels", "max_memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"ReadLimits.{name} must be a positive integer, not {value!r}")
            object.__setattr__(self, name, int(value))


#: The library's default limits (see :class:`ReadLimits`).
DEFAULT_LIMITS = ReadLimits()


def as_limits(limits: Optional[ReadLimits]) -> ReadLimits:
    """`limits`, or :data:`DEFAULT_LIMITS` when None."""
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, ReadLimits):
        raise TypeError(f"limits must be a ReadLimits, not {type(limits).__name__}")
    return limits


class UnreadableFileError(ValueError):
    """A file cannot be read: not a regular file (FIFO, device, socket, or a folder where a file is wanted),
    over a :class:`ReadLimits` limit, truncated, or not in the expected format. The message names the file
    and the problem."""


class IDXError(UnreadableFileError):
    """A file is not a valid IDX file, or an array cannot be written as one. The message names the file."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(name: str, what: str, mode: int, path) -> UnreadableFileError:
    kind = _kind(mode)
    if stat.S_ISDIR(mode):
        return UnreadableFileError(f"{name}: is a folder, not {_article(what)}")
    target = ""
    with contextlib.suppress(OSError, RuntimeError):
        p = Path(path)
        if p.is_symlink():
            target = f" (a link to {os.path.realpath(p)})"
    return UnreadableFileError(f"{name}: is {kind}{target}, not a regular file; only regular files are read")


def _article(what: str) -> str:
    return ("an " if what[:1].lower() in "aeiou" else "a ") + what


def _os_error(name: str, e: OSError) -> Exception:
    if isinstance(e, FileNotFoundError):
        return FileNotFoundError(errno.ENOENT, f"{name}: no such file or folder")
    if isinstance(e, PermissionError):
        return UnreadableFileError(f"{name}: permission denied")
    return UnreadableFileError(f"{name}: cannot read ({e.strerror or e})")


def check_regular_file(path, what: str = "file", *, display_name: Optional[str] = None) -> Path:
    """Check that `path` is a regular file (symbolic links followed), without opening it.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file should be, for messages (e.g. ``"IDX file"``).
    display_name : str, optional
        Name used in messages instead of `path` (e.g. an upload's original file name).

    Returns
    -------
    pathlib.Path
        `path` as given.

    Raises
    ------
    FileNotFoundError
        If nothing exists at `path` (or a link points nowhere).
    UnreadableFileError
        If it is a folder, FIFO, device or socket, or cannot be examined (permission denied, link loop).
    """
    path = Path(path)
    name = display_name or str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _os_error(name, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(name, what, st.st_mode, path)
    return path


def open_regular_file(path, what: str = "file", *, display_name: Optional[str] = None) -> BinaryIO:
    """Open a regular file for binary reading, refusing anything else before and after opening.

    The file is checked with :func:`os.stat` first (a FIFO or device is never opened), then opened
    non-blocking and checked again with :func:`os.fstat`, so a file replaced by a FIFO in between cannot
    block the caller either.

    Returns
    -------
    BinaryIO
        A buffered binary file object (use it as a context manager).

    Raises
    ------
    FileNotFoundError, UnreadableFileError
        As :func:`check_regular_file`.
    """
    path = check_regular_file(path, what, display_name=display_name)
    name = display_name or str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _os_error(name, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(name, what, st.st_mode, path)
        if getattr(os, "O_NONBLOCK", 0):
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _size_text(nbytes: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def check_size(nbytes: int, max_bytes: int, name: str, what: str, error=None) -> None:
    """Raise `error` (default UnreadableFileError) when `nbytes`, the size of `what` in `name`, exceeds
    `max_bytes`."""
    if nbytes > max_bytes:
        raise (error or UnreadableFileError)(f"{name}: {what} would take {_size_text(nbytes)} ({nbytes:,} bytes), over the "
                                  f"limit of {_size_text(max_bytes)} for one file; not read")


# --------------------------------------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------------------------------------

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
_GZIP_MAGIC = b"\x1f\x8b"
#: Deflate's largest expansion ratio is 1032:1; a little slack for gzip member headers.
_MAX_INFLATE_RATIO = 1040
_BLOCK = 1 << 24  # bytes inflated per step: bounds the transient copy of GzipFile.readinto


def _open_idx(path, display_name):
    # IDX readers raise IDXError for every unreadable file, so that callers catching it see non-regular
    # files too (IDXError is an UnreadableFileError).
    try:
        return open_regular_file(path, "IDX file", display_name=display_name)
    except IDXError:
        raise
    except UnreadableFileError as e:
        raise IDXError(str(e)) from None


def _is_gzip_name(path: Path) -> bool:
    return path.name.endswith(".gz")


class _IdxSource:
    """An open IDX file: the raw file, the (possibly inflating) stream, its header, and its size checks."""

    def __init__(self, path, max_bytes: Optional[int], display_name: Optional[str]):
        self.path = Path(path)
        self.name = display_name or str(self.path)
        self.max_bytes = DEFAULT_LIMITS.max_bytes if max_bytes is None else int(max_bytes)
        self.raw = _open_idx(self.path, display_name)
        try:
            self.file_size = os.fstat(self.raw.fileno()).st_size
            magic = self._read_raw(2)
            self.raw.seek(0)
            self.gz = magic == _GZIP_MAGIC
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gz else self.raw
            self.dtype, self.shape, self.header_size = self._header()
            self.count = math.prod(self.shape)  # Python ints: a forged header cannot overflow
            self.nbytes = self.count * self.dtype.itemsize
            self._check_sizes()
        except BaseException:
            self.close()
            raise

    def _read_raw(self, n):
        try:
            return self.raw.read(n)
        except OSError as e:
            raise IDXError(f"{self.name}: cannot read ({e.strerror or e})") from None

    def read(self, n: int) -> bytes:
        """Up to `n` bytes of the (inflated) stream, with errors as IDXError."""
        try:
            return self.stream.read(n)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise IDXError(self._gzip_problem(e)) from None
        except OSError as e:
            raise IDXError(f"{self.name}: cannot read ({e.strerror or e})") from None

    def readinto(self, view: memoryview) -> int:
        """Fill `view` as far as the stream goes, in bounded steps; return the bytes read."""
        done = 0
        total = len(view)
        try:
            while done < total:
                n = self.stream.readinto(view[done:done + _BLOCK])
                if not n:
                    break
                done += n
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise IDXError(self._gzip_problem(e)) from None
        except OSError as e:
            raise IDXError(f"{self.name}: cannot read ({e.strerror or e})") from None
        return done

    def _gzip_problem(self, e) -> str:
        if isinstance(e, EOFError):
            return f"{self.name}: truncated gzip data ({e})"
        return f"{self.name}: corrupted gzip data ({e})"

    def _header(self):
        head = self.read(4)
        if len(head) == 4 and head[0] == 0 and head[1] == 0 and head[3] > 0:
            head += self.read(4 * head[3])
        if self.gz and len(head) == 0:
            raise IDXError(f"{self.name}: file is empty once decompressed (a gzip file holding no data)")
        return _parse_header(head, self.name, _gz_hint(self.path, self.gz))

    def _check_sizes(self) -> None:
        what = f"the data of shape {self.shape} ({_TYPE_NAMES[_code_of(self.dtype)]})"
        if not self.gz:  # the exact size is known: truncation and trailing bytes first
            self.check_raw_length(self.file_size - self.header_size)
        elif self.nbytes > max(self.file_size - 18, 0) * _MAX_INFLATE_RATIO + self.header_size:
            # Deflate cannot expand more than 1032:1, so this file cannot hold what its header declares:
            # refuse now rather than inflate up to the limit to find out.
            raise IDXError(f"{self.name}: truncated data: the header declares shape {self.shape}, "
                           f"{self.nbytes:,} bytes, but {self.file_size:,} compressed bytes can hold at most "
                           f"{max(self.file_size - 18, 0) * _MAX_INFLATE_RATIO:,}")
        check_size(self.nbytes, self.max_bytes, self.name, what, IDXError)

    def check_raw_length(self, have: int) -> None:
        if have < self.nbytes:
            raise IDXError(f"{self.name}: truncated data: shape {self.shape} of {_TYPE_NAMES[_code_of(self.dtype)]} "
                           f"needs {self.nbytes} bytes after the header, the file has {have}")
        if have > self.nbytes:
            raise IDXError(f"{self.name}: {have - self.nbytes} trailing bytes after the data of shape {self.shape}")

    def truncated(self, got: int) -> IDXError:
        return IDXError(f"{self.name}: truncated data: shape {self.shape} of {_TYPE_NAMES[_code_of(self.dtype)]} "
                        f"needs {self.nbytes} bytes after the header, the file has {got}")

    def check_end(self) -> None:
        """After all declared data was read: refuse trailing bytes (reading at most 64 KiB more)."""
        if not self.gz:
            return  # the file size was checked against the header before reading
        extra = self.read(1)
        if extra:
            more = len(self.read(1 << 16))
            count = f"{1 + more}" if more < (1 << 16) else f"more than {1 << 16}"
            raise IDXError(f"{self.name}: {count} trailing bytes after the data of shape {self.shape}")

    def skip(self, nbytes: int) -> int:
        """Move `nbytes` forward in the data; return how many bytes were there."""
        if not self.gz:
            self.raw.seek(nbytes, os.SEEK_CUR)
            return nbytes
        done = 0
        while done < nbytes:
            block = self.read(min(1 << 20, nbytes - done))
            if not block:
                break
            done += len(block)
        return done

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "stream", None) is not None and self.stream is not self.raw:
                self.stream.close()
        with contextlib.suppress(Exception):
            self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _gz_hint(path: Path, gz: bool) -> str:
    # Browsers often decompress a downloaded .gz and keep its name, so plain content under a .gz name is
    # read as plain; when it is not IDX either, the message says both.
    if _is_gzip_name(path) and not gz:
        return " (the name ends in .gz, but the file is not gzip-compressed either: not a readable gzip file)"
    return ""


def _parse_header(data: bytes, name, hint: str = "") -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (big-endian dtype, shape, header size) of IDX bytes, validating the magic number."""
    if len(data) == 0:
        raise IDXError(f"{name}: file is empty")
    if len(data) < 4:
        raise IDXError(f"{name}: truncated header ({len(data)} bytes, the magic number needs 4)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IDXError(f"{name}: wrong magic number 0x{data[:4].hex()} (an IDX file starts with two zero "
                       f"bytes); not an IDX file{hint}")
    if type_code not in _IDX_TYPES:
        raise IDXError(f"{name}: unknown IDX type code 0x{type_code:02x} (expected one of "
                       + ", ".join(f"0x{c:02x} {n}" for c, n in _TYPE_NAMES.items()) + ")")
    if ndim == 0:
        raise IDXError(f"{name}: header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(f"{name}: truncated header ({len(data)} bytes, {ndim} dimensions need {header_size})")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return _IDX_TYPES[type_code], tuple(int(s) for s in shape), header_size


def read_idx_header(path: str | os.PathLike, *, display_name: Optional[str] = None
                    ) -> tuple[np.dtype, tuple[int, ...]]:
    """Read only the element type and shape of an IDX file (plain or gzip).

    Returns
    -------
    dtype : numpy.dtype
        Native-endian element type.
    shape : tuple of int

    Raises
    ------
    FileNotFoundError
    IDXError
        Not a regular file, not an IDX file or not readable gzip. Sizes are not checked here (see
        :func:`load_idx` / :func:`iter_idx`).
    """
    path = Path(path)
    name = display_name or str(path)
    with _open_idx(path, display_name) as raw:
        try:
            magic = raw.read(2)
            raw.seek(0)
        except OSError as e:
            raise IDXError(f"{name}: cannot read ({e.strerror or e})") from None
        gz = magic == _GZIP_MAGIC
        f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            head = f.read(4)
            if len(head) == 4 and head[:2] == b"\0\0" and head[3] > 0:
                head += f.read(4 * head[3])
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise IDXError(f"{name}: corrupted gzip data ({e})") from None
        except OSError as e:
            raise IDXError(f"{name}: cannot read ({e.strerror or e})") from None
    if gz and not head:
        raise IDXError(f"{name}: file is empty once decompressed (a gzip file holding no data)")
    dtype, shape, _ = _parse_header(head, name, _gz_hint(path, gz))
    return dtype.newbyteorder("="), shape


def _to_native(array: np.ndarray) -> np.ndarray:
    """Interpret a native-typed buffer that holds big-endian bytes, in place."""
    if array.dtype.itemsize > 1 and np.little_endian:
        array.byteswap(inplace=True)
    return array


def load_idx(path: str | os.PathLike, *, max_bytes: Optional[int] = None,
             display_name: Optional[str] = None) -> np.ndarray:
    """Load an IDX file (plain, or gzip-compressed as MNIST is distributed).

    gzip data is inflated as a stream into an array of the size the header declares, then one more byte is
    read to detect trailing data: a decompression bomb costs no more than the header's size, which is checked
    against `max_bytes` before anything is inflated.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file (FIFOs, devices, sockets and folders are refused without being read).
    max_bytes : int, optional
        Largest array size accepted, in bytes (default :attr:`DEFAULT_LIMITS.max_bytes <ReadLimits>`, 4 GiB).
    display_name : str, optional
        Name used in messages instead of `path` (e.g. an upload's original name).

    Returns
    -------
    numpy.ndarray
        The array, native byte order; MNIST images load as uint8 of shape (N, 28, 28), labels as (N,).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    IDXError
        If the file is not a regular file, is empty, truncated (header or data), has trailing bytes, a wrong
        magic number, an unknown type code or zero dimensions, is over `max_bytes`, or is not valid gzip. The
        message names the file and the problem.
    """
    with _IdxSource(path, max_bytes, display_name) as src:
        native = src.dtype.newbyteorder("=")
        array = np.empty(src.count, dtype=native)
        got = src.readinto(memoryview(array).cast("B")) if src.nbytes else 0
        if got < src.nbytes:
            raise src.truncated(got)
        src.check_end()
    return _to_native(array).reshape(src.shape)


def iter_idx(path: str | os.PathLike, chunksize: int, start: int = 0, stop: Optional[int] = None, *,
             max_bytes: Optional[int] = None, display_name: Optional[str] = None
             ) -> Iterator[tuple[int, np.ndarray]]:
    """Read an IDX file chunk by chunk along its first axis, holding one chunk at a time.

    Accepts exactly the files :func:`load_idx` accepts: the header is checked against `max_bytes` and (plain
    files) the file size before the first chunk; gzip data is read to its end, also past `stop`, so that
    truncated data and trailing bytes are refused (after the last chunk: a consumer must not commit its
    output before the iteration has finished).

    Parameters
    ----------
    path : str or os.PathLike
    chunksize : int
        Items per chunk (along the first axis).
    start, stop : int
        Item range to yield (default: all).
    max_bytes : int, optional
        Largest declared data size, in bytes (default 4 GiB).
    display_name : str, optional
        Name used in messages.

    Yields
    ------
    offset : int
        Index of the chunk's first item.
    chunk : numpy.ndarray
        Native-endian array of shape ``(n, *shape[1:])``.

    Raises
    ------
    FileNotFoundError, IDXError
        As :func:`load_idx`.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, not {chunksize}")
    if start < 0:
        raise ValueError(f"start must be non-negative, not {start}")
    with _IdxSource(path, max_bytes, display_name) as src:
        n = src.shape[0]
        item_shape = tuple(src.shape[1:])
        item_bytes = math.prod(item_shape) * src.dtype.itemsize
        stop = n if stop is None else max(min(stop, n), 0)
        start = min(start, stop)
        native = src.dtype.newbyteorder("=")
        pos = src.skip(start * item_bytes)
        if pos < start * item_bytes:
            raise src.truncated(pos)
        i = start
        while i < stop:
            k = min(chunksize, stop - i)
            chunk = np.empty((k,) + item_shape, dtype=native)
            got = src.readinto(memoryview(chunk).cast("B")) if chunk.nbytes else 0
            if got < chunk.nbytes:
                raise src.truncated(pos + got)
            pos += got
            yield i, _to_native(chunk)
            i += k
        if src.gz:
            rest = src.nbytes - pos
            if src.skip(rest) < rest:
                raise src.truncated(src.nbytes - rest)
            src.check_end()


def _code_of(dtype: np.dtype) -> int:
    return _DTYPE_CODES[np.dtype(dtype).newbyteorder("=")]


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------

def save_idx(data: np.ndarray, path: str | os.PathLike) -> None:
    """Save an array as an IDX file, atomically (gzip-compressed when the name ends in ``.gz``).

    Parameter names as the original ``morphomnist.io.save_idx(data, path)``. The element type follows the
    array's dtype: uint8 -> ubyte (the MNIST layout), int8 -> byte, int16 -> short, int32 -> int,
    float32 -> float, float64 -> double. A saved MNIST array is byte-identical to the original
    (uncompressed) file; gzip output is reproducible (no timestamp, no file name stored).

    Parameters
    ----------
    data : numpy.ndarray
        At least 1-D, of one of the dtypes above (bool is saved as ubyte).
    path : str or os.PathLike
        Destination. Written to a temporary file in the same folder, then renamed (see :func:`atomic_write`):
        a failed save leaves an existing file untouched and no temporary file behind.

    Raises
    ------
    IDXError
        If the dtype has no IDX type, the array is 0-D, or a dimension exceeds 2**32 - 1.
    """
    path = Path(path)
    array = np.asarray(data)
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
        if _is_gzip_name(path):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)


def _host_tag() -> str:
    # Part names carry the writer's host, so that a pid is only judged on the machine that owns it
    # (a folder may be shared over the network).
    return zlib.crc32(socket.gethostname().encode()).to_bytes(4, "big").hex()


#: The middle of ``.<name>.<pid>-<host>.<random>.part``; older versions wrote ``.<name>.<random>.part``
#: (tempfile.mkstemp's 8 random characters).
_PART_RE = re.compile(r"^(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.)?(?P<rand>[A-Za-z0-9_]{6,})$")


def part_name(path: Path) -> str:
    """A fresh temporary name for `path` in its folder: ``.<name>.<pid>-<host>.<random>.part``."""
    return f".{path.name}.{os.getpid()}-{_host_tag()}.{secrets.token_hex(4)}.part"


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened (Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        # Some file systems cannot fsync a folder (EINVAL); the data itself was synced already.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it, rename it to `path` and fsync the folder.

    On any exception the temporary file is removed and an existing `path` is left untouched, so a final
    name never holds a partial file. The temporary file is ``.<name>.<pid>-<host>.<random>.part``: a run
    killed with SIGKILL leaves it behind, and :func:`remove_stale_parts` (called by the next run) removes it
    once its writer is gone.

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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / part_name(path)
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise OSError(errno.EEXIST, f"cannot write {path}: no free temporary name")
    try:
        if mode == "w":
            open_kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename is durable only once the folder's entry is on disk.
    fsync_folder(folder)


def atomic_write_csv(df, path: str | os.PathLike, **to_csv_kwargs) -> None:
    """Write a pandas DataFrame as CSV atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", newline="") as f:
        df.to_csv(f, **to_csv_kwargs)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell: keep the file
    return True


def remove_stale_parts(path: str | os.PathLike, older_than: float = 3600.0) -> list[Path]:
    """Remove the temporary ``.part`` files that killed writers of `path` left beside it.

    A part written by this version names its writer (``.<name>.<pid>-<host>.<random>.part``): it is stale
    when that host is this machine and no process with that pid runs, whatever its age, so a live writer's
    part is never touched. A part with no pid (older versions, or written by another host) is stale when it
    was last modified more than `older_than` seconds ago.

    Parameters
    ----------
    path : str or os.PathLike
        The final file whose leftover parts to remove (the folder need not exist).
    older_than : float
        Age in seconds after which a part whose writer cannot be checked counts as stale.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host = _host_tag()
    now = time.time()
    prefix, suffix = f".{path.name}.", ".part"
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(suffix)):
            continue
        m = _PART_RE.match(entry.name[len(prefix):-len(suffix)])
        if not m:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        pid = m.group("pid")
        if pid is not None and m.group("host") == host:
            stale = not _pid_alive(int(pid))
        else:
            stale = now - st.st_mtime > older_than
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
