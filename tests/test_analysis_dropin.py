"""core.analysis.{mmd,kernels,correlations,mig} and core.util as drop-ins for the original modules.

Names and signatures are pinned against a table written here (from the original's source at commit
3a20ed3). Results are pinned against the original's outputs on fixed real and seeded inputs,
recorded once by ``scripts/record_upstream_analysis.py`` from the original checkout
(tests/data/analysis/upstream_analysis.{npz,json}): values to 1e-12, the type of every result
(numpy scalar, Python float, ndarray and its dtype) and the text ``mmd.test`` prints, exactly.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import core.analysis
from core.analysis import correlations, kernels, mmd
from core.analysis import mig as mig_module

DATA = Path(__file__).parent / "data" / "analysis"
ROOT = Path(__file__).resolve().parents[1]

P, K, V = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD
VP = inspect.Parameter.VAR_POSITIONAL
_ = inspect.Parameter.empty
EXP_QUAD = object()   # stands for "the module's own kernels.exp_quad"

# (module, function): [(parameter, kind, default)], read off the original analysis/*.py and
# morphomnist/util.py at 3a20ed3.
SIGNATURES = {
    ("core.analysis.mmd", "mmd2"): [("x", P, _), ("y", P, _), ("kernel", P, EXP_QUAD), ("linear", P, True),
                                    ("unbiased", P, True), ("chunksize", P, None), ("seed", P, None),
                                    ("kwargs", V, _)],
    ("core.analysis.mmd", "test"): [("x", P, _), ("y", P, _), ("kernel", P, EXP_QUAD), ("linear", P, False),
                                    ("unbiased", P, True), ("chunksize", P, None), ("seed", P, None),
                                    ("kwargs", V, _)],
    ("core.analysis.mmd", "asymptotic_linear_test"): [("mean", P, _), ("sem", P, _)],
    ("core.analysis.mmd", "bound_threshold_biased"): [("alpha", P, _), ("m", P, _), ("K", P, 1.)],
    ("core.analysis.mmd", "bound_threshold_unbiased"): [("alpha", P, _), ("m", P, _), ("K", P, 1.)],
    ("core.analysis.kernels", "product"): [("x", P, _), ("y", P, _), ("scale", P, 1.)],
    ("core.analysis.kernels", "sq_dist"): [("x", P, _), ("y", P, _), ("scale", P, 1.)],
    ("core.analysis.kernels", "exp_quad"): [("x", P, _), ("y", P, _), ("scale", P, 1.)],
    ("core.analysis.kernels", "rat_quad"): [("x", P, _), ("y", P, _), ("exponent", P, _), ("scale", P, 1.)],
    ("core.analysis.kernels", "polynomial"): [("x", P, _), ("y", P, _), ("power", P, _), ("scale", P, 1.)],
    ("core.analysis.kernels", "bandwidth"): [("x", VP, _), ("type", K, "cov"), ("factor", K, "scott"),
                                             ("subsample", K, None)],
    ("core.analysis.correlations", "correlation"): [("x", P, _), ("y", P, _)],
    ("core.analysis.correlations", "partial_correlations"): [("ivs", P, _), ("dv", P, _)],
    ("core.analysis.correlations", "partial_correlation_matrix"): [("ivs", P, _), ("dvs", P, _),
                                                                   ("which", P, None)],
    ("core.analysis.mig", "mig"): [("codes", P, _), ("factors", P, _), ("discretize_codes", P, None),
                                   ("discretize_factors", P, None), ("bins", P, 20)],
    ("core.util", "plot_digit"): [("img", P, _), ("ax", P, None), ("title", P, None), ("kwargs", V, _)],
    ("core.util", "plot_grid"): [("imgs", P, _), ("nrow", P, None), ("digit_kw", P, None), ("kwargs", V, _)],
    ("core.util", "plot_ellipse"): [("x", P, _), ("y", P, _), ("angle", P, _), ("major", P, _), ("minor", P, _),
                                    ("ax", P, None), ("kwargs", V, _)],
    ("core.util", "plot_parallelogram"): [("top_left", P, _), ("top_right", P, _), ("bottom_right", P, _),
                                          ("bottom_left", P, _), ("scale", P, 1.), ("ax", P, None),
                                          ("kwargs", V, _)],
}
# Every public function of the original modules (names without a leading underscore that are
# functions defined there), so that a missing one fails here, not in a user's script.
ORIGINAL_PUBLIC = {
    "core.analysis.mmd": {"mmd2", "test", "asymptotic_linear_test", "bound_threshold_biased",
                          "bound_threshold_unbiased"},
    "core.analysis.kernels": {"product", "sq_dist", "exp_quad", "rat_quad", "polynomial", "bandwidth", "KernelFunc"},
    "core.analysis.correlations": {"correlation", "partial_correlations", "partial_correlation_matrix"},
    "core.analysis.mig": {"mig"},
    "core.util": {"plot_digit", "plot_grid", "plot_ellipse", "plot_parallelogram"},
}


@pytest.mark.parametrize("module, name", sorted(SIGNATURES))
def test_signature_matches_the_original(module, name):
    func = getattr(importlib.import_module(module), name)
    params = list(inspect.signature(func).parameters.values())
    expected = SIGNATURES[(module, name)]
    assert [p.name for p in params] == [e[0] for e in expected]
    for p, (pname, kind, default) in zip(params, expected):
        assert p.kind == kind, pname
        if default is EXP_QUAD:
            assert p.default is kernels.exp_quad
        elif default is _:
            assert p.default is _, pname
        else:
            assert p.default == default and type(p.default) is type(default), pname


@pytest.mark.parametrize("module", sorted(ORIGINAL_PUBLIC))
def test_every_public_name_of_the_original_is_there(module):
    mod = importlib.import_module(module)
    missing = [n for n in ORIGINAL_PUBLIC[module] if not hasattr(mod, n)]
    assert not missing


def _recorded():
    meta = json.loads((DATA / "upstream_analysis.json").read_text())
    with np.load(DATA / "upstream_analysis.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


META, ARRAYS = _recorded()
CASES = [c for c in META["cases"] if "function" in c]
MODULES = {"kernels": kernels, "mmd": mmd, "correlations": correlations, "mig": mig_module}


def _recorder():
    """The recording script, for its case-table decoding (it defines the format; it needs no checkout)."""
    spec = importlib.util.spec_from_file_location("record_upstream_analysis",
                                                  ROOT / "scripts" / "record_upstream_analysis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()
INPUTS = {k[len("in__"):]: v for k, v in ARRAYS.items() if k.startswith("in__")}
_type_name = RECORDER._type_name


def _resolve(value):
    return RECORDER._resolve(value, INPUTS, MODULES)


def test_the_recording_covers_every_function():
    called = {(c["module"], c["function"]) for c in CASES}
    for module, names in ORIGINAL_PUBLIC.items():
        if module.startswith("core.analysis."):
            short = module.rsplit(".", 1)[1]
            assert {(short, n) for n in names if n != "KernelFunc"} <= called
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_results_match_the_original(case):
    if case["seed_before"] is not None:   # the original drew from numpy's global state here
        np.random.seed(case["seed_before"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), np.errstate(invalid="ignore", divide="ignore"):
        result = getattr(MODULES[case["module"]], case["function"])(
            *_resolve(case["args"]), **{k: _resolve(v) for k, v in case["kwargs"].items()})
    assert isinstance(result, tuple) == case["tuple"]
    parts = list(result) if case["tuple"] else [result]
    assert [_type_name(p) for p in parts] == case["types"]
    assert out.getvalue() == case["stdout"]
    for k, part in enumerate(parts):
        expected = ARRAYS[f"out__{case['id']}__{k}"]
        got = np.asarray(part)
        assert got.shape == expected.shape and got.dtype == expected.dtype, (k, got.shape, got.dtype)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_mmd2_seed_none_draws_from_the_global_state_like_the_original():
    x, y = ARRAYS["in__four"], ARRAYS["in__nine"]
    np.random.seed(5)
    first = mmd.mmd2(x, y, scale=ARRAYS["in__bw_std"])
    second = mmd.mmd2(x, y, scale=ARRAYS["in__bw_std"])      # state moved on: other pairs
    np.random.seed(5)
    assert mmd.mmd2(x, y, scale=ARRAYS["in__bw_std"]) == first
    assert second != first


def test_mmd2_refuses_what_it_cannot_compute():
    x = np.zeros((1, 2))
    with pytest.raises(ValueError, match="at least 2 observations"):
        mmd.mmd2(x, x)
    with pytest.raises(ValueError, match="chunksize"):
        mmd.mmd2(np.ones((10, 2)), np.ones((10, 2)), chunksize=0)


def test_mig_is_both_the_original_module_and_the_project_function():
    """``from analysis import mig; mig.mig(...)`` and ``from core.analysis import mig; mig(...)``."""
    assert core.analysis.mig is mig_module is sys.modules["core.analysis.mig"]
    codes, metrics = ARRAYS["in__codes"], ARRAYS["in__m600"]
    score, mi, entropy = mig_module.mig(codes, metrics)
    result = core.analysis.mig(codes, metrics)          # the project's: a labelled MIGResult
    assert isinstance(result, core.analysis.MIGResult)
    assert result.mutual_info.shape == mi.shape == (5, 5)
    # Same data, two binning rules: the project bins every code (binning='default'); both agree when
    # told to bin the same way.
    same = core.analysis.mig(codes, metrics, binning="default")
    assert same.score == pytest.approx(mig_module.mig(codes, metrics, discretize_codes=True)[0], abs=1e-12)
    assert np.isfinite(score) and entropy.shape == (5,)


def test_import_order_does_not_change_what_mig_is(tmp_path):
    """Importing the submodule first, or the package first, gives the same callable module."""
    script = textwrap.dedent("""
        import sys, numpy as np
        import core.analysis.mig as m
        from core.analysis import mig
        assert mig is m
        r = mig(np.random.default_rng(0).normal(size=(50, 3)), np.random.default_rng(1).normal(size=(50, 2)))
        assert type(r).__name__ == "MIGResult", r
        sys.modules["analysis"] = sys.modules["core.analysis"]
        from analysis import mig as original_style
        score, mi, ent = original_style.mig(np.random.default_rng(0).normal(size=(50, 3)),
                                            np.random.default_rng(1).normal(size=(50, 2)))
        print(type(score).__name__, mi.shape, ent.shape)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float64 (3, 2) (2,)"


def test_project_partial_correlations_use_the_original_formula():
    codes, metrics = ARRAYS["in__codes"], ARRAYS["in__m600"]
    table = core.analysis.partial_correlations(codes, metrics, columns=None)
    np.testing.assert_allclose(table.to_numpy(), ARRAYS["out__pcm_all__0"].T, rtol=1e-12, atol=1e-15)


def test_project_bandwidth_is_the_originals_std_rule():
    x, y = ARRAYS["in__four"], ARRAYS["in__nine"]
    np.testing.assert_allclose(core.analysis.bandwidth(x, y), ARRAYS["out__bandwidth2_std_scott__0"], rtol=1e-12)


def _mi_reference(a, b) -> float:
    """Plug-in mutual information (nats) from a sparse contingency table."""
    from scipy.stats.contingency import crosstab

    table = crosstab(a, b, sparse=True).count.tocoo()
    n = table.sum()
    pa, pb = np.asarray(table.sum(1)).ravel() / n, np.asarray(table.sum(0)).ravel() / n
    pab = table.data / n
    return float(np.sum(pab * np.log(pab / (pa[table.row] * pb[table.col]))))


def test_mutual_information_with_many_distinct_labels():
    """Unbinned columns with thousands of labels (a dense joint histogram would take gigabytes)."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2000, size=(3000, 2))
    b = np.column_stack([a[:, 0] // 2 + rng.integers(0, 3, 3000), rng.normal(size=3000)])
    got = core.analysis.mutual_information(a, b)
    expected = [[_mi_reference(a[:, i], b[:, k]) for k in range(2)] for i in range(2)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# --- core.util: pixels against the original's drawings -----------------------------------------

def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def _compare(got: np.ndarray, expected: np.ndarray):
    assert got.shape == expected.shape
    diff = np.abs(got.astype(int) - expected.astype(int))
    if META["matplotlib"] == _matplotlib().__version__:
        assert diff.max() == 0
    else:   # another matplotlib may anti-alias a few edge pixels differently
        assert (diff.max(-1) > 0).mean() < 0.01 and diff.mean() < 1.0


def _matplotlib():
    import matplotlib   # the 'plot' extra, part of the 'test' extra

    matplotlib.use("Agg")
    return matplotlib


def test_plot_grid_draws_the_originals_pixels():
    _matplotlib()
    import matplotlib.pyplot as plt
    from core import util

    digits = ARRAYS["in__digits"]
    fig, axs = util.plot_grid(digits[:5], nrow=2, figsize=(3, 2), dpi=50)
    try:
        rec = next(c for c in META["cases"] if c["id"] == "util_grid")
        assert list(axs.shape) == rec["axs_shape"] == [3, 2]
        assert [bool(a.get_visible()) for a in axs.flat] == rec["visible"] == [True] * 5 + [False]
        img = _pixels(fig)
        _compare(img, ARRAYS["out__util__grid"])
        # Column-first order: digit 1 (a "1") sits below digit 0, in the first column.
        ink = 255 - img[..., :3].mean(-1)
        h, w = ink.shape
        assert ink[:h // 2, :w // 3].sum() > 0 and ink[h // 2:, :w // 3].sum() > 0
        assert ink[h // 2:, 2 * w // 3:].sum() == 0   # the sixth subplot is hidden: blank
    finally:
        plt.close(fig)


def test_plot_digit_ellipse_parallelogram_draw_the_originals_pixels():
    _matplotlib()
    import matplotlib.pyplot as plt
    from core import util

    digit = ARRAYS["in__digits"][5]
    fig = plt.figure(figsize=(2, 2), dpi=56)
    ax = fig.add_axes([0, 0, 1, 1])
    try:
        util.plot_digit(digit, ax=ax, title="five")
        assert not ax.xaxis.get_visible() and ax.get_title() == "five"
        plain = _pixels(fig)
        # 112 px for 28 digit pixels: each is a 4x4 block, dark where there is ink ('gray_r').
        grey = plain[..., :3].mean(-1)
        blocks = grey.reshape(28, 4, 28, 4).mean((1, 3))
        assert np.corrcoef(blocks.ravel(), digit.ravel())[0, 1] < -0.99
        util.plot_ellipse(13.5, 14., .6, 9., 3., ax=ax, fill=False, color="tab:red", lw=2)
        util.plot_parallelogram([20, 16], [80, 16], [64, 96], [4, 96], scale=.25, ax=ax, color="tab:blue")
        _compare(_pixels(fig), ARRAYS["out__util__overlay"])
    finally:
        plt.close(fig)


def test_util_without_matplotlib_says_how_to_get_it():
    script = ("import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
              "import core.util, numpy as np\n"
              "try:\n    core.util.plot_digit(np.zeros((28, 28)))\n"
              "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "morpho-mnist-explorer[plot]" in out.stdout
