"""What the ``morpho`` subcommands share: the error type, argument types, compute options, progress bars,
input streaming and output checks."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path

import numpy as np

METRICS_HEADER = "index,area,length,thickness,slant,width,height"


class CLIError(Exception):
    """A user-facing error: printed as ``morpho CMD: error: MESSAGE`` with exit code 1."""


class UsageError(CLIError):
    """A bad option value found after parsing (e.g. a perturbation parameter): exit code 2, like argparse's."""


# --------------------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------------------


def _number(text: str, integer: bool, what: str):
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
    if not integer and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}")
    return value


def bounded(low=None, high=None, *, integer: bool = False, low_open: bool = False, high_open: bool = False,
            what: str | None = None):
    """An argparse type: a finite number (an integer when `integer`) within [low, high] (open ends optional).

    The error names the accepted range, e.g. ``expected an integer in 1..16, not 40``.
    """
    kind = "an integer" if integer else "a number"
    lo_txt = "" if low is None else (f"> {low}" if low_open else f">= {low}")
    hi_txt = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
    if low is not None and high is not None and not low_open and not high_open:
        rng = f" in {low}..{high}"
    elif low is not None and high is not None:
        rng = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    else:
        rng = f" {lo_txt or hi_txt}" if (lo_txt or hi_txt) else ""
    what = what or f"{kind}{rng}"

    def convert(text: str):
        value = _number(text, integer, what)
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"expected {what}, not {text}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"expected {what}, not {text}")
        return value

    convert.__name__ = "integer" if integer else "number"  # argparse names the type in some messages
    return convert


def max_workers() -> int:
    """Upper bound of --workers: 4 processes per CPU this process may use (more only adds memory and
    switching), at least 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(8, 4 * cpus)


#: --chunksize bound: 100,000 digits are 78 MB of uint8 images, plenty to amortise task overhead.
MAX_CHUNKSIZE = 100_000
#: --scale bound: the paper uses 4; 16 already makes 448x448 images per digit.
MAX_SCALE = 16
#: --seed bound: numpy's SeedSequence takes any non-negative int; 2**63 - 1 keeps seeds printable and portable.
MAX_SEED = 2 ** 63 - 1

positive_int = bounded(1, integer=True, what="a positive integer")
seed = bounded(0, MAX_SEED, integer=True, what="a non-negative integer seed (at most 2**63 - 1)")
threshold = bounded(0, 1, low_open=True, high_open=True,
                    what="a binarisation threshold in (0, 1) (relative to each image's intensity range)")
scale = bounded(1, MAX_SCALE, integer=True, what=f"an integer up-scaling factor in 1..{MAX_SCALE}")
chunksize = bounded(1, MAX_CHUNKSIZE, integer=True, what=f"an integer in 1..{MAX_CHUNKSIZE:,}")
seconds = bounded(0, 24 * 3600, low_open=True, what="a number of seconds in (0, 86400]")
port = bounded(1, 65535, integer=True, what="a TCP port in 1..65535")


def workers(text: str) -> int:
    """argparse type of --workers: 1..:func:`max_workers`."""
    return bounded(1, max_workers(), integer=True)(text)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are ONE line on stderr (exit 2): ``PROG: error: MESSAGE (see
    PROG --help)``, so scripts and logs show the problem without a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not None or False) and the help does not already."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_compute_options(p: argparse.ArgumentParser, default_chunksize: int) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=workers, default=None, metavar="N",
                   help="local workers: threads for measuring, processes for perturbing (default: the number "
                        "of CPUs; 1 runs in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://HOST:8786 (the workers need this package "
                        "installed)")
    p.add_argument("--connect-timeout", type=seconds, default=10., metavar="SECONDS",
                   help="how long to try reaching the scheduler")
    p.add_argument("--chunksize", type=chunksize, default=default_chunksize, metavar="N",
                   help=f"digits per task and per streamed chunk (default: {default_chunksize}); results do not depend "
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
def executor(args, kind: str = "process"):
    """Yield (executor or None, workers) for --workers / --scheduler.

    Parameters
    ----------
    kind : {"process", "thread"}
        Local pool for --workers N > 1. Measuring uses threads: the compiled measuring kernels release the
        GIL, so threads run in parallel with no pickling, no start method and nothing that can outlive this
        process. Perturbing (Python and scipy code that holds the GIL) uses processes, each of which dies
        with this process (see :func:`core.processes.end_with_parent`).
    """
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
    if kind == "thread":
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="morpho")
    else:
        from core.processes import process_pool
        # forkserver: workers start clean (no inherited threads or locks); tasks are importable functions
        pool = process_pool(workers)
    try:
        yield pool, workers
    finally:
        # on Ctrl-C (or an error) queued chunks are dropped, running ones finish (one chunk each)
        pool.shutdown(wait=True, cancel_futures=True)


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


def refuse_overwriting_inputs(outputs, inputs) -> None:
    """Refuse an output that is one of the inputs (even through a link): ``--force`` must never turn a run
    into the loss of its own source data."""
    def key(p):
        try:
            st = os.stat(p)
        except OSError:
            return None
        return st.st_dev, st.st_ino
    sources = {key(p): Path(p) for p in inputs if p is not None and key(p) is not None}
    for out in outputs:
        k = key(out)
        if k is not None and k in sources:
            raise UsageError(f"{out} is an input of this run ({sources[k]}); choose another output")


def prepare_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {outdir}: {e.strerror or e}") from e
    from core.datasets import check_writable
    check_writable(outdir)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the directory entry is only safe once the folder is synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported here (e.g. some network file systems): the rename itself has happened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_parts(path: Path) -> list[Path]:
    """Remove the temporary files that killed atomic writes of `path` left beside it (call only while holding
    :func:`output_lock` of `path`): :func:`core.io.remove_stale_parts`, one rule for the library, the app and
    the CLI.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    from core.io import remove_stale_parts as remove

    return [Path(p) for p in remove(Path(path))]


def report_removed(args, removed: list[Path]) -> None:
    if removed and progress(args):
        print(f"removed {len(removed)} temporary file(s) left by an interrupted run: "
              f"{', '.join(p.name for p in removed)}", file=sys.stderr)


@contextlib.contextmanager
def output_lock(path: Path, *, lock_path: Path | None = None):
    """Hold an exclusive lock on an output for the whole run; refuse at once if another run holds it.

    The lock is ``fcntl.flock`` on ``.NAME.lock`` beside `path` (or `lock_path`): the kernel releases it when
    the process dies, even by SIGKILL, so a killed run never blocks the next one. The lock file is removed
    on exit; a run that opened it just before is told by the inode check below and retries on a new file.

    Raises
    ------
    CLIError
        "busy" when another process holds the lock; a folder where the lock file cannot be created.
    """
    import fcntl

    path = Path(path)
    lock = lock_path or path.with_name(f".{path.name}.lock")
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        try:
            fd = os.open(lock, flags, 0o644)
        except OSError as e:
            raise CLIError(f"{path}: cannot create the lock file {lock} ({e.strerror or e})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).decode().strip() or 0)
                holder = f" (process {pid})" if pid else ""
            os.close(fd)
            raise CLIError(f"{path} is busy: another morpho run{holder} is writing it (it holds {lock}); wait for "
                           f"that run to finish or choose another output") from None
        except OSError as e:
            os.close(fd)
            raise CLIError(f"{path}: cannot lock {lock} ({e.strerror or e})") from e
        # the previous holder may have removed the file between our open and our flock
        try:
            same = os.path.samestat(os.stat(lock, follow_symlinks=False), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it, for the busy message
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


# --------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------

def check_input(path_text: str | os.PathLike, what: str = "file", *, folder_ok: bool = True) -> Path:
    """Refuse what morpho must not open, BEFORE opening it: a missing path, and anything but a regular file
    (or a folder where `folder_ok`) -- a FIFO would block forever, /dev/zero or /dev/urandom never end.

    Uses ``core.io.check_regular_file`` (the one reading layer).

    Raises
    ------
    CLIError
        Naming the path and what it is.
    """
    import stat

    path = Path(path_text)
    try:
        st = os.stat(path)  # follows symlinks: a link to /dev/zero is a character device
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file or folder") from None
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror or e})") from e
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return path
        raise CLIError(f"{path}: is a folder; a {what} is needed here")
    from core.io import UnreadableFileError, check_regular_file

    try:
        return Path(check_regular_file(path, what))
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file or folder") from None
    except UnreadableFileError as e:
        raise CLIError(str(e)) from e


def load_decoder(args):
    """``--decoder`` (with ``--latent-dim``) as a ``core.decoders.Decoder``, or a one-line error (used by
    ``morpho compare`` and ``morpho traverse``)."""
    from core.decoders import DecoderError, as_decoder
    if ":" not in args.decoder or Path(args.decoder).exists():  # a model file: refuse FIFOs and devices
        check_input(args.decoder, "model file", folder_ok=False)
    try:
        return as_decoder(args.decoder, args.latent_dim)
    except DecoderError as e:
        raise CLIError(str(e)) from e
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None


def check_idx_stream(path: Path) -> None:
    """Check a whole IDX file before any work starts, streaming it in bounded chunks: the files
    ``core.io.load_idx`` accepts pass, truncated data, trailing bytes and corrupt gzip are refused (the reading
    layer's ``iter_idx`` checks them).

    Raises
    ------
    core.io.IDXError
    """
    from core.io import iter_idx
    # start past the end: nothing is yielded, but the data is streamed through (gzip) or its size checked
    # (plain files), and what follows the declared data is checked
    for _ in iter_idx(path, 4096, start=1 << 62):
        pass


def image_source(path_text: str):
    """Return (idx_path or None, in-memory images or None, count) for an IMAGES argument."""
    from core.datasets import DatasetError, resolve_images
    from core.io import IDXError, read_idx_header

    path = resolve_images(check_input(path_text, "image file"))
    path = check_input(path, "image file", folder_ok=False)
    try:
        dtype, shape = read_idx_header(path)
    except IDXError as idx_error:
        images = load_other_images(path, idx_error)
        return None, images, len(images)
    if len(shape) != 3:
        raise DatasetError(f"{path}: expected images of shape (N, H, W), found an IDX array of shape {shape}")
    if dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 images, found {dtype}")
    check_idx_stream(path)
    return path, None, shape[0]


def load_other_images(path: Path, idx_error: Exception) -> np.ndarray:
    """Images from a model's output file (core.samples formats), or a clear error."""
    from core.samples import load_samples

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
