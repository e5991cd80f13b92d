"""Write tests/data/: the first 1,000 MNIST test digits and their rows of the authors' t10k-morpho.csv.

Usage: python scripts/make_test_data.py [MNIST_FOLDER]   (default ../shared/data/mnist)

The folder must hold MNIST's ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` and the released
Morpho-MNIST ``t10k-morpho.csv``. Digits 0..999 are saved as IDX with ``core.io.save_idx`` (reproducible gzip:
no timestamp, no name), and the CSV's header plus its first 1,000 data lines are copied byte for byte, so the
rows are the released ones, not numbers this project computed.
"""
from __future__ import annotations

import sys
from pathlib import Path

N_DIGITS = 1000
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data"


def main(argv: list[str]) -> int:
    from core import io

    source = Path(argv[0]) if argv else ROOT.parent / "shared" / "data" / "mnist"
    images = io.load_idx(source / "t10k-images-idx3-ubyte.gz")
    labels = io.load_idx(source / "t10k-labels-idx1-ubyte.gz")
    OUT.mkdir(parents=True, exist_ok=True)
    io.save_idx(images[:N_DIGITS], OUT / "t10k-1000-images-idx3-ubyte.gz")
    io.save_idx(labels[:N_DIGITS], OUT / "t10k-1000-labels-idx1-ubyte.gz")
    with open(source / "t10k-morpho.csv", "rb") as f:
        lines = [f.readline() for _ in range(N_DIGITS + 1)]   # header + rows 0..999, bytes as released
    if not lines[-1].startswith(b"%d," % (N_DIGITS - 1)):
        raise SystemExit(f"{source / 't10k-morpho.csv'}: line {N_DIGITS + 1} is not the row of digit {N_DIGITS - 1}")
    (OUT / "t10k-1000-morpho.csv").write_bytes(b"".join(lines))
    print(f"wrote {N_DIGITS} digits and their released rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
