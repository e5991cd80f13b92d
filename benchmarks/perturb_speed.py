"""Speed of each perturbation: core (both modes) next to the original-style scikit-image formulation.

For each of the seven perturbations, in one run on the same real digits, prints ms per digit of

- ``original``: the original morphomnist algorithm with today's scikit-image (pyramid_expand,
  medial_axis(rng=42), the perturbation as written in tests/test_upstream.py, pyramid_reduce);
- ``released`` / ``upstream``: ``ImageMorphology(digit, mode=...)``, the perturbation, ``downscale``;
- ``pert only``: the perturbation's own work in core (given the morphology), per mode;

and the ratios original / core. Timings are CPU time of this process (``time.process_time``: time spent
waiting for a busy CPU does not count), interleave the paths batch by batch and keep each path's best batch,
so that load from other processes hits them alike; read ratios, not absolute times.

    python benchmarks/perturb_speed.py [--digits N] [--repeats R]
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from skimage import morphology, transform

from core import perturb
from core.io import load_idx
from core.morpho import ImageMorphology

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz"


def _load_formulations():
    spec = importlib.util.spec_from_file_location("_sk_formulations", ROOT / "tests" / "test_upstream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OriginalMorphology:
    """The original ImageMorphology's pipeline with today's scikit-image (scale 4)."""

    def __init__(self, image, threshold=.5, scale=4):
        self.scale = scale
        up = transform.pyramid_expand(image, upscale=scale, order=3, channel_axis=None)
        self.hires_image = (255. * up).astype(image.dtype)
        lo, hi = self.hires_image.min(), self.hires_image.max()
        self.binary_image = self.hires_image >= lo + (hi - lo) * threshold
        self.skeleton, self.distance_map = morphology.medial_axis(self.binary_image, return_distance=True, rng=42)
        self.mean_thickness = 2. * np.mean(self.distance_map[self.skeleton]) / scale

    def downscale(self, image):
        return (255. * transform.pyramid_reduce(np.asarray(image), downscale=self.scale, order=3,
                                                channel_axis=None)).astype(np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=100, help="digits per batch (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="batches per path; the best is kept (default 5)")
    args = parser.parse_args(argv)
    sk = _load_formulations()
    images = load_idx(SAMPLE)
    digits = images[np.linspace(0, len(images) - 1, args.digits).astype(int)]
    cases = {  # name -> (skimage formulation, core factory)
        "Thinning": ("thinning",), "Thickening": ("thickening",), "Swelling": ("swelling",),
        "Fracture": ("fracture",), "SetThickness(4)": ("set_thickness_4",), "SetSlant(-.4)": ("set_slant",),
        "SetWidth(12)": ("set_width_12",),
    }
    morphs = {m: [ImageMorphology(d, mode=m) for d in digits] for m in ("released", "upstream")}
    orig_morphs = [OriginalMorphology(d) for d in digits]
    print(f"{args.digits} bundled digits (all labels), best of {args.repeats} interleaved batches; ms per digit")
    print(f"{'perturbation':16s} {'original':>9s} {'released':>9s} {'upstream':>9s} {'orig/rel':>9s} "
          f"{'orig/up':>8s} {'pert rel':>9s} {'pert up':>8s} {'morph+down rel/up':>18s}")
    for label, (key,) in cases.items():
        formulation, make = sk.CASES[key]
        pert = make()
        for m in morphs.values():  # compile / warm caches before timing
            m[0].downscale(pert(m[0]))

        def run_original():
            for d in digits:
                om = OriginalMorphology(d)
                om.downscale(formulation(om))

        def run_core(mode):
            def go():
                for d in digits:
                    m = ImageMorphology(d, mode=mode)
                    m.downscale(pert(m))
            return go

        def run_pert(mode):
            def go():
                for m in morphs[mode]:
                    pert(m)
            return go

        def run_morph_down(mode):
            def go():
                for d, m in zip(digits, morphs[mode]):
                    ImageMorphology(d, mode=mode).downscale(m.binary_image)
            return go

        paths = {"original": run_original, "released": run_core("released"), "upstream": run_core("upstream"),
                 "pert_rel": run_pert("released"), "pert_up": run_pert("upstream"),
                 "md_rel": run_morph_down("released"), "md_up": run_morph_down("upstream")}
        best = {k: np.inf for k in paths}
        np.random.seed(0)
        for _ in range(args.repeats):
            for name, fn in paths.items():
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], (time.process_time() - t0) / len(digits) * 1e3)
        print(f"{label:16s} {best['original']:9.3f} {best['released']:9.3f} {best['upstream']:9.3f} "
              f"{best['original'] / best['released']:8.1f}x {best['original'] / best['upstream']:7.1f}x "
              f"{best['pert_rel']:9.3f} {best['pert_up']:8.3f} {best['md_rel']:9.3f}/{best['md_up']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
