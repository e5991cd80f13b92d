"""Print what the thickness perturbations can and cannot do on real digits.

1. The up-scale -> binarise -> down-scale round trip every Thinning/Thickening/SetThickness result goes
   through: its own shift of the metrics (a perturbation of radius 0 gives exactly this).
2. The smallest effective amounts: Thinning/Thickening act with ``disk(int(amount * scale * thickness / 2))``,
   so an amount below ``2 / (scale * thickness)`` is a radius-0 no-op on that digit (core.perturb warns
   ``NoEffectWarning``); SetThickness changes below ``2 / scale`` px likewise.

    python scripts/no_effect_table.py [--n 1000]          # the bundled digits (assets/mnist-5k)
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    from core import io
    from core.measure import measure_batch
    from core.morpho import ImageMorphology

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="digits of the bundled sample (every k-th)")
    ap.add_argument("--scale", type=int, default=4)
    args = ap.parse_args(argv)
    images = io.load_idx(ROOT / "assets/mnist-5k/train-images-idx3-ubyte.gz")
    images = images[:: max(1, len(images) // args.n)][: args.n]
    trip, thick = [], []
    for img in images:
        m = ImageMorphology(img, scale=args.scale)
        trip.append(m.downscale(m.binary_image))
        thick.append(m.mean_thickness)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = measure_batch(images)
        after = measure_batch(np.stack(trip))
    sd = before.std(ddof=1)
    shift = (after - before).mean()
    print(f"Round trip (up-scale x{args.scale} -> binarise -> down-scale), {len(images)} bundled digits:")
    print(pd.DataFrame({"mean shift": shift, "in sd": shift / sd}).to_string(float_format=lambda v: f"{v:+.3f}"))
    t = np.asarray(thick)
    amount = 2.0 / (args.scale * t)    # radius int(a * scale * t / 2) >= 1
    q = np.percentile(amount, [5, 50, 95, 100])
    print("\nSmallest effective amounts (below them the radius is 0: same binary image, NoEffectWarning):")
    rows = [("Thinning / Thickening amount", *q),
            ("SetThickness change (px)", *([2.0 / args.scale] * 4))]
    print(pd.DataFrame(rows, columns=["perturbation", "5% of digits", "median", "95%", "max"])
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
