"""Agreement of released-mode measurement with the authors' published table (t10k-morpho.csv).

Prints, per metric, how many of the 10,000 MNIST test digits match the released value within 1e-9 and
1e-3, and the largest difference. Needs the MNIST test set and t10k-morpho.csv (default: ../shared/data/mnist
beside the repository; or pass a folder).

    python benchmarks/fidelity.py [MNIST_DIR] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.io import load_idx
from core.measure import METRICS, measure_batch

_ROOT = Path(__file__).resolve().parent.parent
# ../shared/data/mnist beside the repository (or beside a folder holding worktrees of it)
DEFAULT = next((p / "shared" / "data" / "mnist" for p in _ROOT.parents
                if (p / "shared" / "data" / "mnist" / "t10k-morpho.csv").exists()), _ROOT.parent / "shared" / "data" / "mnist")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mnist_dir", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    images_path = args.mnist_dir / "t10k-images-idx3-ubyte.gz"
    table_path = args.mnist_dir / "t10k-morpho.csv"
    if not images_path.exists() or not table_path.exists():
        print(f"fidelity: {images_path} or {table_path} not found; nothing to compare", file=sys.stderr)
        return 2
    images = load_idx(images_path)
    released = pd.read_csv(table_path, index_col="index")
    start = time.perf_counter()
    ours = measure_batch(images, mode="released", workers=args.workers, progress=False)
    elapsed = time.perf_counter() - start
    n = len(images)
    diff = np.abs(ours[list(METRICS)].to_numpy() - released[list(METRICS)].to_numpy())
    print(f"Released-mode measurement vs {table_path.name}: {n} digits, measured in {elapsed:.1f} s "
          f"({args.workers} workers)")
    print(f"{'metric':<10} {'≤1e-9':>12} {'≤1e-3':>12} {'max |diff|':>12}")
    for k, metric in enumerate(METRICS):
        d = diff[:, k]
        print(f"{metric:<10} {int((d <= 1e-9).sum()):>6}/{n:<5} {int((d <= 1e-3).sum()):>6}/{n:<5} {d.max():>12.3g}")
    all_exact = int((diff <= 1e-9).all(axis=1).sum())
    print(f"{'all six':<10} {all_exact:>6}/{n:<5} {int((diff <= 1e-3).all(axis=1).sum()):>6}/{n:<5} {diff.max():>12.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
