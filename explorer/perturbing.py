"""Perturbing digits reproducibly, without Panel: what the studio previews and exports, and what the explorer's
worker processes run (:func:`explorer.jobs.map_digits` pickles :func:`perturb_digits` by name, so a worker
imports this module, not the app).

Every digit gets its own random generator, seeded by (seed, the digit's index in its dataset)
(:func:`digit_rng`): a digit is perturbed the same way in the studio's preview, in an export of any
selection, and in any chunking of a batch.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.data import PERTURBATION_NAMES, measure_metrics

__all__ = ["PerturbationSpec", "perturbation_specs", "make_perturbation", "digit_rng", "perturb_digit",
           "perturb_digits", "perturb_batch"]


@dataclass
class PerturbationSpec:
    """A perturbation class and its parameters, from ``core.perturb.PERTURBATIONS``."""

    key: str
    label: str
    cls: type
    params: list
    random: bool
    code: int


def perturbation_specs() -> dict:
    """Perturbations offered by the studio, in the order of ``core.perturb.PERTURBATIONS``.

    Returns
    -------
    dict
        key -> :class:`PerturbationSpec`.
    """
    from core.perturb import PERTURBATION_CODES, PERTURBATIONS

    specs = {}
    for key, (cls, params) in PERTURBATIONS.items():
        sig = inspect.signature(cls)
        code = PERTURBATION_CODES.get(key, 8)
        label = PERTURBATION_NAMES.get(code, key.replace("_", " "))
        specs[key] = PerturbationSpec(key, label.capitalize(), cls, list(params), "rng" in sig.parameters, code)
    return specs


def make_perturbation(spec: PerturbationSpec, values: dict, rng: np.random.Generator | None = None):
    """Instantiate a perturbation with slider ``values`` (defaults for missing ones)."""
    kwargs = {}
    for p in spec.params:
        v = values.get(p.name, p.default)
        kwargs[p.name] = int(round(v)) if p.integer else float(v)
    if spec.random:
        kwargs["rng"] = rng if rng is not None else np.random.default_rng(0)
    return spec.cls(**kwargs)


def digit_rng(seed: int, index: int | None = None) -> np.random.Generator:
    """The generator of a random perturbation of digit ``index``: seeded by (seed, index), so a digit gets
    the same perturbation in the studio's preview and in an export, whatever else is exported with it."""
    return np.random.default_rng(seed if index is None else [seed, int(index)])


def perturb_digit(image: np.ndarray, spec: PerturbationSpec, values: dict, seed: int,
                  index: int | None = None) -> np.ndarray:
    """Perturb one digit reproducibly: uint8 (28, 28) in, uint8 (28, 28) out (see :func:`digit_rng`)."""
    from core.perturb import perturb_image

    pert = make_perturbation(spec, values, digit_rng(seed, index))
    return perturb_image(image, pert, mode="released", scale=4)


def perturb_digits(images: np.ndarray, indices: np.ndarray, spec: PerturbationSpec, values: dict,
                   seed: int) -> np.ndarray:
    """Perturb digits, each with its own generator (:func:`digit_rng`), so any chunking of a batch gives
    the same result. uint8 (N, 28, 28) and their dataset indices (N,) in, uint8 (N, 28, 28) out."""
    out = np.empty_like(images)
    for k, (image, index) in enumerate(zip(images, indices)):
        out[k] = perturb_digit(image, spec, values, seed, index)
    return out


def perturb_batch(images: np.ndarray, spec: PerturbationSpec, values: dict, seed: int,
                  progress=None, indices: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Perturb digits reproducibly (one generator per digit, :func:`digit_rng`) and measure them.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (N, 28, 28).
    indices : numpy.ndarray, optional
        int (N,) the digits' indices in their dataset (seeds their generators); 0..N-1 when omitted.

    Returns
    -------
    images : numpy.ndarray
        uint8 (N, 28, 28).
    metrics : pandas.DataFrame
        Their six morphometrics.
    """
    n = len(images)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    out = np.empty_like(images)
    total = 2 * n  # perturbing, then measuring
    for start in range(0, n, 50):
        out[start:start + 50] = perturb_digits(images[start:start + 50], indices[start:start + 50], spec, values,
                                               seed)
        if progress:
            progress(min(start + 50, n), total)
    metrics = measure_metrics(out, (lambda d, t: progress(n + d, total)) if progress else None)
    return out, metrics
