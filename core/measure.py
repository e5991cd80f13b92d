"""Morphometrics of digits: area, stroke length, thickness, slant, width and height.

``measure_image`` measures one digit; ``measure_batch`` a whole dataset, in parallel, with progress.
By default (``mode="released"``) the numbers are those of the published Morpho-MNIST tables.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import threading
import warnings
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from . import _kernels, resample
from .morpho import ImageMoments, ImageMorphology, _to_unit, as_digit, bounding_parallelogram
from .resample import check_engine, check_mode
from .skeleton import medial_axis

__all__ = ["METRICS", "UNITS", "Morphometrics", "MeasurementWarning", "measure_image", "measure_batch",
           "MeasurementDetails", "measure_details"]

METRICS = ("area", "length", "thickness", "slant", "width", "height")
UNITS = {"area": "px²", "length": "px", "thickness": "px", "slant": "rad", "width": "px", "height": "px"}


class Morphometrics(NamedTuple):
    """The six Morpho-MNIST morphometrics of a digit (lengths in pixels of the 28x28 image, slant in radians)."""
    area: float
    length: float
    thickness: float
    slant: float
    width: float
    height: float


class MeasurementWarning(UserWarning):
    """Some digits of a batch could not be measured; their rows are NaN."""


class MeasurementDetails(NamedTuple):
    """Everything behind one measurement, for overlays and teaching (hi-res pixel coordinates)."""
    metrics: Morphometrics
    morph: ImageMorphology
    moments: ImageMoments
    corners: tuple  # top_left, top_right, bottom_right, bottom_left, each np.array([x, y])


def measure_details(image, *, mode: str = "released", threshold: float = .5, scale: int = 4,
                    bound_frac: float = .02, engine: str = "fast") -> MeasurementDetails:
    """Measure a digit and keep its morphology, moments and bounding parallelogram (see measure_image)."""
    morph = ImageMorphology(image, threshold, scale, mode, engine=engine)
    moments = ImageMoments(morph.hires_image)
    corners = bounding_parallelogram(morph.hires_image, bound_frac, moments, engine=engine)
    metrics = Morphometrics(
        area=float(morph.area),
        length=float(morph.stroke_length),
        thickness=float(morph.mean_thickness),
        slant=float(np.arctan(-moments.horizontal_shear)),
        width=float((corners[1][0] - corners[0][0]) / morph.scale),
        height=float((corners[-1][1] - corners[0][1]) / morph.scale),
    )
    return MeasurementDetails(metrics, morph, moments, corners)


def _measure_fast(image, mode, threshold, scale, bound_frac) -> Morphometrics:
    # The same computation as measure_details with engine="fast", without keeping hi-res arrays.
    unit = _to_unit(as_digit(image))
    hires = _kernels.to_uint8_truncate(resample.upscale(unit, scale, mode, "fast") if scale > 1 else unit)
    binary = _kernels.binarise(hires, threshold)
    skeleton, distance = medial_axis(binary, mode, "fast")
    npx, dsum, straight, diagonal = _kernels.skeleton_stats(skeleton, distance)
    moments = ImageMoments.from_raw(*_kernels.raw_moments(hires))
    shear = moments.horizontal_shear
    hcount, vcount = _kernels.parallelogram_cdfs(hires, shear, moments.m01)
    total = moments.m00
    half = bound_frac / 2
    left, right = np.interp([half, 1. - half], hcount / total, np.arange(hires.shape[1]))
    top, bottom = np.interp([half, 1. - half], vcount / total, np.arange(hires.shape[0]))
    return Morphometrics(
        area=float(np.count_nonzero(binary) / scale ** 2),
        length=float((straight + math.sqrt(2.) * diagonal) / scale),
        thickness=float(2. * (dsum / npx) / scale) if npx else float("nan"),
        slant=float(np.arctan(-shear)),
        width=float((right - left) / scale),
        height=float((bottom - top) / scale),
    )


def measure_image(image, *, mode: str = "released", threshold: float = .5, scale: int = 4,
                  bound_frac: float = .02, engine: str = "fast") -> Morphometrics:
    """Measure one digit.

    Parameters
    ----------
    image : numpy.ndarray
        (28, 28) digit: uint8 in [0, 255] or float in [0, 1]; a float digit equal to a uint8 digit / 255 is
        measured exactly like it.
    mode : {"released", "upstream"}
        ``"released"`` reproduces the published Morpho-MNIST tables (default); ``"upstream"`` matches the
        original code run with current scikit-image.
    threshold : float
        Binarisation level relative to the hi-res image's range.
    scale : int
        Upsampling factor of the hi-res grid.
    bound_frac : float
        Fraction of mass left outside the bounding parallelogram (width and height).
    engine : {"fast", "reference"}
        Compiled kernels or the plain reference implementation (same numbers).

    Returns
    -------
    Morphometrics
        area (px²), length (px), thickness (px), slant (rad, positive leaning right), width (px),
        height (px), in pixels of the input image. Prints nothing.

    Raises
    ------
    ValueError
        Blank or constant image, NaN/inf pixels, out-of-range values, or not 2-D (the message says which).
    """
    check_mode(mode)
    if check_engine(engine) == "fast":
        return _measure_fast(image, mode, threshold, int(scale), bound_frac)
    return measure_details(image, mode=mode, threshold=threshold, scale=scale, bound_frac=bound_frac,
                           engine=engine).metrics


def _measure_chunk(images: np.ndarray, start: int, options: dict) -> tuple[int, np.ndarray, list]:
    """Measure a chunk; returns (start, values (n, 6), [(global index, reason), ...] of bad digits)."""
    values = np.full((len(images), len(METRICS)), np.nan)
    bad = []
    for k, image in enumerate(images):
        try:
            values[k] = measure_image(image, **options)
        except ValueError as e:
            bad.append((start + k, str(e)))
    return start, values, bad


def _warm_up() -> None:
    """Load the compiled kernels (from the on-disk cache) so that workers forked later start ready."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    for mode in ("released", "upstream"):
        _measure_fast(digit, mode, .5, 4, .02)


def _worker_context():
    """Start method of the worker processes.

    fork (Linux) when this process has a single thread: workers inherit the loaded kernels and scripts need
    no ``if __name__ == "__main__"`` guard. From a threaded process (e.g. the explorer's server), where
    fork can deadlock, forkserver, whose server preloads and warms the kernels once for every worker.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        _warm_up()
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["core._worker"])
    return ctx


def _is_dask_client(executor) -> bool:
    return hasattr(executor, "gather") and hasattr(executor, "scatter") and hasattr(executor, "submit")


def _as_image_stack(images) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"measure_batch expects images of shape (N, rows, cols), got {arr.shape}")
    return arr


def measure_batch(images, *, mode: str = "released", threshold: float = .5, scale: int = 4,
                  bound_frac: float = .02, workers: int | None = None, executor=None,
                  progress: bool | Callable[[int, int], None] = True, chunksize: int | None = None,
                  engine: str = "fast") -> pd.DataFrame:
    """Measure many digits, optionally in parallel.

    Parameters
    ----------
    images : array_like
        (N, rows, cols) (or (N, 1, rows, cols)) digits, uint8 or float in [0, 1].
    mode, threshold, scale, bound_frac, engine
        As :func:`measure_image`.
    workers : int, optional
        Number of worker processes; None or 1 measures in this process, -1 uses every core.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Runs the chunks instead of `workers` (e.g. a cluster). Results are identical to a local run.
    progress : bool or callable
        Show a tqdm progress bar (default), or call ``progress(done, total)`` after each chunk.
    chunksize : int, optional
        Digits per task (default: about 8 tasks per worker, at most 2,000).

    Returns
    -------
    pandas.DataFrame
        N rows (index 0..N-1), exactly the columns area, length, thickness, slant, width, height. A digit
        that cannot be measured (blank, NaN pixels, ...) gets a NaN row, and one
        :class:`MeasurementWarning` names every such index.
    """
    check_mode(mode)
    check_engine(engine)
    images = _as_image_stack(images)
    n = len(images)
    options = dict(mode=mode, threshold=threshold, scale=int(scale), bound_frac=bound_frac, engine=engine)
    if workers is not None and workers < 0:
        workers = os.cpu_count() or 1
    parallelism = workers or 1
    if executor is not None:
        parallelism = max(parallelism, 4)
    if chunksize is None:
        chunksize = max(1, min(2000, math.ceil(n / (8 * parallelism)))) if n else 1
    starts = list(range(0, n, chunksize))
    values = np.full((n, len(METRICS)), np.nan)
    bad: list = []

    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, unit="digit", desc="measuring", smoothing=0.1)

    done = 0

    def collect(result):
        nonlocal done
        start, vals, bad_chunk = result
        values[start:start + len(vals)] = vals
        bad.extend(bad_chunk)
        done += len(vals)
        if bar is not None:
            bar.update(len(vals))
        if callback is not None:
            callback(done, n)

    try:
        if executor is None and parallelism <= 1:
            for s in starts:
                collect(_measure_chunk(images[s:s + chunksize], s, options))
        elif executor is not None and _is_dask_client(executor):
            from distributed import as_completed as dask_as_completed
            futures = [executor.submit(_measure_chunk, images[s:s + chunksize], s, options, pure=False)
                       for s in starts]
            for fut in dask_as_completed(futures):
                collect(fut.result())
        else:
            own = executor is None
            pool = executor if not own else cf.ProcessPoolExecutor(max_workers=parallelism, mp_context=_worker_context())
            try:
                futures = [pool.submit(_measure_chunk, images[s:s + chunksize], s, options) for s in starts]
                for fut in cf.as_completed(futures):
                    collect(fut.result())
            finally:
                if own:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()

    if bad:
        bad.sort()
        shown = "; ".join(f"{i}: {reason}" for i, reason in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"{len(bad)} of {n} digits could not be measured, their rows are NaN (index: reason) "
                      f"{shown}{more}. Indices: {[i for i, _ in bad]}", MeasurementWarning, stacklevel=2)
    return pd.DataFrame(values, columns=list(METRICS))
