"""Record the original ``analysis`` modules' and ``morphomnist.util``'s outputs on fixed inputs, once.

Usage::

    git --git-dir=/path/to/Morpho-MNIST.git archive HEAD | tar -x -C /tmp/mm
    pip install --target /tmp/sk scikit-learn      # the original's mig needs it; matplotlib for util
    PYTHONPATH=/tmp/sk python scripts/record_upstream_analysis.py /tmp/mm

It imports the original ``analysis`` package and ``morphomnist.util`` from the checkout (their own
names; nothing of core is called to compute a result), calls each public function on inputs made
here from the bundled real morphometrics (``assets/mnist-5k/train-morpho.csv``) and seeded random
arrays, and writes ``tests/data/analysis/upstream_analysis.npz`` (inputs and outputs) and
``upstream_analysis.json`` (the case table: function, arguments, the type of each result, the text
``mmd.test`` prints). ``tests/test_analysis_dropin.py`` replays the table on core. numpy 2 removed
``np.issubsctype``, which the original's mig calls; the script restores it (``issubclass`` of the
dtype's scalar type, its numpy 1 meaning) and says so.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "analysis"
METRICS = ["length", "thickness", "slant", "width", "height"]


def _inputs() -> dict:
    """Named input arrays (all float64 unless said): real metrics and seeded random tables."""
    table = pd.read_csv(ROOT / "assets" / "mnist-5k" / "train-morpho.csv")
    metrics = table[METRICS].to_numpy(np.float64)
    labels = np.repeat(np.arange(10), 500)   # the bundled sample is 500 digits of each label, in order
    rng = np.random.default_rng(20261205)
    four, nine = metrics[labels == 4], metrics[labels == 9]
    pick = rng.permutation(len(metrics))[:600]
    m = metrics[pick]
    lab = labels[pick]
    codes = np.column_stack([
        lab,                                                     # a categorical code (digit label)
        m[:, 0] + rng.normal(0, 5, len(m)),                     # length, noisy
        m[:, 1] * 2 + rng.normal(0, .5, len(m)),                # thickness, noisy
        rng.normal(size=len(m)),                                 # noise
        m[:, 3] > np.median(m[:, 3]),                            # a binary code
    ]).astype(np.float64)
    return {
        "x7": rng.normal(size=(7, 5)), "y6": rng.normal(size=(6, 5)) + .3,
        "s_vec": np.array([.5, 1., 2., 1.5, .8]),
        "s_mat": np.cov(rng.normal(size=(40, 5)), rowvar=False),
        "four": four[:300], "nine": nine[:300], "even": metrics[0:1000:2], "odd": metrics[1:1000:2],
        "four_small": four[:61], "nine_small": nine[:57],
        "m600": m, "codes": codes, "codes_int": np.column_stack([lab, lab % 3]).astype(np.int64),
        "m600_const": np.column_stack([m[:, :2], np.full(len(m), 2.5)]),
        "edges": np.linspace(-3., 60., 12),
        "v1": m[:, 0], "v2": m[:, 4],
    }


def _cases() -> list:
    """(id, module, function, args, kwargs, seed_before). '@name': an input array; '&mod.f': a function."""
    c = []
    add = lambda *case: c.append(case)  # noqa: E731
    for s in (1., 1.7, "@s_vec", "@s_mat"):
        tag = s if isinstance(s, float) else s[1:]
        add(f"product_{tag}", "kernels", "product", ["@x7", "@x7"], {"scale": s}, None)
        add(f"product_pairs_{tag}", "kernels", "product", ["@x7_r", "@y6_c"], {"scale": s}, None)
        add(f"sq_dist_{tag}", "kernels", "sq_dist", ["@x7_r", "@y6_c", s], {}, None)
        add(f"exp_quad_{tag}", "kernels", "exp_quad", ["@x7_r", "@y6_c"], {"scale": s}, None)
        add(f"rat_quad_{tag}", "kernels", "rat_quad", ["@x7_r", "@y6_c", 1.5], {"scale": s}, None)
        add(f"polynomial_{tag}", "kernels", "polynomial", ["@x7_r", "@y6_c", 3], {"scale": s}, None)
    for t in ("median", "rms", "std", "cov"):
        for f in ("scott", "silverman", .7):
            add(f"bandwidth_{t}_{f}", "kernels", "bandwidth", ["@four"], {"type": t, "factor": f}, None)
            add(f"bandwidth2_{t}_{f}", "kernels", "bandwidth", ["@four", "@nine"], {"type": t, "factor": f}, None)
        add(f"bandwidth_sub_{t}", "kernels", "bandwidth", ["@four", "@nine"], {"type": t, "subsample": .5}, 7)
    add("bandwidth_default", "kernels", "bandwidth", ["@even"], {}, None)
    for lin in (True, False):
        for unb in (True, False):
            for ch in (None, 64):
                for seed in (123, None):
                    key = f"mmd2_{'lin' if lin else 'quad'}_{'u' if unb else 'b'}_{ch}_{seed}"
                    add(key, "mmd", "mmd2", ["@four", "@nine"],
                        {"linear": lin, "unbiased": unb, "chunksize": ch, "seed": seed, "scale": "@bw_std"},
                        None if seed is not None else 5)
    add("mmd2_same", "mmd", "mmd2", ["@even", "@odd"], {"linear": False, "seed": 1, "scale": "@bw_std"}, None)
    add("mmd2_cov", "mmd", "mmd2", ["@four_small", "@nine_small"],
        {"linear": False, "chunksize": 20, "seed": 3, "scale": "@bw_cov"}, None)
    add("mmd2_ratquad", "mmd", "mmd2", ["@four_small", "@nine_small", "&kernels.rat_quad", False, True, 16, 9],
        {"exponent": 2., "scale": "@bw_std"}, None)
    add("mmd2_positional", "mmd", "mmd2", ["@four", "@nine", "&kernels.exp_quad", True, True, 50, 11],
        {"scale": 2.}, None)
    add("mmd2_odd_m", "mmd", "mmd2", ["@four_small", "@nine_small"], {"seed": 4, "scale": "@bw_std"}, None)
    add("mmd2_default_kernel", "mmd", "mmd2", ["@four", "@nine"], {"seed": 2}, None)
    for lin in (True, False):
        for unb in (True, False):
            add(f"test_{lin}_{unb}", "mmd", "test", ["@four", "@nine"],
                {"linear": lin, "unbiased": unb, "seed": 123456, "scale": "@bw_std"}, None)
    add("test_same_linear", "mmd", "test", ["@even", "@odd"], {"linear": True, "seed": 0, "scale": "@bw_std"}, None)
    add("asymptotic", "mmd", "asymptotic_linear_test", [0.0123, 0.0045], {}, None)
    add("asymptotic_neg", "mmd", "asymptotic_linear_test", [-0.002, 0.0031], {}, None)
    for a in (.05, .01):
        for m in (100, 5000):
            add(f"bound_b_{a}_{m}", "mmd", "bound_threshold_biased", [a, m], {}, None)
            add(f"bound_u_{a}_{m}", "mmd", "bound_threshold_unbiased", [a, m, 2.], {}, None)
    add("bound_b_K", "mmd", "bound_threshold_biased", [.01, 300], {"K": .5}, None)
    add("correlation_1d", "correlations", "correlation", ["@v1", "@v2"], {}, None)
    add("correlation_2d_1d", "correlations", "correlation", ["@m600", "@v1"], {}, None)
    add("correlation_2d_2d", "correlations", "correlation", ["@codes", "@m600"], {}, None)
    add("partial_correlations", "correlations", "partial_correlations", ["@codes", "@v2"], {}, None)
    add("pcm_all", "correlations", "partial_correlation_matrix", ["@codes", "@m600"], {}, None)
    add("pcm_which_list", "correlations", "partial_correlation_matrix", ["@codes", "@m600"], {"which": [1, 2]}, None)
    add("pcm_which_int", "correlations", "partial_correlation_matrix", ["@codes", "@m600", 1], {}, None)
    add("pcm_1d", "correlations", "partial_correlation_matrix", ["@codes", "@v1"], {"which": [0, 4]}, None)
    add("mig_default", "mig", "mig", ["@codes", "@m600"], {}, None)
    add("mig_flags", "mig", "mig", ["@codes", "@m600"],
        {"discretize_codes": [False, True, True, True, False], "bins": "auto"}, None)
    add("mig_bins10", "mig", "mig", ["@codes", "@m600", [False, True, True, True, False], None, 10], {}, None)
    add("mig_edges", "mig", "mig", ["@codes", "@m600"], {"discretize_codes": True, "bins": "@edges"}, None)
    add("mig_int_codes", "mig", "mig", ["@codes_int", "@m600"], {}, None)
    add("mig_int_factors", "mig", "mig", ["@codes", "@codes_int"], {"discretize_codes": True}, None)
    add("mig_factor_flags", "mig", "mig", ["@codes", "@m600"],
        {"discretize_codes": True, "discretize_factors": [True, True, False, True, True], "bins": 8}, None)
    add("mig_zero_entropy", "mig", "mig", ["@codes", "@m600_const"], {"discretize_codes": True}, None)
    return c


def _resolve(value, arrays, modules):
    if isinstance(value, str) and value.startswith("@"):
        return arrays[value[1:]]
    if isinstance(value, str) and value.startswith("&"):
        mod, name = value[1:].split(".")
        return getattr(modules[mod], name)
    if isinstance(value, list):
        return [_resolve(v, arrays, modules) for v in value]
    return value


def _type_name(v) -> str:
    if isinstance(v, np.ndarray):
        return "ndarray"
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def record(repo: Path) -> None:
    sys.path.insert(0, str(repo))
    if not hasattr(np, "issubsctype"):
        print(f"note: numpy {np.__version__} has no np.issubsctype (used by the original's mig); restored "
              "as issubclass(np.asarray(x).dtype.type, t)")
        np.issubsctype = lambda x, t: issubclass(np.asarray(x).dtype.type, t)
    import matplotlib
    matplotlib.use("Agg")
    from analysis import correlations, kernels, mig, mmd
    from morphomnist import util

    for mod in (correlations, kernels, mig, mmd, util):
        assert mod.__file__.startswith(str(repo)), mod.__file__
    modules = {"kernels": kernels, "mmd": mmd, "correlations": correlations, "mig": mig}
    arrays = _inputs()
    arrays["x7_r"] = arrays["x7"][:, None]
    arrays["y6_c"] = arrays["y6"][None, :]
    arrays["bw_std"] = kernels.bandwidth(arrays["four"], arrays["nine"], type="std")
    arrays["bw_cov"] = kernels.bandwidth(arrays["four_small"], arrays["nine_small"], type="cov")
    table, outputs = [], {}
    for cid, mod, func, args, kwargs, seed in _cases():
        if seed is not None:
            np.random.seed(seed)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            result = getattr(modules[mod], func)(*_resolve(args, arrays, modules),
                                                 **{k: _resolve(v, arrays, modules) for k, v in kwargs.items()})
        parts = list(result) if isinstance(result, tuple) else [result]
        for k, part in enumerate(parts):
            outputs[f"out__{cid}__{k}"] = np.asarray(part)
        table.append({"id": cid, "module": mod, "function": func, "args": args, "kwargs": kwargs,
                      "seed_before": seed, "tuple": isinstance(result, tuple),
                      "types": [_type_name(p) for p in parts], "stdout": buf.getvalue()})
    # util: pixels of the original's drawings (Agg, fixed size and dpi)
    import matplotlib.pyplot as plt
    digits = _digits()
    arrays["digits"] = digits
    fig, axs = util.plot_grid(digits[:5], nrow=2, figsize=(3, 2), dpi=50)
    outputs["out__util__grid"] = _pixels(fig)
    table.append({"id": "util_grid", "axs_shape": list(axs.shape),
                  "visible": [bool(a.get_visible()) for a in axs.flat]})
    fig = plt.figure(figsize=(2, 2), dpi=56)
    ax = fig.add_axes([0, 0, 1, 1])
    util.plot_digit(digits[5], ax=ax, title="five")
    util.plot_ellipse(13.5, 14., .6, 9., 3., ax=ax, fill=False, color="tab:red", lw=2)
    util.plot_parallelogram([20, 16], [80, 16], [64, 96], [4, 96], scale=.25, ax=ax, color="tab:blue")
    outputs["out__util__overlay"] = _pixels(fig)
    plt.close("all")
    meta = {"source": f"dccastro/Morpho-MNIST analysis/ and morphomnist/util.py, run from {repo.name}",
            "numpy": np.__version__, "matplotlib": matplotlib.__version__, "cases": table}
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "upstream_analysis.npz", **{f"in__{k}": v for k, v in arrays.items()}, **outputs)
    (OUT / "upstream_analysis.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(table)} cases recorded in {OUT}")


def _digits() -> np.ndarray:
    import gzip

    with gzip.open(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return raw[[0, 600, 1100, 1700, 2300, 2600]].copy()   # labels 0, 1, 2, 3, 4, 5


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a checkout of dccastro/Morpho-MNIST (with analysis/)")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if not (repo / "analysis" / "mmd.py").is_file():
        parser.error(f"{repo} is not a Morpho-MNIST checkout (no analysis/mmd.py)")
    record(repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
