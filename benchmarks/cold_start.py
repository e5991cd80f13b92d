"""First page on a fresh install: ``panel serve explorer`` with an EMPTY numba cache -> interactive in Chromium.

Prints, for an empty numba cache (a new ``NUMBA_CACHE_DIR``) and then the same cache warm:

- ``listening``: seconds from starting the server until its port accepts connections;
- ``page``: ... until the page's HTML has loaded in Chromium (opened as soon as the port listens);
- ``grid drawn``: ... until the browse grid holds a drawing;
- ``interactive``: seconds from starting the server until the browse grid holds a drawing and a
  PageDown redraws it (a round trip through the server), in a page opened as soon as the server answers;
- ``key``: of that, the PageDown itself: from grid drawn to the redrawn grid;
- ``overlays``: ... until the inspector's digit holds its overlays (the skeleton's red pixels);
- ``kernels``: ... until the "Preparing the measuring kernels" note is gone (compiled in the background);
- ``from request``: with ``--open-after S``, the page is opened S seconds after the port listens, as a
  user does who reads the server's address and then clicks it; this column is ``interactive`` counted from
  that request instead of the server's start (with the default 0 it is ``interactive`` minus ``listening``).

The goal (issue 17): interactive within 5 s of starting the server, whatever the cache.

Like for like, each run also starts a bare Panel app (``benchmarks/bare_slider_app.py``: a slider and a Bokeh
image of one digit, no explorer code) the same way and times it to the same points: interactive there is a
key press on its slider redrawing the image. That is the floor this machine sets today (Python, Panel, Bokeh,
Chromium); the explorer's figure is printed beside it and as a ratio, since the machine's speed varies from
day to day.

    python benchmarks/cold_start.py [--runs 1] [--open-after 0]

Loopback only; Chromium is Debian's (/usr/bin/chromium), started before the clock.
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def drawn(png: bytes) -> bool:
    """A canvas with more than a few hundred pixels off its most common colour holds a drawing."""
    a = pixels(png).reshape(-1, 3)
    colours, counts = np.unique(a, axis=0, return_counts=True)
    return len(a) - counts.max() > 300


def red_pixels(png: bytes) -> int:
    a = pixels(png)
    return int(((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 110)).sum())


#: What is served and timed: app -> (panel serve target, URL path, the canvas to watch, the key's target: a
#: selector, or None for the page itself).
APPS = {
    "explorer": ("explorer", "explorer", ".explorer-browser .bk-Canvas", None),  # PageDown on the page
    "bare": ("benchmarks/bare_slider_app.py", "bare_slider_app", ".bare-image .bk-Canvas",
             ".bare-controls .noUi-handle"),  # ArrowLeft on its slider
}


def one_run(browser, cache_dir: str, log_path: Path, app: str = "explorer", open_after: float = 0.0) -> dict:
    """Serve ``app`` (a key of :data:`APPS`) with ``cache_dir`` as numba's cache and time it from the
    server's start (seconds); the page is opened ``open_after`` seconds after the port listens."""
    port = free_port()
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    target, path, canvas, key_target = APPS[app]
    url = f"http://127.0.0.1:{port}/{path}"
    figures = {}
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        # a session of its own: stopping the server stops anything it started (the kernels' compiler)
        proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", target, "--port", str(port),
                                 "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = t0 + 300
            while True:  # listening (no HTTP request here: each would build a session of the app)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() > deadline:
                        raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
                    time.sleep(0.05)
            figures["listening"] = time.perf_counter() - t0
            time.sleep(open_after)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            figures["request"] = time.perf_counter() - t0
            page.goto(url)
            figures["http"] = time.perf_counter() - t0
            grid = page.locator(canvas).first
            grid.wait_for(timeout=300_000)
            while not drawn(before := grid.screenshot()):
                page.wait_for_timeout(50)
            figures["drawn"] = time.perf_counter() - t0
            if key_target is None:
                page.keyboard.press("PageDown")
            else:
                page.locator(key_target).first.press("ArrowLeft")
            while grid.screenshot() == before:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the key never redrew the image")
                page.wait_for_timeout(50)
            figures["interactive"] = time.perf_counter() - t0
            if app != "explorer":
                page.close()
                return figures
            digit = page.locator(".explorer-inspector .bk-Canvas").first
            while red_pixels(digit.screenshot()) < 20:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the inspector never drew its skeleton")
                page.wait_for_timeout(100)
            figures["overlays"] = time.perf_counter() - t0
            note = page.locator(".explorer-warmup")
            while note.count() and note.first.is_visible():
                if time.perf_counter() > deadline:
                    raise RuntimeError("the kernels never became ready")
                page.wait_for_timeout(200)
            figures["kernels"] = time.perf_counter() - t0
            page.close()
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind
            except ProcessLookupError:
                pass
    return figures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="cold runs (each with a new empty cache)")
    ap.add_argument("--open-after", type=float, default=0.0, metavar="S",
                    help="open the page S seconds after the port listens (default 0: at once)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    load = os.getloadavg()
    print(f"cold start of `panel serve explorer` ({os.cpu_count()} cores, load average {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f})")
    print(f"{'cache':<6} {'listening':>10} {'page':>7} {'grid drawn':>11} {'interactive':>12} {'key':>6} {'overlays':>9} "
          f"{'kernels':>8} {'from request':>13}   (page opened {args.open_after:g} s after the port listens)")
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="morpho-cold-") as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        ratios = []
        for run in range(args.runs):
            cache = str(Path(tmp) / f"numba-cache-{run}")
            b = one_run(browser, str(Path(tmp) / f"bare-cache-{run}"), Path(tmp) / f"bare-{run}.log", app="bare",
                        open_after=args.open_after)
            print(f"{'bare':<6} {b['listening']:9.2f}s {b['http']:6.2f}s {b['drawn']:10.2f}s {b['interactive']:11.2f}s "
                  f"{b['interactive'] - b['drawn']:5.2f}s {'':>9} {'':>8} {b['interactive'] - b['request']:12.2f}s"
                  "   (a bare Panel slider app, the baseline)", flush=True)
            for label in ("empty", "warm"):
                f = one_run(browser, cache, Path(tmp) / f"serve-{run}-{label}.log", open_after=args.open_after)
                print(f"{label:<6} {f['listening']:9.2f}s {f['http']:6.2f}s {f['drawn']:10.2f}s {f['interactive']:11.2f}s "
                      f"{f['interactive'] - f['drawn']:5.2f}s {f['overlays']:8.2f}s {f['kernels']:7.2f}s "
                      f"{f['interactive'] - f['request']:12.2f}s", flush=True)
                if label == "empty":
                    ratios.append((f["interactive"] / b["interactive"],
                                   (f["interactive"] - f["request"]) / (b["interactive"] - b["request"])))
        browser.close()
    print("explorer (empty cache) / bare app, interactive from the server's start: "
          f"{', '.join(f'{r:.2f}x' for r, _ in ratios)}; from the page's request: "
          f"{', '.join(f'{r:.2f}x' for _, r in ratios)}")
    print("goal: interactive <= 5 s from the start of the server, with an empty cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
