"""How late the server's event loop runs while the job pool perturbs and measures: threads vs worker processes.

The served explorer's event loop answers every student's slider and page key; the job pool runs everyone's
background work (:mod:`explorer.jobs`) at nice 19. With other programs busy on every core (here: one nice-0
``while True`` process per core, standing in for browsers or other users of the machine), a pool *thread*
that holds the server's GIL can wait a long time for the CPU, and the event loop waits with it for the GIL
(priority inversion). Worker *processes* hold no lock the event loop needs.

Each mode runs in a fresh process: an asyncio loop ticks every 10 ms (plus a little Python work, as a
callback does) for ``--seconds``, while a feeder keeps the pool busy with jobs that perturb (thinning) and
measure 256 real digits of the bundled sample; the lateness of each tick is printed as median / p95 / p99 /
max, with the pool's throughput (digits perturbed plus digits measured, counted per 32-digit chunk).

    python benchmarks/event_loop_lag.py [--seconds 20] [--hogs 2] [--work digits]

``--work compare`` keeps the pool busy with the compare view's work instead: one comparison after another
(:func:`core.analysis.compare_report` of 1,000 digits against the other 4,000 of the bundled sample, with
labels and images, through :func:`explorer.jobs.submit_to_worker`); the throughput is then comparisons.

Modes: ``none`` (no background work), ``threads`` (``explorer.jobs`` as before the kernels are ready, or
with ``MORPHO_JOB_PROCESSES=0``), ``processes`` (``jobs.use_worker_processes()``, as a served explorer
once its kernels are compiled).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODES = ("none", "threads", "processes")


def one_mode(mode: str, seconds: float, hogs: int, work: str = "digits") -> dict:
    import pandas as pd

    from core.analysis import compare_report
    from core.io import load_idx
    from core.measure import warm_up
    from explorer import jobs
    from explorer.perturbing import perturb_digits, perturbation_specs

    warm_up()  # kernels loaded before the clock (from numba's cache after the first run)
    sample = ROOT / "assets" / "mnist-5k"
    all_images = load_idx(str(sample / "train-images-idx3-ubyte.gz"))
    images = all_images[:1024]
    spec = perturbation_specs()["thinning"]
    if mode == "processes":
        jobs.use_worker_processes()
        jobs.measure("warm-up", images[:jobs.worker_processes() * 4], chunksize=4).result()  # workers started
    stop = threading.Event()
    done = [0]

    def feed_comparisons():  # one student comparing a model's samples after another
        metrics = pd.read_csv(sample / "train-morpho.csv")
        labels = load_idx(str(sample / "train-labels-idx1-ubyte.gz"))
        s, r = np.arange(5000) % 5 == 0, np.arange(5000) % 5 != 0
        args = dict(sample_metrics=metrics[s], reference_metrics=metrics[r], sample_labels=labels[s],
                    reference_labels=labels[r], seed=0, sample_images=all_images[s], reference_images=all_images[r])
        while not stop.is_set():
            jobs.submit_to_worker("feeder", compare_report, **args).result()
            done[0] += 1

    def feed_digits():  # one student exporting a perturbed selection after another
        k = 0
        while not stop.is_set():
            part = images[k % 1024:k % 1024 + 256]
            finished = [0, 0]

            def count(n, _total, which):  # digits perturbed + digits measured, chunk by chunk
                done[0] += n - finished[which]
                finished[which] = n

            out = jobs.map_digits("feeder", perturb_digits, part, spec, {}, 0, chunksize=32,
                                  progress=lambda n, t: count(n, t, 0)).result()
            jobs.measure("feeder", out, chunksize=32, progress=lambda n, t: count(n, t, 1)).result()
            k += 256

    hog_procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    feeder = threading.Thread(target=feed_comparisons if work == "compare" else feed_digits, daemon=True)
    try:
        if mode != "none":
            feeder.start()
            time.sleep(1.0)  # under way

        async def ticks():
            late = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                sum(range(20_000))  # a callback's bit of Python
                late.append(time.perf_counter() - t - 0.01)
            return np.array(late) * 1000

        late = asyncio.run(ticks())
    finally:
        stop.set()
        for p in hog_procs:
            p.kill()
    return {"mode": mode, "median": float(np.median(late)), "p95": float(np.percentile(late, 95)),
            "p99": float(np.percentile(late, 99)), "max": float(late.max()), "done": done[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="ticking time per mode")
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="nice-0 busy processes (default: cores)")
    ap.add_argument("--work", choices=("digits", "compare"), default="digits",
                    help="the pool's work: perturbing and measuring digits, or comparisons")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a child process
    args = ap.parse_args(argv)
    if args.mode:
        print(json.dumps(one_mode(args.mode, args.seconds, args.hogs, args.work)))
        return 0
    doing, unit = (("compares 1,000 digits against 4,000", "comparisons done") if args.work == "compare" else
                   ("perturbs and measures", "digits perturbed + measured"))
    print(f"event loop lateness (ms) while the job pool {doing}; {args.hogs} nice-0 busy processes, "
          f"{os.cpu_count()} cores, MORPHO_JOB_NICE={os.environ.get('MORPHO_JOB_NICE', '19 (default)')}")
    print(f"{'pool':10s} {'median':>7s} {'p95':>7s} {'p99':>7s} {'max':>7s}  {unit}")
    rows = {}
    for mode in MODES:
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--seconds", str(args.seconds),
                              "--hogs", str(args.hogs), "--work", args.work], capture_output=True, text=True,
                             cwd=ROOT)
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        r = rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode:10s} {r['median']:7.1f} {r['p95']:7.1f} {r['p99']:7.1f} {r['max']:7.1f}  {r['done']:,}")
    t, p = rows["threads"], rows["processes"]
    print(f"threads / processes: p99 {t['p99'] / max(p['p99'], 1e-9):.0f}x, max {t['max'] / max(p['max'], 1e-9):.0f}x; "
          f"work done: processes {p['done']:,}, threads {t['done']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
