"""Datasets for the explorer: the bundled sample, MNIST / Morpho-MNIST folders and .npy/.npz arrays.

Files are read only through :func:`core.reading.read_dataset` (regular files only, bounded by a
:class:`core.reading.ReadLimits`); this module wraps what it returns into a :class:`Dataset` with the
six released morphometrics for every digit. When the data has no metrics table beside it, the metrics
are measured (:func:`core.measure.measure_batch`, or in fair chunks on the server's pool) and kept in a
per-user cache folder keyed by the file's path, size and mtime (``$MORPHO_EXPLORER_CACHE``), so the next
opening is instant and a changed file is measured again. Nothing is written into the data's folder.

Opened datasets are shared in the process (same path, size and mtime: the same :class:`Dataset`), so a
server reads and measures its data once for every session.

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

from core.perturbation_labels import PERTURBATION_CODES  # not core.perturb: no scipy on the first page

__all__ = [
    "DataError", "Dataset", "METRICS", "PERTURBATION_NAMES", "SAMPLE_PATH", "load", "load_sample",
    "load_folder", "load_array", "measure_metrics", "export_dataset", "cache_dir", "read", "PendingDataset",
    "describe", "shared_key",
]

METRICS = ("area", "length", "thickness", "slant", "width", "height")

#: Morpho-MNIST's perturbation labels (the ``-pert`` IDX files of the released datasets), extended with the
#: explorer's "set" perturbations so that exported datasets stay self-describing.
PERTURBATION_NAMES = {code: key.replace("_", " ") for key, code in PERTURBATION_CODES.items()}

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"

#: Called as ``progress(done, total)`` while metrics are measured.
Progress = Callable[[int, int], None]

_IMAGES_RE = re.compile(r"^(?P<split>.+?)[-.]images[-.]idx3[-.]ubyte(?P<gz>\.gz)?$")
_LABELS_RE = re.compile(r"^(?P<split>.+?)[-.]labels[-.]idx1[-.]ubyte(?P<gz>\.gz)?$")
_PERT_RE = re.compile(r"^(?P<split>.+?)[-.]pert[-.]idx1[-.]ubyte(?P<gz>\.gz)?$")


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
    """The explorer cache's metrics of ``n`` digits (written by :func:`_write_metrics_csv`).

    Read with :func:`core.reading.read_metrics_table`, bounded like every other table (a cache entry
    may be damaged, never trusted to be small).
    """
    from core.reading import read_metrics_table

    try:
        df = read_metrics_table(path, n=n)
    except (ValueError, OSError) as e:  # DatasetError, UnreadableFileError, a broken CSV
        raise DataError(f"{path}: not a usable metrics table ({e})") from e
    return df.loc[:, list(METRICS)].reset_index(drop=True)


def _write_metrics_csv(df: pd.DataFrame, path: Path) -> None:
    from core.io import atomic_write_csv

    out = df.loc[:, list(METRICS)].copy()
    out.insert(0, "index", np.arange(len(out)))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out, path, index=False)


def _find_metrics(n: int, source: Path, csv_name: str, notes: list) -> tuple[pd.DataFrame | None, str | None]:
    """Metrics measured earlier for ``source`` (same path, size and mtime) from the explorer's cache."""
    try:
        cached = cache_dir() / _cache_key(source) / csv_name
    except OSError:
        return None, None
    if not cached.is_file():
        return None, None
    try:
        df = _read_metrics_csv(cached, n)
    except DataError:  # a damaged cache entry: measure again
        return None, None
    return df, "measured earlier (explorer cache)"


def _store_metrics(df: pd.DataFrame, source: Path, csv_name: str, notes: list) -> None:
    """Keep measured metrics in the explorer's cache, keyed by the data file's path, size and mtime.

    Never beside the data: a served explorer must not write into users' folders, and a table written
    there would silently go stale when the digits change.
    """
    try:
        cached = cache_dir() / _cache_key(source) / csv_name
        _write_metrics_csv(df, cached)
        notes.append(f"measured {len(df):,} digits; metrics kept in the explorer's cache for next time")
    except OSError as e:
        notes.append(f"measured {len(df):,} digits; could not keep the metrics ({e.strerror or e})")


# ---------------------------------------------------------------------------------------------------------
# loaders

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
    split: str | None = None
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
            notes=self.notes, split=self.split or "+".join(p.split for p in parts),
            metrics_source="; ".join(s for s in sources if s) or None,
        )
        if self.key is not None:
            _shared_put(self.key, ds)
        return ds


def _images_file(folder: Path, split: str) -> Path | None:
    """The images file of ``split`` in ``folder`` (the gzip one when both exist), for cache keys."""
    best = None
    for p in sorted(folder.glob(f"{split}[-.]images[-.]idx3[-.]ubyte*")):
        m = _IMAGES_RE.match(p.name)
        if m and m.group("split") == split and (best is None or p.name.endswith(".gz")):
            best = p
    return best


def _pending_from(digits, limits) -> PendingDataset:
    """Split what core.reading read into parts, each with its metrics when known (beside or cached)."""
    from core.reading import read_metrics_table

    path = Path(digits.path)
    notes = [user_note for user_note in digits.notes]
    if digits.metrics is not None:
        source = f"{digits.metrics_source.removeprefix('CSV ')} beside the images" if digits.metrics_source \
            else "a metrics table beside the images"
        part = _Part(digits.split or (digits.parts[0][0] if digits.parts else path.stem), digits.images,
                     digits.labels, digits.perturbations, path, "", digits.metrics, source)
        return PendingDataset(name=digits.name, path=path, parts=[part], notes=[], split=digits.split)
    folder = path if path.is_dir() else path.parent
    parts, start = [], 0
    for split, n in (digits.parts or [(path.stem, len(digits.images))]):
        sl = slice(start, start + n)
        start += n
        if path.is_dir() or _IMAGES_RE.match(path.name):
            source = _images_file(folder, split) or path
            csv_name = f"{split}-morpho.csv"
        else:
            source, csv_name = path, f"{path.stem}-morpho.csv"
        metrics, msource = None, None
        beside = source.parent / csv_name
        try:
            if os.path.lexists(beside):  # one split's table (core.reading wants one for every split)
                metrics = read_metrics_table(beside, n=n, limits=limits).loc[:, list(METRICS)]
                msource = f"{csv_name} beside the images"
            else:
                metrics, msource = _find_metrics(n, source, csv_name, notes)
        except ValueError as e:
            raise DataError(str(e)) from e
        # Notes of core.reading about a missing table are moot once the metrics are found or measured.
        notes = [t for t in notes if not (t.endswith(f"no metrics table ({csv_name}) beside it"))]
        lab = digits.labels[sl] if digits.labels is not None else None
        pert = digits.perturbations[sl] if digits.perturbations is not None else None
        parts.append(_Part(split, digits.images[sl], lab, pert, source, csv_name, metrics, msource))
    return PendingDataset(name=digits.name, path=path, parts=parts, notes=notes, split=digits.split)


def read(path: str | os.PathLike, *, limits=None) -> "Dataset | PendingDataset":
    """Read digits through :func:`core.reading.read_dataset` (and metrics found beside them or in the
    explorer's cache) without measuring.

    Returns the shared, already opened :class:`Dataset` when the same files (path, size and mtime) were
    opened before in this process; else a :class:`PendingDataset` to measure and :meth:`complete`.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of IDX files, a Morpho-MNIST dataset folder, one IDX images file or a .npy/.npz array.
    limits : core.reading.ReadLimits, optional
        Largest file and digit count read (the app's :func:`explorer.limits.app_read_limits`); the
        library's generous defaults when None.

    Raises
    ------
    DataError
        With a message naming what is wrong and where (FIFOs, devices and other non-regular files are
        refused before opening).
    """
    from core.reading import read_dataset

    text = str(path).strip()
    if not text or text == ".":
        raise DataError("no path given")
    path = Path(os.path.expanduser(text))
    try:
        key = shared_key(path)
        ds = _shared_get(key)
        if ds is not None:
            return ds
        digits = read_dataset(path, limits=limits)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or folder") from None
    except PermissionError as e:
        raise DataError(f"{path}: permission denied ({e.filename})") from None
    except ValueError as e:  # core.reading: UnreadableFileError, IDXError, DatasetError; never a pickle
        raise DataError(_explain(e)) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    pending = _pending_from(digits, limits)
    pending.key = key
    return pending


def _explain(error: Exception) -> str:
    """core.reading's message, saying which role a broken IDX file had (images, labels, ...)."""
    # The app cannot pass core.samples' options (resize=...): a hint about them would only confuse.
    text = re.sub(r",? or pass resize='area' \(or 'bilinear'\) to resize them to 28x28", "", str(error))
    where, _, what = text.partition(": ")
    if "corrupt" in what:
        return text
    name = Path(where).name
    for role, pattern in (("images", _IMAGES_RE), ("labels", _LABELS_RE), ("perturbation", _PERT_RE)):
        if pattern.match(name):
            return f"corrupt {role} IDX file: {text}"
    return text


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
    [0, 255] or floats in [0, 1], shaped (N, 28, 28) or (N, 784). Metrics come from ``<stem>-morpho.csv``
    beside the file, or are measured and kept in the cache folder.
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
