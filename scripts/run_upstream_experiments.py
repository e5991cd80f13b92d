"""Run the original's experiments/ analysis steps on core through import aliases.

Usage::

    git --git-dir=/path/to/Morpho-MNIST.git archive HEAD | tar -x -C /tmp/mm
    python scripts/run_upstream_experiments.py /tmp/mm                       # on core
    python scripts/run_upstream_experiments.py /tmp/mm --original /tmp/sk   # and side by side with the
                                                                            # original analysis/ code

The original scripts are imported from the checkout, unchanged, with ``morphomnist`` (and its
``io``, ``measure``, ``morpho``, ``perturb``, ``skeleton``, ``util``) and ``analysis`` (and its ``mmd``,
``kernels``, ``correlations``, ``mig``) made aliases of the core modules in ``sys.modules``; their own
``experiments`` and ``models`` packages (torch) come from the checkout. What the scripts need that
is not here is replaced, and said so:

- trained checkpoints and a GPU: models built by the original's classes with seeded random weights
  (``torch.manual_seed``), on the CPU (``measure_samples.main`` calls ``trainer.cuda()``; this run
  makes ``Module.cuda`` return the module unchanged), saved and loaded by the original's
  ``models.save_checkpoint``/``load_checkpoint``. The original's training code does not run on
  today's torch (an in-place update breaks ``infogan.Trainer.step``'s backward pass), and a random
  InfoGAN's recognition head gives every digit the same category and binary codes, which makes the
  partial correlations singular (the original raises LinAlgError as core does). So the InfoGAN's
  recognition head (only it) is fitted here for a few hundred full-batch steps to the digits'
  labels (categorical code), standardised thickness and slant (continuous codes) and width/height
  above their medians (binary codes): an encoder with known, non-degenerate codes;
- the authors' data paths: the scripts' path constants point to a temporary directory, and
  ``pandas.read_csv`` of ``/vol/biomedic/.../t10k-morpho.csv`` and ``/data/morphomnist/metrics/...``
  reads the MNIST metrics given with ``--data`` (default: the bundled 5,000 real digits and their
  metrics) and the metrics ``measure_samples`` wrote.

Steps: ``experiments/diversity/measure_samples.py`` (``main`` for the three specs of its
``__main__``), ``experiments/diversity/mmd_test.py`` (run as ``__main__``),
``experiments/disentanglement/compute_mig.py`` and ``compute_pcorrs.py`` (``process`` on test digits and
on model samples, as their ``main`` after loading the model). With ``--original SK_PATH`` (a folder
holding scikit-learn, which the original mig imports) the same run is repeated with the original
``analysis`` package from the checkout instead of core's, and every number is compared.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MORPHOMNIST = ("io", "measure", "morpho", "perturb", "skeleton", "util")
ANALYSIS = ("mmd", "kernels", "correlations", "mig")
DIVERSITY_SPECS = ("VAE-64_plain", "GAN-64_plain", "GAN-2_plain")
INFOGAN_SPECS = ("InfoGAN-10c2g62n_plain", "InfoGAN-10c2g2b62n_plain")
COLS = ["length", "thickness", "slant", "width", "height"]


def alias(analysis: str) -> None:
    """``morphomnist[.X]`` -> ``core[.X]``; ``analysis[.X]`` -> ``core.analysis[.X]`` unless 'original'."""
    package = types.ModuleType("morphomnist")
    package.__path__ = []   # no files: every submodule comes from sys.modules
    sys.modules["morphomnist"] = package
    for name in MORPHOMNIST:
        module = importlib.import_module(f"core.{name}")
        sys.modules[f"morphomnist.{name}"] = module
        setattr(package, name, module)
    if analysis == "core":
        sys.modules["analysis"] = importlib.import_module("core.analysis")
        for name in ANALYSIS:
            sys.modules[f"analysis.{name}"] = importlib.import_module(f"core.analysis.{name}")


def _load_data(data: Path | None, n: int):
    """Real digits (N, 28, 28) uint8, their labels and metrics table (t10k-morpho.csv or the bundled one)."""
    import pandas as pd
    from core.io import load_idx

    folder, prefix = (ROOT / "assets" / "mnist-5k", "train") if data is None else (data, "t10k")
    images = load_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = load_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    csv = folder / f"{prefix}-morpho.csv"
    metrics = pd.read_csv(csv)
    keep = np.sort(np.random.RandomState(0).permutation(len(images))[:n])
    return images[keep], labels[keep].astype(np.int64), metrics.iloc[keep].reset_index(drop=True), csv


def _fit_recognition(gan, X, labels: np.ndarray, metrics, steps: int = 300) -> None:
    """Fit the InfoGAN's recognition head (discriminator frozen) to known codes of the digits X."""
    import torch
    from torch.nn import functional as F

    gan.eval()
    with torch.no_grad():
        _, hidden = gan.dis(X)
    cont = metrics[["thickness", "slant"]].to_numpy(np.float32)[:, :gan.cont_dim]
    cont = torch.from_numpy((cont - cont.mean(0)) / cont.std(0))
    wh = metrics[["width", "height"]].to_numpy()[:, :gan.bin_dim]
    binary = torch.from_numpy((wh > np.median(wh, axis=0)).astype(np.float32))
    cat = torch.from_numpy(labels % gan.cat_dim)
    opt = torch.optim.Adam(gan.rec.parameters(), lr=1e-2)
    gan.rec.train()
    for _ in range(steps):
        cat_logit, mean, _, bin_logit = gan.rec(hidden)
        loss = F.cross_entropy(cat_logit, cat) + F.mse_loss(mean, cont)
        if gan.bin_dim:
            loss = loss + F.binary_cross_entropy_with_logits(bin_logit, binary)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gan.eval()


def run(repo: Path, analysis: str, data: Path | None, n: int, n_samples: int, out_json: Path) -> None:
    sys.path.insert(0, str(repo))
    if analysis == "original" and not hasattr(np, "issubsctype"):   # numpy 2 removed it; the original mig calls it
        np.issubsctype = lambda x, t: issubclass(np.asarray(x).dtype.type, t)
    alias(analysis)
    import pandas as pd
    import torch

    import analysis as analysis_package
    where = Path(analysis_package.__path__[0]).resolve()
    print(f"analysis package: {where}")
    assert (where == ROOT / "core" / "analysis") == (analysis == "core"), where
    torch.nn.Module.cuda = lambda self, device=None: self   # CPU run of measure_samples.main
    results: dict = {}
    images, labels, metrics, csv = _load_data(data, n)
    tmp = Path(tempfile.mkdtemp(prefix="upstream-experiments-"))

    # --- experiments/diversity/measure_samples.py ------------------------------------------------
    import models
    from models import gan as gan_models
    from models import vae as vae_models
    ms = importlib.import_module("experiments.diversity.measure_samples")
    ms.CHECKPOINT_ROOT, ms.METRICS_ROOT = str(tmp / "checkpoints"), str(tmp / "metrics")
    for k, spec in enumerate(DIVERSITY_SPECS):
        torch.manual_seed(k)
        model_type, model_args, _ = importlib.import_module("experiments.spec_util").parse_setup_spec(spec)
        trainer = (vae_models.Trainer(vae_models.VAE(model_args), beta=4.) if model_type == "VAE"
                   else gan_models.Trainer(gan_models.GAN(model_args)))
        models.save_checkpoint(trainer, os.path.join(ms.CHECKPOINT_ROOT, spec), 0)
    with multiprocessing.Pool(2) as pool:
        for k, spec in enumerate(DIVERSITY_SPECS):
            torch.manual_seed(100 + k)
            ms.main(spec, n_samples, pool)
            table = pd.read_csv(os.path.join(ms.METRICS_ROOT, f"{spec}_metrics.csv"))
            results[f"measure_samples/{spec}"] = table[COLS].to_numpy().tolist()
            print(f"measure_samples {spec}: {len(table)} samples measured, "
                  f"{int(table[COLS].notna().all(axis=1).sum())} with all metrics")

    # --- experiments/diversity/mmd_test.py (as __main__) -------------------------------------------
    read_csv = pd.read_csv

    def redirected(path, *args, **kwargs):
        path = str(path)
        if path == "/vol/biomedic/users/dc315/mnist/plain/t10k-morpho.csv":
            path = str(csv)
        elif path.startswith("/data/morphomnist/metrics/"):
            path = os.path.join(ms.METRICS_ROOT, os.path.basename(path))
        return read_csv(path, *args, **kwargs)

    pd.read_csv = redirected
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(str(repo / "experiments" / "diversity" / "mmd_test.py"), run_name="__main__")
    finally:
        pd.read_csv = read_csv
    print("mmd_test.py printed:\n  " + buf.getvalue().strip().replace("\n", "\n  "))
    results["mmd_test/stdout"] = buf.getvalue()

    # --- experiments/disentanglement/compute_mig.py and compute_pcorrs.py ----------------------------
    from models import infogan
    cm = importlib.import_module("experiments.disentanglement.compute_mig")
    cp = importlib.import_module("experiments.disentanglement.compute_pcorrs")
    spec_util = importlib.import_module("experiments.spec_util")
    for spec in INFOGAN_SPECS:
        _, latent_dims, _ = spec_util.parse_setup_spec(spec)
        torch.manual_seed(7)
        gan = infogan.InfoGAN(*latent_dims)
        np.random.seed(3)
        idx = np.random.permutation(len(images))
        X = torch.from_numpy(images[idx]).float().unsqueeze(1) / 255.
        test_metrics = metrics.loc[idx]
        _fit_recognition(gan, X, labels[idx], test_metrics)
        out_dir = str(tmp / "results")
        os.makedirs(out_dir, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            score, mi, entropy = cm.compute_mig(gan, X, test_metrics, COLS)
            pcorr = cp.compute_partial_correlation(gan, X, test_metrics, COLS)
            cm.process(gan, X, test_metrics, COLS, out_dir, spec, "test")     # the script's whole step,
            cp.process(gan, X, test_metrics, COLS, out_dir, spec, "test")     # payload pickled as it does
        results[f"compute_mig/{spec}/test"] = [float(score), mi.tolist(), entropy.tolist()]
        results[f"compute_pcorrs/{spec}/test"] = pcorr.tolist()
        print(f"compute_mig {spec} on {len(images)} test digits: MIG = {score:.6f} ({type(score).__name__}); "
              f"compute_pcorrs: {pcorr.shape} partial correlations, max |r| = {np.abs(pcorr).max():.4f}")
        torch.manual_seed(8)
        X_ = gan(n_samples).detach()
        with multiprocessing.Pool(2) as pool:
            sample_metrics = cm.measure.measure_batch(X_.cpu().squeeze().numpy(), pool=pool)
        ok = sample_metrics[COLS].notna().all(axis=1).to_numpy().copy()
        keep = torch.from_numpy(ok)
        with contextlib.redirect_stdout(io.StringIO()):
            score, mi, entropy = cm.compute_mig(gan, X_[keep], sample_metrics[ok], COLS)
            try:
                pcorr = cp.compute_partial_correlation(gan, X_[keep], sample_metrics[ok], COLS)
                pc_text = f"max |r| = {np.abs(pcorr).max():.4f}"
                results[f"compute_pcorrs/{spec}/sample"] = pcorr.tolist()
            except np.linalg.LinAlgError as e:   # a code the encoder never varies on these samples
                pc_text = f"{type(e).__name__}: {e} (a code is constant on the random generator's samples)"
                results[f"compute_pcorrs/{spec}/sample"] = f"{type(e).__name__}: {e}"
        results[f"compute_mig/{spec}/sample"] = [float(score), mi.tolist(), entropy.tolist()]
        print(f"compute_mig {spec} on {int(ok.sum())} of {n_samples} random-generator samples: "
              f"MIG = {score:.6f}; compute_pcorrs: {pc_text}")
    print(f"written by the scripts: {sorted(os.listdir(tmp / 'results'))}")
    out_json.write_text(json.dumps(results))


def _max_diff(a, b) -> float:
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else float("inf")
    try:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    except ValueError:   # a ragged result such as [score, mi, entropy]: compare part by part
        return max(_max_diff(x, y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")
    if a.shape != b.shape:
        return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    return float(np.max(np.where(both_nan, 0.0, np.abs(a - b)), initial=0.0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a checkout of dccastro/Morpho-MNIST")
    parser.add_argument("--data", type=Path, help="folder with t10k-images-idx3-ubyte.gz and t10k-morpho.csv "
                        "(default: the bundled 5,000 digits)")
    parser.add_argument("-n", type=int, default=2000, help="test digits (default 2000)")
    parser.add_argument("--samples", type=int, default=200, help="model samples per model (default 200)")
    parser.add_argument("--original", type=Path, metavar="SK_PATH",
                        help="also run with the original analysis/ (SK_PATH: a folder holding scikit-learn)")
    parser.add_argument("--analysis", choices=("core", "original"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if not (repo / "experiments" / "diversity" / "mmd_test.py").is_file():
        parser.error(f"{repo} is not a Morpho-MNIST checkout (no experiments/diversity/mmd_test.py)")
    if args.analysis:   # one run, in this process
        run(repo, args.analysis, args.data, args.n, args.samples, args.out)
        return 0
    outputs = {}
    for which in ("core", "original") if args.original else ("core",):
        out = Path(tempfile.mkdtemp(prefix="upstream-experiments-")) / f"{which}.json"
        path = [str(ROOT)] + ([str(args.original)] if which == "original" else [])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        cmd = [sys.executable, __file__, str(repo), "--analysis", which, "--out", str(out), "-n", str(args.n),
               "--samples", str(args.samples)] + (["--data", str(args.data)] if args.data else [])
        print(f"=== analysis = {which}", flush=True)
        code = subprocess.run(cmd, env=env).returncode
        if code:
            print(f"run with analysis = {which} failed (exit {code})")
            return code
        outputs[which] = json.loads(out.read_text())
    if args.original:
        print("=== core vs the original analysis/ on the same inputs (largest absolute difference; "
              "measure_samples uses core.measure in both runs, a check that the inputs are the same)")
        for key in outputs["core"]:
            print(f"  {key:47s} {_max_diff(outputs['core'][key], outputs['original'][key]):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
