"""``morpho compare``: compare a model's samples with reference digits."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from core.cli import common
from core.cli.common import CLIError


def add_parser(sub, fmt) -> None:
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
    p.add_argument("--seed", type=common.seed, default=0, help="seed of the report's random parts")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=common.positive_int, default=None, metavar="N", help="local worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")
    common.add_common(p)
    p.set_defaults(func=run)



def repo_root() -> Path:
    """The repository root of the installed package (where ``assets/`` lives)."""
    return Path(__file__).resolve().parents[2]


DEFAULT_REFERENCE = "assets/mnist-5k/train-morpho.csv"


def _measure_all(images: np.ndarray, args, desc: str):
    with common.executor(args) as (executor, workers):
        from core.measure import measure_batch
        return measure_batch(images, mode=args.mode, workers=workers, executor=executor, progress=common.progress(args))


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


def run(args) -> int:
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

