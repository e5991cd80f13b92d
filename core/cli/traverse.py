"""``morpho traverse``: which latent changes which metric, over one or several base codes.

The traversal is a file (``GRID``: an array (B, L, S, 28, 28) or (L, S, 28, 28), a flat file with
``--rows/--cols``, a PNG grid) or is made here from a decoder (``--decoder`` with ``--codes`` base codes or
``--bases N`` drawn from the prior). Each latent's effect on each metric is the mean over base codes of the
least-squares slope (or Spearman correlation), with a confidence interval and the fraction of bases that
agree in sign; slopes are in standard deviations of the reference data (``--reference``, default the bundled
sample) per latent unit when the latent values are known.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from core.cli import common
from core.cli.common import CLIError, UsageError


#: One line for ``morpho --help``.
HELP = "latent traversal effects on the morphometrics (multi-base)"


def _latent_list(text: str) -> list[int]:
    """``0,3,5-7`` -> [0, 3, 5, 6, 7] (argparse type of --latents)."""
    import argparse
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo or hi - lo > 100_000:
                    raise ValueError
                out += list(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected latent indices such as 0,3,5-7, not {text!r}") from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative latent indices, not {text!r}")
    return out


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("traverse", help=HELP,
                       formatter_class=fmt,
                       description="Measure a latent traversal -- a GRID file, or one made here from --decoder -- "
                                   "and print each latent's effect on each metric: the mean over base codes with "
                                   "its confidence interval and the fraction of bases agreeing in sign, and the "
                                   "strongest latent per metric (ties listed). Every input is checked before "
                                   "measuring starts.")
    p.add_argument("grid", metavar="GRID", nargs="?",
                   help="traversal file: array (B, L, S, 28, 28) or (L, S, 28, 28) (.npy/.npz, an .npz may hold "
                        "the latent 'values'), a flat samples file with --rows/--cols, or a PNG grid")
    p.add_argument("--rows", type=common.positive_int, metavar="L", help="latents (grid rows) of a flat file")
    p.add_argument("--cols", type=common.positive_int, metavar="S", help="steps (grid columns) of a flat file")
    p.add_argument("--bases", type=common.positive_int, metavar="B",
                   help="base codes of a flat GRID file; with --decoder: codes drawn from the prior N(0, I) "
                        "(default 10)")
    p.add_argument("--decoder", metavar="MODEL",
                   help="make the traversal from a decoder: an ONNX file or package.module:function")
    p.add_argument("--latent-dim", type=common.positive_int, metavar="D", help="code size of --decoder")
    p.add_argument("--codes", metavar="CODES",
                   help="base codes (B, D) to traverse around (.npy/.npz/CSV), instead of --bases from the prior")
    p.add_argument("--latents", type=_latent_list, metavar="LIST",
                   help="latents to traverse with --decoder, e.g. 0,3,5-7 (default: all)")
    p.add_argument("--span", type=common.bounded(0, 100, low_open=True), default=None, metavar="SPAN",
                   help="the steps go evenly from -SPAN to +SPAN latent units (default with --decoder: 2; for a "
                        "GRID without stored values: slopes per step)")
    p.add_argument("--steps", type=common.bounded(2, 1000, integer=True), default=9, metavar="S",
                   help="steps per latent with --decoder")
    p.add_argument("--seed", type=common.seed, default=0, help="seed of the base codes drawn with --bases")
    p.add_argument("--reference", metavar="REF",
                   help="data whose standard deviations scale the slopes (any compare --reference form; default: "
                        "the bundled sample's table)")
    p.add_argument("--no-reference", action="store_true", help="slopes in the metrics' own units (px, rad)")
    p.add_argument("--encoded", metavar="CODES.npz",
                   help="read the latents from both sides: an .npz with the encoder codes 'codes' (N, D) of real "
                        "digits 'images' (N, 28, 28); their metrics are regressed on the codes and shown beside "
                        "the traversal's slopes, inactive latents flagged")
    p.add_argument("--method", choices=("slope", "spearman"), default="slope",
                   help="slope: effect size per latent unit; spearman: monotonicity in [-1, 1]")
    p.add_argument("--confidence", type=common.bounded(0, 1, low_open=True, high_open=True), default=.95,
                   help="level of the confidence interval over bases")
    p.add_argument("-o", "--output", metavar="REPORT", help="also write REPORT.html (offline) or REPORT.json")
    p.add_argument("--save-grid", metavar="GRID.npz",
                   help="with --decoder: also save the traversal (images, values, codes, latents) as an .npz")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON instead of text")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--mode", choices=("released", "upstream"), default="released", help="measuring mode")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=common.workers, default=None, metavar="N", help="local workers (threads)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address")
    p.add_argument("--connect-timeout", type=common.seconds, default=10., metavar="SECONDS",
                   help="how long to try reaching the scheduler")
    common.add_common(p)
    p.set_defaults(func=run)


def _check_options(args) -> None:
    if (args.grid is None) == (args.decoder is None):
        raise UsageError("give either a GRID file or --decoder MODEL")
    if args.grid is not None:
        for opt in ("latent_dim", "codes", "latents", "save_grid"):
            if getattr(args, opt) is not None:
                raise UsageError(f"--{opt.replace('_', '-')} goes with --decoder, not with a GRID file")
    elif args.rows is not None or args.cols is not None:
        raise UsageError("--rows/--cols describe a GRID file, not a --decoder traversal")
    if args.codes is not None and args.bases is not None and args.decoder is not None:
        raise UsageError("give --codes or --bases, not both")
    if args.no_reference and args.reference:
        raise UsageError("give --reference or --no-reference, not both")


def _outputs(args) -> list[tuple[Path, str]]:
    from core.cli.compare import REPORT_FORMATS
    outs = []
    if args.output:
        out = Path(args.output)
        kind = REPORT_FORMATS.get(out.suffix.lower())
        if kind is None:
            raise UsageError(f"argument -o/--output: {out.name}: name a .html or .json report file")
        outs.append((out, kind))
    if args.save_grid:
        grid_out = Path(args.save_grid)
        if grid_out.suffix.lower() != ".npz":
            raise UsageError(f"argument --save-grid: {grid_out.name}: name an .npz file")
        outs.append((grid_out, "npz"))
    if len({p.resolve() for p, _ in outs}) != len(outs):
        raise UsageError("-o and --save-grid name the same file")
    for path, _ in outs:
        common.check_output_file(path, args.force)
    return outs


def _grid_from_file(args):
    """(grid (B, L, S, 28, 28), values or None, latents, description) of a GRID file."""
    from core.samples import load_traversal
    path = common.check_input(args.grid, "traversal file")
    trav = load_traversal(path, args.rows, args.cols, bases=args.bases)
    values = trav.values
    if values is None and args.span is not None:
        values = np.linspace(-args.span, args.span, trav.images.shape[2])
    desc = trav.description + "".join(f"; {n}" for n in getattr(trav, "notes", []) or [])
    return trav.images, values, None, desc


def _decoder_and_codes(args):
    """The decoder and base codes (B, D), checked before any decoding or measuring."""
    dec = common.load_decoder(args)
    if args.codes is not None:
        from core.samples import load_codes
        codes = load_codes(common.check_input(args.codes, "codes file", folder_ok=False)).to_numpy(np.float32)
        if codes.ndim != 2 or codes.shape[1] != dec.latent_dim:
            raise CLIError(f"{args.codes}: codes of shape {codes.shape}; {dec.name} decodes codes of "
                           f"{dec.latent_dim} values, one row per base code")
        if not np.isfinite(codes).all():
            raise CLIError(f"{args.codes}: codes must be finite numbers")
        how = f"{len(codes)} base codes from {Path(args.codes).name}"
    else:
        n = args.bases or 10
        codes = np.random.default_rng(args.seed).standard_normal((n, dec.latent_dim)).astype(np.float32)
        how = f"{n} base codes drawn from N(0, I) with seed {args.seed}"
    if args.latents is not None and max(args.latents) >= dec.latent_dim:
        raise UsageError(f"argument --latents: {dec.name} has latents 0..{dec.latent_dim - 1}, not "
                         f"{max(args.latents)}")
    return dec, codes, how


def _save_grid(path: Path, grid, values, codes, latents) -> None:
    from core.io import atomic_write
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, images=grid, values=values, codes=codes, latents=np.asarray(latents))


def _effects_text(effects) -> str:
    """The effects with confidence intervals and sign agreement, one row per latent, one column per metric."""
    import pandas as pd

    one_base = effects.n_bases == 1
    cells = {}
    for m in effects.metrics:
        col = []
        for lat in effects.latents:
            v = effects.table.loc[lat, m]
            if not np.isfinite(v):
                col.append("n/a")
                continue
            text = f"{v:+.3g}"
            if not one_base:
                lo, hi = effects.ci_low.loc[lat, m], effects.ci_high.loc[lat, m]
                agree = effects.sign_agreement.loc[lat, m]
                if np.isfinite(lo) and np.isfinite(hi):
                    text += f" [{lo:+.2g}, {hi:+.2g}]"
                if np.isfinite(agree):
                    text += f" {agree:.0%}"
            col.append(text)
        cells[m] = col
    table = pd.DataFrame(cells, index=pd.Index(effects.latents, name="latent"))
    level = f"{effects.confidence:.0%}"
    head = [f"Traversal effects ({effects.method}; {effects.units}), mean over {effects.n_bases} base code"
            f"{'s' if effects.n_bases != 1 else ''}"
            + ("" if one_base else f" [{level} confidence interval] and the share of bases agreeing in sign")
            + ":"]
    tail = [f"Strongest latent per metric (by effect size, ties listed): {effects.strongest_text()}"]
    if one_base:
        tail.append("Note: one base code: no confidence interval; effects around other codes may differ "
                    "(use several bases)")
    else:
        tail.append(f"Stability over resampled bases: {effects.stability_text()}")
    if effects.encoder is not None:
        tail += ["", effects.encoder.to_text()]
    return "\n".join(head + [table.to_string()] + tail)


def _encoded(path: str):
    """(codes (N, D), images (N, 28, 28)) of real digits from an .npz with arrays 'codes' and 'images'."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("codes", "images") if k not in z.files]
            if missing:
                raise UsageError(f"argument --encoded: {path}: an .npz with arrays 'codes' (N, D) and 'images' "
                                 f"(N, 28, 28) is expected; it has no {missing}")
            codes, images = np.asarray(z["codes"], np.float64), np.asarray(z["images"])
    except (OSError, ValueError) as e:
        raise UsageError(f"argument --encoded: {path}: cannot read ({e})") from None
    if codes.ndim != 2 or images.shape[1:] != (28, 28) or len(codes) != len(images):
        raise UsageError(f"argument --encoded: {path}: codes {codes.shape} and images {images.shape} must be "
                         "(N, D) and (N, 28, 28) with the same N")
    return codes, images


def run(args) -> int:
    from core.cli.compare import DEFAULT_REFERENCE, command_line, repo_root, write_report
    from core.cli.sources import check_measured, load_source, measure_source

    # options, outputs and every input first: nothing is decoded or measured before all are fine
    _check_options(args)
    outs = _outputs(args)
    reference = None
    if not args.no_reference:
        ref_path = Path(args.reference) if args.reference else repo_root() / DEFAULT_REFERENCE
        reference = load_source(ref_path, "reference")
    encoded = _encoded(args.encoded) if args.encoded else None
    if args.grid is not None:
        grid, values, latents, desc = _grid_from_file(args)
        source = {"traversal": f"{args.grid}: {desc}"}
    else:
        dec, codes, how = _decoder_and_codes(args)
        latents = args.latents
        source = {"traversal": f"decoder {dec.name} (D = {dec.latent_dim}), {how}, "
                               f"{len(latents) if latents else dec.latent_dim} latents x {args.steps} steps "
                               f"over ±{args.span if args.span is not None else 2.0}"}
    with contextlib.ExitStack() as stack:
        for path, _ in outs:
            stack.enter_context(common.output_lock(path))
            common.check_output_file(path, args.force)
            common.report_removed(args, common.remove_stale_parts(path))
        if args.grid is None:
            from core.decoders import traverse, traversal_values
            span = args.span if args.span is not None else 2.0
            try:
                grid = traverse(dec, codes, latents=latents, span=span, steps=args.steps,
                                progress=common.progress(args))
            except ValueError as e:
                raise CLIError(f"{dec.name}: {e}") from e
            values = traversal_values(span, args.steps)
        if reference is not None:
            measure_source(reference, args, "reference")
            check_measured(reference, "reference digits")
            source["reference"] = f"{reference.path}: {reference.description}"
        source["command"] = command_line(getattr(args, "argv", None))
        from core.analysis import measure_traversal, traversal_effects
        with common.executor(args, "thread") as (executor, workers):
            per_step = measure_traversal(grid, progress=common.progress(args), workers=workers, executor=executor,
                                         mode=args.mode)
        try:
            effects = traversal_effects(per_step, method=args.method,
                                        reference_metrics=None if reference is None else reference.metrics,
                                        values=values, latents=latents, confidence=args.confidence,
                                        provenance=source)
            if encoded is not None:
                from core.measure import measure_batch
                real = measure_batch(encoded[1], workers=workers, mode=args.mode)
                effects = effects.with_encoder(encoded[0], real)
        except ValueError as e:
            raise CLIError(f"cannot analyse the traversal: {e}") from e
        for path, kind in outs:
            if kind == "npz":
                _save_grid(path, grid, values, codes, latents if latents is not None else range(dec.latent_dim))
            else:
                write_report(effects, path, kind)
    print(effects.to_json() if args.json else _effects_text(effects))
    if common.progress(args):
        for path, _ in outs:
            print(f"wrote {path}", file=sys.stderr)
    return 0
