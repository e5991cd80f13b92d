"""Peak memory of reads under the default ReadLimits (max_memory = 1 GiB), each in a fresh process.

    python benchmarks/read_memory.py

Prints, for each file, whether it was read or refused, the time taken and the process's peak resident memory
(ru_maxrss) minus its resident memory before the read: a float32 .npz of digits just under the limit (read),
one just over it, a 1.3 KB .pt holding a stride-0 tensor (700000, 28, 28) and a ~2 MB .npz declaring 600,000
float digits (refused before anything is materialised).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _npz(path: Path, n: int, noise: bool) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, 28, 28)})
            for k in range(0, n, 10_000):
                m = min(10_000, n - k)
                block = rng.random((m, 28, 28), np.float32) if noise else np.zeros((m, 28, 28), np.float32)
                f.write(block.tobytes())
    return path


def _child(path: str) -> None:
    from core.reading import read_dataset
    from core.io import UnreadableFileError
    import core.samples  # noqa: F401  (imports done before the baseline)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        data = read_dataset(path)
        what = f"read {len(data):,} digits"
    except UnreadableFileError as e:
        what = "refused: " + str(e).split(": ", 1)[1][:90]
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"{Path(path).name} ({os.path.getsize(path):,} bytes): {what}; {took:.2f} s, peak +{peak / 1024:,.0f} MiB")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
        return
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        per_digit = 784 * (4 + 9)  # core.reading.read_peak_bytes of one float32 digit
        under = int(0.95 * 2 ** 30) // per_digit
        files = [_npz(d / "under-limit.npz", under, noise=True), _npz(d / "over-limit.npz", under * 11 // 10, True),
                 _npz(d / "declared-600k.npz", 600_000, noise=False)]
        try:
            import torch
            torch.save(torch.zeros(1).expand(700_000, 28, 28), d / "stride0.pt")
            files.append(d / "stride0.pt")
        except ImportError:
            print("(torch not installed: the stride-0 .pt case is not run)")
        for f in files:
            subprocess.run([sys.executable, __file__, "--child", str(f)], check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})


if __name__ == "__main__":
    main()
