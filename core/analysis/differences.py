"""Where core.analysis differs from the original ``analysis/`` code, measured on real digits.

Run ``python -m core.analysis.differences`` (bundled sample, about a minute on a laptop) or
``python -m core.analysis.differences --metrics t10k-morpho.csv --labels t10k-labels-idx1-ubyte.gz``.
Each row gives the project's default and the original's choice (the argument that restores it) on
the same data. docs/diagnostics.md quotes the output.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import DIAGNOSTIC_METRICS
from .disentanglement import mig
from .mmd import mmd_test

_ASSETS = Path(__file__).resolve().parents[2] / "assets" / "mnist-5k"


def _load(metrics_path=None, labels_path=None) -> tuple[pd.DataFrame, np.ndarray]:
    from core.io import load_idx

    mp = Path(metrics_path) if metrics_path else _ASSETS / "train-morpho.csv"
    lp = Path(labels_path) if labels_path else _ASSETS / "train-labels-idx1-ubyte.gz"
    if not mp.is_file():
        raise FileNotFoundError(f"{mp}: metrics CSV not found (pass --metrics)")
    m = pd.read_csv(mp)
    lab = load_idx(lp).astype(np.int64)
    if len(lab) != len(m):
        raise ValueError(f"{lp}: {len(lab)} labels for {len(m)} metric rows")
    return m[list(DIAGNOSTIC_METRICS)].reset_index(drop=True), lab


def measure(metrics: pd.DataFrame, labels: np.ndarray, *, seeds: int = 10) -> list[dict]:
    """The differences as rows ``{difference, argument, data, default, original}`` (text values)."""
    rows = []
    even, odd = metrics.iloc[0::2], metrics.iloc[1::2]
    four, nine = metrics[labels == 4], metrics[labels == 9]
    pairs = {"even vs odd rows (same distribution)": (even, odd), "label 4 vs label 9": (four, nine)}

    # 1. shuffling RNG of the linear statistic
    for name, (x, y) in pairs.items():
        d = [mmd_test(x, y, linear=True, seed=s) for s in range(seeds)]
        o = [mmd_test(x, y, linear=True, seed=s, shuffle="original") for s in range(seeds)]
        spread = np.std([r.mmd2 for r in d], ddof=1)
        rows.append({
            "difference": "linear MMD: shuffling RNG",
            "argument": "mmd_test(..., shuffle='original')",
            "data": f"{name}, n = {len(x)} vs {len(y)}",
            "default": f"seed 0: MMD²_l = {d[0].mmd2:.5f}, {d[0].p_text}",
            "original": (f"seed 0: MMD²_l = {o[0].mmd2:.5f}, {o[0].p_text}; the two differ by "
                         f"{abs(d[0].mmd2 - o[0].mmd2):.5f}, the sd of MMD²_l over {seeds} seeds is "
                         f"{spread:.5f} (the two RNGs pair different digits for every seed)")})
    # 2. standard errors
    x, y = pairs["label 4 vs label 9"]
    d, o = mmd_test(x, y, seed=0), mmd_test(x, y, seed=0, sem="original")
    rows.append({"difference": "linear MMD: standard error (ddof)", "argument": "mmd_test(..., sem='original')",
                 "data": f"label 4 vs label 9, n = {len(x)} vs {len(y)}",
                 "default": f"sem = {d.sem:.6f} (ddof=1), z = {d.z:.3f}, {d.p_text}",
                 "original": f"sem = {o.sem:.6f} (ddof=0), z = {o.z:.3f}, {o.p_text} "
                             f"(ratio {o.sem / d.sem:.5f})"})
    xs, ys = even.iloc[:1000], odd.iloc[:1000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dq = mmd_test(xs, ys, linear=False, seed=0, n_permutations=0)
        oq = mmd_test(xs, ys, linear=False, seed=0, n_permutations=0, sem="original")
        rng = np.random.default_rng(1)
        z = pd.concat([xs, ys])
        perm = []
        for _ in range(100):   # the null spread the standard error should match
            idx = rng.permutation(len(z))
            perm.append(mmd_test(z.iloc[idx[:1000]], z.iloc[idx[1000:]], linear=False, n_permutations=0,
                                 scale=dq.bandwidth).mmd2)
    rows.append({"difference": "quadratic MMD: standard error", "argument": "mmd_test(..., sem='original')",
                 "data": "1,000 even vs 1,000 odd rows (same distribution)",
                 "default": f"delta-method sem = {dq.sem:.6f}",
                 "original": f"sem = {oq.sem:.6f}; the statistic's sd over 100 random splits is "
                             f"{np.std(perm, ddof=1):.6f} (neither is used for the p-value, which is a "
                             f"permutation one)"})
    # 3. quadratic estimator
    x, y = four.iloc[:500], nine.iloc[:300]
    dq = mmd_test(x, y, linear=False, seed=0, n_permutations=0)
    oq = mmd_test(x, y, linear=False, seed=0, n_permutations=0, estimator="original")
    rows.append({"difference": "quadratic MMD: estimator", "argument": "mmd_test(..., estimator='original')",
                 "data": f"label 4 ({len(x)}) vs label 9 ({len(y)})",
                 "default": f"MMD²_u on all {len(x)} + {len(y)} rows = {dq.mmd2:.5f}",
                 "original": f"H-statistic on {len(y)} + {len(y)} shuffled rows = {oq.mmd2:.5f} "
                             f"({(oq.mmd2 - dq.mmd2) / dq.mmd2:+.1%})"})
    # 4. MIG: integer codes
    zs = (metrics - metrics.mean()) / metrics.std()
    int_codes = np.rint(zs.to_numpy() * 10).astype(np.int64)[:, [2, 0, 1, 4, 3]]
    dm = mig(int_codes, metrics)
    om = mig(int_codes, metrics, binning="original")
    n_vals = int(np.median([len(np.unique(c)) for c in int_codes.T]))
    rows.append({"difference": "MIG: binning of integer codes", "argument": "mig(..., binning='original')",
                 "data": f"integer codes = round(10 x standardised metric), ~{n_vals} distinct values each",
                 "default": f"codes binned into 20 bins: MIG = {dm.score:.3f}",
                 "original": f"each integer its own bin: MIG = {om.score:.3f}"})
    # 5. MIG: zero-entropy factor
    codes = zs.to_numpy() + 0.1 * np.random.default_rng(0).standard_normal(zs.shape)
    factors = metrics.assign(perturbation=0)       # plain digits: the perturbation factor is constant
    dz = mig(codes, factors, columns=None)
    oz = mig(codes, factors, columns=None, zero_entropy="original")
    rows.append({"difference": "MIG: factor with zero entropy", "argument": "mig(..., zero_entropy='original')",
                 "data": "noisy metric codes; factors = 5 metrics + constant 'perturbation' column",
                 "default": f"constant factor skipped: MIG = {dz.score:.3f}",
                 "original": f"division by zero entropy: MIG = {oz.score}"})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.analysis.differences", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", help="metrics CSV (default: the bundled sample's)")
    ap.add_argument("--labels", help="IDX labels file of the same digits")
    args = ap.parse_args(argv)
    metrics, labels = _load(args.metrics, args.labels)
    for row in measure(metrics, labels):
        print(f"* {row['difference']}  [{row['argument']}]\n    data:     {row['data']}\n"
              f"    default:  {row['default']}\n    original: {row['original']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
