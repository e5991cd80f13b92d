"""``morpho measure``: the morphometrics table of images, resumable with ``-o``."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from core.cli import common
from core.cli.common import METRICS_HEADER, CLIError


#: One line for ``morpho --help``.
HELP = "morphometrics table of images (released CSV layout)"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("measure", help=HELP, formatter_class=fmt,
                       description="Measure area, length, thickness, slant, width and height of every digit and "
                                   "write the table in the released layout (index,area,length,thickness,slant,width,"
                                   "height). With -o the run is resumable: an interrupted run continues where it "
                                   "stopped when the same command is run again.")
    p.add_argument("images", metavar="IMAGES", help="IDX image file (.gz or not), a folder with one, or a samples file")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="output CSV (default: standard output, not resumable)")
    p.add_argument("--mode", choices=("released", "upstream"), default="released",
                   help="released reproduces the published numbers; upstream follows the original code's current "
                        "algorithms")
    p.add_argument("--threshold", type=common.threshold, default=.5,
                   help="binarisation threshold, relative to each image's intensity range")
    p.add_argument("--scale", type=common.scale, default=4, help="up-scaling factor (1..16)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.csv and discard a partial run")
    common.add_compute_options(p, 1000)
    common.add_common(p)
    p.set_defaults(func=run)


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


def measure_chunk_df(chunk, start, args, executor, workers, failed: list | None = None):
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


def _failed_rows(partial: Path) -> list[int]:
    """Indices of the empty rows (digits that could not be measured) of a complete table, resumed runs
    included."""
    with open(partial, encoding="utf-8") as f:
        next(f)
        return [int(line.split(",", 1)[0]) for line in f if line.rstrip("\r\n").endswith(",,,,,,")]


def _stdout(args, idx_path, images, n) -> int:
    failed: list[int] = []
    with common.executor(args, "thread") as (executor, workers), common.bar(args, n, "measure") as bar:
        sys.stdout.write(METRICS_HEADER + "\n")
        for start, chunk in common.chunks(idx_path, images, n, args.chunksize):
            measure_chunk_df(chunk, start, args, executor, workers, failed).to_csv(sys.stdout, header=False)
            sys.stdout.flush()
            if bar is not None:
                bar.update(len(chunk))
    _report_failed(failed, n)
    return 0


def run(args) -> int:
    idx_path, images, n = common.image_source(args.images)
    if args.output is None:
        return _stdout(args, idx_path, images, n)
    out = Path(args.output)
    common.refuse_overwriting_inputs([out], [idx_path, Path(args.images)])
    common.check_output_file(out, args.force)  # folder exists and is writable (again under the lock below)
    # one run per output at a time: a second run on the same OUT.csv is refused at once (no race on the
    # partial file); the lock is released by the kernel even when this process is killed
    with common.output_lock(out):
        return _to_file(args, idx_path, images, n, out)


def _to_file(args, idx_path, images, n, out: Path) -> int:
    from core.io import atomic_write

    common.check_output_file(out, args.force)
    partial = out.with_name(out.name + ".partial")
    meta = out.with_name(out.name + ".partial.json")
    # temporary files of atomic writes a killed run left (ours: we hold the lock)
    common.report_removed(args, [p for t in (out, partial, meta) for p in common.remove_stale_parts(t)])
    ident = _partial_identity(idx_path, images, n, args)
    done = 0
    if partial.exists() and not args.force:
        try:
            old = json.loads(meta.read_text())
        except FileNotFoundError:
            raise CLIError(f"{partial} is left from an earlier run but its record {meta.name} is missing, so it "
                           f"cannot be resumed safely; remove it or use --force to start over") from None
        except (OSError, ValueError) as e:
            raise CLIError(f"{partial} is left from an earlier run but its record {meta.name} is unreadable "
                           f"({e}); remove both or use --force to start over") from e
        if old != ident:
            raise CLIError(f"{partial} is left from a run on other images or settings; remove it (and {meta.name})"
                           f" or use --force to start over")
        done = _resume_point(partial)
        if done > n:
            raise CLIError(f"{partial} has {done} rows but the images hold {n}; remove it or use --force")
        if done and common.progress(args):
            print(f"resuming {partial} at digit {done} of {n}", file=sys.stderr)
    else:
        with atomic_write(meta, "w") as f:
            json.dump(ident, f)
        with atomic_write(partial, "w", newline="") as f:
            f.write(METRICS_HEADER + "\n")
    try:
        with common.executor(args, "thread") as (executor, workers), \
                common.bar(args, n, "measure", initial=done) as bar, \
                open(partial, "a", newline="", encoding="utf-8") as f:
            for start, chunk in common.chunks(idx_path, images, n, args.chunksize, start=done):
                df = measure_chunk_df(chunk, start, args, executor, workers)
                df.to_csv(f, header=False)
                f.flush()
                os.fsync(f.fileno())  # a row on disk is a row a resumed run need not measure again
                if bar is not None:
                    bar.update(len(chunk))
    except KeyboardInterrupt:
        rows = _resume_point(partial)
        print(f"morpho measure: interrupted after {rows} of {n} digits; run the same command again to continue "
              f"(progress kept in {partial})", file=sys.stderr)
        return 130
    rows = _resume_point(partial)
    if rows != n:
        raise CLIError(f"{partial}: {rows} rows measured, {n} expected (the images ended early); nothing was "
                       f"written to {out}")
    failed = _failed_rows(partial)
    os.replace(partial, out)
    with contextlib.suppress(OSError):
        meta.unlink()
    common.fsync_dir(out.parent if str(out.parent) else Path("."))
    _report_failed(failed, n)
    if common.progress(args):
        print(f"wrote {out} ({n} digits)", file=sys.stderr)
    return 0
