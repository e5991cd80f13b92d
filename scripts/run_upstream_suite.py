"""Run the original Morpho-MNIST test suite against ``core``, and print the upstream-parity figures.

Usage::

    git --git-dir=/path/to/Morpho-MNIST.git archive HEAD | tar -x -C /tmp/mm     # or any checkout
    python scripts/run_upstream_suite.py /tmp/mm                # the original's tests/ on core
    python scripts/run_upstream_suite.py /tmp/mm --figures 300  # core vs the original code, 300 digits

The first form makes ``morphomnist``, ``morphomnist.io``, ``.measure``, ``.morpho``, ``.perturb`` and
``.skeleton`` plain aliases of the ``core`` modules in ``sys.modules`` (no wrapper code: the objects the
tests get are core's own) and runs ``pytest REPO_DIR/tests`` from REPO_DIR, unchanged, with
``MORPHO_MNIST_MODE=upstream`` (``--mode released`` to run them on the released-mode defaults; the
original's test_set_thickness then fails by design: see docs/upstream.md). The original tests
call ``ndarray.ptp`` and ``np.alltrue``, which numpy 2 removed; when numpy lacks them the runner restores
both (``np.alltrue = np.all``; array arguments of the test functions become an ndarray subclass with a
``ptp`` method) and says so; ``--no-numpy-compat`` turns that off.

``--figures N`` imports the original package from REPO_DIR (in a subprocess, under its own name) and
prints, on N bundled real digits spread over all labels: how many perturbed digits are byte-identical
between core's upstream mode and the original for each of the seven perturbations (same
``np.random.seed`` before each call), and the mean thickness reached by SetThickness at targets 2, 4, 6
(original code + original measure_image vs core released and upstream modes). docs/upstream.md quotes it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("io", "measure", "morpho", "perturb", "skeleton")


def alias_core_as_morphomnist() -> None:
    """Make ``import morphomnist.X`` return ``core.X`` for the five modules of the original package."""
    import importlib

    package = types.ModuleType("morphomnist")
    package.__path__ = []  # a package with no files: every submodule comes from sys.modules
    sys.modules["morphomnist"] = package
    for name in MODULES:
        module = importlib.import_module(f"core.{name}")
        sys.modules[f"morphomnist.{name}"] = module
        setattr(package, name, module)


class _NumpyCompat:
    """pytest plugin: restore ``ndarray.ptp`` / ``np.alltrue`` (removed in numpy 2) for the original tests."""

    def __init__(self):
        import numpy as np

        class _Array(np.ndarray):
            def ptp(self, *args, **kwargs):
                return np.ptp(np.asarray(self), *args, **kwargs)

        self.np, self.array_type = np, _Array
        if not hasattr(np, "alltrue"):
            np.alltrue = np.all

    def pytest_pyfunc_call(self, pyfuncitem):
        for key, value in list(pyfuncitem.funcargs.items()):
            if type(value) is self.np.ndarray:
                pyfuncitem.funcargs[key] = value.view(self.array_type)
        return None  # let pytest call the test


def run_suite(repo: Path, pytest_args: list[str], numpy_compat: bool) -> int:
    import numpy as np
    import pytest

    sys.path.insert(0, str(ROOT))
    alias_core_as_morphomnist()
    plugins = []
    if numpy_compat and not hasattr(np.ndarray, "ptp"):
        print("note: numpy", np.__version__, "has no ndarray.ptp / np.alltrue (used by the original tests); "
              "restored for this run (--no-numpy-compat to see the raw result)")
        plugins.append(_NumpyCompat())
    os.chdir(repo)  # the original tests open tests/... relative to the checkout
    return int(pytest.main([str(repo / "tests"), "-p", "no:cacheprovider", "-q", *pytest_args], plugins=plugins))


_FIGURES = r'''
import sys
import numpy as np
repo, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [repo, root]
import morphomnist
assert morphomnist.__file__.startswith(repo), morphomnist.__file__
from morphomnist import measure as om, morpho as omo, perturb as op
from core import measure as cm, morpho as cmo, perturb as cp
from core.io import load_idx
images = load_idx(root + "/assets/mnist-5k/train-images-idx3-ubyte.gz")
digits = images[np.linspace(0, len(images) - 1, n).astype(int)]
cases = [("Thinning()", {}), ("Thickening()", {}), ("Swelling()", {}), ("Fracture()", {}),
         ("SetThickness(2.)", {}), ("SetThickness(4.)", {}), ("SetThickness(6.)", {}),
         ("SetSlant(-.4)", {}), ("SetWidth(12.)", {}), ("SetWidth(18.)", {})]
print(f"byte-identical perturbed digits vs the original ({n} bundled digits, all labels; "
      "np.random.seed(k) before digit k):")
print(f"  {'perturbation':18s} {'upstream':>9s} {'released':>9s}")
for expr, _ in cases:
    same = {"upstream": 0, "released": 0}
    for k, d in enumerate(digits):
        om_ = omo.ImageMorphology(d, scale=4)
        np.random.seed(k); a = om_.downscale(eval("op." + expr)(om_))
        for mode in same:
            cm_ = cmo.ImageMorphology(d, scale=4, mode=mode)
            np.random.seed(k); b = cm_.downscale(eval("cp." + expr)(cm_))
            same[mode] += bool(np.array_equal(a, b))
    print(f"  {expr:18s} {same['upstream']:5d}/{n} {same['released']:5d}/{n}", flush=True)
print("mean thickness reached by SetThickness (each measured by its own measure_image):")
for t in (2., 4., 6.):
    o = np.mean([om.measure_image(omo.ImageMorphology(d, scale=4).downscale(
        op.SetThickness(t)(omo.ImageMorphology(d, scale=4))), verbose=False).thickness for d in digits])
    r = np.mean([cm.measure_image(cp.perturb_image(d, cp.SetThickness(t))).thickness for d in digits])
    u = np.mean([cm.measure_image(cp.perturb_image(d, cp.SetThickness(t), mode="upstream"),
                                  mode="upstream").thickness for d in digits])
    print(f"  target {t:.0f}: original {o:.4f}  released {r:.4f} ({100 * (r / o - 1):+.2f}%)  "
          f"upstream {u:.4f} ({100 * (u / o - 1):+.2f}%)", flush=True)
'''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a checkout of dccastro/Morpho-MNIST (with tests/ and morphomnist/)")
    parser.add_argument("--figures", type=int, metavar="N", help="print parity figures on N bundled digits instead")
    parser.add_argument("--mode", choices=("upstream", "released"), default="upstream",
                        help="default mode of ImageMorphology for the run, via $MORPHO_MNIST_MODE (default: upstream, "
                             "the original's behaviour with today's scikit-image)")
    parser.add_argument("--no-numpy-compat", action="store_true", help="do not restore ndarray.ptp / np.alltrue")
    args, rest = parser.parse_known_args(argv)
    repo = args.repo.resolve()
    if not (repo / "tests").is_dir() or not (repo / "morphomnist").is_dir():
        parser.error(f"{repo} is not a Morpho-MNIST checkout (no tests/ or morphomnist/ folder)")
    if args.figures:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), str(ROOT)]))
        return subprocess.run([sys.executable, "-c", _FIGURES, str(repo), str(ROOT), str(args.figures)],
                              env=env).returncode
    os.environ["MORPHO_MNIST_MODE"] = args.mode
    print(f"MORPHO_MNIST_MODE={args.mode}: core.morpho.ImageMorphology defaults to mode={args.mode!r}")
    return run_suite(repo, rest, not args.no_numpy_compat)


if __name__ == "__main__":
    sys.exit(main())
