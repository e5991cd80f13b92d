"""Morpho-MNIST datasets: finding files, streaming digits in chunks, and generating the released datasets.

The released layout is one folder per dataset holding, for each split (``train``, ``t10k``)::

    {split}-images-idx3-ubyte.gz   uint8 (N, 28, 28)
    {split}-labels-idx1-ubyte.gz   uint8 (N,)  digit classes
    {split}-morpho.csv             index,area,length,thickness,slant,width,height
    {split}-pert-idx1-ubyte.gz     uint8 (N,)  perturbation codes (global and local only)

:func:`generate` rebuilds plain, thin, thic, swel, frac and the interleaved global (plain+thin+thic) and
local (plain+swel+frac) from the MNIST files, with the paper's parameters by default. Randomness is keyed
by ``(seed, split, digit index)``, so the output is byte-identical whatever the chunking, the number of
workers or the executor (local processes or a Dask cluster); gzip files store no timestamp.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.io import (IDXError, UnreadableFileError, atomic_write, atomic_write_csv, iter_idx, load_idx,
                     open_regular_file, read_idx_header, save_idx)

__all__ = [
    "SPLITS", "SPLIT_IDS", "DATASETS", "INTERLEAVED", "PERT_CODES", "METRIC_COLUMNS",
    "DatasetError", "SplitFiles", "GenerateParams", "find_split", "find_splits", "resolve_images",
    "check_split", "load_split", "iter_idx_chunks", "IdxWriter", "map_ordered", "digit_rng",
    "perturb_chunk", "generate_chunk", "generate", "output_paths", "interleave_choices",
]

SPLITS = ("train", "t10k")
#: Split -> integer used in the random keys; 2 for images not named after a split.
SPLIT_IDS = {"train": 0, "t10k": 1}
OTHER_SPLIT_ID = 2
#: The five base datasets, in the order of their perturbation codes.
DATASETS = ("plain", "thin", "thic", "swel", "frac")
#: Interleaved datasets and their sources (a uniformly random choice per digit).
INTERLEAVED = {"global": ("plain", "thin", "thic"), "local": ("plain", "swel", "frac")}
#: Perturbation codes stored in ``-pert-idx1-ubyte.gz``: DATASETS is in the order of
#: ``core.perturb.PERTURBATION_CODES`` (labels: ``core.perturb.PERTURBATION_LABELS``).
PERT_CODES = {name: code for code, name in enumerate(DATASETS)}
METRIC_COLUMNS = ("area", "length", "thickness", "slant", "width", "height")
#: Extra key mixed into a digit's random key, one per use of randomness (see :func:`digit_rng`).
_RNG_KEYS = {"swel": 3, "frac": 4, "global": 101, "local": 102}


class DatasetError(ValueError):
    """A dataset folder or file is missing, inconsistent or cannot be written; the message names it."""


def check_writable(folder: str | os.PathLike) -> None:
    """Raise DatasetError unless a file can be created in `folder` (tried for real: permission bits do not
    tell for root, read-only mounts or full disks)."""
    import tempfile
    folder = Path(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".morpho-write-test.", dir=folder)
    except OSError as e:
        raise DatasetError(f"{folder}: output folder is not writable ({e.strerror or e})") from e
    os.close(fd)
    os.unlink(tmp)


# --------------------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------------------

def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        p = folder / name
        if _present(p):
            return p
    return None


def _present(p: Path) -> bool:
    """An entry that is not a folder. FIFOs, devices and dangling links count: the readers refuse them
    with a message saying what they are, rather than the file seeming absent."""
    return os.path.lexists(p) and not p.is_dir()


def _idx_names(split: str, kind: str, ndim: int) -> list[str]:
    # MNIST's own names, their uncompressed forms, and the dotted variant some mirrors use.
    base = [f"{split}-{kind}-idx{ndim}-ubyte", f"{split}-{kind}.idx{ndim}-ubyte"]
    return [b + ".gz" for b in base] + base


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split in a folder in the MNIST / Morpho-MNIST layout.

    Attributes
    ----------
    folder : pathlib.Path
    split : str
        File-name prefix, e.g. ``train`` or ``t10k``.
    images : pathlib.Path
    labels, metrics, perturbations : pathlib.Path or None
        Absent files are None.
    """

    folder: Path
    split: str
    images: Path
    labels: Path | None = None
    metrics: Path | None = None
    perturbations: Path | None = None


def find_split(folder: str | os.PathLike, split: str, *, require_labels: bool = True) -> SplitFiles:
    """Locate the files of one split in `folder`.

    Parameters
    ----------
    folder : str or os.PathLike
    split : str
        ``train``, ``t10k`` or another file-name prefix.
    require_labels : bool
        Raise if the label file is missing.

    Returns
    -------
    SplitFiles

    Raises
    ------
    DatasetError
        If the folder or its image file (or, when required, its label file) is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder" if folder.exists() else f"{folder}: no such folder")
    images = _first_existing(folder, _idx_names(split, "images", 3))
    if images is None:
        raise DatasetError(f"{folder}: no {split} images (expected {split}-images-idx3-ubyte.gz or "
                           f"{split}-images-idx3-ubyte)")
    labels = _first_existing(folder, _idx_names(split, "labels", 1))
    if labels is None and require_labels:
        raise DatasetError(f"{folder}: {images.name} has no label file (expected {split}-labels-idx1-ubyte.gz "
                           f"or {split}-labels-idx1-ubyte in the same folder)")
    metrics = folder / f"{split}-morpho.csv"
    pert = _first_existing(folder, _idx_names(split, "pert", 1))
    return SplitFiles(folder, split, images, labels, metrics if _present(metrics) else None, pert)


def find_splits(folder: str | os.PathLike) -> list[SplitFiles]:
    """All splits with an image file in `folder` (``train`` and ``t10k`` first, then others by name).

    Raises
    ------
    DatasetError
        If `folder` is not a folder or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder" if folder.exists() else f"{folder}: no such folder")
    prefixes = set()
    for p in folder.iterdir():
        for marker in ("-images-idx3-ubyte", "-images.idx3-ubyte"):
            if marker in p.name and _present(p):
                prefixes.add(p.name.split(marker)[0])
    if not prefixes:
        raise DatasetError(f"{folder}: no IDX image file (*-images-idx3-ubyte[.gz]) in this folder")
    order = [s for s in SPLITS if s in prefixes] + sorted(prefixes - set(SPLITS))
    return [find_split(folder, s, require_labels=False) for s in order]


def split_of(path: str | os.PathLike) -> str | None:
    """The split prefix of an MNIST-style file name (``t10k-images-idx3-ubyte.gz`` -> ``t10k``), or None."""
    name = Path(path).name
    for marker in ("-images-idx3-ubyte", "-images.idx3-ubyte", "-labels-idx1-ubyte", "-labels.idx1-ubyte"):
        if marker in name:
            return name.split(marker)[0]
    return None


def resolve_images(path: str | os.PathLike) -> Path:
    """Return the IDX image file named by `path`: the file itself, or the only image file of a folder.

    Raises
    ------
    DatasetError
        If `path` does not exist, or is a folder with no or several image files.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        splits = find_splits(path)
        if len(splits) > 1:
            raise DatasetError(f"{path}: several image files ({', '.join(s.images.name for s in splits)}); "
                               f"name one of them")
        return splits[0].images
    return path


def check_split(files: SplitFiles) -> tuple[int, tuple[int, ...]]:
    """Check that a split's files agree (reading headers and the metrics table, not the images).

    Returns
    -------
    count : int
        Number of digits.
    shape : tuple of int
        Shape of one image.

    Raises
    ------
    DatasetError
        If the images are not a uint8 3-D IDX array, or the label, perturbation or metrics counts differ
        from the image count. The message names the files and the counts.
    """
    try:
        dtype, shape = read_idx_header(files.images)
    except IDXError as e:
        raise DatasetError(str(e)) from e
    if len(shape) != 3 or dtype != np.uint8:
        raise DatasetError(f"{files.images}: expected uint8 images of shape (N, H, W), found {dtype} {shape}")
    n = shape[0]
    for what, p in (("labels", files.labels), ("perturbation labels", files.perturbations)):
        if p is None:
            continue
        try:
            ldtype, lshape = read_idx_header(p)
        except IDXError as e:
            raise DatasetError(str(e)) from e
        if len(lshape) != 1:
            raise DatasetError(f"{p}: {what} must be 1-D, found shape {lshape}")
        if lshape[0] != n:
            raise DatasetError(f"{files.images.name} holds {n} images but {p.name} holds {lshape[0]} {what} "
                               f"(in {files.folder})")
    if files.metrics is not None:
        try:
            with open_regular_file(files.metrics, "CSV file") as f:
                rows = pd.read_csv(f, usecols=[0]).shape[0]
        except UnreadableFileError as e:
            raise DatasetError(str(e)) from None
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DatasetError(f"{files.metrics}: not a readable CSV ({e})") from e
        if rows != n:
            raise DatasetError(f"{files.images.name} holds {n} images but {files.metrics.name} has {rows} rows "
                               f"(in {files.folder})")
    return n, tuple(shape[1:])


def load_split(files: SplitFiles) -> dict:
    """Load a split fully: ``images``, ``labels``, ``metrics`` (DataFrame indexed by ``index``), ``perturbations``.

    Absent parts are None. Counts are checked with :func:`check_split` first.
    """
    check_split(files)
    out = {"images": load_idx(files.images), "labels": None, "metrics": None, "perturbations": None}
    if files.labels is not None:
        out["labels"] = load_idx(files.labels)
    if files.perturbations is not None:
        out["perturbations"] = load_idx(files.perturbations)
    if files.metrics is not None:
        out["metrics"] = read_metrics(files.metrics)
    return out


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a morphometrics table in the released layout, indexed by ``index``.

    Raises
    ------
    DatasetError
        If the file is not a CSV with an ``index`` column and the six metric columns.
    """
    path = Path(path)
    try:
        with open_regular_file(path, "CSV file") as f:
            df = pd.read_csv(f)
    except UnreadableFileError as e:
        raise DatasetError(str(e)) from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from e
    if "index" in df.columns:
        df = df.set_index("index")
    elif df.columns[0].startswith("Unnamed"):
        df = df.set_index(df.columns[0]).rename_axis("index")
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing metric column(s) {', '.join(missing)} (found "
                           f"{', '.join(map(str, df.columns))})")
    return df


# --------------------------------------------------------------------------------------------------------
# Streaming IDX files
# --------------------------------------------------------------------------------------------------------

def iter_idx_chunks(path: str | os.PathLike, chunksize: int, start: int = 0,
                    stop: int | None = None, *, max_bytes: int | None = None,
                    display_name: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Read an IDX file chunk by chunk, never holding more than one chunk.

    Accepts exactly the files :func:`core.io.load_idx` accepts (see :func:`core.io.iter_idx`): only regular
    files, the header checked against `max_bytes` and the file size before the first chunk, gzip data
    inflated as a stream and read to its end so that truncated data and trailing bytes are refused.

    Parameters
    ----------
    path : str or os.PathLike
        IDX file (plain or gzip).
    chunksize : int
        Items per chunk (along the first axis).
    start, stop : int
        Item range to read (default: all).
    max_bytes : int, optional
        Largest declared data size in bytes (default 4 GiB, :data:`core.io.DEFAULT_LIMITS`).
    display_name : str, optional
        Name used in messages instead of `path`.

    Yields
    ------
    offset : int
        Index of the chunk's first item.
    chunk : numpy.ndarray
        Native-endian array of shape ``(n, *shape[1:])``.

    Raises
    ------
    IDXError
        If the file is not a regular file, not IDX, over `max_bytes`, truncated or has trailing bytes (the
        last two, for gzip files, after the last chunk).
    """
    yield from iter_idx(path, chunksize, start, stop, max_bytes=max_bytes, display_name=display_name)


class IdxWriter:
    """Write an IDX file chunk by chunk, atomically.

    The data goes to a temporary file in the destination folder, renamed to `path` by :meth:`close` once
    exactly ``shape[0]`` items were written; :meth:`abort` (or leaving a ``with`` block by an exception)
    removes it. Gzip output (names ending in ``.gz``) stores no timestamp nor file name, and equals what
    :func:`core.io.save_idx` writes for the whole array.

    Parameters
    ----------
    path : str or os.PathLike
    shape : tuple of int
        Full shape, first axis the item count.
    dtype : numpy dtype
        Only uint8 (the MNIST type) is supported.
    """

    def __init__(self, path: str | os.PathLike, shape: Sequence[int], dtype=np.uint8):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if np.dtype(dtype) != np.uint8:
            raise IDXError(f"{self.path}: IdxWriter writes uint8 only, not {np.dtype(dtype)}")
        self.written = 0
        self._stack = contextlib.ExitStack()
        self._raw = self._stack.enter_context(atomic_write(self.path, "wb"))
        if self.path.name.endswith(".gz"):
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
        else:
            self._out = self._raw
        self._out.write(bytes([0, 0, 0x08, len(self.shape)]) + struct.pack(f">{len(self.shape)}I", *self.shape))
        self._open = True

    def write(self, chunk: np.ndarray) -> None:
        """Append items (an array of shape ``(k, *shape[1:])``)."""
        chunk = np.asarray(chunk)
        if chunk.shape[1:] != self.shape[1:]:
            raise IDXError(f"{self.path}: chunk of shape {chunk.shape} does not fit items of shape {self.shape[1:]}")
        if self.written + len(chunk) > self.shape[0]:
            raise IDXError(f"{self.path}: more than the {self.shape[0]} items declared")
        self._out.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
        self.written += len(chunk)

    def close(self) -> None:
        """Finish the file and rename it to its final name."""
        if not self._open:
            return
        if self.written != self.shape[0]:
            self.abort()
            raise IDXError(f"{self.path}: {self.written} items written, {self.shape[0]} declared; not saved")
        if self._out is not self._raw:
            self._out.close()
        self._open = False
        self._stack.close()

    def abort(self) -> None:
        """Discard the temporary file (an existing file at `path` is untouched)."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(Exception):
            if self._out is not self._raw:
                self._out.close()
        err = DatasetError("aborted")
        self._stack.__exit__(type(err), err, None)

    def __enter__(self) -> "IdxWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------------------------------------
# Running chunks on an executor
# --------------------------------------------------------------------------------------------------------

def _is_dask_client(executor) -> bool:
    return type(executor).__name__ == "Client" and hasattr(executor, "scheduler_info")


def map_ordered(fn: Callable, tasks: Iterable[tuple], executor=None, *, max_pending: int = 4) -> Iterator:
    """Apply `fn` to each argument tuple of `tasks`, yielding results in order.

    At most `max_pending` tasks are in flight, so a long stream of chunks never sits in memory at once.

    Parameters
    ----------
    fn : callable
        A picklable top-level function.
    tasks : iterable of tuple
        Positional arguments, consumed lazily.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run; None runs in this process.
    max_pending : int
        Tasks submitted ahead of the one being waited for.
    """
    if executor is None:
        for args in tasks:
            yield fn(*args)
        return
    dask = _is_dask_client(executor)
    pending: deque = deque()

    def submit(args):
        return executor.submit(fn, *args, pure=False) if dask else executor.submit(fn, *args)

    try:
        for args in tasks:
            pending.append(submit(args))
            if len(pending) >= max(1, max_pending):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()


# --------------------------------------------------------------------------------------------------------
# Perturbing and generating
# --------------------------------------------------------------------------------------------------------

def digit_rng(seed: int, split_id: int, index: int, key: int) -> np.random.Generator:
    """The random generator of one digit for one use, keyed by ``(seed, split, index, key)``.

    Independent of chunking and workers: a digit's randomness depends only on these four integers.
    """
    return np.random.default_rng([int(seed), int(split_id), int(index), int(key)])


def interleave_choices(seed: int, split_id: int, start: int, count: int, name: str) -> np.ndarray:
    """Source choice (0, 1 or 2 into ``INTERLEAVED[name]``) of digits ``start .. start + count - 1``."""
    key = _RNG_KEYS[name]
    return np.array([digit_rng(seed, split_id, i, key).integers(3) for i in range(start, start + count)],
                    dtype=np.int64)


@dataclass(frozen=True)
class GenerateParams:
    """Parameters of :func:`generate`; the defaults are the paper's (scripts/generate_all.py).

    Attributes
    ----------
    threshold, scale : float, int
        Binarisation threshold and up-scaling factor of :class:`core.morpho.ImageMorphology`.
    thin_amount, thick_amount : float
        ``Thinning(amount)``, ``Thickening(amount)``.
    swel_strength, swel_radius : float
        ``Swelling(strength, radius)``.
    frac_thickness, frac_prune, frac_num : float, float, int
        ``Fracture(thickness, prune, num_frac)``.
    mode : {"released", "upstream"}
        Morphology and measurement mode.
    """

    threshold: float = .5
    scale: int = 4
    thin_amount: float = .7
    thick_amount: float = 1.
    swel_strength: float = 3.
    swel_radius: float = 7.
    frac_thickness: float = 1.5
    frac_prune: float = 2.
    frac_num: int = 3
    mode: str = "released"

    def describe(self) -> dict[str, str]:
        """Human-readable perturbation of each base dataset."""
        return {
            "plain": f"binarised at threshold {self.threshold} after {self.scale}x up-scaling, then down-scaled",
            "thin": f"Thinning(amount={self.thin_amount})",
            "thic": f"Thickening(amount={self.thick_amount})",
            "swel": f"Swelling(strength={self.swel_strength}, radius={self.swel_radius})",
            "frac": f"Fracture(thickness={self.frac_thickness}, prune={self.frac_prune}, num_frac={self.frac_num})",
        }


def _measure(images: np.ndarray, mode: str, threshold: float, scale: int) -> np.ndarray:
    from core.measure import measure_batch
    df = measure_batch(images, mode=mode, threshold=threshold, scale=scale, workers=1, progress=False)
    return df.loc[:, list(METRIC_COLUMNS)].to_numpy(dtype=np.float64)


def generate_chunk(images: np.ndarray, start: int, split_id: int, seed: int, params: GenerateParams,
                   measure: bool = True) -> dict:
    """Make the five base datasets' versions of a chunk of digits (a task of :func:`generate`).

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (n, 28, 28), digits ``start .. start + n - 1`` of the split.
    start, split_id, seed : int
        Position and random key (see :func:`digit_rng`).
    params : GenerateParams
    measure : bool
        Also measure the outputs.

    Returns
    -------
    dict
        ``images``: uint8 (5, n, 28, 28) in :data:`DATASETS` order; ``metrics``: float64 (5, n, 6) or None;
        ``choices``: {"global", "local"} -> int (n,) source index into ``INTERLEAVED[name]``.
    """
    from core import perturb
    from core.morpho import ImageMorphology

    n = len(images)
    out = np.empty((len(DATASETS), n) + tuple(images.shape[1:]), dtype=np.uint8)
    thin = perturb.Thinning(params.thin_amount)
    thick = perturb.Thickening(params.thick_amount)
    for j, img in enumerate(images):
        i = start + j
        morph = ImageMorphology(img, params.threshold, params.scale, mode=params.mode)
        swel = perturb.Swelling(params.swel_strength, params.swel_radius,
                                rng=digit_rng(seed, split_id, i, _RNG_KEYS["swel"]))
        frac = perturb.Fracture(thickness=params.frac_thickness, prune=params.frac_prune,
                                num_frac=params.frac_num, rng=digit_rng(seed, split_id, i, _RNG_KEYS["frac"]))
        out[0, j] = morph.downscale(morph.binary_image)
        for k, pert in enumerate((thin, thick, swel, frac), start=1):
            out[k, j] = morph.downscale(pert(morph))
    metrics = None
    if measure:
        metrics = np.stack([_measure(out[k], params.mode, params.threshold, params.scale)
                            for k in range(len(DATASETS))])
    choices = {name: interleave_choices(seed, split_id, start, n, name) for name in INTERLEAVED}
    return {"images": out, "metrics": metrics, "choices": choices}


def make_perturbation(name: str, params: dict, rng=None):
    """Instantiate a perturbation of the :data:`core.perturb.PERTURBATIONS` registry by name.

    Parameters not in `params` take the registry defaults; `rng` is passed to random perturbations only.
    """
    import inspect

    from core import perturb
    cls, specs = perturb.PERTURBATIONS[name]
    kwargs = {spec.name: spec.default for spec in specs}
    kwargs.update(params)
    if "rng" in inspect.signature(cls).parameters:
        kwargs["rng"] = rng
    return cls(**kwargs)


def perturbation_key(name: str) -> int:
    """The random key of a perturbation: the -pert code for the paper's four, a stable hash otherwise."""
    aliases = {"thinning": 1, "thickening": 2, "swelling": 3, "fracture": 4}
    key = aliases.get(name.lower())
    if key is None:
        key = 1000 + int.from_bytes(hashlib.sha256(name.lower().encode()).digest()[:3], "big")
    return key


def perturb_chunk(images: np.ndarray, start: int, split_id: int, seed: int, name: str, params: dict,
                  mode: str = "released", threshold: float = .5, scale: int = 4) -> np.ndarray:
    """Perturb a chunk of digits with the registry perturbation `name` (a task of ``morpho perturb``).

    Digit ``i`` gets the generator ``digit_rng(seed, split_id, i, perturbation_key(name))``, the same as
    :func:`generate` uses for swelling and fracture, so ``morpho perturb`` with the paper's parameters
    reproduces ``swel`` and ``frac`` digit for digit.

    Returns
    -------
    numpy.ndarray
        uint8 (n, 28, 28).
    """
    from core.morpho import ImageMorphology

    key = perturbation_key(name)
    out = np.empty_like(images, dtype=np.uint8)
    for j, img in enumerate(images):
        morph = ImageMorphology(img, threshold, scale, mode=mode)
        pert = make_perturbation(name, params, rng=digit_rng(seed, split_id, start + j, key))
        out[j] = morph.downscale(pert(morph))
    return out


def output_paths(outdir: str | os.PathLike, splits: Sequence[str] = SPLITS) -> list[Path]:
    """Every file :func:`generate` writes into `outdir`."""
    outdir = Path(outdir)
    paths = []
    for name in DATASETS + tuple(INTERLEAVED):
        for split in splits:
            paths += [outdir / name / f"{split}-images-idx3-ubyte.gz", outdir / name / f"{split}-labels-idx1-ubyte.gz",
                      outdir / name / f"{split}-morpho.csv"]
            if name in INTERLEAVED:
                paths.append(outdir / name / f"{split}-pert-idx1-ubyte.gz")
        paths.append(outdir / name / "README.md")
    return paths


def _metrics_frame(values: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(values, columns=list(METRIC_COLUMNS))
    df.index.name = "index"
    return df


def generate(mnist_dir: str | os.PathLike, outdir: str | os.PathLike, *, seed: int = 0,
             splits: Sequence[str] = SPLITS, params: GenerateParams = GenerateParams(), executor=None,
             chunksize: int = 500, force: bool = False, progress: bool = True, measure: bool = True,
             limit: int | None = None) -> list[Path]:
    """Generate plain, thin, thic, swel, frac, global and local from MNIST files, in the released layout.

    Parameters
    ----------
    mnist_dir : str or os.PathLike
        Folder with ``{split}-images-idx3-ubyte[.gz]`` and ``{split}-labels-idx1-ubyte[.gz]``.
    outdir : str or os.PathLike
        Output root; one sub-folder per dataset (created).
    seed : int
        Non-negative seed; the same seed gives byte-identical files.
    splits : sequence of str
        Splits to build.
    params : GenerateParams
        Perturbation parameters (default: the paper's).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where chunks run (None: this process). Results do not depend on it.
    chunksize : int
        Digits per task.
    force : bool
        Replace existing output files; without it any existing output file is an error before work starts.
    progress : bool
        Show a tqdm progress bar.
    measure : bool
        Write the ``-morpho.csv`` tables (the expensive part).
    limit : int, optional
        Only the first `limit` digits of each split (for trials).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    DatasetError
        On a missing or inconsistent input, existing outputs without `force`, or an unwritable `outdir`.
        Files are written atomically: an interrupted run leaves no partial file under a final name.
    """
    if int(seed) < 0:
        raise DatasetError(f"the seed must be a non-negative integer, not {seed}")
    mnist_dir, outdir = Path(mnist_dir), Path(outdir)
    splits = list(dict.fromkeys(splits))
    inputs = []
    for split in splits:
        files = find_split(mnist_dir, split)
        n, shape = check_split(files)
        if shape != (28, 28):
            raise DatasetError(f"{files.images}: expected 28x28 digits, found {shape}")
        inputs.append((files, n if limit is None else min(n, int(limit))))
    targets = output_paths(outdir, splits)
    if not measure:
        targets = [p for p in targets if not p.name.endswith("-morpho.csv")]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise DatasetError(f"output files exist already: {shown}; use --force to replace them")
    names = DATASETS + tuple(INTERLEAVED)
    try:
        for name in names:
            (outdir / name).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create output folders in {outdir}: {e.strerror or e}") from e
    for name in names:
        check_writable(outdir / name)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(n for _, n in inputs), unit="digit", desc="generate")
    written: list[Path] = []
    input_sums = {}
    try:
        for files, n in inputs:
            split = files.split
            split_id = SPLIT_IDS.get(split, OTHER_SPLIT_ID)
            input_sums[files.images.name] = _sha256(files.images)
            input_sums[files.labels.name] = _sha256(files.labels)
            labels = load_idx(files.labels)[:n]
            if bar is not None:
                bar.set_description(f"generate {split}")
            with contextlib.ExitStack() as stack:
                writers = {name: stack.enter_context(
                    IdxWriter(outdir / name / f"{split}-images-idx3-ubyte.gz", (n, 28, 28))) for name in names}
                metrics = {name: [] for name in names}
                perts = {name: [] for name in INTERLEAVED}
                tasks = ((chunk, start, split_id, int(seed), params, measure)
                         for start, chunk in iter_idx_chunks(files.images, chunksize, 0, n))
                for result in map_ordered(generate_chunk, tasks, executor, max_pending=4):
                    imgs, mets = result["images"], result["metrics"]
                    k = imgs.shape[1]
                    for d, name in enumerate(DATASETS):
                        writers[name].write(imgs[d])
                        if measure:
                            metrics[name].append(mets[d])
                    for name, sources in INTERLEAVED.items():
                        src = np.array([DATASETS.index(s) for s in sources])[result["choices"][name]]
                        writers[name].write(imgs[src, np.arange(k)])
                        if measure:
                            metrics[name].append(mets[src, np.arange(k)])
                        perts[name].append(np.array([PERT_CODES[DATASETS[s]] for s in src], dtype=np.uint8))
                    if bar is not None:
                        bar.update(k)
                # the images are renamed into place when the stack closes
            written += [outdir / name / f"{split}-images-idx3-ubyte.gz" for name in names]
            for name in names:
                p = outdir / name / f"{split}-labels-idx1-ubyte.gz"
                save_idx(labels.astype(np.uint8), p)
                written.append(p)
                if measure:
                    p = outdir / name / f"{split}-morpho.csv"
                    atomic_write_csv(_metrics_frame(np.concatenate(metrics[name]) if n else
                                                    np.empty((0, 6))), p)
                    written.append(p)
            for name in INTERLEAVED:
                p = outdir / name / f"{split}-pert-idx1-ubyte.gz"
                save_idx(np.concatenate(perts[name]) if n else np.empty(0, np.uint8), p)
                written.append(p)
    except OSError as e:
        raise DatasetError(f"cannot write in {outdir}: {e.strerror or e}"
                           + (f" ({e.filename})" if getattr(e, "filename", None) else "")) from e
    finally:
        if bar is not None:
            bar.close()
    for name in names:
        p = outdir / name / "README.md"
        text = _readme(name, outdir / name, [(f.split, n) for f, n in inputs], seed, params, input_sums,
                       measure, limit)
        with atomic_write(p, "w", newline="\n") as f:
            f.write(text)
        written.append(p)
    return written


#: GenerateParams field -> ``morpho generate`` option.
CLI_OPTIONS = {
    "threshold": "--threshold", "scale": "--scale", "thin_amount": "--thin-amount",
    "thick_amount": "--thick-amount", "swel_strength": "--swel-strength", "swel_radius": "--swel-radius",
    "frac_thickness": "--frac-thickness", "frac_prune": "--frac-prune", "frac_num": "--frac-num",
    "mode": "--mode",
}


def generate_command(seed: int, params: GenerateParams, splits: Sequence[str] = SPLITS, measured: bool = True,
                     limit: int | None = None) -> str:
    """The ``morpho generate`` command line that reproduces a generation (placeholders for the folders)."""
    parts = ["morpho generate MNIST_DIR -o OUTDIR", f"--seed {int(seed)}"]
    default = GenerateParams()
    for f, opt in CLI_OPTIONS.items():
        if getattr(params, f) != getattr(default, f):
            parts.append(f"{opt} {getattr(params, f)}")
    if list(splits) != list(SPLITS):
        parts.append("--splits " + ",".join(splits))
    if limit is not None:
        parts.append(f"--limit {int(limit)}")
    if not measured:
        parts.append("--no-measure")
    return " ".join(parts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular_file(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_DESCRIPTIONS = {
    "plain": "MNIST digits binarised and re-sampled, with no perturbation (the reference for the others).",
    "thin": "Every digit thinned.",
    "thic": "Every digit thickened.",
    "swel": "Every digit locally swollen at a random location.",
    "frac": "Every digit fractured at random locations of its skeleton.",
    "global": "Each digit, at random with equal probability, plain, thinned or thickened (global changes).",
    "local": "Each digit, at random with equal probability, plain, swollen or fractured (local changes).",
}


def _readme(name: str, folder: Path, splits: list[tuple[str, int]], seed: int, params: GenerateParams,
            input_sums: dict[str, str], measured: bool, limit: int | None) -> str:
    from core import __version__
    from core.perturb import PERTURBATION_LABELS

    desc = params.describe()
    lines = [f"# Morpho-MNIST: {name}", "", _DESCRIPTIONS[name], ""]
    if name in INTERLEAVED:
        lines += ["Sources: " + ", ".join(f"{s} ({desc[s]})" for s in INTERLEAVED[name]) + ".", "",
                  "`{split}-pert-idx1-ubyte.gz` records each digit's source: "
                  + ", ".join(f"{c} {n}" for c, n in PERTURBATION_LABELS.items()) + ".", ""]
    else:
        lines += [f"Perturbation: {desc[name]}.", ""]
    lines += ["## Files", "", "| file | digits | sha256 |", "| --- | --- | --- |"]
    for split, n in splits:
        files = [f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"]
        if measured:
            files.append(f"{split}-morpho.csv")
        if name in INTERLEAVED:
            files.append(f"{split}-pert-idx1-ubyte.gz")
        for fname in files:
            lines.append(f"| {fname} | {n} | {_sha256(folder / fname)} |")
    lines += ["", "Images: uint8 IDX, shape (N, 28, 28); labels: uint8 IDX, the MNIST digit classes."]
    if measured:
        lines += ["`{split}-morpho.csv`: morphometrics of each digit (`index,area,length,thickness,slant,width,"
                  "height`; area in px², lengths in px, slant in radians) measured in "
                  f"{params.mode} mode."]
    lines += ["", "## How it was made", "",
              f"`morpho generate` (morpho-mnist-explorer {__version__}) with seed {seed}: threshold "
              f"{params.threshold}, up-scaling {params.scale}x, {desc['thin']}, {desc['thic']}, {desc['swel']}, "
              f"{desc['frac']}. Each digit's randomness is keyed by (seed, split, digit index), so the same "
              "command gives byte-identical files whatever the number of workers.", ""]
    lines += ["```", generate_command(seed, params, [s for s, _ in splits], measured, limit), "```", ""]
    lines += ["Inputs (MNIST, by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0):", "",
              "| file | sha256 |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in input_sums.items()]
    lines += ["", "Method: D. C. Castro, J. Tan, B. Kainz, E. Konukoglu and B. Glocker, \"Morpho-MNIST: "
              "Quantitative Assessment and Diagnostics for Representation Learning\", JMLR 20(178), 2019.", ""]
    return "\n".join(lines)
