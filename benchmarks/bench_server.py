"""Served explorer under load: fairness of the worker pool and the cost of a new session, side by side.

    PYTHONPATH=. python benchmarks/bench_server.py [--big 500000]

Prints
- the time a 300-digit measurement takes alone, and while another owner measures ``--big`` digits on
  the same pool (explorer.jobs), and their ratio;
- the time to build a new session's app (Explorer + its Bokeh models) on the 5,000-digit sample and on
  70,000 digits (the sample tiled; opened once, shared), and their ratio.

Real MNIST digits only (the bundled sample). Figures are noisy on a busy machine: read the ratios.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=500_000, help="digits the other owner measures")
    args = parser.parse_args(argv)

    from explorer import jobs
    from explorer.data import Dataset, load_sample

    sample = load_sample()
    small = sample.images[7::16][:300]
    jobs.measure("warm-up", sample.images[:64]).result()  # kernels loaded before anything is timed

    alone = min(timed(lambda: jobs.measure("b", small).result()) for _ in range(3))
    reps = -(-args.big // len(sample))
    big = np.concatenate([sample.images] * reps)[:args.big]
    other = jobs.measure("a", big)
    time.sleep(1.0)
    shared = [timed(lambda: jobs.measure("b", small).result()) for _ in range(3)]
    done, total = other.progress
    other.cancel()
    print(f"pool of {jobs.pool_size()} threads")
    print(f"300 digits alone:                          {alone:7.3f} s")
    print(f"300 digits while another owner measures {args.big:,}: {max(shared):7.3f} s (worst of 3; "
          f"the other had done {done:,}/{total:,})")
    print(f"ratio shared/alone:                        {max(shared) / alone:7.2f}x")

    import panel as pn
    from bokeh.document import Document

    from explorer.app import Explorer
    from explorer.state import ExplorerState

    tiled = Dataset(images=np.concatenate([sample.images] * 14), labels=np.concatenate([sample.labels] * 14),
                    metrics=__import__("pandas").concat([sample.metrics] * 14, ignore_index=True),
                    name="70k", split="train", metrics_source="bench")

    def session(ds):
        app = Explorer(state=ExplorerState(ds))
        pn.Row(app.sidebar(), app._main).get_root(Document())

    session(sample)  # imports and first-time costs out of the way
    t5 = min(timed(lambda: session(sample)) for _ in range(3))
    t70 = min(timed(lambda: session(tiled)) for _ in range(3))
    print(f"new session, 5,000 digits:                 {t5:7.3f} s")
    print(f"new session, 70,000 digits:                {t70:7.3f} s")
    print(f"ratio 70k/5k:                              {t70 / t5:7.2f}x")


if __name__ == "__main__":
    main()
