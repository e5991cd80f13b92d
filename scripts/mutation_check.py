"""Mutation check: do the tests catch small wrong changes?

Usage: python scripts/mutation_check.py [--list] [NAME ...]

Each mutation of :data:`MUTATIONS` is applied alone to a temporary copy of the tree (never in place: the copy
is made with ``shutil.copytree``, file times kept so numba's on-disk kernel cache stays valid for unchanged
files), then the tests named with it run in that copy (``PYTHONPATH`` = the copy). A mutation is *caught*
when at least one test fails; the script prints which tests failed for each and ends with a Markdown table
(the one in docs/CONTRACT.md). Exit code 0 only when every mutation is caught and the unmutated tree passes
the same tests (a test that fails anyway would "catch" everything).

A mutation is found by a regular expression, not a line number, so that it follows the code when lines
move: ``targets`` lists (glob of files, pattern, replacement) in order of preference; the first glob/pattern
that matches exactly once is used, and a mutation whose pattern matches nothing is reported as an error,
never as caught. To add one, append a :class:`Mutation` with what it breaks, where, and the tests that must
notice.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mutation:
    name: str
    what: str                             # the wrong change, in words
    targets: list[tuple[str, str, str]]   # (glob relative to the root, regex, replacement), first match wins
    tests: list[str]                      # pytest arguments (files, -k ...), run in the copy


MUTATIONS = [
    Mutation(
        "metric off by 1e-7",
        "measure_batch returns the thickness of every 97th digit 1e-7 px too large",
        [("core/measure.py", r"\n    return pd\.DataFrame\(values, columns=list\(METRICS\)\)\n",
          "\n    values = np.array(values, dtype=float)\n    values[::97, 2] += 1e-7\n"
          "    return pd.DataFrame(values, columns=list(METRICS))\n")],
        ["tests/test_published.py"]),
    Mutation(
        "perturbation parameter off a little",
        "Thinning erodes by a disk for amount x 1.05 instead of amount",
        [("core/perturb.py", r"(class Thinning\b[\s\S]*?radius = int\(self\.amount)( \* morph\.scale)",
          r"\1 * 1.05\2")],
        ["tests/test_perturb.py", "tests/test_upstream.py"]),
    Mutation(
        "clamp off by one",
        "a share link's digit is clamped to n instead of n - 1 (one past the last digit)",
        [("explorer/url.py", r'(_clamp\(notes, "digit", [^\n]*?, 0, )n - 1\)', r"\1n)")],
        ["tests/test_server.py", "-k", "clamped_to_the_widgets"]),
    Mutation(
        "escaping removed",
        "the explorer's Markdown escape (explorer/gate.py escape_md) returns visitor text unchanged",
        [("explorer/gate.py", r"(\ndef escape_md\(text\)[^\n]*:\n(?:    [rRuU]?\"\"\"[\s\S]*?\"\"\"\n)?)",
          r"\1    return str(text)\n")],
        ["tests/test_gate.py", "tests/test_url.py"]),
    Mutation(
        "report escaping removed",
        "the offline report's escape (core/report.py _esc) returns text unchanged",
        [("core/report.py", r"(\ndef _esc\(s\)[^\n]*:\n)", r"\1    return str(s)\n")],
        ["tests/test_escaping.py"]),
    Mutation(
        "app read limits dropped",
        "the gate reads a model's samples with the library's default limits, not the app's",
        [("explorer/gate.py", r"load_samples\(path, limits=self\.limits, ", "load_samples(path, ")],
        ["tests/test_gate.py"]),
    Mutation(
        "read limit raised",
        "the byte limit of a read is raised by 1 KiB (core.io.check_size)",
        [("core/io.py", r"(\n    if nbytes > )max_bytes:", r"\1max_bytes + 1024:")],
        ["tests/test_read_limits.py", "tests/test_hostile_files.py", "tests/test_io.py"]),
]


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", ".pytest_cache", "test-results", "*.egg-info", "build", "dist")
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)  # copy2: times kept


def apply(mutation: Mutation, tree: Path) -> tuple[str, list[str]]:
    """Apply `mutation` in `tree`; return the file changed and the tests to run."""
    for pattern_glob, regex, replacement in mutation.targets:
        for path in sorted(tree.glob(pattern_glob)):
            text = path.read_text()
            new, count = re.subn(regex, replacement, text)
            if count == 1:
                path.write_text(new)
                rel = str(path.relative_to(tree))
                tests = list(mutation.tests)
                return rel, tests
            if count > 1:
                raise SystemExit(f"{mutation.name}: {regex!r} matches {count} times in {path}: make it exact")
    raise SystemExit(f"{mutation.name}: no target pattern matches; update its targets in {__file__}")


def run_tests(tree: Path, tests: list[str]) -> tuple[int, list[str], float]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    t = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--maxfail=20", "-p", "no:cacheprovider", "-rf", *tests],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=3600)
    failed = [line.split(" ", 2)[1] for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return result.returncode, failed, time.monotonic() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the same tests")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    if args.list or not chosen:
        for m in MUTATIONS:
            print(f"{m.name}: {m.what}")
        return 0 if chosen or args.list else 2
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="morpho-mutation-") as tmp:
        pristine = Path(tmp) / "pristine"
        _copy_tree(pristine)
        if not args.no_baseline:  # the same tests, unmutated, must pass
            for tests in {tuple(m.tests) for m in chosen}:
                code, failed, took = run_tests(pristine, list(tests))
                print(f"baseline (no mutation) {' '.join(tests)}: "
                      f"{'pass' if code == 0 else 'FAIL ' + ', '.join(failed)} ({took:.0f} s)", flush=True)
                ok &= code == 0
        for i, m in enumerate(chosen):
            tree = Path(tmp) / f"m{i}"
            shutil.copytree(pristine, tree, symlinks=True)
            where, tests = apply(m, tree)
            code, failed, took = run_tests(tree, tests)
            caught = code != 0
            ok &= caught
            shown = ", ".join(f.split("::", 1)[-1] for f in failed) if failed else f"exit {code}"
            print(f"{m.name} [{where}]: {'caught by ' + shown if caught else 'NOT CAUGHT'} ({took:.0f} s)", flush=True)
            rows.append((m, where, " ".join(tests), shown if caught else "**not caught**"))
            shutil.rmtree(tree, ignore_errors=True)
    print("\n| mutation | file | tests run | caught by (failing tests) |\n| --- | --- | --- | --- |")
    for m, where, tests, caught in rows:
        print(f"| {m.name}: {m.what} | `{where}` | `{tests}` | {caught} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
