"""Causal Morpho-MNIST against deepscm's released dataset: prints the figures docs/causal.md and
tests/test_causal.py quote.

    python benchmarks/causal_reference.py [DEEPSCM_DATA_DIR]

DEEPSCM_DATA_DIR holds deepscm's released ``t10k-images-idx3-ubyte.gz`` and ``t10k-morpho.csv``
(``assets/data/morphomnist`` of github.com/biomedia-mira/deepscm, thickness->intensity, scale 0.5); by
default it is read from the mirror /work/.mirror/biomedia-mira+deepscm/repo (``git show``) when present.
Then the same statistics on ``core.causal.scm_dataset`` applied to 1,000 bundled digits (assets/mnist-5k).
"""
from __future__ import annotations

import io as _io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core import causal, io

MIRROR = Path("/work/.mirror/biomedia-mira+deepscm/repo")


def _read(folder, name):
    if folder is not None:
        return (Path(folder) / name).read_bytes()
    return subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:assets/data/morphomnist/{name}"],
                          check=True, capture_output=True).stdout


def dependence(thickness, intensity) -> dict:
    """Least-squares slope and correlation of logit((i - 64) / 191) on thickness, and the residual sd."""
    t = np.asarray(thickness, float)
    u = causal._logit(intensity)
    ok = np.isfinite(t) & np.isfinite(u)
    slope, icpt = np.polyfit(t[ok], u[ok], 1)
    resid = u[ok] - (slope * t[ok] + icpt)
    return {"slope": slope, "intercept": icpt, "corr": np.corrcoef(t[ok], u[ok])[0, 1], "resid_sd": resid.std()}


def main(argv):
    folder = argv[0] if argv else None
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t10k-images-idx3-ubyte.gz"
        p.write_bytes(_read(folder, p.name))
        imgs = io.load_idx(p)
    table = pd.read_csv(_io.BytesIO(_read(folder, "t10k-morpho.csv")))
    n = 2000
    m = causal.measure_attributes(imgs[:n])
    drawn = table.iloc[:n]
    print(f"deepscm released t10k, first {n} digits")
    d_int = m["intensity"].to_numpy() - drawn["intensity"].to_numpy()
    print(f"  intensity(): measured minus drawn: mean {d_int.mean():+.3f}, median |diff| {np.median(np.abs(d_int)):.3f}, "
          f"max |diff| {np.abs(d_int).max():.3f} grey levels")
    d_t = m["thickness"].to_numpy() - drawn["thickness"].to_numpy()
    print(f"  thickness: measured minus drawn: mean {d_t.mean():+.3f}, sd {d_t.std():.3f} px")
    for what, t, i in (("drawn", drawn["thickness"], drawn["intensity"]), ("measured", m["thickness"], m["intensity"])):
        r = dependence(t, i)
        print(f"  {what:8s}: logit-intensity on thickness slope {r['slope']:.3f}, corr {r['corr']:.3f}, "
              f"residual sd {r['resid_sd']:.3f}")
    images = io.load_idx("assets/mnist-5k/train-images-idx3-ubyte.gz")[::5]
    labels = io.load_idx("assets/mnist-5k/train-labels-idx1-ubyte.gz")[::5]
    for scm in causal.SCMS:
        out, tab = causal.scm_dataset(images, labels, scm=scm, seed=0)
        print(f"core.causal.scm_dataset({scm!r}), 1,000 bundled digits (every 5th), seed 0")
        d_int = tab["measured_intensity"] - tab["intensity"]
        print(f"  intensity measured minus drawn: mean {d_int.mean():+.3f}, max |diff| {d_int.abs().max():.3f}")
        d_t = tab["measured_thickness"] - tab["thickness"]
        print(f"  thickness measured minus drawn: mean {d_t.mean():+.3f}, sd {d_t.std():.3f} px")
        for what, t, i in (("drawn", tab["thickness"], tab["intensity"]),
                           ("measured", tab["measured_thickness"], tab["measured_intensity"])):
            r = dependence(t, i)
            print(f"  {what:8s}: slope {r['slope']:.3f}, corr {r['corr']:.3f}, residual sd {r['resid_sd']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
