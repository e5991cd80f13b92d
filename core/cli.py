"""The ``morpho`` command: measure, perturb, generate, download, inspect, compare and explore MNIST digits.

Run ``morpho --help`` or ``morpho SUBCOMMAND --help``. Every subcommand returns 0 on success, 1 on an error
(a one-line message naming the file and the problem on stderr), 2 on a usage error and 130 when
interrupted. Outputs are written atomically and existing files are replaced only with ``--force``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser", "CLIError"]

METRICS_HEADER = "index,area,length,thickness,slant,width,height"


class CLIError(Exception):
    """A user-facing error: printed as ``morpho CMD: error: MESSAGE`` with exit code 1."""


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------

def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, not {value}")
    return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not None or False) and the help does not already."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add_compute_options(p: argparse.ArgumentParser, chunksize: int) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs; 1 runs in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://HOST:8786 (the workers need this package "
                        "installed)")
    p.add_argument("--connect-timeout", type=float, default=10., metavar="SECONDS",
                   help="how long to try reaching the scheduler")
    p.add_argument("--chunksize", type=_positive_int, default=chunksize, metavar="N",
                   help=f"digits per task and per streamed chunk (default: {chunksize}); results do not depend "
                        "on it")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


@contextlib.contextmanager
def _executor(args):
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


def _check_output_file(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CLIError(f"{path} exists already; use --force to replace it")
    if path.is_dir():
        raise CLIError(f"{path} is a folder, not a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{folder}: output folder does not exist")
    from core.datasets import check_writable
    check_writable(folder)


def _prepare_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {outdir}: {e.strerror or e}") from e
    from core.datasets import check_writable
    check_writable(outdir)


def _image_source(path_text: str):
    """Return (idx_path or None, in-memory images or None, count) for an IMAGES argument."""
    from core.datasets import DatasetError, resolve_images
    from core.io import IDXError, read_idx_header

    path = resolve_images(path_text)
    try:
        dtype, shape = read_idx_header(path)
    except IDXError as idx_error:
        images = _load_other_images(path, idx_error)
        return None, images, len(images)
    if len(shape) != 3:
        raise DatasetError(f"{path}: expected images of shape (N, H, W), found an IDX array of shape {shape}")
    if dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 images, found {dtype}")
    return path, None, shape[0]


def _load_other_images(path: Path, idx_error: Exception) -> np.ndarray:
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


def _chunks(idx_path, images, n, chunksize, start=0):
    from core.datasets import iter_idx_chunks
    if idx_path is not None:
        yield from iter_idx_chunks(idx_path, chunksize, start, n)
    else:
        for i in range(start, n, chunksize):
            yield i, images[i:i + chunksize]


def _bar(args, total, desc, initial=0, unit="digit"):
    if not _progress(args):
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit)


# --------------------------------------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------------------------------------

def _partial_identity(idx_path, images, n, args) -> dict:
    ident = {"count": n, "mode": args.mode, "threshold": args.threshold, "scale": args.scale}
    if idx_path is not None:
        st = Path(idx_path).stat()
        ident.update(images=str(Path(idx_path).resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
    else:
        ident["images_sha1"] = __import__("hashlib").sha1(np.ascontiguousarray(images).tobytes()).hexdigest()
    return ident


def _resume_point(partial: Path) -> int:
    """Rows already complete in a partial CSV; truncates an incomplete last line. Raises CLIError if corrupted."""
    data = partial.read_bytes()
    if not data.startswith((METRICS_HEADER + "\n").encode()):
        raise CLIError(f"{partial}: not a partial morphometrics table (header differs); remove it or use --force")
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(partial, "r+b") as f:
            f.truncate(end)
    lines = data[:end].decode().splitlines()[1:]
    for i, line in enumerate(lines):
        head = line.split(",", 1)[0]
        if head != str(i) or line.count(",") != 6:
            raise CLIError(f"{partial}: line {i + 2} is not row {i} of a morphometrics table; remove the file "
                           f"or use --force to start over")
    return len(lines)


def _measure_chunk_df(chunk, start, args, executor, workers, failed: list | None = None):
    """Measure one chunk; its rows are indexed from `start`. Indices of digits that could not be measured
    (NaN rows) are appended to `failed` (reported once at the end rather than one warning per chunk)."""
    import warnings

    from core.measure import measure_batch
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not be measured")
        df = measure_batch(chunk, mode=args.mode, threshold=args.threshold, scale=args.scale,
                           workers=workers, executor=executor, progress=False)
    df.index = np.arange(start, start + len(chunk))
    df.index.name = "index"
    if failed is not None:
        failed.extend(int(i) for i in df.index[df.isna().any(axis=1)])
    return df


def _report_failed(failed: list, n: int) -> None:
    if failed:
        shown = ", ".join(map(str, failed[:20])) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
        print(f"warning: {len(failed)} of {n} digits could not be measured (blank or invalid images); their rows "
              f"are empty: {shown}", file=sys.stderr)


def cmd_measure(args) -> int:
    from core.io import atomic_write

    idx_path, images, n = _image_source(args.images)
    failed: list[int] = []
    if args.output is None:
        with _executor(args) as (executor, workers), _bar(args, n, "measure") as bar:
            sys.stdout.write(METRICS_HEADER + "\n")
            for start, chunk in _chunks(idx_path, images, n, args.chunksize):
                _measure_chunk_df(chunk, start, args, executor, workers, failed).to_csv(sys.stdout, header=False)
                sys.stdout.flush()
                if bar is not None:
                    bar.update(len(chunk))
        _report_failed(failed, n)
        return 0

    out = Path(args.output)
    _check_output_file(out, args.force)
    partial = out.with_name(out.name + ".partial")
    meta = out.with_name(out.name + ".partial.json")
    ident = _partial_identity(idx_path, images, n, args)
    done = 0
    if partial.exists() and not args.force:
        try:
            old = json.loads(meta.read_text())
        except (OSError, ValueError):
            old = None
        if old != ident:
            raise CLIError(f"{partial} is left from a run on other images or settings; remove it (and {meta.name})"
                           f" or use --force to start over")
        done = _resume_point(partial)
        if done > n:
            raise CLIError(f"{partial} has {done} rows but the images hold {n}; remove it or use --force")
        if done and _progress(args):
            print(f"resuming {partial} at digit {done} of {n}", file=sys.stderr)
    if done == 0:
        with atomic_write(meta, "w") as f:
            json.dump(ident, f)
        with atomic_write(partial, "w", newline="") as f:
            f.write(METRICS_HEADER + "\n")
    try:
        with _executor(args) as (executor, workers), _bar(args, n, "measure", initial=done) as bar, \
                open(partial, "a", newline="", encoding="utf-8") as f:
            for start, chunk in _chunks(idx_path, images, n, args.chunksize, start=done):
                df = _measure_chunk_df(chunk, start, args, executor, workers, failed)
                df.to_csv(f, header=False)
                f.flush()
                os.fsync(f.fileno())
                if bar is not None:
                    bar.update(len(chunk))
    except KeyboardInterrupt:
        rows = _resume_point(partial)
        print(f"morpho measure: interrupted after {rows} of {n} digits; run the same command again to continue "
              f"(progress kept in {partial})", file=sys.stderr)
        return 130
    rows = _resume_point(partial)
    if rows != n:
        raise CLIError(f"{partial}: {rows} rows measured, {n} expected; run the same command again")
    os.replace(partial, out)
    with contextlib.suppress(OSError):
        meta.unlink()
    _report_failed(failed, n)
    if _progress(args):
        print(f"wrote {out} ({n} digits)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------
# perturb
# --------------------------------------------------------------------------------------------------------

def _registry() -> dict:
    from core.perturb import PERTURBATIONS
    return PERTURBATIONS


def _perturbation_params(name: str) -> dict:
    """Parameter name -> ParamSpec (name, default, low, high, step, unit, doc) of a registry perturbation."""
    _cls, specs = _registry()[name]
    return {spec.name: spec for spec in specs}


def _all_params() -> dict[str, str]:
    """option dest -> help text, over all registry perturbations (parameter names may be shared)."""
    out: dict[str, list[str]] = {}
    try:
        reg = _registry()
    except ImportError:
        return {}
    for name in reg:
        for pname, spec in _perturbation_params(name).items():
            unit = f" {spec.unit}" if spec.unit else ""
            out.setdefault(pname, []).append(f"{name}: {spec.doc}, default {spec.default}{unit}, sensible range "
                                             f"{spec.low}..{spec.high}")
    return {k: "; ".join(v) for k, v in out.items()}


_ALIASES = {"thin": "thinning", "thic": "thickening", "thick": "thickening", "swel": "swelling",
            "frac": "fracture"}


def _resolve_perturbation(name: str) -> str:
    reg = _registry()
    keys = {k.lower(): k for k in reg}
    for cand in (name, name.lower(), _ALIASES.get(name.lower(), "")):
        if cand in reg:
            return cand
        if cand.lower() in keys:
            return keys[cand.lower()]
    raise CLIError(f"unknown perturbation {name!r}; choose one of {', '.join(reg)}")


def _convert(value: str, spec, pert: str):
    option = f"--{spec.name.replace('_', '-')}"
    try:
        number = int(value) if isinstance(spec.default, int) else float(value)
    except ValueError:
        kind = "an integer" if isinstance(spec.default, int) else "a number"
        raise CLIError(f"{option} of {pert}: expected {kind}, not {value!r}") from None
    if not np.isfinite(number):
        raise CLIError(f"{option} of {pert}: expected a finite number, not {value!r}")
    if not spec.low <= number <= spec.high:
        print(f"warning: {option} {number} is outside the sensible range {spec.low}..{spec.high} of {pert}",
              file=sys.stderr)
    return number


def cmd_perturb(args) -> int:
    from core.datasets import (OTHER_SPLIT_ID, SPLIT_IDS, DatasetError, IdxWriter, find_split, make_perturbation,
                               map_ordered, perturb_chunk, split_of)
    from core.io import atomic_write, atomic_write_csv, load_idx, save_idx

    name = _resolve_perturbation(args.perturbation)
    params_spec = _perturbation_params(name)
    params = {}
    for dest in _all_params():
        value = getattr(args, f"p_{dest}", None)
        if value is None:
            continue
        if dest not in params_spec:
            raise CLIError(f"--{dest.replace('_', '-')} is not a parameter of {name} (its parameters: "
                           f"{', '.join(params_spec) or 'none'})")
        params[dest] = _convert(value, params_spec[dest], name)
    try:
        make_perturbation(name, params, rng=0)
    except (TypeError, ValueError) as e:
        raise CLIError(f"invalid parameters for {name}: {e}") from e

    idx_path, images, n = _image_source(args.images)
    src = Path(idx_path) if idx_path is not None else Path(args.images)
    prefix = split_of(src) or src.name.split(".")[0]
    split_id = SPLIT_IDS.get(prefix, OTHER_SPLIT_ID)
    outdir = Path(args.output)
    _prepare_outdir(outdir)
    out_images = outdir / f"{prefix}-images-idx3-ubyte.gz"
    out_labels = outdir / f"{prefix}-labels-idx1-ubyte.gz"
    out_metrics = outdir / f"{prefix}-morpho.csv"
    out_readme = outdir / "README.md"
    labels = None
    if idx_path is not None and split_of(src):
        lab_path = None
        with contextlib.suppress(DatasetError):
            lab_path = find_split(src.parent, prefix, require_labels=False).labels
        if lab_path is not None:
            labels = load_idx(lab_path)
            if labels.shape != (n,):
                raise DatasetError(f"{src.name} holds {n} images but {lab_path.name} holds {labels.shape[0]} "
                                   f"labels (in {src.parent})")
    targets = [out_images, out_readme] + ([out_labels] if labels is not None else []) + \
        ([out_metrics] if args.measure else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        raise CLIError(f"output files exist already: {', '.join(existing)}; use --force to replace them")

    metrics = []
    shape = (n,) + ((28, 28) if images is None else images.shape[1:])
    if idx_path is not None:
        from core.io import read_idx_header
        shape = (n,) + tuple(read_idx_header(idx_path)[1][1:])
    with _executor(args) as (executor, workers), _bar(args, n, f"perturb ({name})") as bar, \
            IdxWriter(out_images, shape) as writer:
        tasks = ((chunk, start, split_id, args.seed, name, params, args.mode, args.threshold, args.scale)
                 for start, chunk in _chunks(idx_path, images, n, args.chunksize))
        for start_out, result in zip(range(0, n, args.chunksize),
                                     map_ordered(perturb_chunk, tasks, executor, max_pending=4)):
            writer.write(result)
            if args.measure:
                metrics.append(_measure_chunk_df(result, start_out, args, executor, workers))
            if bar is not None:
                bar.update(len(result))
    if labels is not None:
        save_idx(labels, out_labels)
    if args.measure:
        import pandas as pd
        df = pd.concat(metrics) if metrics else None
        if df is not None:
            atomic_write_csv(df, out_metrics)
    full = {k: params.get(k, spec.default) for k, spec in params_spec.items()}
    param_text = ", ".join(f"{k}={v}" for k, v in full.items()) or "no parameters"
    lines = [f"# {prefix} digits perturbed with {name}", "",
             f"{n} digits of `{src.name}`, each perturbed with `{name}({param_text})`"
             + f" after binarisation at threshold {args.threshold} and {args.scale}x up-scaling "
               f"({args.mode} mode), seed {args.seed}.", "",
             "Made with:", "", "```",
             f"morpho perturb {src.name} --perturbation {name} "
             + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in params.items())
             + f" --seed {args.seed} -o OUTDIR", "```", "",
             "Each digit's randomness is keyed by (seed, split, digit index): the same command gives "
             "byte-identical files whatever the number of workers.", ""]
    with atomic_write(out_readme, "w", newline="\n") as f:
        f.write("\n".join(lines))
    if _progress(args):
        print(f"wrote {out_images}" + (f", {out_labels.name}" if labels is not None else "")
              + (f", {out_metrics.name}" if args.measure else "") + f" ({n} digits)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------------------

def cmd_generate(args) -> int:
    from core.datasets import GenerateParams, SPLITS, generate

    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else list(SPLITS)
    params = GenerateParams(threshold=args.threshold, scale=args.scale, thin_amount=args.thin_amount,
                            thick_amount=args.thick_amount, swel_strength=args.swel_strength,
                            swel_radius=args.swel_radius, frac_thickness=args.frac_thickness,
                            frac_prune=args.frac_prune, frac_num=args.frac_num, mode=args.mode)
    with _executor(args) as (executor, _workers):
        try:
            written = generate(args.mnist_dir, args.output, seed=args.seed, splits=splits, params=params,
                               executor=executor, chunksize=args.chunksize, force=args.force,
                               progress=_progress(args), measure=not args.no_measure, limit=args.limit)
        except KeyboardInterrupt:
            print("morpho generate: interrupted; the files of unfinished splits were not written (run the same "
                  "command with --force to start over)", file=sys.stderr)
            return 130
    if _progress(args):
        print(f"wrote {len(written)} files into {args.output}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------------------

def _read_checksums(path: str) -> dict[str, str]:
    files = {}
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror or e})") from e
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise CLIError(f"{path}, line {i}: expected 'SHA256  FILENAME' (the sha256sum format)")
        files[parts[1].lstrip("*")] = parts[0].lower()
    if not files:
        raise CLIError(f"{path}: no checksums")
    return files


def cmd_download(args) -> int:
    from core import download

    files = _read_checksums(args.checksums) if args.checksums else download.MNIST_FILES
    mirrors = args.mirror or list(download.MIRRORS)
    results = download.download_mnist(args.to, mirrors=mirrors, files=files, force=args.force,
                                      timeout=args.timeout, progress=_progress(args))
    for r in results:
        where = f" from {r.url}" if r.url else ""
        print(f"{r.path}: {r.status}{where}, sha256 ok")
    return 0


# --------------------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------------------

def _describe_idx(path: Path, lines: list[str], indent: str = "") -> tuple[int, tuple]:
    from core.datasets import iter_idx_chunks
    from core.io import read_idx_header

    dtype, shape = read_idx_header(path)
    fmt = "IDX, gzip-compressed" if path.name.endswith(".gz") else "IDX"
    lines.append(f"{indent}{path.name}: {fmt}, {dtype} array of shape {shape}")
    n = shape[0]
    if n == 0:
        return n, shape
    if len(shape) == 1:
        from core.io import load_idx
        values = load_idx(path)
        uniq, counts = np.unique(values, return_counts=True)
        kind = "perturbations" if "-pert-" in path.name else "values"
        if "-pert-" in path.name:
            from core.datasets import PERT_NAMES
            desc = ", ".join(f"{PERT_NAMES.get(int(u), u)} ({u}): {c}" for u, c in zip(uniq, counts))
        elif len(uniq) <= 20:
            desc = ", ".join(f"{u}: {c}" for u, c in zip(uniq, counts))
        else:
            desc = f"{len(uniq)} distinct, range {values.min()}..{values.max()}"
        lines.append(f"{indent}  {n} {kind}; counts {desc}")
    else:
        lo, hi, blank = None, None, 0
        for _, chunk in iter_idx_chunks(path, 5000):
            flat = chunk.reshape(len(chunk), -1)
            lo = flat.min() if lo is None else min(lo, flat.min())
            hi = flat.max() if hi is None else max(hi, flat.max())
            blank += int((flat.max(axis=1) == flat.min(axis=1)).sum())
        lines.append(f"{indent}  {n} items of shape {tuple(shape[1:])}, values {lo}..{hi}"
                     + (f", {blank} blank (constant) image(s)" if blank else ""))
    return n, shape


def _describe_metrics(path: Path, lines: list[str], indent: str = "") -> int:
    from core.datasets import METRIC_COLUMNS, read_metrics
    df = read_metrics(path)
    lines.append(f"{indent}{path.name}: morphometrics table, {len(df)} rows, columns "
                 f"{', '.join(['index'] + [str(c) for c in df.columns])}")
    missing = int(df[list(METRIC_COLUMNS)].isna().any(axis=1).sum())
    if missing:
        lines.append(f"{indent}  {missing} row(s) with missing values")
    stats = df[list(METRIC_COLUMNS)].agg(["mean", "std", "min", "max"]).T
    lines.append(f"{indent}  {'metric':<10} {'mean':>9} {'std':>9} {'min':>9} {'max':>9}")
    for metric, row in stats.iterrows():
        lines.append(f"{indent}  {metric:<10} " + " ".join(f"{row[c]:9.3f}" for c in ("mean", "std", "min", "max")))
    return len(df)


def _describe_folder(folder: Path, lines: list[str], indent: str = "") -> None:
    from core.datasets import check_split, find_splits
    splits = find_splits(folder)
    lines.append(f"{indent}{folder}: MNIST / Morpho-MNIST folder with split(s) {', '.join(s.split for s in splits)}")
    for files in splits:
        lines.append(f"{indent}[{files.split}]")
        _describe_idx(files.images, lines, indent + "  ")
        if files.labels is None:
            lines.append(f"{indent}  no label file ({files.split}-labels-idx1-ubyte.gz)")
        else:
            _describe_idx(files.labels, lines, indent + "  ")
        if files.perturbations is not None:
            _describe_idx(files.perturbations, lines, indent + "  ")
        if files.metrics is not None:
            _describe_metrics(files.metrics, lines, indent + "  ")
        check_split(files)  # raises on disagreeing counts
        lines.append(f"{indent}  counts agree")


def cmd_info(args) -> int:
    path = Path(args.path)
    lines: list[str] = []
    if not path.exists():
        raise CLIError(f"{path}: no such file or folder")
    try:
        _info(path, lines)
    finally:  # what was found is shown even when a problem stops the description
        if lines:
            print("\n".join(lines))
    return 0


def _info(path: Path, lines: list[str]) -> None:
    from core.datasets import DatasetError
    from core.io import IDXError, read_idx_header

    if path.is_dir():
        try:
            _describe_folder(path, lines)
        except DatasetError:
            # a root of several dataset folders (as written by morpho generate)?
            found = 0
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                sub_lines: list[str] = []
                try:
                    _describe_folder(sub, sub_lines)
                except DatasetError as e:
                    if "no IDX image file" in str(e):
                        continue
                    raise
                lines += sub_lines
                found += 1
            if not found:
                raise
            lines.insert(0, f"{path}: {found} dataset folder(s)")
    elif path.name.endswith(".csv"):
        _describe_metrics(path, lines)
    else:
        try:
            read_idx_header(path)
            is_idx = True
        except IDXError as idx_error:
            is_idx = False
            err = idx_error
        if is_idx:
            _describe_idx(path, lines)
        else:
            images = _load_other_images(path, err)
            lines.append(f"{path.name}: samples file, {images.dtype} array of shape {images.shape}, values "
                         f"{images.min()}..{images.max()}")


# --------------------------------------------------------------------------------------------------------
# serve
# --------------------------------------------------------------------------------------------------------

def explorer_main() -> Path:
    """Path of ``explorer/main.py`` (the Panel app) without importing the explorer."""
    import importlib.util
    spec = importlib.util.find_spec("explorer")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the explorer package is not installed")
    main_py = Path(list(spec.submodule_search_locations)[0]) / "main.py"
    if not main_py.is_file():
        raise CLIError(f"{main_py}: the explorer app is missing")
    return main_py


def serve_command(args) -> list[str]:
    """The ``panel serve`` command line for ``morpho serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(explorer_main()), "--address", args.address,
           "--port", str(args.port), "--allow-websocket-origin", f"{args.address}:{args.port}",
           "--allow-websocket-origin", f"localhost:{args.port}"]
    if args.show:
        cmd.append("--show")
    if args.data is not None:
        data = Path(args.data)
        if not data.exists():
            raise CLIError(f"{data}: no such file or folder")
        cmd += ["--args", "--data", str(data.resolve())]
    return cmd


def cmd_serve(args) -> int:
    cmd = serve_command(args)
    print(f"serving the explorer on http://{args.address}:{args.port}/main", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------------------

def repo_root() -> Path:
    """The repository root of the installed package (where ``assets/`` lives)."""
    return Path(__file__).resolve().parent.parent


DEFAULT_REFERENCE = "assets/mnist-5k/train-morpho.csv"


def _measure_all(images: np.ndarray, args, desc: str):
    with _executor(args) as (executor, workers):
        from core.measure import measure_batch
        return measure_batch(images, mode=args.mode, workers=workers, executor=executor, progress=_progress(args))


def _reference_metrics(ref: Path, args):
    """Metrics (and labels, if any) of the reference: a metrics CSV, an IDX image file or a dataset folder."""
    from core.datasets import METRIC_COLUMNS, find_split, find_splits, read_metrics, split_of
    from core.io import load_idx

    if ref.suffix == ".csv":
        metrics = read_metrics(ref)[list(METRIC_COLUMNS)]
        labels = None
        prefix = ref.name[:-len("-morpho.csv")] if ref.name.endswith("-morpho.csv") else None
        if prefix:
            with contextlib.suppress(Exception):
                lab = find_split(ref.parent, prefix, require_labels=False).labels
                if lab is not None:
                    labels = load_idx(lab)
                    if len(labels) != len(metrics):
                        labels = None
        return metrics.reset_index(drop=True), labels
    if ref.is_dir():
        files = find_splits(ref)
        if len(files) > 1:
            files = [f for f in files if f.split == "t10k"] or files[:1]
        files = files[0]
        labels = load_idx(files.labels) if files.labels is not None else None
        if files.metrics is not None:
            return read_metrics(files.metrics)[list(METRIC_COLUMNS)].reset_index(drop=True), labels
        return _measure_all(load_idx(files.images), args, "reference"), labels
    images = load_idx(ref)
    labels = None
    prefix = split_of(ref)
    if prefix:
        with contextlib.suppress(Exception):
            lab = find_split(ref.parent, prefix, require_labels=False).labels
            labels = load_idx(lab) if lab is not None else None
    return _measure_all(images, args, "reference"), labels


def cmd_compare(args) -> int:
    try:
        from core.analysis import compare_report
        from core.samples import load_samples
    except ImportError as e:
        raise CLIError(f"compare needs core.analysis and core.samples: {e}") from e
    samples = load_samples(args.samples)
    images = np.asarray(samples.images)
    sample_labels = getattr(samples, "labels", None)
    sample_metrics = _measure_all(images, args, "samples")
    bad = sample_metrics.isna().any(axis=1).to_numpy()
    if bad.all():
        raise CLIError(f"{args.samples}: none of the {len(bad)} samples could be measured (blank images?)")
    if bad.any():
        print(f"warning: {int(bad.sum())} of {len(bad)} samples could not be measured and are left out",
              file=sys.stderr)
        sample_metrics = sample_metrics[~bad].reset_index(drop=True)
        if sample_labels is not None:
            sample_labels = np.asarray(sample_labels)[~bad]
    ref = Path(args.reference) if args.reference else repo_root() / DEFAULT_REFERENCE
    if not ref.exists():
        raise CLIError(f"{ref}: reference data not found" + ("" if args.reference else " (pass --reference DATA)"))
    ref_metrics, ref_labels = _reference_metrics(ref, args)
    keep = ~ref_metrics.isna().any(axis=1).to_numpy()
    ref_metrics = ref_metrics[keep].reset_index(drop=True)
    if ref_labels is not None:
        ref_labels = np.asarray(ref_labels)[keep]
    if sample_labels is None:
        ref_labels = None
    report = compare_report(sample_metrics, ref_metrics, sample_labels=sample_labels, reference_labels=ref_labels,
                            linear=not args.quadratic, seed=args.seed)
    print(report.to_text())
    return 0


# --------------------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``morpho`` argument parser (one sub-parser per subcommand)."""
    from core.datasets import GenerateParams

    parser = argparse.ArgumentParser(
        prog="morpho", description="Morpho-MNIST: measure, perturb and generate MNIST-like digit datasets "
                                   "(Castro et al., JMLR 2019), inspect them, compare samples and explore them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    fmt = _Formatter

    p = sub.add_parser("measure", help="morphometrics table of images (released CSV layout)", formatter_class=fmt,
                       description="Measure area, length, thickness, slant, width and height of every digit and "
                                   "write the table in the released layout (index,area,length,thickness,slant,width,"
                                   "height). With -o the run is resumable: an interrupted run continues where it "
                                   "stopped when the same command is run again.")
    p.add_argument("images", metavar="IMAGES", help="IDX image file (.gz or not), a folder with one, or a samples file")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="output CSV (default: standard output, not resumable)")
    p.add_argument("--mode", choices=("released", "upstream"), default="released",
                   help="released reproduces the published numbers; upstream follows the original code's current "
                        "algorithms")
    p.add_argument("--threshold", type=float, default=.5, help="binarisation threshold")
    p.add_argument("--scale", type=_positive_int, default=4, help="up-scaling factor")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.csv and discard a partial run")
    _add_compute_options(p, 1000)
    _add_common(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("perturb", help="perturb images (thinning, thickening, swelling, fracture, ...)",
                       formatter_class=fmt,
                       description="Apply one perturbation to every digit and write OUTDIR/{prefix}-images-idx3-"
                                   "ubyte.gz (plus the labels found beside IMAGES, a README and, with --measure, the "
                                   "morphometrics). Parameters not given take the perturbation's defaults.")
    p.add_argument("images", metavar="IMAGES", help="IDX image file or a folder with one")
    p.add_argument("--perturbation", "-p", required=True, metavar="NAME",
                   help="perturbation name from the registry (aliases: thin, thic, swel, frac)")
    for dest, text in _all_params().items():
        p.add_argument(f"--{dest.replace('_', '-')}", dest=f"p_{dest}", metavar="VALUE", help=text)
    p.add_argument("--seed", type=_seed, default=0, help="random seed (swelling and fracture locations)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created)")
    p.add_argument("--mode", choices=("released", "upstream"), default="released")
    p.add_argument("--threshold", type=float, default=.5, help="binarisation threshold")
    p.add_argument("--scale", type=_positive_int, default=4, help="up-scaling factor")
    p.add_argument("--measure", action="store_true", help="also write {prefix}-morpho.csv")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    _add_compute_options(p, 500)
    _add_common(p)
    p.set_defaults(func=cmd_perturb)

    d = GenerateParams()
    p = sub.add_parser("generate", help="build plain, thin, thic, swel, frac, global and local", formatter_class=fmt,
                       description="Build the Morpho-MNIST datasets from the MNIST files: plain, thin, thic, swel, "
                                   "frac and the interleaved global (plain+thin+thic) and local (plain+swel+frac), "
                                   "for each split, in the released layout, each folder with a README. The same seed "
                                   "gives byte-identical output whatever the workers.")
    p.add_argument("mnist_dir", metavar="MNIST_DIR", help="folder with the MNIST IDX files (see morpho download)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output root folder (created)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed")
    p.add_argument("--splits", default="train,t10k", help="comma-separated splits to build")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="only the first N digits of each split (a quick trial)")
    p.add_argument("--no-measure", action="store_true", help="skip the -morpho.csv tables (much faster)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--mode", choices=("released", "upstream"), default=d.mode)
    p.add_argument("--threshold", type=float, default=d.threshold, help="binarisation threshold")
    p.add_argument("--scale", type=_positive_int, default=d.scale, help="up-scaling factor")
    p.add_argument("--thin-amount", type=float, default=d.thin_amount, help="Thinning amount")
    p.add_argument("--thick-amount", type=float, default=d.thick_amount, help="Thickening amount")
    p.add_argument("--swel-strength", type=float, default=d.swel_strength, help="Swelling strength")
    p.add_argument("--swel-radius", type=float, default=d.swel_radius, help="Swelling radius")
    p.add_argument("--frac-thickness", type=float, default=d.frac_thickness, help="Fracture thickness")
    p.add_argument("--frac-prune", type=float, default=d.frac_prune, help="Fracture pruning")
    p.add_argument("--frac-num", type=_positive_int, default=d.frac_num, help="fractures per digit")
    _add_compute_options(p, 250)
    _add_common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("download", help="fetch the four MNIST files (sha256-checked, resumable)",
                       formatter_class=fmt,
                       description="Download train/t10k images and labels from the official mirrors, verify their "
                                   "sha256, resume partial downloads; a partial file never has the final name.")
    p.add_argument("--to", default="mnist", metavar="DIR", help="destination folder")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="base URL to try (repeatable; default: the official mirrors)")
    p.add_argument("--checksums", metavar="FILE",
                   help="sha256sum-format file listing the files to fetch (default: the four MNIST files)")
    p.add_argument("--timeout", type=float, default=60., help="seconds to wait on a silent connection")
    p.add_argument("--force", action="store_true", help="replace an existing file whose sha256 differs")
    _add_common(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("info", help="what a file or folder holds", formatter_class=fmt,
                       description="Describe an IDX file (format, count, shape, dtype, value range, label counts), "
                                   "a morphometrics CSV (rows, summary), a samples file, or a dataset folder (each "
                                   "split, and whether its counts agree).")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("serve", help="start the explorer", formatter_class=fmt,
                       description="Start the Panel explorer app on DATA (a dataset folder or file).")
    p.add_argument("data", metavar="DATA", nargs="?", help="dataset to open (default: the bundled sample)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=5006, help="port")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("compare", help="compare a model's samples with reference digits", formatter_class=fmt,
                       description="Measure SAMPLES and compare their morphometrics with a reference (default: the "
                                   "bundled sample's table), printing the comparison report.")
    p.add_argument("samples", metavar="SAMPLES", help="samples file (formats of core.samples.load_samples)")
    p.add_argument("--reference", metavar="DATA",
                   help="metrics CSV, IDX image file or dataset folder (default: the bundled "
                        f"{DEFAULT_REFERENCE})")
    p.add_argument("--mode", choices=("released", "upstream"), default="released")
    p.add_argument("--quadratic", action="store_true",
                   help="quadratic-time unbiased MMD statistic instead of the paper's linear-time one")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the report's random parts")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_positive_int, default=None, metavar="N", help="local worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")
    _add_common(p)
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``morpho`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 success, 1 error, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    from core.datasets import DatasetError
    from core.download import DownloadError
    from core.io import IDXError
    errors: tuple = (CLIError, DatasetError, IDXError, DownloadError)
    try:
        from core.samples import SampleFormatError
        errors += (SampleFormatError,)
    except ImportError:
        pass

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"morpho {args.command}: interrupted", file=sys.stderr)
        return 130
    except errors as e:
        print(f"morpho {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"morpho {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
