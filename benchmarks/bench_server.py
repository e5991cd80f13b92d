"""Served explorer under load: fairness of the worker pool and the cost of a new session, side by side.

    PYTHONPATH=. python benchmarks/bench_server.py [--big 100000] [--no-browser] [--browser-only]

Prints
- through the server, in real Chromium (``panel serve explorer/main.py``, Debian's chromium): the time a second
  session's 300-digit comparison (Compare samples tab: upload, measure, tests, plots) takes from the upload to
  the verdict on the page, alone and while a first session measures ``--big`` digits it opened, and their ratio;
- in one process, the pool only: a 300-digit measurement alone and while another owner measures ``--big``
  digits on the same pool (explorer.jobs), and their ratio;
- the time to build a new session's app (Explorer + its Bokeh models) on the 5,000-digit sample and on
  70,000 digits (the sample tiled; opened once, shared), and their ratio.

Real MNIST digits only (the bundled sample). Figures are noisy on a busy machine: read the ratios.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def browser_fairness(big_n: int) -> None:
    """Session B compares 300 digits through the server, alone and while session A measures `big_n` digits."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import CHROMIUM, CHROMIUM_ARGS
    from test_server import Server, new_session, open_data, text_of, wait_text

    from core.io import load_idx

    images = load_idx(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz")
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        np.save(root / "big.npy", np.concatenate([images] * -(-big_n // len(images)))[:big_n])
        np.save(root / "samples300.npy", images[7::16][:300])
        (root / "log").mkdir()
        server = Server(root / "log", "--data-root", root)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

                def compare(page) -> float:
                    page.get_by_text("Compare samples", exact=True).first.click()
                    box = page.locator(".compare-upload input[type=file]").first
                    box.wait_for(state="attached", timeout=60000)
                    start = time.perf_counter()
                    box.set_input_files(str(root / "samples300.npy"))
                    deadline = start + 600
                    while "300 samples vs" not in text_of(page, ".compare-mmd"):
                        if time.perf_counter() > deadline:
                            raise RuntimeError("no verdict after 600 s")
                        page.wait_for_timeout(20)
                    return time.perf_counter() - start

                compare(new_session(browser, server.url))  # first-time costs (imports, kernels) out of the way
                alone = [compare(new_session(browser, server.url)) for _ in range(3)]
                a = new_session(browser, server.url)
                open_data(a, root / "big.npy")
                pattern = re.compile(r"Measuring ([\d,]+) digits.*\((\d+)%\)")
                deadline = time.perf_counter() + 300
                while not pattern.search(text_of(a, ".explorer-status")):
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"session A is not measuring: {text_of(a, '.explorer-message')[:300]!r} "
                                           f"{text_of(a, '.explorer-status')[:200]!r} (the app opens at most "
                                           f"MORPHO_MAX_UPLOAD_DIGITS digits: choose --big below it)")
                    a.wait_for_timeout(200)
                shared = [compare(new_session(browser, server.url)) for _ in range(3)]
                status = text_of(a, ".explorer-status")
                m = pattern.search(status)
                a.locator(".explorer-cancel button").first.click()
                wait_text(a, ".explorer-message", "was cancelled", timeout=120)
                browser.close()
        finally:
            server.stop()
    print("through the server (Chromium): session B's 300-digit comparison, upload to verdict on the page")
    print(f"  alone:                                   {min(alone):7.3f} s (best of 3)")
    print(f"  while session A measures {big_n:,} digits: {min(shared):7.3f} s (best of 3; worst "
          f"{max(shared):.3f} s; A still measuring: {m.group(0) if m else status[:80]!r})")
    print(f"  ratio shared/alone (best of 3 each):     {min(shared) / min(alone):7.2f}x")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000,
                        help="digits the other session measures (at most the app's MORPHO_MAX_UPLOAD_DIGITS, "
                             "100,000 by default)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument("--browser-only", action="store_true", help="only the Chromium part")
    args = parser.parse_args(argv)
    if not args.no_browser:
        browser_fairness(args.big)
        if args.browser_only:
            return

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
    print(f"in one process, the pool only (explorer.jobs, {jobs.pool_size()} threads):")
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
