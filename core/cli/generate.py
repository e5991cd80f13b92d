"""``morpho generate``: build the Morpho-MNIST datasets (plain, thin, thic, swel, frac, global, local)."""
from __future__ import annotations

import sys

from core.cli import common


def add_parser(sub, fmt) -> None:
    from core.datasets import GenerateParams

    d = GenerateParams()
    p = sub.add_parser("generate", help="build plain, thin, thic, swel, frac, global and local", formatter_class=fmt,
                       description="Build the Morpho-MNIST datasets from the MNIST files: plain, thin, thic, swel, "
                                   "frac and the interleaved global (plain+thin+thic) and local (plain+swel+frac), "
                                   "for each split, in the released layout, each folder with a README. The same seed "
                                   "gives byte-identical output whatever the workers.")
    p.add_argument("mnist_dir", metavar="MNIST_DIR", help="folder with the MNIST IDX files (see morpho download)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output root folder (created)")
    p.add_argument("--seed", type=common.seed, default=0, help="random seed")
    p.add_argument("--splits", default="train,t10k", help="comma-separated splits to build")
    p.add_argument("--limit", type=common.positive_int, default=None, metavar="N",
                   help="only the first N digits of each split (a quick trial)")
    p.add_argument("--no-measure", action="store_true", help="skip the -morpho.csv tables (much faster)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--mode", choices=("released", "upstream"), default=d.mode)
    p.add_argument("--threshold", type=float, default=d.threshold, help="binarisation threshold")
    p.add_argument("--scale", type=common.positive_int, default=d.scale, help="up-scaling factor")
    p.add_argument("--thin-amount", type=float, default=d.thin_amount, help="Thinning amount")
    p.add_argument("--thick-amount", type=float, default=d.thick_amount, help="Thickening amount")
    p.add_argument("--swel-strength", type=float, default=d.swel_strength, help="Swelling strength")
    p.add_argument("--swel-radius", type=float, default=d.swel_radius, help="Swelling radius")
    p.add_argument("--frac-thickness", type=float, default=d.frac_thickness, help="Fracture thickness")
    p.add_argument("--frac-prune", type=float, default=d.frac_prune, help="Fracture pruning")
    p.add_argument("--frac-num", type=common.positive_int, default=d.frac_num, help="fractures per digit")
    common.add_compute_options(p, 250)
    common.add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from core.datasets import GenerateParams, SPLITS, generate

    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else list(SPLITS)
    params = GenerateParams(threshold=args.threshold, scale=args.scale, thin_amount=args.thin_amount,
                            thick_amount=args.thick_amount, swel_strength=args.swel_strength,
                            swel_radius=args.swel_radius, frac_thickness=args.frac_thickness,
                            frac_prune=args.frac_prune, frac_num=args.frac_num, mode=args.mode)
    with common.executor(args) as (executor, _workers):
        try:
            written = generate(args.mnist_dir, args.output, seed=args.seed, splits=splits, params=params,
                               executor=executor, chunksize=args.chunksize, force=args.force,
                               progress=common.progress(args), measure=not args.no_measure, limit=args.limit)
        except KeyboardInterrupt:
            print("morpho generate: interrupted; the files of unfinished splits were not written (run the same "
                  "command with --force to start over)", file=sys.stderr)
            return 130
    if common.progress(args):
        print(f"wrote {len(written)} files into {args.output}", file=sys.stderr)
    return 0

