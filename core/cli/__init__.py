"""The ``morpho`` command: measure, perturb, generate, download, inspect, compare and explore MNIST digits.

Run ``morpho --help`` or ``morpho SUBCOMMAND --help``. Every subcommand returns 0 on success, 1 on an error
(a one-line message naming the file and the problem on stderr), 2 on a usage error and 130 when
interrupted. Outputs are written atomically and existing files are replaced only with ``--force``.

One module per subcommand (``core.cli.measure``, ``perturb``, ``generate``, ``download``, ``info``,
``serve``, ``compare``, ``traverse``), each with ``add_parser(subparsers, formatter)`` and ``run(args) ->
int``; what they share (argument types, compute options, progress bars, input streaming, output checks and
locks) is in ``core.cli.common``, and what a data argument holds (digits, metrics, labels) in
``core.cli.sources``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from core.cli.common import METRICS_HEADER, CLIError, UsageError

__all__ = ["main", "build_parser", "CLIError", "UsageError", "METRICS_HEADER", "COMMANDS"]

#: Subcommands in the order ``morpho --help`` lists them; each is the module ``core.cli.NAME``.
COMMANDS = ("measure", "perturb", "generate", "download", "info", "serve", "compare", "traverse", "evaluate")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``morpho`` argument parser (one sub-parser per subcommand).

    Parameters
    ----------
    only : str, optional
        Build only this subcommand's options; the others are listed (for ``morpho --help``) without theirs.
        Some subcommands' options come from heavy modules (the perturbation registry imports numba), so
        ``main`` builds only the one it runs: a usage error or ``--help`` answers at once.
    """
    from core.cli.common import ArgumentParser, Formatter

    parser = ArgumentParser(
        prog="morpho", description="Morpho-MNIST: measure, perturb and generate MNIST-like digit datasets "
                                   "(Castro et al., JMLR 2019), inspect them, compare samples and explore them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"core.cli.{name}")
        if only is None or name == only:
            module.add_parser(sub, Formatter)
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``morpho`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 success, 1 error, 2 usage error, 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=argv[0] if argv and argv[0] in COMMANDS else "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    args.argv = argv  # as typed, for reports' provenance
    from core.datasets import DatasetError
    from core.download import DownloadError
    from core.io import IDXError, UnreadableFileError
    from core.samples import SampleFormatError
    errors: tuple = (CLIError, DatasetError, IDXError, DownloadError, UnreadableFileError, SampleFormatError)

    try:
        return args.func(args)
    except UsageError as e:  # a bad option value found after parsing: a usage error, as argparse's
        print(f"morpho {args.command}: error: {e} (see morpho {args.command} --help)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of our standard output went away (e.g. `morpho measure ... | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's final flush does not complain
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"morpho {args.command}: interrupted", file=sys.stderr)
        return 130
    except errors as e:
        print(f"morpho {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"morpho {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"morpho {args.command}: error: out of memory (try a smaller --chunksize or fewer --workers)",
              file=sys.stderr)
        return 1
    except ValueError as e:
        # the library's checks of values it was given (every reader's own errors are handled above); set
        # MORPHO_DEBUG=1 to see where one came from
        if os.environ.get("MORPHO_DEBUG"):
            raise
        print(f"morpho {args.command}: error: {e}", file=sys.stderr)
        return 1
