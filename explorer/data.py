"""Datasets for the explorer: the bundled sample, MNIST / Morpho-MNIST folders and .npy/.npz arrays.

Every loader returns a :class:`Dataset` with the six released morphometrics for every digit. When a
folder or array has no metrics table, the metrics are measured with :func:`core.measure.measure_batch`
(with progress) and cached next to the data, or in a per-user cache folder when the data folder is
read-only, so the next opening is instant.

Anything wrong with the input raises :class:`DataError`, whose message names the file and the problem;
the app shows it and keeps the dataset it had. User files are never unpickled.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

__all__ = [
    "DataError", "Dataset", "METRICS", "PERTURBATION_NAMES", "SAMPLE_PATH", "load", "load_sample",
    "load_folder", "load_array", "measure_metrics", "export_dataset", "cache_dir", "read", "PendingDataset",
    "describe", "shared_key",
]

METRICS = ("area", "length", "thickness", "slant", "width", "height")

#: Morpho-MNIST's perturbation labels (the ``-pert`` IDX files of the released datasets), extended with the
#: explorer's "set" perturbations so that exported datasets stay self-describing.
PERTURBATION_NAMES = {
    0: "plain", 1: "thinning", 2: "thickening", 3: "swelling", 4: "fracture",
    5: "set thickness", 6: "set slant", 7: "set width",
}

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"

#: Called as ``progress(done, total)`` while metrics are measured.
Progress = Callable[[int, int], None]

_IMAGES_RE = re.compile(r"^(?P<split>.+?)[-.]images[-.]idx3[-.]ubyte(?P<gz>\.gz)?$")
_SPLIT_ORDER = {"train": 0, "t10k": 1, "test": 1}
_IMAGE_KEYS = ("images", "x", "X", "x_train", "imgs", "digits", "arr_0")
_LABEL_KEYS = ("labels", "y", "Y", "y_train", "targets", "arr_1")


class DataError(ValueError):
    """Input that cannot be opened as digits; the message says what is wrong and where."""


@dataclass
class Dataset:
    """Digits with their labels and morphometrics.

    Attributes
    ----------
    images : numpy.ndarray
        uint8, shape (N, 28, 28), white ink on black as in MNIST.
    labels : numpy.ndarray or None
        int64 digit labels, shape (N,).
    metrics : pandas.DataFrame
        N rows, the six columns of :data:`METRICS` (area in px², length/thickness/width/height in px,
        slant in radians); NaN for digits that could not be measured.
    perturbations : numpy.ndarray or None
        int64 perturbation labels (see :data:`PERTURBATION_NAMES`), shape (N,).
    name : str
        Short display name.
    path : pathlib.Path or None
        The folder or file it was loaded from.
    parts : list of (str, int)
        The splits it is made of (e.g. ``[("train", 60000), ("t10k", 10000)]``), in order.
    notes : list of str
        What happened while loading (metrics computed, cache used), for the status line.
    split : str or None
        "train", "t10k" (or another split name) when the digits are one split; "train+t10k" for both.
    metrics_source : str or None
        Where the metrics came from, e.g. "released CSV t10k-morpho.csv", "measured here", "cache".
    description : str
        One line for the user, e.g. "MNIST t10k · 10,000 digits · metrics: released CSV t10k-morpho.csv"
        (built from the other fields when not given).
    """

    images: np.ndarray
    labels: np.ndarray | None
    metrics: pd.DataFrame
    perturbations: np.ndarray | None = None
    name: str = ""
    path: Path | None = None
    parts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    split: str | None = None
    metrics_source: str | None = None
    description: str = ""

    def __post_init__(self):
        n = len(self.images)
        if self.images.ndim != 3 or self.images.shape[1:] != (28, 28) or self.images.dtype != np.uint8:
            raise DataError(f"images must be uint8 (N, 28, 28), got {self.images.dtype} {self.images.shape}")
        for attr in ("labels", "perturbations"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise DataError(f"{len(value)} {attr} for {n} images")
        if len(self.metrics) != n:
            raise DataError(f"{len(self.metrics)} metric rows for {n} images")
        self.metrics = self.metrics.loc[:, list(METRICS)].reset_index(drop=True).astype("float64")
        if self.split is None and self.parts:
            self.split = "+".join(name for name, _ in self.parts)
        if not self.description:
            self.description = describe(self.name, self.split, n, self.metrics_source)

    def __len__(self) -> int:
        return len(self.images)

    def table(self) -> pd.DataFrame:
        """The metrics with ``label`` and ``perturbation`` columns (when known), indexed 0..N-1."""
        df = self.metrics.copy()
        if self.labels is not None:
            df.insert(0, "label", self.labels)
        if self.perturbations is not None:
            df.insert(1 if self.labels is not None else 0, "perturbation", self.perturbations)
        return df


def describe(name: str, split: str | None, n: int, metrics_source: str | None) -> str:
    """``"mnist · t10k · 10,000 digits · metrics: released CSV t10k-morpho.csv"``."""
    parts = [name or "digits"]
    if split and split not in (name or ""):
        parts.append(split)
    parts.append(f"{n:,} digits")
    if metrics_source:
        parts.append(f"metrics: {metrics_source}")
    return " · ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# metrics

def measure_metrics(images: np.ndarray, progress: Progress | None = None) -> pd.DataFrame:
    """Measure the six released morphometrics of every digit, reporting progress.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (N, 28, 28).
    progress : callable, optional
        ``progress(done, total)`` after each chunk.

    Returns
    -------
    pandas.DataFrame
        The six :data:`METRICS` columns, one row per digit.
    """
    from core.measure import measure_batch

    df = measure_batch(images, mode="released", progress=progress if progress is not None else False)
    return df.reset_index(drop=True)


def cache_dir() -> Path:
    """Per-user folder for metrics of read-only data (``$MORPHO_EXPLORER_CACHE`` or ~/.cache/...)."""
    env = os.environ.get("MORPHO_EXPLORER_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "morpho-mnist-explorer"


def _cache_key(source: Path) -> str:
    # The path and the file's size and mtime: a changed file never reuses stale metrics.
    st = source.stat()
    text = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_metrics_csv(path: Path, n: int) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises many kinds for a broken CSV
        raise DataError(f"{path}: not a readable CSV metrics table ({e})") from e
    missing = [m for m in METRICS if m not in df.columns]
    if missing:
        raise DataError(f"{path}: metrics table lacks column(s) {', '.join(missing)} "
                        f"(expected index,{','.join(METRICS)})")
    if len(df) != n:
        raise DataError(f"{path}: metrics table has {len(df)} rows for {n} digits")
    if "index" in df.columns:
        df = df.sort_values("index", kind="stable")
    return df.loc[:, list(METRICS)].reset_index(drop=True)


def _write_metrics_csv(df: pd.DataFrame, path: Path) -> None:
    from core.io import atomic_write_csv

    out = df.loc[:, list(METRICS)].copy()
    out.insert(0, "index", np.arange(len(out)))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out, path, index=False)


def _find_metrics(n: int, source: Path, csv_name: str, notes: list) -> tuple[pd.DataFrame | None, str | None]:
    """Metrics from ``source.parent/csv_name`` or the per-user cache, with where they came from."""
    beside = source.parent / csv_name
    try:
        cached = cache_dir() / _cache_key(source) / csv_name
    except OSError:
        cached = None
    if beside.is_file():
        return _read_metrics_csv(beside, n), f"{csv_name} beside the images"
    if cached is not None and cached.is_file():
        notes.append("metrics read from the explorer's cache (measured earlier)")
        return _read_metrics_csv(cached, n), "measured earlier (explorer cache)"
    return None, None


def _store_metrics(df: pd.DataFrame, source: Path, csv_name: str, notes: list) -> None:
    """Keep measured metrics beside the data, or in the per-user cache when the folder is read-only."""
    beside = source.parent / csv_name
    try:
        _write_metrics_csv(df, beside)
        notes.append(f"measured {len(df):,} digits; metrics saved as {csv_name} beside the data")
        return
    except OSError:
        pass
    try:
        cached = cache_dir() / _cache_key(source) / csv_name
        _write_metrics_csv(df, cached)
        notes.append(f"measured {len(df):,} digits; metrics kept in the explorer's cache")
    except OSError as e:
        notes.append(f"measured {len(df):,} digits; could not keep the metrics ({e.strerror or e})")


# ---------------------------------------------------------------------------------------------------------
# loaders

def _as_digits(array: np.ndarray, where: str) -> np.ndarray:
    """Validate and convert an array to uint8 (N, 28, 28)."""
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{where}: array of dtype {array.dtype}; expected numeric digit images")
    if array.ndim == 2 and array.shape[1] == 784:
        array = array.reshape(-1, 28, 28)
    elif array.ndim == 4 and array.shape[1:] in ((28, 28, 1), (1, 28, 28)):
        array = array.reshape(-1, 28, 28)
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise DataError(f"{where}: array of shape {array.shape}; expected digit images of shape "
                        f"(N, 28, 28) or (N, 784)")
    if len(array) == 0:
        raise DataError(f"{where}: contains no digits (shape {array.shape})")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: pixel values range over [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255]")
    if hi <= 1.0:  # floats in [0, 1], as most models output
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _as_labels(array: np.ndarray, n: int, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] > 1 and array.shape[0] == n:  # one-hot labels
        array = array.argmax(axis=1)
    array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.ndim != 1 or len(array) != n:
        raise DataError(f"{where}: labels of shape {array.shape} for {n} digits")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{where}: labels of dtype {array.dtype}; expected integers")
    return array.astype(np.int64)


def _find_split_file(folder: Path, split: str, kind: str) -> Path | None:
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            path = folder / f"{split}-{kind}{sep}idx1-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def _load_idx(path: Path, what: str, limits=None) -> np.ndarray:
    from core.io import IDXError, load_idx

    _check_regular(path, f"{what} file")
    try:
        if limits is not None:
            try:
                return load_idx(path, max_bytes=limits.max_bytes)
            except TypeError:  # core.io before bounded reading
                pass
        return load_idx(path)
    except IDXError as e:
        raise DataError(f"corrupt {what} IDX file: {e}") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def _check_regular(path: Path, what: str = "file") -> Path:
    """Refuse what is not a regular file (FIFO, device, socket) before opening it: reading one blocks
    forever or never ends."""
    try:
        from core.reading import check_regular_file
    except ImportError:
        check_regular_file = None
    if check_regular_file is not None:
        try:
            return check_regular_file(path, what)
        except FileNotFoundError:
            raise DataError(f"{path}: no such {what}") from None
        except ValueError as e:
            raise DataError(str(e)) from e
    try:
        st = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else
                "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        raise DataError(f"{path}: is {kind}, not a regular {what}; only regular files are read")
    return Path(path)


def _check_count(n: int, where: str, limits) -> None:
    if limits is not None and n > limits.max_digits:
        raise DataError(f"{where}: holds {n:,} digits, more than the {limits.max_digits:,} this server "
                        f"reads from one file")


@dataclass
class _Part:
    """One split of a dataset being opened, perhaps still without metrics."""

    split: str
    images: np.ndarray
    labels: np.ndarray | None
    perturbations: np.ndarray | None
    source: Path  # the images file: metrics are cached under its name, size and mtime
    csv_name: str
    metrics: pd.DataFrame | None = None
    metrics_source: str | None = None


@dataclass
class PendingDataset:
    """Digits read from disk whose metrics may still have to be measured.

    :func:`read` returns it without measuring anything, so that a server can measure the digits in
    fair chunks on its worker pool; :meth:`complete` then stores the measured metrics in the cache and
    builds the :class:`Dataset`.
    """

    name: str
    path: Path
    parts: list
    notes: list = field(default_factory=list)
    key: tuple | None = None

    @property
    def missing(self) -> list:
        """Indices of the parts without metrics."""
        return [i for i, p in enumerate(self.parts) if p.metrics is None]

    def images_to_measure(self) -> np.ndarray:
        """uint8 (M, 28, 28): the digits of every part without metrics, in order."""
        missing = self.missing
        if not missing:
            return np.zeros((0, 28, 28), np.uint8)
        if len(missing) == 1:
            return self.parts[missing[0]].images
        return np.concatenate([self.parts[i].images for i in missing])

    def complete(self, measured: pd.DataFrame | None = None) -> "Dataset":
        """The dataset, with ``measured`` (metrics of :meth:`images_to_measure`) stored in the cache."""
        missing = self.missing
        if missing:
            expected = sum(len(self.parts[i].images) for i in missing)
            if measured is None or len(measured) != expected:
                raise DataError(f"{self.name}: {expected:,} digits need metrics, got "
                                f"{0 if measured is None else len(measured):,} rows")
            start = 0
            for i in missing:
                part = self.parts[i]
                df = measured.iloc[start:start + len(part.images)].reset_index(drop=True)
                start += len(part.images)
                _store_metrics(df, part.source, part.csv_name, self.notes)
                part.metrics, part.metrics_source = df, "measured here (released mode)"
        parts = self.parts

        def concat(arrays):
            if all(a is None for a in arrays):
                return None
            # A split without labels gets -1, so that concatenated labels stay aligned.
            return np.concatenate([a if a is not None else np.full(len(p.images), -1, np.int64)
                                   for a, p in zip(arrays, parts)])

        sources = list(dict.fromkeys(p.metrics_source for p in parts))
        images = parts[0].images if len(parts) == 1 else np.concatenate([p.images for p in parts])
        ds = Dataset(
            images=images, labels=concat([p.labels for p in parts]),
            metrics=pd.concat([p.metrics for p in parts], ignore_index=True),
            perturbations=concat([p.perturbations for p in parts]),
            name=self.name, path=self.path, parts=[(p.split, len(p.images)) for p in parts],
            notes=self.notes, split="+".join(p.split for p in parts),
            metrics_source="; ".join(s for s in sources if s) or None,
        )
        if self.key is not None:
            _shared_put(self.key, ds)
        return ds


def _read_folder(folder: Path, limits=None) -> PendingDataset:
    found = []
    for path in sorted(folder.iterdir()):
        m = _IMAGES_RE.match(path.name)
        if m and path.is_file():
            found.append((m.group("split"), path))
    if not found:
        raise DataError(f"{folder}: no MNIST digits here (expected files like train-images-idx3-ubyte.gz "
                        f"or t10k-images-idx3-ubyte)")
    # One file per split: prefer the gzip one when both exist.
    by_split = {}
    for split, path in found:
        if split not in by_split or path.name.endswith(".gz"):
            by_split[split] = path
    splits = sorted(by_split, key=lambda s: (_SPLIT_ORDER.get(s, 2), s))
    parts, notes, total = [], [], 0
    for split in splits:
        img_path = _check_regular(by_split[split], "images file")
        imgs = _as_digits(_load_idx(img_path, "images", limits), str(img_path))
        n = len(imgs)
        total += n
        _check_count(total, str(folder), limits)
        lab_path = _find_split_file(folder, split, "labels")
        lab = None if lab_path is None else _as_labels(_load_idx(lab_path, "labels", limits), n, str(lab_path))
        pert_path = _find_split_file(folder, split, "pert")
        pert = None if pert_path is None else _as_labels(_load_idx(pert_path, "perturbation", limits), n,
                                                         str(pert_path))
        csv_name = f"{split}-morpho.csv"
        metrics, source = _find_metrics(n, img_path, csv_name, notes)
        parts.append(_Part(split, imgs, lab, pert, img_path, csv_name, metrics, source))
    return PendingDataset(name=folder.name or str(folder), path=folder, parts=parts, notes=notes)


def _read_array(path: Path, limits=None) -> PendingDataset:
    _check_regular(path, "file")
    if limits is not None and path.stat().st_size > limits.max_bytes:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes, more than the {limits.max_bytes:,} this "
                        f"server reads")
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix == ".npy" else None)
    except ValueError as e:
        raise DataError(f"{path}: holds Python objects, which are never unpickled; save plain numeric "
                        f"arrays ({e})") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from e
    labels = perts = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            img_key = next((k for k in _IMAGE_KEYS if k in keys), None)
            if img_key is None and len(keys) == 1:
                img_key = keys[0]
            if img_key is None:
                raise DataError(f"{path}: no image array among {', '.join(keys) or 'no arrays'} "
                                f"(name it 'images' or 'x')")
            try:
                if limits is not None:
                    _check_npz_member(loaded, img_key, path, limits)
                raw = loaded[img_key]
                lab_key = next((k for k in _LABEL_KEYS if k in keys and k != img_key), None)
                raw_labels = loaded[lab_key] if lab_key else None
                raw_perts = loaded["perturbations"] if "perturbations" in keys else None
            except DataError:
                raise
            except ValueError as e:
                raise DataError(f"{path}: holds Python objects, which are never unpickled ({e})") from e
            except Exception as e:
                raise DataError(f"{path}: corrupt .npz archive ({type(e).__name__}: {e})") from e
        _check_count(len(raw) if np.ndim(raw) else 0, str(path), limits)
        images = _as_digits(raw, f"{path} [{img_key}]")
        if raw_labels is not None:
            labels = _as_labels(raw_labels, len(images), f"{path} [{lab_key}]")
        if raw_perts is not None:
            perts = _as_labels(raw_perts, len(images), f"{path} [perturbations]")
    else:
        _check_count(len(loaded) if loaded.ndim else 0, str(path), limits)
        images = _as_digits(np.asarray(loaded), str(path))
    notes: list = []
    csv_name = f"{path.stem}-morpho.csv"
    metrics, source = _find_metrics(len(images), path, csv_name, notes)
    return PendingDataset(name=path.name, path=path, notes=notes,
                          parts=[_Part(path.stem, images, labels, perts, path, csv_name, metrics, source)])


def _check_npz_member(npz, key: str, path: Path, limits) -> None:
    """Refuse an npz member whose declared shape is over the limits, before inflating it."""
    import zipfile

    try:
        zf = npz.zip
        info = zf.getinfo(f"{key}.npy")
    except (AttributeError, KeyError):
        return
    if info.file_size > limits.max_bytes:
        raise DataError(f"{path} [{key}]: {info.file_size:,} bytes once decompressed, more than the "
                        f"{limits.max_bytes:,} this server reads")
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                     else np.lib.format.read_array_header_2_0(f))[0]
    except (ValueError, zipfile.BadZipFile, OSError):
        return  # reading the member reports it
    if shape:
        _check_count(int(shape[0]), f"{path} [{key}]", limits)


def read(path: str | os.PathLike, *, limits=None) -> "Dataset | PendingDataset":
    """Read digits (and metrics found beside them or in the cache) without measuring.

    Returns the shared, already opened :class:`Dataset` when the same files (path, size and mtime) were
    opened before in this process; else a :class:`PendingDataset` to measure and :meth:`complete`.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of IDX files, a Morpho-MNIST dataset folder, one IDX images file or a .npy/.npz array.
    limits : core.reading.ReadLimits, optional
        Largest file and digit count read (the app's :data:`explorer.limits.APP_READ_LIMITS`).

    Raises
    ------
    DataError
        With a message naming what is wrong and where.
    """
    path = Path(os.path.expanduser(str(path).strip()))
    if not str(path).strip() or str(path) == ".":
        raise DataError("no path given")
    try:
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        key = shared_key(path)
        ds = _shared_get(key)
        if ds is not None:
            return ds
        if path.is_dir():
            pending = _read_folder(path, limits)
        elif path.suffix in (".npy", ".npz"):
            pending = _read_array(path, limits)
        elif _IMAGES_RE.match(path.name):
            _check_regular(path, "images file")
            pending = _read_folder(path.parent, limits)
        else:
            _check_regular(path, "file")
            raise DataError(f"{path}: not a supported file (open a folder of MNIST IDX files, a "
                            f"Morpho-MNIST dataset folder, or a .npy/.npz array)")
    except PermissionError as e:
        raise DataError(f"{path}: permission denied ({e.filename})") from e
    pending.key = key
    return pending


def load(path: str | os.PathLike, progress: Progress | None = None, *, limits=None) -> Dataset:
    """Open any supported data, measuring (and caching) metrics that are not known yet.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of IDX files, a ``.npy``/``.npz`` file, or one IDX image file.
    progress : callable, optional
        ``progress(done, total)`` while measuring.
    limits : core.reading.ReadLimits, optional
        Largest file and digit count read.

    Raises
    ------
    DataError
        With a message naming what is wrong and where.
    """
    got = read(path, limits=limits)
    if isinstance(got, Dataset):
        return got
    measured = measure_metrics(got.images_to_measure(), progress) if got.missing else None
    return got.complete(measured)


def load_folder(folder: str | os.PathLike, progress: Progress | None = None) -> Dataset:
    """Open a folder of MNIST IDX files, optionally a Morpho-MNIST dataset.

    Every ``<split>-images-idx3-ubyte[.gz]`` in the folder is loaded (``train`` first, then ``t10k``,
    then others by name) with its ``<split>-labels-idx1-ubyte``, ``<split>-morpho.csv`` and
    ``<split>-pert-idx1-ubyte`` when present. Missing metrics are measured and cached.

    Raises
    ------
    DataError
        No image files, a corrupt IDX file, or files that do not match one another.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return load(folder, progress)


def load_array(path: str | os.PathLike, progress: Progress | None = None) -> Dataset:
    """Open digits from a ``.npy`` array or a ``.npz`` archive (never unpickled).

    A ``.npz`` holds the images under ``images`` (or ``x``, ``x_train``, ...) and optionally labels under
    ``labels`` (or ``y``, ...) and perturbation labels under ``perturbations``. Images may be uint8 in
    [0, 255] or floats in [0, 1], shaped (N, 28, 28) or (N, 784). Metrics are measured and cached as
    ``<stem>-morpho.csv`` beside the file (or in the cache folder).
    """
    return load(path, progress)


# ---------------------------------------------------------------------------------------------------------
# the datasets shared by every session of a server

#: How many opened datasets the process keeps for other sessions (env ``MORPHO_SHARED_DATASETS``).
SHARED_MAX = int(os.environ.get("MORPHO_SHARED_DATASETS", "4") or 4)
_SHARED: "OrderedDict[tuple, Dataset]" = OrderedDict()
_SHARED_LOCK = threading.Lock()


def shared_key(path: Path) -> tuple:
    """What identifies opened data: its resolved path, and the size and mtime of every file read."""
    path = Path(path).resolve()
    if path.is_dir():
        files = []
        for p in sorted(path.iterdir()):
            try:
                st = p.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files.append((p.name, st.st_size, st.st_mtime_ns))
        return str(path), tuple(files)
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def _shared_get(key: tuple) -> Dataset | None:
    with _SHARED_LOCK:
        ds = _SHARED.get(key)
        if ds is not None:
            _SHARED.move_to_end(key)
        return ds


def _shared_put(key: tuple, ds: Dataset) -> None:
    with _SHARED_LOCK:
        _SHARED[key] = ds
        _SHARED.move_to_end(key)
        while len(_SHARED) > max(1, SHARED_MAX):
            _SHARED.popitem(last=False)


_SAMPLE: Dataset | None = None


def load_sample() -> Dataset:
    """The bundled sample: 5,000 real MNIST training digits with their released metrics (read once
    per process and shared)."""
    global _SAMPLE
    if _SAMPLE is None:
        ds = load(SAMPLE_PATH)
        _SAMPLE = Dataset(images=ds.images, labels=ds.labels, metrics=ds.metrics,
                          perturbations=ds.perturbations, name="MNIST sample", path=ds.path, parts=ds.parts,
                          notes=[], split="train",
                          metrics_source="released Morpho-MNIST CSV train-morpho.csv")
        _SAMPLE.images.setflags(write=False)  # shared by every session: nobody may change it
    return _SAMPLE


# ---------------------------------------------------------------------------------------------------------
# export

def export_dataset(folder: str | os.PathLike, images: np.ndarray, labels: np.ndarray | None,
                   metrics: pd.DataFrame, perturbations: np.ndarray | None = None,
                   split: str = "train") -> list[Path]:
    """Write digits in the released Morpho-MNIST layout, each file atomically.

    Writes ``<split>-images-idx3-ubyte.gz``, ``<split>-labels-idx1-ubyte.gz`` (when labels are known),
    ``<split>-pert-idx1-ubyte.gz`` (when perturbation labels are given) and ``<split>-morpho.csv``
    (``index,area,length,thickness,slant,width,height``).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from core.io import save_idx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    path = folder / f"{split}-images-idx3-ubyte.gz"
    save_idx(np.ascontiguousarray(images, dtype=np.uint8), path)
    written.append(path)
    if labels is not None:
        path = folder / f"{split}-labels-idx1-ubyte.gz"
        save_idx(np.asarray(labels).astype(np.uint8), path)
        written.append(path)
    if perturbations is not None:
        path = folder / f"{split}-pert-idx1-ubyte.gz"
        save_idx(np.asarray(perturbations).astype(np.uint8), path)
        written.append(path)
    path = folder / f"{split}-morpho.csv"
    _write_metrics_csv(metrics, path)
    written.append(path)
    return written
