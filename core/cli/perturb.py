"""``morpho perturb``: apply one registry perturbation to every digit."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from core.cli import common
from core.cli.measure import measure_chunk_df
from core.cli.common import CLIError, UsageError


#: One line for ``morpho --help``.
HELP = "perturb images (thinning, thickening, swelling, fracture, ...)"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("perturb", help=HELP,
                       formatter_class=fmt,
                       description="Apply one perturbation to every digit and write OUTDIR/{prefix}-images-idx3-"
                                   "ubyte.gz (plus the labels found beside IMAGES, a README and, with --measure, the "
                                   "morphometrics). Parameters not given take the perturbation's defaults.")
    p.add_argument("images", metavar="IMAGES", help="IDX image file or a folder with one")
    p.add_argument("--perturbation", "-p", required=True, metavar="NAME",
                   help="perturbation name from the registry (aliases: thin, thic, swel, frac)")
    for dest, text in _all_params().items():
        p.add_argument(f"--{dest.replace('_', '-')}", dest=f"p_{dest}", metavar="VALUE", help=text)
    p.add_argument("--seed", type=common.seed, default=0, help="random seed (swelling and fracture locations)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created)")
    p.add_argument("--mode", choices=("released", "upstream"), default="released")
    p.add_argument("--threshold", type=common.threshold, default=.5,
                   help="binarisation threshold, relative to each image's intensity range")
    p.add_argument("--scale", type=common.scale, default=4, help="up-scaling factor (1..16)")
    p.add_argument("--measure", action="store_true", help="also write {prefix}-morpho.csv")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    common.add_compute_options(p, 500)
    common.add_common(p)
    p.set_defaults(func=run)


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
    reg = _registry()
    for name in reg:
        for pname, spec in _perturbation_params(name).items():
            unit = f" {spec.unit}" if spec.unit else ""
            out.setdefault(pname, []).append(f"{name}: {spec.doc}, default {spec.default}{unit}, range "
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
    raise UsageError(f"unknown perturbation {name!r}; choose one of {', '.join(reg)}")


def param_value(text: str, spec, pert: str, option: str | None = None):
    """A perturbation parameter from the command line, checked against its registry range (the same ranges
    as the explorer's sliders and share links).

    Raises
    ------
    UsageError
        Not a number (an integer for integer parameters), not finite, or outside ``spec.low..spec.high``.
    """
    option = option or f"--{spec.name.replace('_', '-')}"
    integer = bool(getattr(spec, "integer", False)) or isinstance(spec.default, int)
    kind = "an integer" if integer else "a number"
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        raise UsageError(f"argument {option}: expected {kind} in {spec.low}..{spec.high} ({pert}), not "
                         f"{text!r}") from None
    if not np.isfinite(number) or not spec.low <= number <= spec.high:
        raise UsageError(f"argument {option}: expected {kind} in {spec.low}..{spec.high} ({pert}: {spec.doc}), "
                         f"not {text}")
    return number


def spec_type(pert: str, pname: str, option: str):
    """An argparse type for registry parameter `pname` of perturbation `pert` (range checked at parse time)."""
    import argparse

    spec = _perturbation_params(pert)[pname]

    def convert(text: str):
        try:
            return param_value(text, spec, pert, option)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None

    return convert


def run(args) -> int:
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args, stack: contextlib.ExitStack) -> int:
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
            raise UsageError(f"--{dest.replace('_', '-')} is not a parameter of {name} (its parameters: "
                           f"{', '.join(params_spec) or 'none'})")
        params[dest] = param_value(value, params_spec[dest], name)
    try:
        make_perturbation(name, params, rng=0)
    except (TypeError, ValueError) as e:
        raise UsageError(f"invalid parameters for {name}: {e}") from e

    idx_path, images, n = common.image_source(args.images)
    src = Path(idx_path) if idx_path is not None else Path(args.images)
    prefix = split_of(src) or src.name.split(".")[0]
    split_id = SPLIT_IDS.get(prefix, OTHER_SPLIT_ID)
    outdir = Path(args.output)
    common.prepare_outdir(outdir)
    # one run per output folder at a time (released by the kernel if this process is killed)
    stack.enter_context(common.output_lock(outdir, lock_path=outdir / ".morpho.lock"))
    out_images = outdir / f"{prefix}-images-idx3-ubyte.gz"
    out_labels = outdir / f"{prefix}-labels-idx1-ubyte.gz"
    out_metrics = outdir / f"{prefix}-morpho.csv"
    out_readme = outdir / "README.md"
    labels = lab_path = None
    if idx_path is not None and split_of(src):
        with contextlib.suppress(DatasetError):
            lab_path = find_split(src.parent, prefix, require_labels=False).labels
        if lab_path is not None:
            labels = load_idx(lab_path)
            if labels.shape != (n,):
                raise DatasetError(f"{src.name} holds {n} images but {lab_path.name} holds {labels.shape[0]} "
                                   f"labels (in {src.parent})")
    targets = [out_images, out_readme] + ([out_labels] if labels is not None else []) + \
        ([out_metrics] if args.measure else [])
    common.refuse_overwriting_inputs(targets, [src, idx_path, lab_path if labels is not None else None])
    common.report_removed(args, [p for t in targets for p in common.remove_stale_parts(t)])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        raise CLIError(f"output files exist already: {', '.join(existing)}; use --force to replace them")

    metrics = []
    shape = (n,) + ((28, 28) if images is None else images.shape[1:])
    if idx_path is not None:
        from core.io import read_idx_header
        shape = (n,) + tuple(read_idx_header(idx_path)[1][1:])
    with common.executor(args) as (executor, workers), common.bar(args, n, f"perturb ({name})") as bar, \
            IdxWriter(out_images, shape) as writer:
        tasks = ((chunk, start, split_id, args.seed, name, params, args.mode, args.threshold, args.scale)
                 for start, chunk in common.chunks(idx_path, images, n, args.chunksize))
        for start_out, result in zip(range(0, n, args.chunksize),
                                     map_ordered(perturb_chunk, tasks, executor, max_pending=4)):
            writer.write(result)
            if args.measure:
                metrics.append(measure_chunk_df(result, start_out, args, executor, workers))
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
    common.fsync_dir(outdir)
    if common.progress(args):
        print(f"wrote {out_images}" + (f", {out_labels.name}" if labels is not None else "")
              + (f", {out_metrics.name}" if args.measure else "") + f" ({n} digits)", file=sys.stderr)
    return 0

