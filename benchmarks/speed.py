"""Speed of measurement and perturbation: original-style path vs the project's paths, side by side.

In one run, on the same real digits, prints:
- ms/digit of the original-style path (the original morphomnist algorithm with today's scikit-image
  calls: pyramid_expand, medial_axis(rng=42), the Python loop of the bounding parallelogram), of the plain
  reference path and of the compiled fast path (measure_image per digit, and measure_batch on one core),
  in both modes, and the largest difference between paths (``--full-check``: fast vs reference on every
  digit of the file). Every path gets the same warm-up (one call outside the timing) and the same
  repetitions (best of 3). The headline ratio is like for like: upstream mode gives the original-style
  path's output (to 1e-13); released mode computes the 2018 numbers, a different output, so its ratio is
  printed apart and is not a like-for-like speed-up;
- ImageMorphology construction and ImageMorphology + downscale;
- measure_batch with 1 and 2 worker threads (10,000 digits) and all 70,000 digits (the test set tiled) on
  two cores;
- peak memory of measuring 70,000 digits, next to the size of the images and of the result table;
- first-call (JIT) cost in a fresh process with an empty and with a warm on-disk cache;
- each perturbation including its ImageMorphology and downscale;
- with ``--generate``: ``core.datasets.generate`` of all seven datasets for 70,000 digits (slow: minutes).

    python benchmarks/speed.py [--digits N] [--per-digit-only] [--full-check] [--generate]

Digits: the MNIST test set from ../shared/data/mnist when present, else the bundled sample (tiled).
Machines here are shared: read ratios measured in the same run, not absolute times.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, transform

from core.io import load_idx
from core.measure import measure_batch, measure_image
from core.morpho import ImageMorphology
from core.perturb import PERTURBATIONS, perturb_image

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data/mnist beside the repository (or beside a folder holding worktrees of it)
SHARED = next((p / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz" for p in ROOT.parents
               if (p / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").exists()),
              ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")
SAMPLE = ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz"
_SKEL_LEN_MASK = np.array([[0., 0., 0.], [0., 0., 1.], [np.sqrt(2.), 1., np.sqrt(2.)]])


def original_measure_image(img, threshold=.5, scale=4, frac=.02):
    """The original morphomnist measure_image, as it runs with today's scikit-image (baseline only)."""
    up = transform.pyramid_expand(img, upscale=scale, order=3)
    hires = (255. * up).astype(img.dtype)
    lo, hi = hires.min(), hires.max()
    binary = hires >= lo + (hi - lo) * threshold
    skel, dist = morphology.medial_axis(binary, return_distance=True, rng=42)
    area = binary.sum() / scale ** 2
    s = skel.astype(float)
    length = np.einsum("ij,ij->", ndi.correlate(s, _SKEL_LEN_MASK, mode="constant"), s) / scale
    thickness = 2. * np.mean(dist[skel]) / scale
    f = hires.astype(float)
    x = np.arange(f.shape[1])[None, :]
    y = np.arange(f.shape[0])[:, None]
    m00 = f.sum()
    m10, m01 = (x * f).sum() / m00, (y * f).sum() / m00
    u11 = (x * y * f).sum() / m00 - m10 * m01
    u02 = (y ** 2 * f).sum() / m00 - m01 ** 2
    shear = u11 / u02
    hcdf = np.array([((x + .5 < t + shear * (y - m01)) * f).sum() for t in range(f.shape[1])]) / m00
    vcdf = np.array([((y < t) * f).sum() for t in range(f.shape[0])]) / m00
    left, right = np.interp([frac / 2, 1 - frac / 2], hcdf, np.arange(f.shape[1]))
    top, bottom = np.interp([frac / 2, 1 - frac / 2], vcdf, np.arange(f.shape[0]))
    return area, length, thickness, np.arctan(-shear), (right - left) / scale, (bottom - top) / scale


def rate(fn, images, repeats=1):
    """(digits per second, results) of fn over images: the best of `repeats` runs (shared machines)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = [fn(image) for image in images]
        best = min(best, time.perf_counter() - start)
    return len(images) / best, np.array(out, dtype=float)


def batch_rate(images, repeats=3, **kwargs):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        df = measure_batch(images, progress=False, **kwargs)
        best = min(best, time.perf_counter() - start)
    return len(images) / best, df.to_numpy()


def peak_memory_70000(images_path: Path) -> str:
    # Resident memory is sampled every 2 ms by a thread (ru_maxrss would report the import-time peak).
    code = textwrap.dedent(f"""
        import os, threading, time, numpy as np
        from core.io import load_idx
        from core.measure import measure_batch, _warm_up
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        _warm_up()
        base = rss(); peak = [base]; stop = threading.Event()
        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], rss()); time.sleep(0.002)
        threading.Thread(target=watch, daemon=True).start()
        images = load_idx({str(images_path)!r})
        images = np.tile(images, (int(np.ceil(70000 / len(images))), 1, 1))[:70000]
        df = measure_batch(images, progress=False)
        stop.set(); time.sleep(0.01); peak[0] = max(peak[0], rss())
        print(images.nbytes / 2**20, df.memory_usage(deep=True).sum() / 2**20, (peak[0] - base) / 2**20, peak[0] / 2**20)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    images_mb, table_mb, growth_mb, peak_mb = map(float, out)
    return (f"images {images_mb:.1f} MiB + table {table_mb:.1f} MiB; resident memory above the warmed-up process "
            f"peaked at {growth_mb:.1f} MiB ({growth_mb / (images_mb + table_mb):.1f}x images + table; loading the "
            f"gzip file and tiling it to 70,000 included); process peak {peak_mb:.0f} MiB")


def jit_times() -> str:
    # a fresh process: import, first measurement (each mode) and first perturbation, with numba's cache
    # directory empty (compiles and writes the cache) and then warm (loads it)
    code = ("import time; t = time.perf_counter(); import numpy as np; from core.measure import measure_image; "
            "from core.perturb import perturb_image, Fracture; d = np.zeros((28, 28), np.uint8); d[5:20, 10:14] = 255; "
            "measure_image(d); measure_image(d, mode='upstream'); perturb_image(d, Fracture(rng=0)); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    return f"import + first measurement (both modes) + first perturbation: cold cache {cold:.1f} s, warm cache {warm:.2f} s"


def generate_70000(images: np.ndarray, workers: int) -> str:
    """Time core.datasets.generate (all seven datasets, measured) on the test set tiled to 60,000 + 10,000."""
    from concurrent.futures import ProcessPoolExecutor

    from core import datasets
    from core.io import save_idx

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mnist"
        src.mkdir()
        train = np.tile(images, (int(np.ceil(60000 / len(images))), 1, 1))[:60000]
        test = np.tile(images, (int(np.ceil(10000 / len(images))), 1, 1))[:10000]
        for split, arr in (("train", train), ("t10k", test)):
            save_idx(arr, src / f"{split}-images-idx3-ubyte")
            save_idx((np.arange(len(arr)) % 10).astype(np.uint8), src / f"{split}-labels-idx1-ubyte")
        start = time.perf_counter()
        with ProcessPoolExecutor(workers) as executor:
            datasets.generate(src, Path(tmp) / "out", executor=executor, progress=False)
        elapsed = time.perf_counter() - start
    return f"morpho generate, seven datasets x 70,000 digits (measured), {workers} processes: {elapsed:.0f} s"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=300, help="digits for the per-digit path comparison")
    parser.add_argument("--full-check", action="store_true",
                        help="compare fast and reference paths on every digit of the file (minutes)")
    parser.add_argument("--per-digit-only", action="store_true",
                        help="stop after the per-digit comparison (the README's headline ratio)")
    parser.add_argument("--generate", action="store_true",
                        help="also time core.datasets.generate on 70,000 digits (minutes)")
    args = parser.parse_args(argv)
    images_path = SHARED if SHARED.exists() else SAMPLE
    images = load_idx(images_path)
    print(f"digits: {images_path}  ({len(images)}), machine: {os.cpu_count()} cores\n")
    sub = images[: args.digits]
    # the same warm-up for every path: one call outside the timings (compiled kernels loaded, scikit-image
    # and scipy imported and their caches filled)
    original_measure_image(sub[0])
    for mode in ("released", "upstream"):
        measure_image(sub[0], mode=mode)
        measure_image(sub[0], mode=mode, engine="reference")
        measure_batch(sub[:2], mode=mode, workers=1, progress=False)

    print(f"Per digit, one core, {len(sub)} digits (every path: one warm-up call, then best of 3 rounds; the "
          f"paths take turns in each round, so a busy moment of a shared machine hits all of them):")
    paths = {("original", "style"): lambda: rate(original_measure_image, sub)}
    for mode in ("released", "upstream"):
        paths[mode, "reference"] = lambda mode=mode: rate(lambda im: measure_image(im, mode=mode, engine="reference"), sub)
        paths[mode, "fast"] = lambda mode=mode: rate(lambda im: measure_image(im, mode=mode), sub)
        paths[mode, "batch"] = lambda mode=mode: batch_rate(sub, repeats=1, mode=mode, workers=1)
    results = {}
    for _ in range(3):
        for key, run in paths.items():
            r, values = run()
            if key not in results or r > results[key][0]:
                results[key] = (r, values)
    r_orig, v_orig = results.pop(("original", "style"))
    print(f"  {'original-style (upstream, skimage calls)':<46} {1e3 / r_orig:7.3f} ms/digit")
    labels = {"reference": "reference path", "fast": "fast path, measure_image",
              "batch": "fast path, measure_batch (1 core)"}
    for (mode, engine), (r, _) in results.items():
        same = np.abs(results[mode, engine][1] - v_orig).max() < 1e-9
        how = "x original (same output)" if same else "x original-style time, but a different output"
        print(f"  {mode + ', ' + labels[engine]:<46} {1e3 / r:7.3f} ms/digit  {r / r_orig:6.1f}{how}")
    for mode in ("released", "upstream"):
        d = max(np.abs(results[mode, k][1] - results[mode, "reference"][1]).max() for k in ("fast", "batch"))
        print(f"  max |fast - reference| ({mode}, {len(sub)} digits): {d:.2e}")
    print(f"  max |upstream fast - original-style|: {np.abs(results['upstream', 'fast'][1] - v_orig).max():.2e}")
    like = [results["upstream", k][0] / r_orig for k in ("fast", "batch")]
    print(f"  headline, like for like (same output, same warm-up, best of 3 each): upstream fast path "
          f"{min(like):.0f}-{max(like):.0f}x the original-style path")
    if args.per_digit_only:
        return 0
    if args.full_check:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            for mode in ("released", "upstream"):
                fast = measure_batch(images, mode=mode, progress=False).to_numpy()
                ref = measure_batch(images, mode=mode, engine="reference", executor=pool, progress=False).to_numpy()
                print(f"  max |fast - reference| ({mode}, all {len(images)} digits): {np.abs(fast - ref).max():.2e}")

    print(f"\nImageMorphology (released mode), {len(sub)} digits:")
    r_morph, _ = rate(lambda im: (ImageMorphology(im), 0)[1], sub, repeats=3)
    r_both, _ = rate(lambda im: (lambda m: m.downscale(m.binary_image))(ImageMorphology(im)).sum(), sub, repeats=3)
    print(f"  construction {1e3 / r_morph:.3f} ms/digit; construction + downscale {1e3 / r_both:.3f} ms/digit")

    big = images if len(images) >= 10000 else np.tile(images, (2, 1, 1))
    print(f"\nmeasure_batch, released mode, {len(big)} digits (worker threads running nogil kernels):")
    timings = {}
    for workers in (1, 2):
        # best of 3, as for the per-digit figures: a shared machine only ever adds time
        timings[workers] = min(_timed(lambda: measure_batch(big, workers=workers, progress=False)) for _ in range(3))
        print(f"  {workers} worker(s): {timings[workers]:6.2f} s  {len(big) / timings[workers]:8.0f} digits/s"
              f"  {timings[workers] / len(big) * 1e3:.3f} ms/digit")
    print(f"  2 workers vs 1: {timings[1] / timings[2]:.2f}x")
    all70 = np.tile(big, (int(np.ceil(70000 / len(big))), 1, 1))[:70000]
    start = time.perf_counter()
    measure_batch(all70, workers=2, progress=False)
    print(f"  70,000 digits, 2 workers: {time.perf_counter() - start:.1f} s")
    print(f"  memory, 70,000 digits (1 process): {peak_memory_70000(images_path)}")
    print(f"  JIT: {jit_times()}")

    n_pert = min(len(sub), 200)
    print(f"\nPerturbations (ImageMorphology + perturbation + downscale), {n_pert} digits, ms/digit:")
    print(f"  {'':<14} {'released':>9} {'upstream':>9}")
    for name, (cls, specs) in PERTURBATIONS.items():
        kwargs = {s.name: s.default for s in specs}
        if name in ("swelling", "fracture"):
            kwargs["rng"] = 0
        pert = cls(**kwargs)
        times = []
        for mode in ("released", "upstream"):
            perturb_image(sub[0], pert, mode=mode)
            r, _ = rate(lambda im: perturb_image(im, pert, mode=mode).sum(), sub[:n_pert], repeats=2)
            times.append(1e3 / r)
        print(f"  {name:<14} {times[0]:9.3f} {times[1]:9.3f}")
    if args.generate:
        print(f"\n{generate_70000(images, 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
