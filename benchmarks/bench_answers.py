"""What the answer costs: compare_report with and without the bootstrap intervals, and the resolution
simulation cold and cached, on the bundled digits (2,000 samples vs 3,000 reference digits).

    python benchmarks/bench_answers.py
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from core import io
    from core.analysis import compare_report
    from core.analysis.resolution import _resolution_cached, resolution

    metrics = pd.read_csv(ROOT / "assets/mnist-5k/train-morpho.csv", index_col=0)
    labels = io.load_idx(ROOT / "assets/mnist-5k/train-labels-idx1-ubyte.gz")
    order = np.random.default_rng(0).permutation(len(metrics))
    s, r = order[:2000], order[2000:]
    S, R = metrics.iloc[s].reset_index(drop=True), metrics.iloc[r].reset_index(drop=True)

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    _resolution_cached.cache_clear()
    cold = timed(lambda: resolution(R, 2000, 3000))
    warm = timed(lambda: resolution(R, 2000, 3000))
    kw = dict(sample_labels=labels[s], reference_labels=labels[r])
    without = timed(lambda: compare_report(S, R, n_bootstrap=0, **kw))
    full = timed(lambda: compare_report(S, R, **kw))
    print("2,000 samples vs 3,000 reference digits, six metrics (seconds, one run each):")
    print(f"  resolution simulation, cold      {cold:7.3f}")
    print(f"  resolution simulation, cached    {warm:7.3f}   ({cold / max(warm, 1e-9):.0f}x faster)")
    print(f"  compare_report, no intervals     {without:7.3f}   (resolution cached)")
    print(f"  compare_report, with intervals   {full:7.3f}   (+{full - without:.3f} for 200 bootstrap resamples, "
          "overall and per label, and the baseline)")


if __name__ == "__main__":
    main()
