"""Run the test suite (or a part of it) beside two CPU-bound processes, as on a busy 2-core CI machine.

Usage: python scripts/busy_check.py [--hogs N] [PYTEST ARGS ...]
       e.g. python scripts/busy_check.py tests/test_server.py -k pool

The hogs are plain Python loops (``python -c "while True: pass"``) started before pytest and stopped (SIGTERM,
then SIGKILL) after it, whatever happens; the exit code is pytest's. The tests wait on conditions, with
deadlines only against hangs, so they must pass here as on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogs", type=int, default=2, help="CPU-bound processes beside the tests (default 2)")
    args, pytest_args = ap.parse_known_args(argv)
    if args.hogs < 0:
        ap.error(f"--hogs must be at least 0, not {args.hogs}")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
            for _ in range(args.hogs)]
    print(f"busy_check: {len(hogs)} CPU hogs running (pids {', '.join(str(h.pid) for h in hogs)})", flush=True)
    start = time.monotonic()
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT)
    finally:
        for h in hogs:
            if h.poll() is None:
                h.send_signal(signal.SIGTERM)
        for h in hogs:
            try:
                h.wait(timeout=10)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
    print(f"busy_check: pytest exited {code} after {time.monotonic() - start:.0f} s beside {len(hogs)} hogs "
          f"(hogs stopped)", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
