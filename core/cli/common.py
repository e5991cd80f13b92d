"""What the ``morpho`` subcommands share: the error type, argument types, compute options, progress bars,
input streaming and output checks."""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import numpy as np

METRICS_HEADER = "index,area,length,thickness,slant,width,height"


class CLIError(Exception):
    """A user-facing error: printed as ``morpho CMD: error: MESSAGE`` with exit code 1."""


# --------------------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, not {value}")
    return value


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not None or False) and the help does not already."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_compute_options(p: argparse.ArgumentParser, chunksize: int) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs; 1 runs in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://HOST:8786 (the workers need this package "
                        "installed)")
    p.add_argument("--connect-timeout", type=float, default=10., metavar="SECONDS",
                   help="how long to try reaching the scheduler")
    p.add_argument("--chunksize", type=positive_int, default=chunksize, metavar="N",
                   help=f"digits per task and per streamed chunk (default: {chunksize}); results do not depend "
                        "on it")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


# --------------------------------------------------------------------------------------------------------
# progress and compute
# --------------------------------------------------------------------------------------------------------

def progress(args) -> bool:
    return not getattr(args, "quiet", False)


def bar(args, total, desc, initial=0, unit="digit"):
    if not progress(args):
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit)


@contextlib.contextmanager
def executor(args):
    """Yield (executor or None, workers) for --workers / --scheduler."""
    if getattr(args, "scheduler", None):
        try:
            from dask.distributed import Client
        except ImportError as e:
            raise CLIError("--scheduler needs Dask distributed: pip install 'dask[distributed]'") from e
        try:
            client = Client(args.scheduler, timeout=f"{getattr(args, 'connect_timeout', 10.)}s")
        except (OSError, TimeoutError, ValueError) as e:
            raise CLIError(f"cannot connect to the Dask scheduler at {args.scheduler}: {e}") from e
        try:
            yield client, None
        finally:
            client.close()
        return
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers <= 1:
        yield None, 1
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # forkserver: workers start clean (no inherited threads or locks); tasks are importable functions
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool, workers


# --------------------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------------------

def check_output_file(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CLIError(f"{path} exists already; use --force to replace it")
    if path.is_dir():
        raise CLIError(f"{path} is a folder, not a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{folder}: output folder does not exist")
    from core.datasets import check_writable
    check_writable(folder)


def prepare_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {outdir}: {e.strerror or e}") from e
    from core.datasets import check_writable
    check_writable(outdir)


# --------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------

def image_source(path_text: str):
    """Return (idx_path or None, in-memory images or None, count) for an IMAGES argument."""
    from core.datasets import DatasetError, resolve_images
    from core.io import IDXError, read_idx_header

    path = resolve_images(path_text)
    try:
        dtype, shape = read_idx_header(path)
    except IDXError as idx_error:
        images = load_other_images(path, idx_error)
        return None, images, len(images)
    if len(shape) != 3:
        raise DatasetError(f"{path}: expected images of shape (N, H, W), found an IDX array of shape {shape}")
    if dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 images, found {dtype}")
    return path, None, shape[0]


def load_other_images(path: Path, idx_error: Exception) -> np.ndarray:
    """Images from a model's output file (core.samples formats), or a clear error."""
    try:
        from core.samples import load_samples
    except ImportError:
        raise idx_error from None
    try:
        samples = load_samples(path)
    except Exception as e:  # the message of either reader helps
        raise CLIError(f"{path}: neither an IDX file ({idx_error}) nor a samples file ({e})") from e
    images = np.asarray(samples.images)
    if images.ndim != 3:
        raise CLIError(f"{path}: expected images of shape (N, H, W), found {images.shape}")
    return images


def chunks(idx_path, images, n, chunksize, start=0):
    from core.datasets import iter_idx_chunks
    if idx_path is not None:
        yield from iter_idx_chunks(idx_path, chunksize, start, n)
    else:
        for i in range(start, n, chunksize):
            yield i, images[i:i + chunksize]
