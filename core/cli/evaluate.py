"""``morpho evaluate``: a digit classifier on the Morpho-MNIST datasets, by perturbation (core.tasks)."""
from __future__ import annotations

import sys

from core.cli import common
from core.cli.common import CLIError, UsageError

#: One line for ``morpho --help``.
HELP = "score a classifier on plain, thin, thic, swel, frac, global and local"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("evaluate", help=HELP, formatter_class=fmt,
                       description="Run a digit classifier on Morpho-MNIST datasets and report, per perturbation, "
                                   "its accuracy and shift from plain (domain shift), the confusion matrix, and the "
                                   "AUROC with which an outlier score (default: minus the maximum softmax) separates "
                                   "plain digits from perturbed ones.")
    p.add_argument("datasets", metavar="DATASETS",
                   help="a folder of Morpho-MNIST dataset folders (plain, thin, thic, swel, frac, global, local; "
                        "see morpho generate), or one dataset folder")
    p.add_argument("--classifier", required=True, metavar="MODEL",
                   help="an ONNX file or package.module:function mapping images to class scores (N, C)")
    p.add_argument("--outlier-score", metavar="FUNCTION",
                   help="package.module:function (images uint8, scores) -> (N,), higher = more outlying")
    p.add_argument("--split", default="t10k", help="split read from each folder ('all': every split)")
    p.add_argument("--limit", type=common.positive_int, default=None, metavar="N",
                   help="only the first N digits of each dataset")
    p.add_argument("--input-range", choices=("[0,1]", "[-1,1]", "uint8"), default="[0,1]",
                   help="pixel values the classifier expects")
    p.add_argument("--layout", choices=("N,28,28", "N,1,28,28", "N,28,28,1", "N,784"), default=None,
                   help="input layout (default: from the ONNX input, else N,28,28)")
    p.add_argument("-o", "--output", metavar="REPORT", help="write the report: REPORT.html or REPORT.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--force", action="store_true", help="replace an existing REPORT")
    common.add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from core.cli.compare import report_output
    from core.decoders import DecoderError, _resolve
    from core.tasks import evaluate_classifier

    out, _kind = report_output(args)
    common.check_input(args.datasets, "datasets folder")
    score = None
    if args.outlier_score:
        if ":" not in args.outlier_score:
            raise UsageError("--outlier-score: expected package.module:function")
        try:
            score = _resolve(args.outlier_score)
        except DecoderError as e:
            raise CLIError(str(e)) from None
    try:
        report = evaluate_classifier(args.classifier, args.datasets, outlier_score=score,
                                     split=None if args.split == "all" else args.split, limit=args.limit,
                                     input_range=args.input_range, layout=args.layout, name=args.classifier)
    except DecoderError as e:
        raise CLIError(str(e)) from None
    if out is not None:
        with common.output_lock(out):
            common.check_output_file(out, args.force)
            report.save(out)
    if args.json:
        print(report.to_json(), end="")
    else:
        cols = ["n", "accuracy", "ci_low", "ci_high", "shift", "auroc"]
        print(report.accuracy[cols].to_string(float_format=lambda v: f"{v:.3f}"))
    if out is not None and common.progress(args):
        print(f"wrote {out}", file=sys.stderr)
    return 0
