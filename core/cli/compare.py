"""``morpho compare``: compare a model's samples with reference digits."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from core.cli import common
from core.cli.common import CLIError, UsageError


#: Report formats by output suffix.
REPORT_FORMATS = {".html": "html", ".htm": "html", ".json": "json"}


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("compare", help="compare a model's samples with reference digits", formatter_class=fmt,
                       description="Measure SAMPLES and compare their morphometrics with a reference (default: the "
                                   "bundled sample's table): kernel two-sample test, per-metric distances, per "
                                   "label when both sides have labels. Every input and the output are checked "
                                   "before any measuring starts.")
    p.add_argument("samples", metavar="SAMPLES",
                   help="the model's digits: any core.samples.load_samples format (.npy/.npz, PNG grid, image "
                        "folder, ...), an IDX file or folder, or a metrics CSV of already measured samples")
    p.add_argument("--reference", metavar="REF",
                   help="reference digits: an MNIST / Morpho-MNIST folder, an IDX image file, a metrics CSV "
                        "(label column kept) or any samples format (default: the bundled "
                        f"{DEFAULT_REFERENCE})")
    p.add_argument("--split", metavar="SPLIT",
                   help="split of a reference folder holding several (default: t10k when present)")
    p.add_argument("-o", "--output", metavar="REPORT",
                   help="also write the report: REPORT.html (standalone, offline) or REPORT.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.add_argument("--force", action="store_true", help="replace an existing REPORT")
    p.add_argument("--mode", choices=("released", "upstream"), default="released",
                   help="measuring mode for digits without metrics")
    p.add_argument("--quadratic", action="store_true",
                   help="quadratic-time unbiased MMD statistic whatever the sample size")
    p.add_argument("--seed", type=common.seed, default=0, help="seed of the report's random parts")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=common.workers, default=None, metavar="N", help="local worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")
    p.add_argument("--connect-timeout", type=common.seconds, default=10., metavar="SECONDS",
                   help="how long to try reaching the scheduler")
    common.add_common(p)
    p.set_defaults(func=run)


def repo_root() -> Path:
    """The repository root of the installed package (where ``assets/`` lives)."""
    return Path(__file__).resolve().parents[2]


DEFAULT_REFERENCE = "assets/mnist-5k/train-morpho.csv"


def report_output(args) -> tuple[Path, str] | tuple[None, None]:
    """(path, "html" | "json") of -o, checked (suffix, folder, --force) before any work."""
    if not args.output:
        return None, None
    out = Path(args.output)
    kind = REPORT_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise UsageError(f"argument -o/--output: {out.name}: name a .html or .json report file")
    common.check_output_file(out, args.force)
    return out, kind


def call_supported(fn, *args, **kwargs):
    """Call `fn` with the keyword arguments its signature takes (the report API grows options over time)."""
    import inspect
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def write_report(report, out: Path, kind: str) -> None:
    """Write `report` atomically in the format of `out`'s suffix (``to_html(path)`` or ``to_json()``)."""
    from core.io import atomic_write
    if kind == "json":
        with atomic_write(out, "w", newline="\n") as f:
            f.write(report.to_json())
    else:
        # written beside and renamed: a final name never holds a partial report, whatever to_html does
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.html")
        try:
            report.to_html(tmp)
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    common.fsync_dir(out.parent if str(out.parent) else Path("."))


def run(args) -> int:
    from core.analysis import compare_report
    from core.cli.sources import drop_unmeasured, load_source, measure_source

    # every input and the output are checked before any measuring starts
    out, kind = report_output(args)
    samples = load_source(args.samples, "samples")
    ref_path = Path(args.reference) if args.reference else repo_root() / DEFAULT_REFERENCE
    if not args.reference and not ref_path.exists():
        raise CLIError(f"{ref_path}: the bundled reference data is missing; pass --reference REF")
    reference = load_source(ref_path, "reference", split=args.split)
    with (common.output_lock(out) if out is not None else contextlib.nullcontext()):
        if out is not None:
            common.check_output_file(out, args.force)  # again, now that no other run can be writing it
            common.report_removed(args, common.remove_stale_parts(out))
        measure_source(samples, args, "samples")
        drop_unmeasured(samples, "samples")
        measure_source(reference, args, "reference")
        drop_unmeasured(reference, "reference digits")
        for note in samples.notes + reference.notes:
            print(f"note: {note}", file=sys.stderr)
        ref_labels = reference.labels if samples.labels is not None else None
        if samples.labels is not None and reference.labels is None:
            print("note: the samples have labels but the reference has none: no per-label comparison",
                  file=sys.stderr)
        kwargs = dict(sample_labels=samples.labels, reference_labels=ref_labels, seed=args.seed,
                      sample_name=str(args.samples), reference_name=str(ref_path),
                      sample_description=samples.description, reference_description=reference.description,
                      reference_source=reference.metrics_source, mode=args.mode)
        if args.quadratic:
            kwargs.update(linear=False, method="quadratic")
        report = call_supported(compare_report, samples.metrics, reference.metrics, **kwargs)
        if out is not None:
            write_report(report, out, kind)
    print(report.to_json() if args.json else report.to_text())
    if out is not None and common.progress(args):
        print(f"wrote {out}", file=sys.stderr)
    return 0
