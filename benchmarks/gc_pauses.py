"""Pauses of the served explorer's cyclic garbage collector with 20 sessions: Python's defaults vs the server's.

A collection holds the GIL while it walks the objects of its generations, and the server's event loop (every
student's key press) waits with it. A full collection walks every container object of the process: with 20
explorer sessions about 500,000-700,000. The server settles its heap at start
(:func:`explorer.app_hooks.settle_heap`: the imported modules' objects frozen out of every collection, the
youngest generation collected every 10,000 allocations instead of 700).

Each mode runs in a fresh process, the same work in both: import the explorer, (``settled``: settle the heap
as the server does), build ``--sessions`` sessions (the explorer in its template, as ``panel serve`` builds a
page), then ``--rounds`` rounds in which every session turns a page (as PageDown does). Every collection's
pause is recorded (``gc.callbacks``) and printed per generation (how many, their total, the longest), with
the work's wall time; then one explicit full collection is timed: the one Panel runs 5 s after sessions
close (``panel.io.document._garbage_collect``), whatever the collector's settings.

    python benchmarks/gc_pauses.py [--sessions 20] [--rounds 20]

No browser and no server: the documents are built in-process as the server builds them, so the figures are
the collector's alone (bench_class.py measures what students feel).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("default", "settled")


def run(mode: str, sessions: int, rounds: int) -> dict:
    """One mode, in this process (a fresh one: the heap's history is the point)."""
    import gc

    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from explorer import Explorer
    from explorer.app_hooks import settle_heap

    pn.extension(notifications=False)
    if mode == "settled":
        settle_heap()

    pauses = {0: [], 1: [], 2: []}
    started = {}

    def record(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        else:
            pauses[info["generation"]].append(1000 * (time.perf_counter() - started["t"]))

    def open_session():
        doc = Document()
        with set_curdoc(doc):
            explorer = Explorer()
            explorer.template().server_doc(doc)
        return doc, explorer.state

    gc.callbacks.append(record)
    t0 = time.perf_counter()
    open_sessions = [open_session() for _ in range(sessions)]
    for _ in range(rounds):
        for doc, state in open_sessions:
            with set_curdoc(doc), pn.io.hold():  # a PageDown: the next page and its first digit, in one message
                page = (state.page + 1) % (len(state.selection) // state.page_size)
                state.param.update(page=page, current=int(state.selection[page * state.page_size]))
    wall = time.perf_counter() - t0
    gc.callbacks.remove(record)
    t = time.perf_counter()
    gc.collect()  # the full collection Panel runs 5 s after sessions close (panel.io.document._garbage_collect)
    closing = 1000 * (time.perf_counter() - t)
    return {"pauses": pauses, "wall": wall, "closing": closing, "objects": len(gc.get_objects()),
            "frozen": gc.get_freeze_count()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=20, help="rounds of one page turn in every session")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a child process
    args = ap.parse_args(argv)
    if args.mode:
        print(json.dumps(run(args.mode, args.sessions, args.rounds)))
        return 0
    print(f"{args.sessions} explorer sessions built in one process, then {args.rounds} rounds of a page turn in "
          f"every session; the collector's pauses (ms)")
    print(f"{'mode':<9} {'gen':>4} {'count':>6} {'total':>8} {'longest':>8}   {'wall (s)':>8}   "
          "objects walked (+ frozen)   then one full collection (ms)")
    for mode in MODES:
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--sessions", str(args.sessions),
                              "--rounds", str(args.rounds)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            sys.stderr.write(out.stderr)
            return out.returncode
        res = json.loads(out.stdout.strip().splitlines()[-1])
        for gen in ("0", "1", "2"):
            p = res["pauses"][gen]
            tail = (f"   {res['wall']:8.1f}   {res['objects']:,} ({res['frozen']:,})   {res['closing']:.0f}"
                    if gen == "0" else "")
            longest = max(p, default=0)
            print(f"{mode if gen == '0' else '':<9} {gen:>4} {len(p):>6} {sum(p):>8.0f} {longest:>8.1f}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
