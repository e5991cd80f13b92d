"""Causal Morpho-MNIST: stroke intensity, deepscm's thickness/intensity SCMs, and counterfactual soundness.

deepscm (Pawlowski, Castro & Glocker, "Deep structural causal models for tractable counterfactual
inference", NeurIPS 2020) made Morpho-MNIST the testbed of causal image models with a structural causal
model over the stroke's thickness t and intensity i (``deepscm/datasets/morphomnist/
create_synth_thickness_intensity_data.py``)::

    t = 0.5 + Gamma(concentration 10, rate 5)
    i = 64 + 191 * sigmoid(N(2 (t - 2.5), 0.5))         ("thickness->intensity")
    i = 64 + 191 * sigmoid(N(-2 (t - 2), 0.5))          (its --invert option)

and the image: ``SetThickness(t)`` on a x16 morphology, downscaled, then the grey levels multiplied so that
the stroke's median (:func:`intensity`) is i. deepscm publishes no generator with the arrow the other way;
``"intensity->thickness"`` here mirrors it with the same marginal families, u the logit of the intensity::

    u ~ N(0, 1);  i = 64 + 191 * sigmoid(u);  t = 0.5 + Gamma(10, 5) * exp(u / 4)

so that log(t - 0.5) rises by 1/4 per unit of logit intensity.

:func:`counterfactual_soundness` judges a counterfactual image model ``cf(images, parents, do)`` by the axioms
of Monteiro et al. (ICLR 2023) with the morphometrics as the judge (no trained predictor):
effectiveness, composition and reversibility. :func:`reference_counterfactual` (the built-in
interventions ``SetThickness`` and ``SetIntensity``) is the reference model.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from core.perturb import NoEffectWarning, SetIntensity, SetThickness, stroke_intensity

__all__ = ["SCMS", "PARENTS", "ATTRIBUTES", "DEFAULT_TOLERANCES", "intensity", "sample_parents",
           "scm_image", "scm_dataset", "scm_chunk", "generate_scm", "measure_attributes",
           "counterfactual_parents", "reference_counterfactual", "leaky_counterfactual", "counterfactual_soundness", "SoundnessReport"]

#: The two structural causal models :func:`scm_dataset` draws from.
SCMS = ("thickness->intensity", "intensity->thickness")
#: The SCM's variables, the parents a counterfactual model is given.
PARENTS = ("thickness", "intensity")
#: What the soundness checks measure on every image: the SCM's variables and the other morphometrics.
ATTRIBUTES = ("thickness", "intensity", "slant", "width", "height", "area", "length")
#: Tolerances of the soundness verdict (attribute units: px, grey level, rad, px, px, px^2, px): the mean
#: absolute error an intervened attribute may keep, the mean absolute drift a preserved one may show.
DEFAULT_TOLERANCES = {"thickness": 1., "intensity": 4., "slant": .05, "width": 1.5, "height": 1.5,
                      "area": 40., "length": 4.}

# deepscm's constants (create_synth_thickness_intensity_data.py)
_T_OFFSET, _T_SHAPE, _T_RATE = .5, 10., 5.
_I_LOW, _I_RANGE = 64., 191.
_SLOPE, _CENTRE = 2., 2.5
_INV_SLOPE, _INV_CENTRE = -2., 2.
_NOISE = .5
# this project's mirror ("intensity->thickness"): the exponent's factor on the logit intensity
_U_FACTOR = .25
#: random key of each SCM's draws (see core.datasets.digit_rng)
_SCM_KEYS = {"thickness->intensity": 201, "intensity->thickness": 202}


def intensity(image) -> float:
    """The stroke's intensity as deepscm defines it: the median grey level of the pixels at or above half
    the image's range (``min + .5 (max - min)``), in grey levels 0..255.

    Parameters
    ----------
    image : array_like
        (H, W) digit, uint8 in [0, 255] or float in [0, 1] (read as 255 times its value).

    Raises
    ------
    ValueError
        A blank (constant) image, NaN pixels, values out of range or a wrong shape.
    """
    return stroke_intensity(image)


def _check_scm(scm: str) -> str:
    if scm not in SCMS:
        raise ValueError(f"scm must be one of {', '.join(repr(s) for s in SCMS)}; got {scm!r}")
    return scm


def _logit(i):
    p = (np.asarray(i, dtype=np.float64) - _I_LOW) / _I_RANGE
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid_intensity(u):
    return _I_LOW + _I_RANGE / (1. + np.exp(-np.asarray(u, dtype=np.float64)))


def sample_parents(rng: np.random.Generator, scm: str = "thickness->intensity", *, invert: bool = False,
                   noise_scale: float = _NOISE) -> tuple[float, float]:
    """Draw one digit's (thickness px, intensity grey level) from an SCM (see the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
    scm : {"thickness->intensity", "intensity->thickness"}
    invert : bool
        deepscm's ``--invert``: thickness lowers intensity (thickness->intensity only).
    noise_scale : float
        Standard deviation of the logit-normal intensity noise (deepscm's ``--scale``, 0.5).
    """
    _check_scm(scm)
    if scm == "thickness->intensity":
        t = _T_OFFSET + rng.gamma(_T_SHAPE, 1. / _T_RATE)
        loc = _INV_SLOPE * (t - _INV_CENTRE) if invert else _SLOPE * (t - _CENTRE)
        return float(t), float(_sigmoid_intensity(rng.normal(loc, noise_scale)))
    u = rng.normal(0., 1.)
    t = _T_OFFSET + rng.gamma(_T_SHAPE, 1. / _T_RATE) * math.exp(_U_FACTOR * u)
    return float(t), float(_sigmoid_intensity(u))


def scm_image(image, thickness: float, intensity_value: float, *, scale: int = 16, mode: Optional[str] = None
              ) -> np.ndarray:
    """deepscm's image mechanism: set the thickness on a x`scale` morphology, downscale, then set the intensity
    on the 28x28 digit (multiply its grey levels, clip to 255, truncate to uint8).

    Returns
    -------
    numpy.ndarray
        uint8 (28, 28).
    """
    from core.morpho import ImageMorphology

    morph = ImageMorphology(image, scale=scale, mode=mode)
    thick = morph.downscale(SetThickness(thickness)(morph))
    if thick.max() == thick.min():   # eroded away: nothing left to scale
        return thick
    low = ImageMorphology(thick, scale=1, mode=mode)
    return low.downscale(SetIntensity(min(max(intensity_value, 1e-6), 255.))(low))


def scm_chunk(images: np.ndarray, start: int, split_id: int, seed: int, scm: str, invert: bool = False,
              noise_scale: float = _NOISE, scale: int = 16, mode: Optional[str] = None,
              measure: bool = True) -> dict:
    """Draw the parents of digits ``start .. start + n - 1`` and make their images (a task of
    :func:`generate_scm`; digit ``i`` draws from ``digit_rng(seed, split_id, i, key of scm)``, so the
    result depends on neither the chunking nor the workers).

    Returns
    -------
    dict
        ``images`` uint8 (n, 28, 28); ``parents`` float64 (n, 2) (thickness, intensity) drawn;
        ``measured`` DataFrame (the six morphometrics and intensity) or None.
    """
    from core.datasets import digit_rng

    n = len(images)
    out = np.empty((n, 28, 28), np.uint8)
    parents = np.empty((n, 2))
    for j in range(n):
        t, i = sample_parents(digit_rng(seed, split_id, start + j, _SCM_KEYS[scm]), scm, invert=invert,
                              noise_scale=noise_scale)
        parents[j] = t, i
        out[j] = scm_image(images[j], t, i, scale=scale, mode=mode)
    measured = measure_attributes(out, mode=mode) if measure else None
    return {"images": out, "parents": parents, "measured": measured}


def _check_images(images, name: str = "images") -> np.ndarray:
    a = np.asarray(images)
    if a.ndim != 3 or a.shape[1:] != (28, 28):
        raise ValueError(f"{name} must have shape (N, 28, 28); got {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError(f"{name} must be uint8 in [0, 255] or float in [0, 1]; got {a.dtype} with values in "
                             f"[{a.min() if a.size else 0}, {a.max() if a.size else 0}]")
        a = np.clip(np.rint(a * 255.), 0, 255).astype(np.uint8)
    return a


def scm_dataset(images, labels, scm: str = "thickness->intensity", seed: int = 0, *, invert: bool = False,
                noise_scale: float = _NOISE, scale: int = 16, mode: Optional[str] = None, measure: bool = True,
                start: int = 0, split_id: int = 2, executor=None, chunksize: int = 250
                ) -> tuple[np.ndarray, pd.DataFrame]:
    """A causal Morpho-MNIST dataset: each digit given thickness and intensity drawn from an SCM.

    Parameters
    ----------
    images : array_like, uint8 (N, 28, 28) (or float in [0, 1])
        The source digits (e.g. MNIST).
    labels : array_like, shape (N,)
        Their classes.
    scm : {"thickness->intensity", "intensity->thickness"}
        The causal graph (module docstring).
    seed : int
        Non-negative; the same seed gives the same dataset, whatever `executor` and `chunksize`.
    invert : bool
        deepscm's ``--invert`` (thickness->intensity only).
    noise_scale : float
        deepscm's ``--scale``, the logit-normal noise of intensity (> 0).
    scale : int
        Up-scaling of the thickness intervention (deepscm: 16).
    mode : {"released", "upstream"}, optional
    measure : bool
        Also measure every image (columns ``measured_*``).
    start, split_id : int
        Random key of the first digit (see :func:`core.datasets.digit_rng`; ``morpho generate --scm`` uses
        the split's id and the digit's index in the split).
    executor : concurrent.futures.Executor, optional
        Runs the chunks (results do not depend on it).

    Returns
    -------
    images : numpy.ndarray, uint8 (N, 28, 28)
    table : pandas.DataFrame
        One row per digit: ``thickness`` (px) and ``intensity`` (grey level) drawn from the SCM, ``label``;
        with `measure`, ``measured_thickness``, ``measured_intensity`` and the other measured morphometrics.
    """
    from core.datasets import map_ordered

    _check_scm(scm)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if invert and scm != "thickness->intensity":
        raise ValueError("invert applies to scm='thickness->intensity' only (deepscm's --invert)")
    if not (math.isfinite(noise_scale) and noise_scale > 0):
        raise ValueError(f"noise_scale must be positive; got {noise_scale!r}")
    imgs = _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(imgs),):
        raise ValueError(f"labels must have shape ({len(imgs)},), one per image; got {labels.shape}")
    chunksize = max(1, int(chunksize))
    tasks = ((imgs[s:s + chunksize], start + s, split_id, int(seed), scm, invert, noise_scale, scale, mode, measure)
             for s in range(0, len(imgs), chunksize))
    results = list(map_ordered(scm_chunk, tasks, executor))
    out = np.concatenate([r["images"] for r in results]) if results else np.empty((0, 28, 28), np.uint8)
    par = np.concatenate([r["parents"] for r in results]) if results else np.empty((0, 2))
    table = pd.DataFrame({"thickness": par[:, 0], "intensity": par[:, 1], "label": labels})
    if measure and results:
        m = pd.concat([r["measured"] for r in results], ignore_index=True)
        for c in m.columns:
            table[f"measured_{c}"] = m[c].to_numpy()
    return out, table


def measure_attributes(images, *, mode: Optional[str] = None, workers: Optional[int] = 1) -> pd.DataFrame:
    """The six morphometrics and the intensity of each image.

    Returns
    -------
    pandas.DataFrame
        Columns area, length, thickness, slant, width, height (:func:`core.measure.measure_batch`) and
        intensity (:func:`intensity`); NaN rows for blank images.
    """
    from core.measure import measure_batch

    imgs = _check_images(images)
    if len(imgs) == 0:
        return pd.DataFrame(columns=["area", "length", "thickness", "slant", "width", "height", "intensity"],
                            dtype=float)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # blank digits: NaN rows, which the callers report
        df = measure_batch(imgs, mode=mode, workers=workers, progress=False).reset_index(drop=True)
    df["intensity"] = [stroke_intensity(im) if im.max() > im.min() else np.nan for im in imgs]
    return df


# --------------------------------------------------------------------------------------------------
# writing a dataset (morpho generate --scm)
# --------------------------------------------------------------------------------------------------

def generate_scm(mnist_dir, outdir, *, scm: str = "thickness->intensity", seed: int = 0,
                 splits: Sequence[str] = ("train", "t10k"), invert: bool = False, noise_scale: float = _NOISE,
                 scale: int = 16, mode: Optional[str] = None, executor=None, chunksize: int = 250,
                 force: bool = False, progress: bool = True, measure: bool = True,
                 limit: Optional[int] = None) -> list[Path]:
    """Write a causal Morpho-MNIST dataset from MNIST files into one folder (deepscm's layout).

    For each split: ``{split}-images-idx3-ubyte.gz``, ``{split}-labels-idx1-ubyte.gz``,
    ``{split}-scm.csv`` (``index,thickness,intensity``: the values drawn from the SCM, as deepscm's
    ``-morpho.csv``) and, with `measure`, ``{split}-morpho.csv`` (the six morphometrics and intensity
    measured on the images, which the explorer reads). Byte-identical whatever `executor` and `chunksize`.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from core.datasets import (OTHER_SPLIT_ID, SPLIT_IDS, DatasetError, IdxWriter, check_split,
                               check_writable, find_split, iter_idx_chunks, map_ordered)
    from core.io import atomic_write, atomic_write_csv, load_idx, save_idx

    _check_scm(scm)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise DatasetError(f"the seed must be a non-negative integer, not {seed}")
    outdir = Path(outdir)
    inputs = []
    for split in dict.fromkeys(splits):
        files = find_split(mnist_dir, split)
        n, shape = check_split(files)
        if shape != (28, 28):
            raise DatasetError(f"{files.images}: expected 28x28 digits, found {shape}")
        inputs.append((files, n if limit is None else min(n, int(limit))))
    targets = [outdir / f"{f.split}-{k}" for f, _ in inputs
               for k in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz", "scm.csv")
               + (("morpho.csv",) if measure else ())] + [outdir / "README.md"]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise DatasetError(f"output files exist already: {', '.join(map(str, existing[:3]))}"
                           f"{' and more' if len(existing) > 3 else ''}; use --force to replace them")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {outdir}: {e.strerror or e}") from e
    check_writable(outdir)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(n for _, n in inputs), unit="digit", desc=f"generate {scm}")
    written: list[Path] = []
    try:
        for files, n in inputs:
            split_id = SPLIT_IDS.get(files.split, OTHER_SPLIT_ID)
            parents, measured = [], []
            with IdxWriter(outdir / f"{files.split}-images-idx3-ubyte.gz", (n, 28, 28)) as writer:
                tasks = ((chunk, s, split_id, int(seed), scm, invert, noise_scale, scale, mode, measure)
                         for s, chunk in iter_idx_chunks(files.images, chunksize, 0, n))
                for r in map_ordered(scm_chunk, tasks, executor, max_pending=4):
                    writer.write(r["images"])
                    parents.append(r["parents"])
                    if measure:
                        measured.append(r["measured"])
                    if bar is not None:
                        bar.update(len(r["images"]))
            written.append(outdir / f"{files.split}-images-idx3-ubyte.gz")
            p = outdir / f"{files.split}-labels-idx1-ubyte.gz"
            save_idx(load_idx(files.labels)[:n].astype(np.uint8), p)
            written.append(p)
            par = np.concatenate(parents) if parents else np.empty((0, 2))
            table = pd.DataFrame({"thickness": par[:, 0], "intensity": par[:, 1]})
            table.index.name = "index"
            p = outdir / f"{files.split}-scm.csv"
            atomic_write_csv(table, p)
            written.append(p)
            if measure:
                m = pd.concat(measured, ignore_index=True) if measured else measure_attributes(np.empty((0, 28, 28), np.uint8))
                m.index.name = "index"
                p = outdir / f"{files.split}-morpho.csv"
                atomic_write_csv(m, p)
                written.append(p)
    except OSError as e:
        raise DatasetError(f"cannot write in {outdir}: {e.strerror or e}") from e
    finally:
        if bar is not None:
            bar.close()
    p = outdir / "README.md"
    with atomic_write(p, "w", newline="\n") as f:
        f.write(_readme(scm, seed, invert, noise_scale, scale, [(fl.split, n) for fl, n in inputs], measure))
    written.append(p)
    return written


def _readme(scm, seed, invert, noise_scale, scale, splits, measure) -> str:
    formula = {"thickness->intensity": ("t = 0.5 + Gamma(10, rate 5); i = 64 + 191 sigmoid(N("
                                        + ("-2 (t - 2)" if invert else "2 (t - 2.5)") + f", {noise_scale}))"),
               "intensity->thickness": ("u ~ N(0, 1); i = 64 + 191 sigmoid(u); t = 0.5 + Gamma(10, rate 5) "
                                        "exp(u / 4)")}[scm]
    rows = "\n".join(f"- {s}: {n} digits" for s, n in splits)
    return (f"# Causal Morpho-MNIST: {scm}\n\n"
            f"Generated by `morpho generate --scm {scm}` (core.causal.generate_scm), seed {seed}.\n\n"
            f"SCM: {formula}.\nImage: SetThickness(t) on a x{scale} morphology, downscaled, then the grey levels "
            f"scaled so that the stroke's median intensity is i (deepscm, Pawlowski, Castro & Glocker 2020).\n\n"
            f"{rows}\n\nFiles: `{{split}}-scm.csv` holds the drawn thickness and intensity (deepscm's layout)"
            + ("; `{split}-morpho.csv` the morphometrics and intensity measured on the images." if measure else ".")
            + "\n")


# --------------------------------------------------------------------------------------------------
# counterfactual soundness
# --------------------------------------------------------------------------------------------------

def _parents_frame(parents, n: int) -> pd.DataFrame:
    if isinstance(parents, pd.DataFrame):
        df = parents.reset_index(drop=True)
    elif isinstance(parents, dict):
        df = pd.DataFrame({k: np.broadcast_to(np.asarray(v, float), (n,)) for k, v in parents.items()})
    else:
        raise ValueError(f"parents must be a DataFrame or a dict of columns; got {type(parents).__name__}")
    missing = [p for p in PARENTS if p not in df.columns]
    if missing:
        raise ValueError(f"parents lacks the column(s) {', '.join(missing)} (expected {', '.join(PARENTS)})")
    if len(df) != n:
        raise ValueError(f"parents has {len(df)} rows for {n} images")
    return df[list(PARENTS)].astype(float)


def _check_do(do: dict, n: int) -> dict:
    if not isinstance(do, dict) or not do:
        raise ValueError(f"an intervention must be a non-empty dict {{attribute: value}}; got {do!r}")
    out = {}
    for k, v in do.items():
        if k not in PARENTS:
            raise ValueError(f"cannot intervene on {k!r}: the parents are {', '.join(PARENTS)}")
        a = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
        if not np.isfinite(a).all():
            raise ValueError(f"do({k}) holds NaN or infinite values")
        lo, hi = (0.1, 20.) if k == "thickness" else (1., 255.)
        if a.min() < lo or a.max() > hi:
            raise ValueError(f"do({k}) must lie in [{lo}, {hi}]; got values in [{a.min():.4g}, {a.max():.4g}]")
        out[k] = a
    return out


def counterfactual_parents(parents: pd.DataFrame, do: dict, scm: Optional[str] = None) -> pd.DataFrame:
    """The parents a sound counterfactual has after ``do``: the intervened values, and for a child of an
    intervened parent its value under the SCM with the digit's own noise (abduction); None: no arrow
    between the parents (only the intervened ones change).

    Parameters
    ----------
    parents : pandas.DataFrame
        Columns thickness, intensity, one row per image.
    do : dict
        ``{parent: value or array (N,)}``.
    scm : {"thickness->intensity", "intensity->thickness"}, optional
    """
    n = len(parents)
    out = _parents_frame(parents, n).copy()
    do = _check_do(do, n)
    for k, v in do.items():
        out[k] = v
    if scm is None:
        return out
    _check_scm(scm)
    t0, i0 = parents["thickness"].to_numpy(float), parents["intensity"].to_numpy(float)
    if scm == "thickness->intensity" and "thickness" in do and "intensity" not in do:
        noise = _logit(i0) - _SLOPE * (t0 - _CENTRE)
        out["intensity"] = _sigmoid_intensity(_SLOPE * (do["thickness"] - _CENTRE) + noise)
    if scm == "intensity->thickness" and "intensity" in do and "thickness" not in do:
        shift = _U_FACTOR * (_logit(do["intensity"]) - _logit(i0))
        out["thickness"] = _T_OFFSET + np.maximum(t0 - _T_OFFSET, 1e-3) * np.exp(shift)
    return out


def reference_counterfactual(images, parents, do: dict, *, scale: int = 4, mode: Optional[str] = None) -> np.ndarray:
    """The reference model: the built-in interventions SetThickness and SetIntensity.

    A digit whose thickness changes is dilated or eroded (``SetThickness``), then given back its intensity
    (the intervened one, or its own from `parents`) with ``SetIntensity`` on the 28x28 digit, as deepscm
    makes its images. A parent set to the value it has already is left alone, so a null intervention
    returns the image unchanged.

    Parameters
    ----------
    images : uint8 (N, 28, 28)
    parents : pandas.DataFrame
        thickness, intensity of each image (e.g. :func:`measure_attributes`).
    do : dict
        ``{"thickness": px, "intensity": grey level}``, scalars or arrays (N,).

    Returns
    -------
    numpy.ndarray, uint8 (N, 28, 28)
    """
    from core.morpho import ImageMorphology

    imgs = _check_images(images)
    par = _parents_frame(parents, len(imgs))
    do = _check_do(do, len(imgs))
    out = imgs.copy()
    for j, img in enumerate(imgs):
        t_old, i_old = par.at[j, "thickness"], par.at[j, "intensity"]
        t_new = do.get("thickness", [t_old] * len(imgs))[j]
        i_new = do.get("intensity", [i_old] * len(imgs))[j]
        x = img
        if not np.isclose(t_new, t_old, rtol=0, atol=1e-9):
            morph = ImageMorphology(x, scale=scale, mode=mode)
            x = morph.downscale(SetThickness(t_new)(morph))
            if x.max() == x.min():
                out[j] = x
                continue
            i_target = i_new
        elif not np.isclose(i_new, i_old, rtol=0, atol=1e-9):
            i_target = i_new
        else:
            continue
        low = ImageMorphology(x, scale=1, mode=mode)
        out[j] = low.downscale(SetIntensity(float(np.clip(i_target, 1e-6, 255.)))(low))
    return out


def leaky_counterfactual(images, parents, do: dict, *, leak: float = .1) -> np.ndarray:
    """A deliberately unsound model for teaching: the reference, whose thickness changes also shear the digit,
    ``leak`` radians of slant per pixel of thickness change (its intensity is then restored).

    Same signature as :func:`reference_counterfactual`; :func:`counterfactual_soundness` catches it by
    the slant drift of its thickness interventions.
    """
    from core.perturb import SetSlant, perturb_image

    out = reference_counterfactual(images, parents, do)
    if "thickness" not in do:
        return out
    par = _parents_frame(parents, len(out))
    target = np.broadcast_to(np.asarray(do["thickness"], float), (len(out),))
    m = measure_attributes(out)
    for j in range(len(out)):
        shift = leak * (target[j] - par.at[j, "thickness"])
        if shift == 0 or not np.isfinite(m.at[j, "slant"]):
            continue
        sheared = perturb_image(out[j], SetSlant(m.at[j, "slant"] + shift))
        out[j] = perturb_image(sheared, SetIntensity(float(np.clip(m.at[j, "intensity"], 1., 255.))), scale=1)
    return out


def _as_cf(cf) -> Callable:
    if cf is None or cf == "reference":
        return reference_counterfactual
    if not callable(cf):
        raise ValueError(f"cf must be a callable cf(images, parents, do) -> images, or 'reference'; got {cf!r}")
    return cf


def _run_cf(cf, images, parents, do, name) -> np.ndarray:
    from core.decoders import DecoderError, _to_digits

    # the soundness tables measure what the model did; a built-in intervention's "no effect" warning
    # would only repeat it (and flood a server's log)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoEffectWarning)
        out = cf(images, parents.copy(), {k: v.copy() for k, v in do.items()})
    try:
        imgs, _, _ = _to_digits(out, len(images), None, name)
    except DecoderError as e:
        raise ValueError(f"the counterfactual model: {e}") from None
    return imgs


DEFAULT_INTERVENTIONS = ({"thickness": 1.5}, {"thickness": 4.5}, {"intensity": 100.}, {"intensity": 230.},
                         {"thickness": 4.5, "intensity": 120.})


@dataclass
class SoundnessReport:
    """Counterfactual soundness of a model, measured by the morphometrics.

    Attributes
    ----------
    effectiveness : pandas.DataFrame
        One row per (intervention, attribute): ``role`` (intervened, child: moved by the SCM, preserved,
        reported), ``intended`` (mean), ``measured`` (mean), ``error`` (mean measured - intended, or the
        drift from the original for preserved/reported ones), ``abs_error`` (mean absolute), ``tolerance``,
        ``passed`` (None for reported).
    by_attribute : pandas.DataFrame
        Per attribute: worst mean absolute error when intervened and worst drift when preserved, passed.
    composition : pandas.DataFrame
        Per step k = 1..K of the null intervention: ``image_distance`` (mean absolute pixel difference from
        the original, in [0, 1]) and the mean absolute drift of each attribute.
    reversibility : pandas.DataFrame
        Per intervention: image distance and attribute drift after do then undo.
    passed : bool
        Every judged attribute within tolerance.
    settings : dict
    """

    effectiveness: pd.DataFrame
    by_attribute: pd.DataFrame
    composition: pd.DataFrame
    reversibility: pd.DataFrame
    passed: bool
    settings: dict = field(default_factory=dict)
    examples: Optional[dict] = None

    def to_dict(self) -> dict:
        from core.analysis._common import json_safe
        from core.report import versions

        return json_safe({"kind": "counterfactual_soundness", "passed": self.passed, "settings": self.settings,
                          "by_attribute": self.by_attribute, "effectiveness": self.effectiveness,
                          "composition": self.composition, "reversibility": self.reversibility,
                          "versions": versions()})

    def to_json(self) -> str:
        from core.report import dumps_json
        return dumps_json(self.to_dict())

    def to_html(self) -> str:
        from core.report import _dl, _esc, _page, _table, svg_lines

        verdict = ("sound: every judged attribute is within its tolerance" if self.passed else
                   "not sound: " + ", ".join(self.by_attribute.index[self.by_attribute["passed"] == False]))  # noqa: E712
        comp = self.composition
        fig = svg_lines(comp["step"].to_numpy(float), {"image distance": comp["image_distance"].to_numpy(float)},
                        title="Composition: null intervention applied k times", xlabel="k",
                        ylabel="mean |Δ pixel|") if len(comp) else ""
        body = (f"<h1>Counterfactual soundness: {_esc(self.settings.get('model', 'model'))}</h1>"
                f"<p class='verdict {'same' if self.passed else 'differs'}'>{_esc(verdict)}</p>"
                "<h2>By attribute</h2>" + _table(self.by_attribute, index=True)
                + "<h2>Effectiveness</h2><p class='muted'>intervened: measured minus intended; child: moved by the SCM "
                  "(abducted noise); preserved: drift from the original, judged; reported: drift, not judged.</p>"
                + _table(self.effectiveness, left=("intervention", "attribute", "role"))
                + "<h2>Composition</h2>" + f"<div class='figs'>{fig}</div>" + _table(self.composition)
                + "<h2>Reversibility (do, then undo)</h2>" + _table(self.reversibility, left=("intervention",))
                + "<h2>Settings</h2>" + _dl({k: v for k, v in self.settings.items()}))
        return _page("Counterfactual soundness", body)

    def save(self, path) -> Path:
        """Write the report as HTML (``.html``/``.htm``) or JSON (``.json``), atomically."""
        from core.report import write_text

        suffix = Path(path).suffix.lower()
        if suffix not in (".html", ".htm", ".json"):
            raise ValueError(f"report path must end in .html or .json; got {str(path)!r}")
        return write_text(path, self.to_json() if suffix == ".json" else self.to_html())


def _describe(do: dict) -> str:
    return ", ".join(f"do({k}={np.mean(v):.4g})" if np.ptp(v) == 0 else f"do({k}=…)" for k, v in do.items())


def _distances(images, originals, before: pd.DataFrame, mode) -> dict:
    """Mean absolute pixel distance (in [0, 1]) of `images` from `originals`, and mean absolute drift of each
    attribute from `before`."""
    m = measure_attributes(images, mode=mode)
    out = {"image_distance": float(np.abs(images.astype(float) - originals).mean() / 255.)}
    for a in ATTRIBUTES:
        out[a] = float(np.nanmean(np.abs(m[a].to_numpy() - before[a].to_numpy())))
    return out


def counterfactual_soundness(cf, images, parents=None, interventions=None, *, scm: Optional[str] = None,
                             steps: int = 3, tolerances: Optional[dict] = None,
                             preserved: Sequence[str] = ("slant",), name: Optional[str] = None,
                             mode: Optional[str] = None) -> SoundnessReport:
    """Judge a counterfactual image model by effectiveness, composition and reversibility (Monteiro et al.,
    ICLR 2023), with the morphometrics measuring every attribute.

    Parameters
    ----------
    cf : callable or "reference"
        ``cf(images uint8 (N, 28, 28), parents DataFrame (thickness, intensity), do {parent: array (N,)})
        -> images`` (any layout/range :func:`core.samples.load_samples` accepts). ``"reference"``:
        :func:`reference_counterfactual`.
    images : array_like, uint8 (N, 28, 28) or float in [0, 1]
    parents : pandas.DataFrame or dict, optional
        thickness and intensity of each image (default: measured).
    interventions : sequence of dict, optional
        ``{parent: value or array (N,)}`` each (default :data:`DEFAULT_INTERVENTIONS`).
    scm : {"thickness->intensity", "intensity->thickness"}, optional
        The causal graph the model claims: a child of an intervened parent is then expected to move as the
        SCM says (:func:`counterfactual_parents`). None: parents independent.
    steps : int
        K, the number of times the null intervention is composed (>= 1).
    tolerances : dict, optional
        Overrides of :data:`DEFAULT_TOLERANCES`.
    preserved : sequence of str
        Attributes an intervention on the parents must not move (judged); the others are reported.

    Returns
    -------
    SoundnessReport
    """
    fn = _as_cf(cf)
    model = name or ("reference (SetThickness, SetIntensity)" if fn is reference_counterfactual
                     else getattr(cf, "__name__", type(cf).__name__))
    imgs = _check_images(images)
    if len(imgs) == 0:
        raise ValueError("images is empty")
    if scm is not None:
        _check_scm(scm)
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    tol = dict(DEFAULT_TOLERANCES)
    tol.update(tolerances or {})
    bad = [a for a in preserved if a not in ATTRIBUTES]
    if bad:
        raise ValueError(f"preserved: unknown attribute(s) {bad}; choose among {', '.join(ATTRIBUTES)}")
    n = len(imgs)
    before = measure_attributes(imgs, mode=mode)
    par = before[list(PARENTS)] if parents is None else _parents_frame(parents, n)
    ivs = [_check_do(d, n) for d in (DEFAULT_INTERVENTIONS if interventions is None else interventions)]
    if not ivs:
        raise ValueError("interventions is empty")

    rows, rev_rows = [], []
    for do in ivs:
        label = _describe(do)
        intended = counterfactual_parents(par, do, scm)
        after_img = _run_cf(fn, imgs, par, do, model)
        after = measure_attributes(after_img, mode=mode)
        for a in ATTRIBUTES:
            if a in do:
                role = "intervened"
            elif a in PARENTS and not np.allclose(intended[a], par[a]):
                role = "child"
            elif a in preserved or a in PARENTS:
                role = "preserved"
            else:
                role = "reported"
            # intervened parents and their children against the intended values; the rest against the original
            target = intended[a].to_numpy() if role in ("intervened", "child") else before[a].to_numpy()
            err = after[a].to_numpy() - target
            ok = np.isfinite(err)
            mae = float(np.abs(err[ok]).mean()) if ok.any() else float("nan")
            rows.append({"intervention": label, "attribute": a, "role": role,
                         "intended": float(np.nanmean(target)), "measured": float(np.nanmean(after[a])),
                         "error": float(np.nanmean(err)) if ok.any() else float("nan"), "abs_error": mae,
                         "tolerance": tol[a] if role != "reported" else float("nan"),
                         "passed": (bool(mae <= tol[a]) if role != "reported" else None),
                         "failed_digits": int((~ok).sum())})
        # reversibility: undo with the parents the model was asked to produce
        undo = {k: par[k].to_numpy() for k in do}
        back = _run_cf(fn, after_img, intended, undo, model)
        rev_rows.append({"intervention": label, **_distances(back, imgs, before, mode)})

    comp_rows = []
    x = imgs
    null = {k: par[k].to_numpy() for k in PARENTS}
    for k in range(1, steps + 1):
        x = _run_cf(fn, x, par, null, model)
        comp_rows.append({"step": k, **_distances(x, imgs, before, mode)})

    eff = pd.DataFrame(rows)
    judged = eff[eff["role"] != "reported"]
    by = []
    for a in ATTRIBUTES:
        sub = eff[eff["attribute"] == a]
        iv = sub[sub["role"].isin(("intervened", "child"))]
        js = judged[judged["attribute"] == a]
        by.append({"attribute": a, "effectiveness_mae": float(iv["abs_error"].max()) if len(iv) else float("nan"),
                   "max_drift": float(sub[sub["role"].isin(("preserved", "reported"))]["abs_error"].max())
                   if len(sub[sub["role"].isin(("preserved", "reported"))]) else float("nan"),
                   "tolerance": tol[a], "judged": bool(len(js)),
                   "passed": bool(js["passed"].all()) if len(js) else None})
    by_attr = pd.DataFrame(by).set_index("attribute")
    passed = bool(judged["passed"].all())
    settings = {"model": model, "digits": n, "scm": scm or "none (independent parents)", "steps": steps,
                "preserved": ", ".join(preserved), "interventions": "; ".join(_describe(d) for d in ivs),
                "tolerances": ", ".join(f"{k} {v:g}" for k, v in tol.items())}
    return SoundnessReport(eff, by_attr, pd.DataFrame(comp_rows), pd.DataFrame(rev_rows), passed, settings)
