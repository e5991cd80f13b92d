"""Morphometrics of digits: area, stroke length, thickness, slant, width and height.

``measure_image`` measures one digit; ``measure_batch`` a whole dataset, in parallel (threads), with progress.
Both take the original ``morphomnist.measure`` parameters in the same order.
By default (``mode="released"``, unless ``$MORPHO_MNIST_MODE`` says "upstream", as for ImageMorphology and the
perturbations) the numbers are those of the published Morpho-MNIST tables.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import warnings
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from . import resample
from ._lazy import lazy_module
from .morpho import (ImageMoments, ImageMorphology, _to_unit, as_digit, bounding_parallelogram, check_image_size,
                     check_options, default_mode, raw_moments_reference)
from .resample import check_engine, check_mode
from .skeleton import kernel_tables
from .validation import check_integer, check_number

_kernels = lazy_module("core._kernels")  # numba: imported at the first compiled call

__all__ = ["METRICS", "UNITS", "MAX_WORKERS", "Morphometrics", "MeasurementWarning", "measure_image", "measure_batch",
           "MeasurementDetails", "measure_details"]

METRICS = ("area", "length", "thickness", "slant", "width", "height")
UNITS = {"area": "px²", "length": "px", "thickness": "px", "slant": "rad", "width": "px", "height": "px"}
#: Most threads measure_batch starts (``workers``).
MAX_WORKERS = 256


class Morphometrics(NamedTuple):
    """The six Morpho-MNIST morphometrics of a digit (lengths in pixels of the 28x28 image, slant in radians).

    Each value is a ``numpy.float64``, as in the original (a float subclass: NaN where a moment is undefined).
    """
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


def measure_details(image, *, mode: str | None = None, threshold: float = .5, scale: int = 4,
                    bound_frac: float = .02, engine: str = "fast") -> MeasurementDetails:
    """Measure a digit and keep its morphology, moments and bounding parallelogram (see measure_image)."""
    threshold, scale, bound_frac = _check_measure_options(threshold, scale, bound_frac)
    morph = ImageMorphology(image, threshold, scale, mode or default_mode(), engine=engine)
    if check_engine(engine) == "reference":
        moments = ImageMoments.from_raw(*raw_moments_reference(morph.hires_image))
    else:
        moments = ImageMoments(morph.hires_image)
    corners = bounding_parallelogram(morph.hires_image, bound_frac, moments, engine=engine)
    metrics = Morphometrics(
        area=np.float64(morph.area),
        length=np.float64(morph.stroke_length),
        thickness=np.float64(morph.mean_thickness),
        slant=np.float64(np.arctan(-moments.horizontal_shear)),
        width=np.float64((corners[1][0] - corners[0][0]) / morph.scale),
        height=np.float64((corners[-1][1] - corners[0][1]) / morph.scale),
    )
    return MeasurementDetails(metrics, morph, moments, corners)


def _check_measure_options(threshold, scale, bound_frac) -> tuple[float, int, float]:
    threshold, scale = check_options(threshold, scale)
    return threshold, scale, check_number("bound_frac", bound_frac, 0., 1., high_open=True)


def _kernel_options(mode: str, threshold: float, scale: int, bound_frac: float) -> tuple:
    # the arguments after the image of _kernels.measure_digit / measure_uint8_stack, typed once
    threshold, scale, bound_frac = _check_measure_options(threshold, scale, bound_frac)
    return (mode == "upstream", threshold, scale, bound_frac, resample.gaussian_weights(2 * scale / 6.0),
            *kernel_tables())


def _keeps_float(image, mode: str) -> bool:
    # upstream mode measures a float digit's float hi-res image (core.resample.upscale_float), which the
    # compiled single-pass kernels (uint8 hi-res) do not: measure_details does
    return mode == "upstream" and np.asarray(image).dtype.kind == "f"


def _measure_fast(image, mode, threshold, scale, bound_frac) -> Morphometrics:
    # The computation of measure_details(engine="reference") in one compiled call (core._kernels.measure_digit).
    unit = _to_unit(as_digit(image))
    out = np.empty(len(METRICS))
    _kernels.measure_digit(unit, *_kernel_options(mode, threshold, scale, bound_frac), out)
    _slant_from_shear(out[None])
    return Morphometrics(*(np.float64(v) for v in out))


def _slant_from_shear(values: np.ndarray) -> None:
    # The kernels leave -shear in the slant column: numpy's arctan (not libm's, which can differ in the last
    # bit) gives the released tables' values exactly.
    values[:, 3] = np.arctan(values[:, 3])


def _print_metrics(m: Morphometrics) -> None:
    # the original measure_image(verbose=True) printout
    print(f"Area: {m.area:.1f}")
    print(f"Length: {m.length:.1f}")
    print(f"Thickness: {m.thickness:.2f}")
    print(f"Slant: {np.rad2deg(m.slant):.0f}°")
    print(f"Dimensions: {m.width:.1f} x {m.height:.1f}")


def measure_image(image, threshold: float = .5, scale: int = 4, bound_frac: float = .02, verbose: bool = False, *,
                  mode: str | None = None, engine: str = "fast") -> Morphometrics:
    """Measure one digit.

    The positional parameters are those of the original ``morphomnist.measure.measure_image``.

    Parameters
    ----------
    image : numpy.ndarray
        (28, 28) digit: uint8 in [0, 255] or float in [0, 1]. Released mode measures a float digit equal to a
        uint8 digit / 255 exactly like it (the hi-res image is quantised to uint8); upstream mode measures
        floats (also in [0, 255]) as the original code does, on their float hi-res image.
    threshold : float
        Binarisation level relative to the hi-res image's range.
    scale : int
        Upsampling factor of the hi-res grid.
    bound_frac : float
        Fraction of mass left outside the bounding parallelogram (width and height).
    verbose : bool
        Print the morphometrics as the original did (its default was True; here False).
    mode : {"released", "upstream"}
        ``"released"`` reproduces the published Morpho-MNIST tables; ``"upstream"`` matches the original
        code run with current scikit-image. None (default): ``$MORPHO_MNIST_MODE`` if set, else "released",
        as for ImageMorphology and the perturbations (:func:`core.morpho.default_mode`).
    engine : {"fast", "reference"}
        Compiled kernels or the plain reference implementation (same numbers).

    Returns
    -------
    Morphometrics
        area (px²), length (px), thickness (px), slant (rad, positive leaning right), width (px),
        height (px), in pixels of the input image.

    Raises
    ------
    ValueError
        Blank or constant image, NaN/inf pixels, out-of-range values, or not 2-D (the message says which).
    """
    mode = check_mode(mode or default_mode())
    threshold, scale, bound_frac = _check_measure_options(threshold, scale, bound_frac)
    check_image_size(np.shape(image), scale)
    if check_engine(engine) == "fast" and not _keeps_float(image, mode):
        metrics = _measure_fast(image, mode, threshold, scale, bound_frac)
    else:
        metrics = measure_details(image, mode=mode, threshold=threshold, scale=scale, bound_frac=bound_frac,
                                  engine=engine).metrics
    if verbose:
        _print_metrics(metrics)
    return metrics


def _blank_reason(value) -> str:
    return f"image is blank (constant, every pixel = {value}): there is no digit to measure"


def _measure_chunk(images: np.ndarray, start: int, options: dict) -> tuple[int, np.ndarray, list]:
    """Measure a chunk; returns (start, values (n, 6), [(global index, reason), ...] of bad digits).

    uint8 chunks go through one compiled call that releases the GIL (threads measure in parallel);
    other dtypes are validated digit by digit first.
    """
    images = np.asarray(images)
    values = np.full((len(images), len(METRICS)), np.nan)
    bad = []
    # upstream float digits are measured one by one on their float hi-res image (see _keeps_float)
    if options.get("engine", "fast") == "fast" and not _keeps_float(images, options["mode"]):
        args = _kernel_options(options["mode"], options["threshold"], options["scale"], options["bound_frac"])
        if images.dtype == np.uint8 and images.ndim == 3 and images.shape[1] >= 2 and images.shape[2] >= 2:
            status = np.zeros(len(images), np.uint8)
            _kernels.measure_uint8_stack(np.ascontiguousarray(images), *args, values, status)
            _slant_from_shear(values)
            bad = [(start + k, _blank_reason(images[k].flat[0])) for k in np.flatnonzero(status)]
            return start, values, bad
        for k, image in enumerate(images):
            try:
                _kernels.measure_digit(_to_unit(as_digit(image)), *args, values[k])
            except ValueError as e:
                bad.append((start + k, str(e)))
        _slant_from_shear(values)
        return start, values, bad
    for k, image in enumerate(images):
        try:
            values[k] = measure_image(image, **options)
        except ValueError as e:
            bad.append((start + k, str(e)))
    return start, values, bad


def _measure_chunk_args(args):
    # for Pool.imap, which passes one argument
    return _measure_chunk(*args)


_WARM = False


def _warm_up() -> None:
    """Load the compiled kernels (from numba's on-disk cache, compiling them the first time); once."""
    global _WARM
    if _WARM:
        return
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    for mode in ("released", "upstream"):
        _measure_fast(digit, mode, .5, 4, .02)
        _measure_chunk(digit[None], 0, dict(mode=mode, threshold=.5, scale=4, bound_frac=.02, engine="fast"))
        morph = ImageMorphology(digit, mode=mode)
        morph.downscale(morph.binary_image)
        morph.downscale(morph.hires_image / 255.0)
    _WARM = True


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) every measurement kernel, in both modes; once.

    Nothing compiles at import: the first measurement compiles what it needs (tens of seconds on an empty
    cache). Call this ahead of time -- e.g. from a background thread of a server -- so that no user waits.
    """
    _warm_up()


def _is_dask_client(executor) -> bool:
    return hasattr(executor, "gather") and hasattr(executor, "scatter") and hasattr(executor, "submit")


def _as_image_stack(images) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"measure_batch expects images of shape (N, rows, cols), got {arr.shape}")
    return arr


def measure_batch(images, threshold: float = .5, scale: int = 4, bound_frac: float = .02, pool=None,
                  chunksize: int | None = 100, *, mode: str | None = None, workers: int | None = None, executor=None,
                  progress: bool | Callable[[int, int], None] = True, engine: str = "fast") -> pd.DataFrame:
    """Measure many digits, optionally in parallel.

    The positional parameters are those of the original ``morphomnist.measure.measure_batch``.

    Parameters
    ----------
    images : array_like
        (N, rows, cols) (or (N, 1, rows, cols)) digits, uint8 or float in [0, 1].
    threshold, scale, bound_frac, mode, engine
        As :func:`measure_image`.
    pool : multiprocessing.pool.Pool, optional
        As in the original: chunks are measured with ``pool.imap`` (in order). Needs the usual
        multiprocessing care (a ``__main__`` guard with spawn/forkserver); `workers` needs none.
    chunksize : int, optional
        Digits per task (default 100, as the original; None: about 8 tasks per worker, at most 2,000).
    workers : int, optional
        Threads measuring in parallel (the compiled kernels release the GIL, so threads scale like
        processes without pickling, start methods or orphaned workers), 1 to :data:`MAX_WORKERS`; None or
        1 measures in the calling thread (``os.cpu_count()`` uses every core).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Runs the chunks instead (e.g. a process pool or a cluster). Results are identical to a local run.
    progress : bool or callable
        Show a tqdm progress bar (default), or call ``progress(done, total)`` after each chunk.

    Returns
    -------
    pandas.DataFrame
        N rows (index 0..N-1), exactly the columns area, length, thickness, slant, width, height. A digit
        that cannot be measured (blank, NaN pixels, ...) gets a NaN row, and one
        :class:`MeasurementWarning` names every such index.
    """
    mode = check_mode(mode or default_mode())
    check_engine(engine)
    # bad options fail here, before any work, not in every chunk
    threshold, scale, bound_frac = _check_measure_options(threshold, scale, bound_frac)
    if workers is not None:
        workers = check_integer("workers", workers, 1, MAX_WORKERS)
    if chunksize is not None:
        chunksize = check_integer("chunksize", chunksize, 1, 2 ** 31)
    images = _as_image_stack(images)
    check_image_size(images.shape, scale)
    n = len(images)
    options = dict(mode=mode, threshold=threshold, scale=scale, bound_frac=bound_frac, engine=engine)
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
        if pool is not None:
            for result in pool.imap(_measure_chunk_args, ((images[s:s + chunksize], s, options) for s in starts)):
                collect(result)
        elif executor is None and parallelism <= 1:
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
            if own:
                _warm_up()  # load the kernels once here, not in every thread at once
            runner = executor if not own else cf.ThreadPoolExecutor(max_workers=parallelism,
                                                                    thread_name_prefix="measure_batch")
            try:
                futures = [runner.submit(_measure_chunk, images[s:s + chunksize], s, options) for s in starts]
                for fut in cf.as_completed(futures):
                    collect(fut.result())
            finally:
                if own:
                    runner.shutdown(wait=True, cancel_futures=True)
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

