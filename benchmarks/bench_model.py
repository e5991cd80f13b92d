"""Model-in-the-loop speed, measured side by side in one run (prints figures; asserts nothing).

1. Live model: server work of one slider move in the Model tab (decode + overlays + metrics, as
   ``ModelView.render`` does it) for an MLP decoder, median of ``--moves`` moves, next to its parts: the
   decoder call alone and the overlay geometry alone. Target: under 50 ms a move.
2. Latent traversals: the Spearman/slope toggle (effects + heatmap/table data, cached after the first
   computation of each method) and codes -> partial correlations + MIG for 300 codes. Target: under
   500 ms each.
3. Sampling and traversing the live model: ``core.decoders.sample`` of 1,000 codes and a 5-base traversal.

The MLP decoder is real, fitted here in about a second on the bundled 5,000 MNIST digits: standardised
PCA codes (16 latents) -> 256 tanh units (random features) -> 784 pixels by ridge regression.

Usage: ``python benchmarks/bench_model.py [--moves 40]``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def fit_mlp_decoder(images: np.ndarray, latent_dim: int = 16, hidden: int = 256, seed: int = 0):
    """A numpy MLP decoder codes (N, D) -> images float (N, 28, 28) in [0, 1], fitted on ``images``."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps, sd = vt[:latent_dim], s[:latent_dim] / np.sqrt(len(x) - 1)
    z = (x - mean) @ comps.T / sd  # standardised codes: the N(0, I) prior fits them
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1 / np.sqrt(latent_dim), (latent_dim, hidden))
    b1 = rng.normal(0, 0.5, hidden)
    h = np.tanh(z @ w1 + b1)
    h1 = np.c_[h, np.ones(len(h))]
    w2 = np.linalg.solve(h1.T @ h1 + 1e-2 * np.eye(hidden + 1), h1.T @ x)

    def decoder(codes):
        codes = np.asarray(codes, np.float64)
        out = np.c_[np.tanh(codes @ w1 + b1), np.ones(len(codes))] @ w2
        return np.clip(out, 0, 1).reshape(-1, 28, 28)

    return decoder, z


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=40)
    args = ap.parse_args()

    from core.analysis import DIAGNOSTIC_METRICS, code_diagnostics
    from core.decoders import as_decoder, sample, traverse
    from core.io import load_idx
    from explorer.inspector import digit_geometry
    from explorer.model import ModelView
    from explorer.state import ExplorerState
    from explorer.traversals import TraversalView

    images = load_idx(ROOT / "assets/mnist-5k/train-images-idx3-ubyte.gz")
    t0 = time.perf_counter()
    f, z = fit_mlp_decoder(images)
    print(f"MLP decoder (16 -> 256 tanh -> 784) fitted in {time.perf_counter() - t0:.2f} s")
    dec = as_decoder(f, latent_dim=16)
    state = ExplorerState()
    view = ModelView(state=state, decoder=dec)
    rng = np.random.default_rng(1)
    moves, decode_only, geometry_only = [], [], []
    for k in range(args.moves):
        i, v = k % 16, float(np.clip(rng.normal(), -3, 3))
        t = time.perf_counter()
        view.sliders[i].value = v  # the slider's watcher decodes and redraws, as in the app
        moves.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        img = dec(view.code[None])[0]
        decode_only.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        digit_geometry(img)
        geometry_only.append(1000 * (time.perf_counter() - t))
    med = statistics.median
    print(f"\n1. Slider move, server work (median of {args.moves}): {med(moves):.1f} ms "
          f"(target < 50 ms); of which decoder {med(decode_only):.2f} ms, overlay geometry "
          f"{med(geometry_only):.1f} ms; ratio move / geometry = {med(moves) / med(geometry_only):.2f}")

    # 2. traversals: toggles and codes -> MIG
    tv = TraversalView(state=state)
    t = time.perf_counter()
    view.n_bases, view.steps = 5, 9
    trav = view.traverse_now()
    t_trav = time.perf_counter() - t
    tv._show_traversal(trav)
    t = time.perf_counter()
    tv.measure()
    t_measure = time.perf_counter() - t
    toggles = []
    for method in ["spearman", "slope", "spearman", "slope", "spearman", "slope"]:
        t = time.perf_counter()
        tv.method = method
        toggles.append(1000 * (time.perf_counter() - t))
    print(f"\n2. Traversal of 5 bases x 16 latents x 9 steps: decoded in {t_trav:.2f} s, measured in "
          f"{t_measure:.1f} s. Method toggle: first spearman {toggles[0]:.0f} ms (computes), then "
          f"{', '.join(f'{x:.0f}' for x in toggles[1:])} ms (slope's first computes)")
    codes = z[:300]
    metrics = state.dataset.metrics.iloc[:300][list(DIAGNOSTIC_METRICS)]
    import pandas as pd
    cdf = pd.DataFrame(codes, columns=[f"z{i}" for i in range(16)])
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        pc, mig = code_diagnostics(cdf, metrics)
        tv.codes_panel.show(pc, mig)
        runs.append(1000 * (time.perf_counter() - t))
    print(f"   Codes -> partial correlations + MIG + heatmap, 300 codes x 16: median {med(runs):.0f} ms "
          f"(target < 500 ms); MIG = {mig.score:.3f}")

    # 3. sampling
    t = time.perf_counter()
    imgs, _ = sample(dec, 1000, seed=0)
    t_sample = time.perf_counter() - t
    t = time.perf_counter()
    grid = traverse(dec, np.zeros((5, 16)), span=2.0, steps=9)
    t_grid = time.perf_counter() - t
    print(f"\n3. sample(1,000): {1000 * t_sample:.0f} ms; traverse(5 bases x 16 x 9 = {grid[..., 0, 0].size} "
          f"images): {1000 * t_grid:.0f} ms")


if __name__ == "__main__":
    main()
