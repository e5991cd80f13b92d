"""Record the original Morpho-MNIST code's outputs on float images and border digits (tests/data/upstream/).

Usage::

    git --git-dir=/path/to/Morpho-MNIST.git archive HEAD | tar -x -C /tmp/mm     # the original, any checkout
    python scripts/record_upstream.py /tmp/mm --t10k /path/to/mnist            # writes tests/data/upstream/
    python scripts/record_upstream.py /tmp/mm --t10k /path/to/mnist --compare  # core (upstream) vs the original

The original package is imported from the checkout given (``REPO_DIR/morphomnist``); this file holds none of
its code, only the inputs and the calls. What is recorded (``tests/data/upstream/``, loadable with
``allow_pickle=False``):

``floats.npz``
    Float digits measured by the original ``measure_image`` (its six metrics, float64): real MNIST digits
    (the bundled training sample ``assets/mnist-5k``, by index) as float32 ``x / 255`` ("exact"), float32
    ``clip(x / 255 + noise / 1270, 0, 1)`` with the stored int8 noise ("noisy"), float64 ``x / 255`` and
    float32 ``x`` (the range [0, 255]); and the original's seven perturbations of some noisy ones (uint8).
``border.npz``
    Digits whose ink touches the image border (MNIST test digits among indices 0..999, stored as uint8,
    and bundled training digits, by index) under the original SetSlant and SetWidth at several targets
    (uint8 outputs).

``--compare`` instead prints, for every MNIST test digit whose ink touches the border (all 10,000 searched)
and 200 test digits as floats, how many core reproduces in upstream mode (the figures of docs/upstream.md).
"""
from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "upstream"

FLOAT_INDICES = np.arange(0, 5000, 50)           # 100 bundled training digits, every label
NOISE_DIVISOR = 1270.0                           # int8 noise / 1270: up to +-0.1
SLANTS = (-0.6, -0.3, 0.0, 0.3, 0.6)             # SetSlant targets (rad)
WIDTHS = (6.0, 10.0, 14.0, 18.0, 24.0)           # SetWidth targets (px)
PERTURBED_FLOATS = 20                            # noisy digits perturbed by the seven perturbations
BORDER_TEST_RANGE = 1000                         # test digits used in tests: indices 0..999 only


def read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = (int.from_bytes(data[k:k + 4], "big") for k in (4, 8, 12))
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def touches_border(images: np.ndarray) -> np.ndarray:
    return ((images[:, 0, :] > 0).any(1) | (images[:, -1, :] > 0).any(1)
            | (images[:, :, 0] > 0).any(1) | (images[:, :, -1] > 0).any(1))


def noisy(digits: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The noisy float32 inputs (the tests rebuild them with this very expression)."""
    return np.clip(digits.astype(np.float32) / np.float32(255) + noise.astype(np.float32) / np.float32(NOISE_DIVISOR),
                   np.float32(0), np.float32(1))


def float_inputs(sample: np.ndarray, noise: np.ndarray) -> dict:
    digits = sample[FLOAT_INDICES]
    return {
        "exact": digits.astype(np.float32) / np.float32(255),
        "noisy": noisy(digits, noise),
        "exact64": digits[:20].astype(np.float64) / 255.0,
        "range255": digits[20:40].astype(np.float32),
    }


def perturbations(perturb):
    return [("thinning", lambda: perturb.Thinning(.7)), ("thickening", lambda: perturb.Thickening(1.)),
            ("swelling", lambda: perturb.Swelling(3, 7)), ("fracture", lambda: perturb.Fracture(1.5, 2, 3)),
            ("set_thickness", lambda: perturb.SetThickness(4.)), ("set_slant", lambda: perturb.SetSlant(.3)),
            ("set_width", lambda: perturb.SetWidth(14.))]


def run_perturbations(morpho, perturb, images) -> np.ndarray:
    names = [n for n, _ in perturbations(perturb)]
    out = np.zeros((len(images), len(names), 28, 28), np.uint8)
    for i, img in enumerate(images):
        for j, (_, make) in enumerate(perturbations(perturb)):
            np.random.seed(1000 * i + j)
            morph = morpho.ImageMorphology(img, threshold=.5, scale=4)
            out[i, j] = morph.downscale(make()(morph))
    return out


def run_border(morpho, perturb, images) -> np.ndarray:
    out = np.zeros((len(images), len(SLANTS) + len(WIDTHS), 28, 28), np.uint8)
    for i, img in enumerate(images):
        morph = morpho.ImageMorphology(img, threshold=.5, scale=4)
        for j, t in enumerate(SLANTS):
            out[i, j] = morph.downscale(perturb.SetSlant(t)(morph))
        for j, t in enumerate(WIDTHS):
            out[i, len(SLANTS) + j] = morph.downscale(perturb.SetWidth(t)(morph))
    return out


def import_original(repo: Path):
    sys.path.insert(0, str(repo))
    from morphomnist import measure, morpho, perturb  # the original package, from REPO_DIR
    if not Path(morpho.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"morphomnist imported from {morpho.__file__}, not from {repo}")
    return measure, morpho, perturb


def measure_all(measure, images) -> np.ndarray:
    return np.array([tuple(measure.measure_image(img, verbose=False)) for img in images], np.float64)


def record(repo: Path, t10k_dir: Path) -> None:
    measure, morpho, perturb = import_original(repo)
    sample = read_idx_images(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz")
    noise = np.random.default_rng(18).integers(-127, 128, size=(len(FLOAT_INDICES), 28, 28)).astype(np.int8)
    inputs = float_inputs(sample, noise)
    floats = {"sample_index": FLOAT_INDICES.astype(np.int64), "noise": noise,
              "noise_divisor": np.float64(NOISE_DIVISOR)}
    for name, images in inputs.items():
        floats[f"metrics_{name}"] = measure_all(measure, images)
        print(f"{name}: {len(images)} float digits measured", flush=True)
    floats["perturbation_names"] = np.array([n for n, _ in perturbations(perturb)])
    floats["perturbed_noisy"] = run_perturbations(morpho, perturb, inputs["noisy"][:PERTURBED_FLOATS])
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "floats.npz", **floats)

    test = read_idx_images(t10k_dir / "t10k-images-idx3-ubyte.gz")[:BORDER_TEST_RANGE]
    test_index = np.flatnonzero(touches_border(test))
    sample_index = np.flatnonzero(touches_border(sample))
    border = {"test_index": test_index.astype(np.int64), "test_images": test[test_index],
              "sample_index": sample_index.astype(np.int64), "slants": np.array(SLANTS), "widths": np.array(WIDTHS),
              "test_outputs": run_border(morpho, perturb, test[test_index]),
              "sample_outputs": run_border(morpho, perturb, sample[sample_index])}
    np.savez_compressed(OUT / "border.npz", **border)
    print(f"border digits: {len(test_index)} test (of indices 0..{BORDER_TEST_RANGE - 1}), {len(sample_index)} "
          f"bundled training; written to {OUT}")


def compare(repo: Path, t10k_dir: Path) -> None:
    """Print core's upstream-mode agreement with the original on every border test digit and 200 float digits."""
    measure, morpho, perturb = import_original(repo)
    sys.path.insert(0, str(ROOT))
    import core.measure
    import core.morpho
    import core.perturb
    test = read_idx_images(t10k_dir / "t10k-images-idx3-ubyte.gz")
    index = np.flatnonzero(touches_border(test))
    ours = np.zeros((len(index), len(SLANTS) + len(WIDTHS), 28, 28), np.uint8)
    for i, img in enumerate(test[index]):
        morph = core.morpho.ImageMorphology(img, mode="upstream")
        for j, t in enumerate(SLANTS):
            ours[i, j] = morph.downscale(core.perturb.SetSlant(t)(morph))
        for j, t in enumerate(WIDTHS):
            ours[i, len(SLANTS) + j] = morph.downscale(core.perturb.SetWidth(t)(morph))
    theirs = run_border(morpho, perturb, test[index])
    same = (ours == theirs).all(axis=(2, 3))
    print(f"MNIST test digits whose ink touches the border: {len(index)}")
    for j, t in enumerate(SLANTS):
        print(f"  SetSlant({t:+.1f}): byte-identical {same[:, j].sum()}/{len(index)}")
    for j, t in enumerate(WIDTHS):
        print(f"  SetWidth({t:g}): byte-identical {same[:, len(SLANTS) + j].sum()}/{len(index)}")
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(test), 200, replace=False))
    digits = test[pick]
    cases = {"float32 x/255": digits.astype(np.float32) / np.float32(255),
             "float32 noisy": noisy(digits, rng.integers(-127, 128, size=digits.shape).astype(np.int8)),
             "float64 x/255": digits.astype(np.float64) / 255.0, "float32 [0,255]": digits.astype(np.float32)}
    for name, images in cases.items():
        theirs = measure_all(measure, images)
        ours = np.array([tuple(core.measure.measure_image(img, mode="upstream")) for img in images])
        diff = np.abs(ours - theirs).max(axis=0)
        within = (np.abs(ours - theirs) <= 1e-9).all(axis=1).sum()
        print(f"{name}: {within}/{len(images)} within 1e-9 on all six metrics; largest difference per metric "
              + ", ".join(f"{m} {d:.2g}" for m, d in zip(core.measure.METRICS, diff)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", type=Path, help="checkout of the original Morpho-MNIST (holds morphomnist/)")
    parser.add_argument("--t10k", type=Path, required=True, help="folder holding t10k-images-idx3-ubyte.gz")
    parser.add_argument("--compare", action="store_true", help="print core's agreement instead of recording")
    args = parser.parse_args(argv)
    (compare if args.compare else record)(args.repo, args.t10k)


if __name__ == "__main__":
    main()
