"""``morpho generate``: build the Morpho-MNIST datasets (plain, thin, thic, swel, frac, global, local), or with
``--scm`` a causal Morpho-MNIST dataset (deepscm's thickness/intensity SCMs, :mod:`core.causal`)."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from core.cli import common


#: One line for ``morpho --help``.
HELP = "build plain, thin, thic, swel, frac, global and local"


#: option, GenerateParams field, registry perturbation, its parameter, help
_PERTURBATION_OPTIONS = (
    ("--thin-amount", "thin_amount", "thinning", "amount", "Thinning amount"),
    ("--thick-amount", "thick_amount", "thickening", "amount", "Thickening amount"),
    ("--swel-strength", "swel_strength", "swelling", "strength", "Swelling strength"),
    ("--swel-radius", "swel_radius", "swelling", "radius", "Swelling radius"),
    ("--frac-thickness", "frac_thickness", "fracture", "thickness", "Fracture thickness"),
    ("--frac-prune", "frac_prune", "fracture", "prune", "Fracture pruning"),
    ("--frac-num", "frac_num", "fracture", "num_frac", "fractures per digit"),
)


def add_parser(sub, fmt) -> None:
    from core.datasets import GenerateParams

    d = GenerateParams()
    p = sub.add_parser("generate", help=HELP, formatter_class=fmt,
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
    p.add_argument("--threshold", type=common.threshold, default=d.threshold,
                   help="binarisation threshold, relative to each image's intensity range")
    p.add_argument("--scale", type=common.scale, default=None,
                   help=f"up-scaling factor (1..16; default {d.scale}, with --scm 16 as deepscm)")
    p.add_argument("--scm", choices=("thickness->intensity", "intensity->thickness"), default=None,
                   help="instead of the seven datasets, one causal Morpho-MNIST folder whose digits get a thickness "
                        "and an intensity drawn from this structural causal model (deepscm; docs/causal.md)")
    p.add_argument("--invert", action="store_true",
                   help="with --scm thickness->intensity: thicker digits are darker (deepscm's --invert)")
    p.add_argument("--intensity-noise", type=common.bounded(0, 10, low_open=True), default=.5, metavar="S",
                   help="with --scm: standard deviation of the logit-normal intensity noise (deepscm's --scale)")
    # the perturbation parameters, range-checked against the registry (the explorer's slider ranges)
    from core.cli.perturb import spec_type
    for option, field, pert, pname, text in _PERTURBATION_OPTIONS:
        p.add_argument(option, type=spec_type(pert, pname, option), default=getattr(d, field), help=text)
    common.add_compute_options(p, 250)
    common.add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from core.datasets import SPLITS, GenerateParams, generate, output_paths

    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else list(SPLITS)
    if args.invert and args.scm != "thickness->intensity":
        raise common.UsageError("--invert goes with --scm thickness->intensity")
    if args.scm is not None:
        from core.causal import generate_scm

        def work(root):
            return _generate(args, lambda executor: generate_scm(
                args.mnist_dir, root, scm=args.scm, seed=args.seed, splits=splits, invert=args.invert,
                noise_scale=args.intensity_noise, scale=16 if args.scale is None else args.scale, mode=args.mode,
                executor=executor, chunksize=args.chunksize, force=args.force, progress=common.progress(args),
                measure=not args.no_measure, limit=args.limit))
        def targets_of(root):
            return [root / f"{s}-{k}" for s in splits
                    for k in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz", "scm.csv", "morpho.csv")]
    else:
        args.scale = GenerateParams().scale if args.scale is None else args.scale
        params = GenerateParams(threshold=args.threshold, scale=args.scale, thin_amount=args.thin_amount,
                                thick_amount=args.thick_amount, swel_strength=args.swel_strength,
                                swel_radius=args.swel_radius, frac_thickness=args.frac_thickness,
                                frac_prune=args.frac_prune, frac_num=args.frac_num, mode=args.mode)

        def work(root):
            return _generate(args, lambda executor: generate(
                args.mnist_dir, root, seed=args.seed, splits=splits, params=params, executor=executor,
                chunksize=args.chunksize, force=args.force, progress=common.progress(args),
                measure=not args.no_measure, limit=args.limit))

        def targets_of(root):
            return output_paths(root, splits)
    common.check_input(args.mnist_dir, "MNIST folder")
    root = Path(args.output)
    created = not root.exists()
    common.prepare_outdir(root)
    try:
        # one run per output root at a time (released by the kernel if this process is killed)
        with common.output_lock(root, lock_path=root / ".morpho.lock"):
            common.report_removed(args, [p for t in targets_of(root) for p in common.remove_stale_parts(t)])
            written = work(root)
    except BaseException:
        if created:  # leave no empty folder behind a run that stopped before writing
            with contextlib.suppress(OSError):
                root.rmdir()
        raise
    if written is None:
        return 130
    if common.progress(args):
        print(f"wrote {len(written)} files into {args.output}", file=sys.stderr)
    return 0


def _generate(args, call):
    """``call(executor)`` on the executor of --workers / --scheduler; None when interrupted."""
    with common.executor(args) as (executor, _workers):
        try:
            return call(executor)
        except KeyboardInterrupt:
            print("morpho generate: interrupted; the files of unfinished splits were not written (run the same "
                  "command with --force to start over)", file=sys.stderr)
            return None
