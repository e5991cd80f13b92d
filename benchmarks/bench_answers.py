"""What the answer costs: compare_report with and without the bootstrap intervals, and the resolution
simulation cold and cached, on the bundled digits (2,000 samples vs 3,000 reference digits); then a repeated
comparison against one reference, as the app and a researcher comparing several models do: 5,000 samples
(with images: the quality flags) against 70,000 digits (the MNIST test set tiled 7x, ``--mnist DIR``,
default ``../shared/data/mnist``; skipped without it), a repeat with the reference-only parts (held-out
baseline, the reference's flag shares) recomputed as before they were kept, and a repeat with them kept.

    python benchmarks/bench_answers.py [--mnist DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def repeated_comparison(mnist: Path) -> None:
    from core import io
    from core.analysis import METRICS, comparison, compare_report, quality

    images = io.load_idx(mnist / "t10k-images-idx3-ubyte.gz")
    labels = io.load_idx(mnist / "t10k-labels-idx1-ubyte.gz")
    metrics = pd.read_csv(mnist / "t10k-morpho.csv")[list(METRICS)]
    kw = dict(sample_metrics=metrics.iloc[5000:].reset_index(drop=True), sample_labels=labels[5000:],
              sample_images=images[5000:], reference_metrics=pd.concat([metrics] * 7, ignore_index=True),
              reference_labels=np.tile(labels, 7), reference_images=np.concatenate([images] * 7), seed=0)

    def forget():  # the reference-only parts, as before they were kept (the resolution stays cached)
        comparison._BASELINES.clear()
        quality._REFERENCE_SHARES.clear()

    forget()
    first = timed(lambda: compare_report(**kw))
    forget()
    recomputed = timed(lambda: compare_report(**kw))
    compare_report(**kw)
    kept = timed(lambda: compare_report(**kw))
    print("5,000 samples (with images and labels) vs 70,000 reference digits (seconds, one run each):")
    print(f"  compare_report, first                           {first:7.2f}")
    print(f"  again, reference-only parts recomputed (before) {recomputed:7.2f}")
    print(f"  again, reference-only parts kept (now)          {kept:7.2f}   "
          f"({recomputed / max(kept, 1e-9):.2f}x faster)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist",
                    help="MNIST folder with the test set and t10k-morpho.csv")
    args = ap.parse_args(argv)
    from core import io
    from core.analysis import compare_report
    from core.analysis import resolution as resolution_module
    from core.analysis.resolution import resolution

    metrics = pd.read_csv(ROOT / "assets/mnist-5k/train-morpho.csv", index_col=0)
    labels = io.load_idx(ROOT / "assets/mnist-5k/train-labels-idx1-ubyte.gz")
    order = np.random.default_rng(0).permutation(len(metrics))
    s, r = order[:2000], order[2000:]
    S, R = metrics.iloc[s].reset_index(drop=True), metrics.iloc[r].reset_index(drop=True)

    resolution_module._RESOLUTIONS.clear()
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
    if (args.mnist / "t10k-morpho.csv").exists():
        repeated_comparison(args.mnist)
    else:
        print(f"(no {args.mnist}: the repeated comparison against 70,000 digits is skipped)")


if __name__ == "__main__":
    main()
