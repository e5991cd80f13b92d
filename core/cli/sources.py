"""What a data argument of ``morpho compare`` / ``morpho traverse`` holds: digits to measure, or a metrics table,
with labels when there are any.

One function, :func:`load_source`, reads every accepted form BEFORE any measuring starts, so a bad path or
format is reported at once:

- an MNIST / Morpho-MNIST folder (``core.reading.read_dataset`` when present): images, labels, and the
  released ``-morpho.csv`` metrics when the folder has them (then nothing needs measuring);
- one IDX image file (labels and ``-morpho.csv`` found beside it);
- a metrics CSV with the six metric columns (an optional ``label`` column is kept; otherwise labels are taken
  from the split's label file beside a ``{split}-morpho.csv``);
- anything ``core.samples.load_samples`` reads (``.npy``/``.npz`` with optional labels, PNG grids, image
  folders, torch tensors when supported).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.cli import common
from core.cli.common import CLIError

#: Column names accepted for digit labels in a metrics CSV.
LABEL_COLUMNS = ("label", "labels", "digit", "y", "target")


@dataclass
class Source:
    """Digits or their metrics, read from one path.

    Attributes
    ----------
    path : pathlib.Path
    images : numpy.ndarray, shape (N, 28, 28), or None
        Digits still to be measured (None when `metrics` came with the data).
    metrics : pandas.DataFrame or None
        The six metric columns, N rows (None until measured).
    labels : numpy.ndarray of int64, shape (N,), or None
    description : str
        What was read, for the report's provenance.
    metrics_source : str or None
        Where the metrics came from (e.g. "released CSV t10k-morpho.csv"), None when measured here.
    notes : list of str
    """

    path: Path
    images: np.ndarray | None = None
    metrics: pd.DataFrame | None = None
    labels: np.ndarray | None = None
    description: str = ""
    metrics_source: str | None = None
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.metrics) if self.metrics is not None else len(self.images)


def _metric_columns() -> list[str]:
    from core.datasets import METRIC_COLUMNS
    return list(METRIC_COLUMNS)


def _labels_of(values, n: int, where: str) -> np.ndarray | None:
    if values is None:
        return None
    labels = np.asarray(values)
    if labels.shape != (n,):
        raise CLIError(f"{where}: {labels.shape[0] if labels.ndim else 0} labels for {n} digits")
    if not np.issubdtype(labels.dtype, np.integer):
        as_float = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(as_float)) or not np.all(as_float == np.round(as_float)):
            raise CLIError(f"{where}: labels must be whole numbers")
        labels = as_float
    return labels.astype(np.int64)


def _sibling_labels(path: Path, prefix: str | None, n: int) -> np.ndarray | None:
    """The labels of split `prefix` beside `path` (``{prefix}-labels-idx1-ubyte[.gz]``), if their count fits."""
    if not prefix:
        return None
    from core.datasets import DatasetError, find_split
    from core.io import load_idx
    with contextlib.suppress(DatasetError, FileNotFoundError):
        lab = find_split(path.parent, prefix, require_labels=False).labels
        if lab is not None:
            labels = load_idx(common.check_input(lab, "label file", folder_ok=False))
            if labels.shape == (n,):
                return labels.astype(np.int64)
    return None


def read_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A metrics CSV through the reading layer (size and row limits, numeric columns), and notes.

    Returns the table with every column of the file (``index``, ``label``, ...) and rows 0..N-1."""
    from core.datasets import DatasetError, read_metrics
    from core.reading import DEFAULT_LIMITS, read_metrics_table

    try:
        return read_metrics_table(path), []
    except DatasetError as e:
        # a dataset's table numbers its digits 0..N-1; a table of chosen digits (a subset of the released
        # one, say) need not, and a comparison does not depend on row identity: read it as it is
        if "index column is not a permutation" not in str(e):
            raise
        if path.stat().st_size > DEFAULT_LIMITS.max_bytes:
            raise
        df = read_metrics(path).reset_index()
        return df, [f"{path.name}: its index column does not number the rows 0..{len(df) - 1}; rows used as "
                    "they are"]


def read_metrics_csv(path: Path) -> Source:
    """A metrics table: the six METRICS columns plus an optional label column (kept)."""
    df, notes = read_table(path)
    cols = _metric_columns()
    metrics = df[cols].reset_index(drop=True).astype(float)
    label_col = next((c for c in LABEL_COLUMNS if c in df.columns), None)
    if label_col is not None:
        labels = _labels_of(df[label_col].to_numpy(), len(df), f"{path}, column {label_col!r}")
        how = f"labels from its {label_col!r} column"
    else:
        prefix = path.name[:-len("-morpho.csv")] if path.name.endswith("-morpho.csv") else None
        labels = _sibling_labels(path, prefix, len(df))
        how = "labels from the split's label file" if labels is not None else "no labels"
    return Source(path, metrics=metrics, labels=labels, metrics_source=f"metrics table {path.name}",
                  description=f"{path.name}: metrics table, {len(df)} rows, {how}", notes=notes)


def _from_dataset(path: Path, split: str | None) -> Source:
    """An MNIST / Morpho-MNIST folder or IDX images file, through the one reading layer (core.reading)."""
    from core.reading import read_dataset

    if path.is_dir() and split is None:
        from core.datasets import find_splits
        names = [f.split for f in find_splits(path)]
        if len(names) > 1:  # the test split unless told otherwise
            split = "t10k" if "t10k" in names else names[0]
    data = read_dataset(path, split=split)
    src = Source(path, images=None if data.metrics is not None else data.images,
                 metrics=None if data.metrics is None else data.metrics[_metric_columns()].reset_index(drop=True),
                 labels=None if data.labels is None else np.asarray(data.labels, dtype=np.int64),
                 metrics_source=data.metrics_source, notes=list(data.notes))
    what = f"{data.name}" + (f" {data.split}" if data.split else "")
    n = len(data.images)
    src.description = (f"{what}: {n} digits" + (", with labels" if data.labels is not None else "")
                       + (f", metrics: {data.metrics_source}" if data.metrics is not None else ""))
    return src


def _is_dataset(path: Path) -> bool:
    """An MNIST-layout folder, or an IDX file of images (magic number 0x00 0x00 0x08 0x03)."""
    from core.io import IDXError, read_idx_header
    if path.is_dir():
        return any(("-images-idx3-ubyte" in p.name or "-images.idx3-ubyte" in p.name) and p.is_file()
                   for p in path.iterdir())
    try:
        _dtype, shape = read_idx_header(path)
    except (IDXError, OSError):
        return False
    return len(shape) == 3


def load_source(path_text: str | Path, role: str, *, split: str | None = None) -> Source:
    """Read what `path_text` holds (see the module docstring); nothing is measured here.

    Parameters
    ----------
    path_text : str or pathlib.Path
    role : str
        "samples" or "reference", for messages.
    split : str, optional
        Split of a dataset folder with several (default: t10k when present).

    Raises
    ------
    CLIError, core.datasets.DatasetError, core.io.IDXError, core.samples.SampleFormatError
        Naming the path and the problem.
    """
    path = common.check_input(path_text, f"{role} file")  # missing paths, FIFOs, devices
    if path.suffix.lower() == ".csv":
        return read_metrics_csv(path)
    if _is_dataset(path):
        return _from_dataset(path, split)
    from core.samples import load_samples
    samples = load_samples(path)
    images = np.asarray(samples.images)
    if images.ndim != 3:
        raise CLIError(f"{path}: expected images of shape (N, H, W), found {images.shape}")
    labels = _labels_of(samples.labels, len(images), str(path)) if samples.labels is not None else None
    return Source(path, images=images, labels=labels, description=samples.description)


def measure_source(src: Source, args, desc: str) -> None:
    """Measure `src.images` in place (``src.metrics``), unless its metrics came with the data."""
    if src.metrics is not None:
        return
    from core.measure import measure_batch
    with common.executor(args, "thread") as (executor, workers):
        src.metrics = measure_batch(src.images, mode=args.mode, workers=workers, executor=executor,
                                    progress=common.progress(args))[_metric_columns()].reset_index(drop=True)


def check_measured(src: Source, role: str) -> None:
    """Refuse data none of whose digits could be measured (blank images); rows that could not be measured
    are left out by the analysis, with a note in its report."""
    bad = src.metrics.isna().any(axis=1).to_numpy()
    if len(bad) and bad.all():
        raise CLIError(f"{src.path}: none of the {len(bad)} {role} could be measured (blank images?)")
