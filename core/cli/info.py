"""``morpho info``: what a file or folder holds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.cli import common


#: One line for ``morpho --help``.
HELP = "what a file or folder holds"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("info", help=HELP, formatter_class=fmt,
                       description="Describe an IDX file (format, count, shape, dtype, value range, label counts), "
                                   "a morphometrics CSV (rows, summary), a samples file, or a dataset folder (each "
                                   "split, and whether its counts agree).")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=run)


def _describe_idx(path: Path, lines: list[str], indent: str = "") -> tuple[int, tuple]:
    from core.datasets import iter_idx_chunks
    from core.io import read_idx_header

    dtype, shape = read_idx_header(path)
    fmt = "IDX, gzip-compressed" if path.name.endswith(".gz") else "IDX"
    lines.append(f"{indent}{path.name}: {fmt}, {dtype} array of shape {shape}")
    common.check_idx_stream(path)  # truncated data or trailing bytes: refused, as load_idx does
    n = shape[0]
    if n == 0:
        return n, shape
    if len(shape) == 1:
        from core.io import load_idx
        values = load_idx(path)
        uniq, counts = np.unique(values, return_counts=True)
        kind = "perturbations" if "-pert-" in path.name else "values"
        if "-pert-" in path.name:
            from core.perturb import PERTURBATION_LABELS
            desc = ", ".join(f"{PERTURBATION_LABELS.get(int(u), u)} ({u}): {c}" for u, c in zip(uniq, counts))
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
    from core.cli.sources import read_table
    from core.datasets import METRIC_COLUMNS
    df, notes = read_table(common.check_input(path, "metrics table", folder_ok=False))
    lines.append(f"{indent}{path.name}: morphometrics table, {len(df)} rows, columns "
                 f"{', '.join(str(c) for c in df.columns)}")
    lines += [f"{indent}  {note}" for note in notes]
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


def run(args) -> int:
    path = common.check_input(args.path)  # FIFOs and devices refused before opening
    lines: list[str] = []
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
            images = common.load_other_images(path, err)
            lines.append(f"{path.name}: samples file, {images.dtype} array of shape {images.shape}, values "
                         f"{images.min()}..{images.max()}")

