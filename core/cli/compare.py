"""``morpho compare``: compare a model's samples with reference digits."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from core.cli import common
from core.cli.common import CLIError, UsageError


#: One line for ``morpho --help``.
HELP = "compare a model's samples with reference digits"


class _QuadraticMaxN:
    """:data:`core.analysis.mmd.QUADRATIC_MAX_N` as help text, read when the help is printed (the analysis
    package is not imported to build the parser)."""

    def __str__(self) -> str:
        from core.analysis.mmd import QUADRATIC_MAX_N
        return f"{QUADRATIC_MAX_N:,}"


#: Report formats by output suffix.
REPORT_FORMATS = {".html": "html", ".htm": "html", ".json": "json"}


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("compare", help=HELP, formatter_class=fmt,
                       description="Measure SAMPLES and compare their morphometrics with a reference (default: the "
                                   "bundled sample's table): kernel two-sample test, per-metric distances, per "
                                   "label when both sides have labels. Every input and the output are checked "
                                   "before any measuring starts.")
    p.add_argument("samples", metavar="SAMPLES", nargs="?",
                   help="the model's digits: any core.samples.load_samples format (.npy/.npz, PNG grid, image "
                        "folder, ...), an IDX file or folder, or a metrics CSV of already measured samples")
    p.add_argument("--decoder", metavar="MODEL",
                   help="instead of SAMPLES: draw --n codes from the prior N(0, I) (seed --seed) and decode them "
                        "with MODEL, an ONNX file or package.module:function")
    p.add_argument("--latent-dim", type=common.positive_int, metavar="D", help="code size of --decoder")
    p.add_argument("--n", type=common.bounded(4, 1_000_000, integer=True), default=1000, metavar="N",
                   help="samples drawn with --decoder")
    p.add_argument("--reference", metavar="REF",
                   help="reference digits: an MNIST / Morpho-MNIST folder, an IDX image file, a metrics CSV "
                        "(label column kept) or any samples format (default: the bundled "
                        f"{DEFAULT_REFERENCE})")
    p.add_argument("--control", metavar="CTRL",
                   help="real digits not in the reference (e.g. the test set when REF is the training set), in "
                        "any form REF takes: the baseline the distances are read against (default: a held-out "
                        "part of the reference against the rest)")
    p.add_argument("--split", metavar="SPLIT",
                   help="split of a reference folder holding several (default: t10k when present)")
    p.add_argument("-o", "--output", metavar="REPORT",
                   help="also write the report: REPORT.html (standalone, offline) or REPORT.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.add_argument("--force", action="store_true", help="replace an existing REPORT")
    p.add_argument("--mode", choices=("released", "upstream"), default="released",
                   help="measuring mode for digits without metrics")
    test = p.add_argument("--test", choices=("auto", "quadratic", "linear"), default="auto",
                          help="the MMD test the verdict rests on: auto = the quadratic-time test with permutation "
                               "p-value when the smaller side has at most %(max_n)s digits; beyond, the "
                               "quadratic-time test on random subsets of %(max_n)s per side and the linear-time "
                               "test on all digits, each at alpha/2 (both are always reported)")
    test.max_n = _QuadraticMaxN()
    p.add_argument("--quadratic", action="store_const", dest="test", const="quadratic",
                   help="same as --test quadratic")
    p.add_argument("--seed", type=common.seed, default=0, help="seed of the report's random parts")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=common.workers, default=None, metavar="N", help="local workers (threads)")
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


def write_report(report, out: Path, kind: str) -> None:
    """Write `report` in the format of `out`'s suffix; ``to_json(path)`` / ``to_html(path)`` write atomically
    (temporary file beside, fsync, rename, folder fsync)."""
    if kind == "json":
        report.to_json(out)
    else:
        report.to_html(out)


def _decoded_samples(decoder, args):
    """--n digits of `decoder` from codes drawn from N(0, I) with --seed, as a Source to measure."""
    from core.cli.sources import Source
    from core.decoders import sample
    try:
        images, _codes = sample(decoder, args.n, seed=args.seed, progress=common.progress(args))
    except ValueError as e:
        raise CLIError(f"{decoder.name}: {e}") from e
    return Source(Path(args.decoder), images=images,
                  description=f"{args.n} samples of decoder {decoder.name} (D = {decoder.latent_dim}), codes "
                              f"drawn from N(0, I) with seed {args.seed}")


def command_line(argv=None) -> str:
    """The command as typed, for the report's provenance."""
    import shlex
    return "morpho " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def run(args) -> int:
    from core.cli.sources import check_measured, load_source, measure_source

    # every input and the output are checked before any measuring starts
    if (args.samples is None) == (args.decoder is None):
        raise UsageError("give either SAMPLES or --decoder MODEL")
    if args.decoder is None and args.latent_dim is not None:
        raise UsageError("--latent-dim goes with --decoder")
    out, kind = report_output(args)
    decoder = None
    if args.decoder is not None:
        decoder = common.load_decoder(args)
    else:
        samples = load_source(args.samples, "samples")
    ref_path = Path(args.reference) if args.reference else repo_root() / DEFAULT_REFERENCE
    if not args.reference and not ref_path.exists():
        raise CLIError(f"{ref_path}: the bundled reference data is missing; pass --reference REF")
    reference = load_source(ref_path, "reference", split=args.split)
    control = load_source(args.control, "control") if args.control else None
    with (common.output_lock(out) if out is not None else contextlib.nullcontext()):
        if out is not None:
            common.check_output_file(out, args.force)  # again, now that no other run can be writing it
            common.report_removed(args, common.remove_stale_parts(out))
        if decoder is not None:
            samples = _decoded_samples(decoder, args)
        measure_source(samples, args, "samples")
        check_measured(samples, "samples")
        measure_source(reference, args, "reference")
        check_measured(reference, "reference digits")
        if control is not None:
            measure_source(control, args, "control")
            check_measured(control, "control digits")
        ref_labels = reference.labels if samples.labels is not None else None
        notes = samples.notes + reference.notes
        if samples.labels is not None and reference.labels is None:
            notes.append("the samples have labels but the reference has none: no per-label comparison")
        provenance = {"samples": f"{args.samples or args.decoder}: {samples.description}",
                      "reference": f"{reference.path}: {reference.description}",
                      "sample metrics": samples.metrics_source or f"measured here ({args.mode} mode)",
                      "reference metrics": reference.metrics_source or f"measured here ({args.mode} mode)",
                      "command": command_line(getattr(args, "argv", None))}
        if control is not None:
            provenance["control"] = f"{control.path}: {control.description}"
        from core.analysis import compare_report
        try:
            report = compare_report(samples.metrics, reference.metrics, sample_labels=samples.labels,
                                    reference_labels=ref_labels, seed=args.seed,
                                    linear={"auto": None, "quadratic": False, "linear": True}[args.test],
                                    provenance=provenance,
                                    control=control.metrics if control is not None else None,
                                    sample_images=samples.images, reference_images=reference.images)
        except ValueError as e:  # e.g. fewer than 4 measurable digits on a side
            raise CLIError(f"cannot compare {samples.path} with {reference.path}: {e}") from e
        report.notes.extend(notes)
        if out is not None:
            write_report(report, out, kind)
    print(report.to_json() if args.json else report.to_text())
    if out is not None and common.progress(args):
        print(f"wrote {out}", file=sys.stderr)
    return 0
