"""What the perturbation studio exports, as bytes the browser downloads: a dataset zip or a metrics CSV.

A dataset zip holds the released Morpho-MNIST layout (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``train-pert-idx1-ubyte.gz``, ``train-morpho.csv``), the same files
:func:`explorer.data.export_dataset` writes to a folder, so the unzipped folder opens in the explorer and
in ``core``.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data import METRICS, export_dataset

__all__ = ["dataset_zip", "metrics_csv"]


def dataset_zip(images: np.ndarray, labels: np.ndarray | None, metrics: pd.DataFrame,
                perturbations: np.ndarray | None = None, *, folder: str = "morpho-export",
                source_index: np.ndarray | None = None) -> bytes:
    """A zip of a dataset in the released layout.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (N, 28, 28).
    labels : numpy.ndarray or None
        int (N,) digit labels.
    metrics : pandas.DataFrame
        N rows of the six :data:`~explorer.data.METRICS`.
    perturbations : numpy.ndarray, optional
        int (N,) Morpho-MNIST perturbation codes.
    folder : str
        Name of the folder inside the zip.
    source_index : numpy.ndarray, optional
        int (N,) index of each digit in the dataset it came from, written as ``source-index.csv`` so an
        export can be traced back.

    Returns
    -------
    bytes
        The zip file.
    """
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="morpho-export-") as tmp:
        files = export_dataset(Path(tmp), images, labels, metrics, perturbations)
        if source_index is not None:
            path = Path(tmp) / "source-index.csv"
            pd.DataFrame({"source_index": np.asarray(source_index, np.int64)}).to_csv(path, index_label="index")
            files.append(path)
        # The IDX files are gzipped already: store them, compress only the CSVs.
        with zipfile.ZipFile(buffer, "w") as zf:
            for path in files:
                method = zipfile.ZIP_STORED if path.suffix == ".gz" else zipfile.ZIP_DEFLATED
                zf.write(path, f"{folder}/{path.name}", compress_type=method)
    return buffer.getvalue()


def metrics_csv(metrics: pd.DataFrame, index: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """CSV bytes of the six metrics of some digits: ``index`` (in the dataset), ``label`` when known,
    then area, length, thickness, slant, width, height (px, px², rad as in the released CSVs)."""
    table = pd.DataFrame({"index": np.asarray(index, np.int64)})
    if labels is not None:
        table["label"] = np.asarray(labels, np.int64)
    for m in METRICS:
        table[m] = metrics[m].to_numpy()
    return table.to_csv(index=False).encode()
