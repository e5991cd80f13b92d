"""Speed (and power) of the model diagnostics, side by side in one run, on the bundled real digits.

Prints:
- sampling: digits/s of core.decoders.sample with a PCA decoder (fitted here on the bundled 5,000
  MNIST digits) as a numpy function, an ONNX file and a torch module (when installed), and the cost of
  the Decoder wrapper over calling the bare function;
- traversal: decoding a (B, L, S) grid, measuring it, and traversal_effects on its per-step table
  (multi-base, both methods), next to the former per-latent loop (ratio);
- MIG: core.analysis.mig for 300 codes x 5 metrics and 5,000 codes x 300 latents, next to the former
  per-pair loop (ratio);
- comparison: compare_report (quadratic test with adaptive permutations, linear test, per-label
  tests) and writing its HTML and JSON reports;
- with --power: rejection rate at 1% of the linear and quadratic tests on real digits whose thickness
  is scaled by 1.1 (n per side 200 / 500 / 1,000).

    python benchmarks/bench_diagnostics.py [--power] [--repeats 3]

Machines here are shared: read ratios measured in the same run, not absolute times.
"""
from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis import DIAGNOSTIC_METRICS, QUADRATIC_MAX_N, compare_report, measure_traversal, mig, mmd_test, traversal_effects
from core.decoders import as_decoder, sample, traversal_values, traverse
from core.io import load_idx

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"


def best(fn, repeats):
    """Best wall time of ``repeats`` runs (s) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def timed(fn):
    """(wall s, CPU s of this process, result) of one run."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def fit_pca(d=16):
    x = load_idx(ASSETS / "train-images-idx3-ubyte.gz").reshape(5000, -1).astype(np.float64) / 255
    mu = x.mean(0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    w = vt[:d] * (s[:d] / np.sqrt(len(x) - 1))[:, None]
    return mu.astype(np.float32), w.astype(np.float32)


def onnx_file(mu, w, folder):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = w.shape[0]
    g = helper.make_graph(
        [helper.make_node("MatMul", ["z", "W"], ["zw"]), helper.make_node("Add", ["zw", "mu"], ["lin"]),
         helper.make_node("Clip", ["lin", "lo", "hi"], ["y"])], "pca",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 784])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(mu, "mu"),
                     numpy_helper.from_array(np.array(0, np.float32), "lo"),
                     numpy_helper.from_array(np.array(1, np.float32), "hi")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = Path(folder) / "pca.onnx"
    onnx.save(m, str(path))
    return path


def former_effects(per_step, metrics):
    """The former traversal_effects loop (one latent x metric at a time, scipy.spearmanr), for the ratio."""
    from scipy import stats

    out = {}
    for lat in sorted(per_step.index.get_level_values("latent").unique()):
        block = per_step.xs(lat, level="latent")
        for m in metrics:
            v = block[m].to_numpy(float)
            pos = block.index.get_level_values("step").to_numpy(float)
            ok = np.isfinite(v)
            out[lat, m] = stats.spearmanr(pos[ok], v[ok]).statistic if np.ptp(v[ok]) > 0 else 0.0
    return out


def former_mig(codes, factors, bins=20):
    """The former per-pair MIG (np.unique per pair), for the ratio."""
    from core.analysis import discretise

    def mi(a, b):
        _, ai = np.unique(a, return_inverse=True)
        _, bi = np.unique(b, return_inverse=True)
        joint = np.zeros((ai.max() + 1, bi.max() + 1))
        np.add.at(joint, (ai, bi), 1.0)
        p = joint / joint.sum()
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return (p[nz] * np.log(p[nz] / (px @ py)[nz])).sum()

    c, f = discretise(codes, bins), discretise(np.asarray(factors, float), bins)
    return np.array([[mi(c[:, i], f[:, k]) for k in range(f.shape[1])] for i in range(c.shape[1])])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--power", action="store_true", help="also estimate the tests' power (a few minutes)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    r = args.repeats
    ref = pd.read_csv(ASSETS / "train-morpho.csv")
    labels = load_idx(ASSETS / "train-labels-idx1-ubyte.gz").astype(np.int64)
    mu, w = fit_pca(16)
    bare = lambda z: np.clip(mu + z @ w, 0, 1)  # noqa: E731
    n = 10_000
    z = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)

    print("== sampling: 10,000 digits from a PCA-16 decoder (batch 256)")
    t_bare, _ = best(lambda: [bare(z[i:i + 256]) for i in range(0, n, 256)], r)
    rows = [("bare numpy function (no wrapper)", t_bare)]
    t_np, _ = best(lambda: sample(as_decoder(bare, 16), n, seed=0), r)
    rows.append(("sample(numpy function)", t_np))
    with tempfile.TemporaryDirectory() as tmp:
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
            path = onnx_file(mu, w, tmp)
            t_onnx, _ = best(lambda: sample(as_decoder(path), n, seed=0), r)
            rows.append(("sample(ONNX file, onnxruntime)", t_onnx))
        if importlib.util.find_spec("torch"):
            import torch
            lin = torch.nn.Linear(16, 784)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(mu))
            model = torch.nn.Sequential(lin, torch.nn.Hardtanh(0, 1))
            t_torch, _ = best(lambda: sample(as_decoder(model), n, seed=0), r)
            rows.append(("sample(torch module)", t_torch))
    for name, t in rows:
        print(f"  {name:<36} {t * 1e3:8.1f} ms  {n / t:>10,.0f} digits/s  x{t / t_bare:.2f} of bare")

    print("\n== traversal: 10 bases x 16 latents x 9 steps = 1,440 digits")
    dec = as_decoder(bare, 16)
    base = np.random.default_rng(1).standard_normal((10, 16))
    t_dec, grid = best(lambda: traverse(dec, base, span=2.0, steps=9), r)
    t_meas, per_step = best(lambda: measure_traversal(grid, progress=False), 1)
    vals = traversal_values(2.0, 9)
    t_eff, eff = best(lambda: traversal_effects(per_step, values=vals, reference_metrics=ref), r)
    t_sw, _ = best(lambda: eff.with_method("spearman"), r)
    one = per_step.xs(0, level="base")
    t_old, _ = best(lambda: former_effects(one, DIAGNOSTIC_METRICS), r)
    t_new1, _ = best(lambda: traversal_effects(one, method="spearman"), r)
    print(f"  decode grid                 {t_dec * 1e3:8.1f} ms")
    print(f"  measure grid                {t_meas * 1e3:8.1f} ms  ({len(per_step) / t_meas:,.0f} digits/s)")
    print(f"  traversal_effects (10 bases, both methods, CIs)  {t_eff * 1e3:8.1f} ms")
    print(f"  switch method (with_method)                      {t_sw * 1e3:8.2f} ms")
    print(f"  one base: former loop {t_old * 1e3:.1f} ms vs traversal_effects {t_new1 * 1e3:.1f} ms "
          f"(x{t_old / t_new1:.1f} faster)")
    print(f"  strongest: {eff.strongest_text()}")

    print("\n== MIG")
    m5 = ref[list(DIAGNOSTIC_METRICS)]
    rng = np.random.default_rng(2)
    for nrow, ncode in ((300, 16), (5000, 300)):
        codes = rng.standard_normal((nrow, ncode))
        f = m5.iloc[:nrow]
        t_new, res = best(lambda: mig(codes, f), r)
        t_old, mi_old = best(lambda: former_mig(codes, f), 1)
        agree = np.abs(res.mutual_info.to_numpy() - mi_old).max()
        print(f"  {nrow:>5} rows x {ncode:>3} codes: mig {t_new * 1e3:8.1f} ms vs former per-pair loop "
              f"{t_old * 1e3:8.1f} ms (x{t_old / t_new:.1f} faster; max |ΔMI| {agree:.1e})")

    print("\n== comparison report")
    smp, _ = sample(dec, 1000, seed=3)
    from core.measure import measure_batch
    sm = measure_batch(smp, progress=False)
    t_rep, c_rep, rep = timed(lambda: compare_report(sm, ref))
    q = rep.mmd_quadratic
    t_999, c_999, _ = timed(lambda: compare_report(sm, ref, n_permutations=999))
    t_lab, c_lab, rep_l = timed(lambda: compare_report(ref.iloc[::5], ref.drop(index=ref.index[::5]),
                                                       sample_labels=labels[::5],
                                                       reference_labels=np.delete(labels, np.arange(0, 5000, 5))))
    print(f"  1,000 PCA samples vs 5,000 digits: {t_rep:.2f} s wall, {c_rep:.2f} s CPU ({q.n_x} vs {q.n_y} rows, "
          f"{q.n_permutations:,} permutations; verdict: {rep.mmd.test_name}, {rep.mmd.p_text}); "
          f"with 999 permutations {t_999:.2f} s wall, {c_999:.2f} s CPU (x{t_rep / t_999:.1f})")
    print(f"  1,000 vs 4,000 real digits with per-label tests: {t_lab:.2f} s wall, {c_lab:.2f} s CPU "
          f"(verdict {rep_l.mmd.test_name}, {rep_l.mmd.p_text}; quadratic {rep_l.mmd_quadratic.n_permutations:,} "
          f"permutations)")
    with tempfile.TemporaryDirectory() as tmp:
        t_html, _ = best(lambda: rep_l.to_html(Path(tmp) / "r.html"), r)
        t_json, _ = best(lambda: rep_l.to_json(Path(tmp) / "r.json"), r)
        t_thtml, _ = best(lambda: eff.to_html(Path(tmp) / "t.html"), r)
        size = (Path(tmp) / "r.html").stat().st_size
    print(f"  to_html {t_html * 1e3:.0f} ms ({size / 1024:.0f} kB)   to_json {t_json * 1e3:.0f} ms   "
          f"traversal to_html {t_thtml * 1e3:.0f} ms")

    if args.power:
        print("\n== power at the 1% level: real digits vs real digits with thickness x 1.1 (20 trials)")
        m = ref[list(DIAGNOSTIC_METRICS)]
        for n_side in (200, 500, 1000, 2500):
            hits_l = hits_q = 0
            for trial in range(20):
                idx = np.random.default_rng(100 + trial).permutation(5000)
                a = m.iloc[idx[:n_side]].copy()
                a["thickness"] *= 1.1
                b = m.iloc[idx[n_side:2 * n_side]]
                hits_l += mmd_test(a, b, linear=True, seed=trial).p_value < 0.01
                # the quadratic test as compare_report runs it: at most QUADRATIC_MAX_N rows per side
                k = min(n_side, QUADRATIC_MAX_N)
                hits_q += mmd_test(a.iloc[:k], b.iloc[:k], linear=False, seed=trial,
                                   n_permutations=199).p_value < 0.01
            print(f"  n = {n_side:>5} per side: linear (all rows) {hits_l / 20:.0%}   quadratic "
                  f"({min(n_side, QUADRATIC_MAX_N)} rows per side) {hits_q / 20:.0%}")


if __name__ == "__main__":
    main()
