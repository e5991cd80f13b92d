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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

__all__ = [
    "DataError", "Dataset", "METRICS", "PERTURBATION_NAMES", "SAMPLE_PATH", "load", "load_sample",
    "load_folder", "load_array", "measure_metrics", "export_dataset", "cache_dir",
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
    """

    images: np.ndarray
    labels: np.ndarray | None
    metrics: pd.DataFrame
    perturbations: np.ndarray | None = None
    name: str = ""
    path: Path | None = None
    parts: list = field(default_factory=list)
    notes: list = field(default_factory=list)

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


def _metrics_for(images: np.ndarray, source: Path, csv_name: str, progress: Progress | None,
                 notes: list) -> pd.DataFrame:
    """Metrics from ``source.parent/csv_name`` or the cache; else measure and cache them."""
    beside = source.parent / csv_name
    cached = cache_dir() / _cache_key(source) / csv_name
    for candidate in (beside, cached):
        if candidate.is_file():
            if candidate == cached:
                notes.append(f"metrics read from the cache {cached.parent}")
            return _read_metrics_csv(candidate, len(images))
    df = measure_metrics(images, progress)
    try:
        _write_metrics_csv(df, beside)
        notes.append(f"measured {len(images):,} digits; metrics cached in {beside}")
    except OSError:
        # Read-only data folder: keep the metrics in the per-user cache instead.
        try:
            _write_metrics_csv(df, cached)
            notes.append(f"measured {len(images):,} digits; metrics cached in {cached}")
        except OSError as e:
            notes.append(f"measured {len(images):,} digits; could not cache the metrics ({e})")
    return df


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


def _load_idx(path: Path, what: str) -> np.ndarray:
    from core.io import IDXError, load_idx

    try:
        return load_idx(path)
    except IDXError as e:
        raise DataError(f"corrupt {what} IDX file: {e}") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def load_folder(folder: str | os.PathLike, progress: Progress | None = None) -> Dataset:
    """Open a folder of MNIST IDX files, optionally a Morpho-MNIST dataset.

    Every ``<split>-images-idx3-ubyte[.gz]`` in the folder is loaded (``train`` first, then ``t10k``,
    then others by name) with its ``<split>-labels-idx1-ubyte``, ``<split>-morpho.csv`` and
    ``<split>-pert-idx1-ubyte`` when present. Missing metrics are measured and cached.

    Parameters
    ----------
    folder : str or os.PathLike
    progress : callable, optional
        ``progress(done, total)`` while measuring.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        No image files, a corrupt IDX file, or files that do not match one another.
    """
    folder = Path(folder)
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

    images, labels, metrics, perts, parts, notes = [], [], [], [], [], []
    for split in splits:
        img_path = by_split[split]
        imgs = _load_idx(img_path, "images")
        imgs = _as_digits(imgs, str(img_path))
        n = len(imgs)
        lab_path = _find_split_file(folder, split, "labels")
        lab = None
        if lab_path is not None:
            lab = _as_labels(_load_idx(lab_path, "labels"), n, str(lab_path))
        pert_path = _find_split_file(folder, split, "pert")
        pert = None
        if pert_path is not None:
            pert = _as_labels(_load_idx(pert_path, "perturbation"), n, str(pert_path))
        met = _metrics_for(imgs, img_path, f"{split}-morpho.csv", progress, notes)
        images.append(imgs)
        labels.append(lab)
        perts.append(pert)
        metrics.append(met)
        parts.append((split, n))

    def _concat(arrays):
        if all(a is None for a in arrays):
            return None
        # A split without labels gets -1, so that concatenated labels stay aligned.
        return np.concatenate([a if a is not None else np.full(n, -1, np.int64)
                               for a, (_, n) in zip(arrays, parts)])

    return Dataset(
        images=np.concatenate(images), labels=_concat(labels),
        metrics=pd.concat(metrics, ignore_index=True), perturbations=_concat(perts),
        name=folder.name or str(folder), path=folder, parts=parts, notes=notes,
    )


def load_array(path: str | os.PathLike, progress: Progress | None = None) -> Dataset:
    """Open digits from a ``.npy`` array or a ``.npz`` archive (never unpickled).

    A ``.npz`` holds the images under ``images`` (or ``x``, ``x_train``, ...) and optionally labels under
    ``labels`` (or ``y``, ...) and perturbation labels under ``perturbations``. Images may be uint8 in
    [0, 255] or floats in [0, 1], shaped (N, 28, 28) or (N, 784). Metrics are measured and cached as
    ``<stem>-morpho.csv`` beside the file (or in the cache folder).

    Raises
    ------
    DataError
        Unreadable file, pickled objects, no image array, or an array of the wrong shape.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
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
                raw = loaded[img_key]
                lab_key = next((k for k in _LABEL_KEYS if k in keys and k != img_key), None)
                raw_labels = loaded[lab_key] if lab_key else None
                raw_perts = loaded["perturbations"] if "perturbations" in keys else None
            except ValueError as e:
                raise DataError(f"{path}: holds Python objects, which are never unpickled ({e})") from e
            except Exception as e:
                raise DataError(f"{path}: corrupt .npz archive ({e})") from e
        images = _as_digits(raw, f"{path} [{img_key}]")
        if raw_labels is not None:
            labels = _as_labels(raw_labels, len(images), f"{path} [{lab_key}]")
        if raw_perts is not None:
            perts = _as_labels(raw_perts, len(images), f"{path} [perturbations]")
    else:
        images = _as_digits(loaded, str(path))
    notes: list = []
    metrics = _metrics_for(images, path, f"{path.stem}-morpho.csv", progress, notes)
    return Dataset(images=images, labels=labels, metrics=metrics, perturbations=perts, name=path.name,
                   path=path, parts=[(path.stem, len(images))], notes=notes)


def load(path: str | os.PathLike, progress: Progress | None = None) -> Dataset:
    """Open any supported data: a folder of IDX files, a ``.npy``/``.npz`` file, or one IDX image file.

    Raises
    ------
    DataError
        With a message naming what is wrong and where.
    """
    path = Path(os.path.expanduser(str(path).strip()))
    if not str(path):
        raise DataError("no path given")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            return load_folder(path, progress)
        if path.suffix in (".npy", ".npz"):
            return load_array(path, progress)
        if _IMAGES_RE.match(path.name):
            return load_folder(path.parent, progress)
    except PermissionError as e:
        raise DataError(f"{path}: permission denied ({e.filename})") from e
    raise DataError(f"{path}: not a supported file (open a folder of MNIST IDX files, a Morpho-MNIST "
                    f"dataset folder, or a .npy/.npz array)")


def load_sample() -> Dataset:
    """The bundled sample: 5,000 real MNIST training digits with their released metrics."""
    ds = load_folder(SAMPLE_PATH)
    ds.name = "MNIST sample (5,000 digits)"
    return ds


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
