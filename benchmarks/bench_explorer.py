"""Explorer speed, measured side by side in one run (prints figures; asserts nothing).

1. Cold start: ``panel serve explorer`` launched to an interactive page (grid drawn, current digit shown)
   in Chromium, on the bundled sample.
2. Server recompute of a perturbation-studio slider move (perturb + measure + table), per perturbation.
3. Slider -> screen: a slider key press until the canvas pixels change, for the explorer's perturbation
   studio and for a bare Panel slider -> image app (benchmarks/bare_slider_app.py), served together.
4. Fluidity at 70,000 digits (the sample tiled, or --big): in Chromium, page load, a label filter click
   until the grid's count updates, opening the scatter, a box selection until the browser filters; on the
   server, filter, sort, page and scatter-update times.

Usage: ``python benchmarks/bench_explorer.py [--moves 20] [--big PATH]`` (needs /usr/bin/chromium).
``--big`` takes an MNIST folder to tile to 70,000 digits (default: the bundled sample, tiled).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

# Arm a watcher: on the next keydown of the slider handle, note the time, then check the canvases every
# animation frame until their pixels change; window.__latency resolves to the milliseconds in between.
_ARM_JS = """
([handle, canvases]) => {
  const sig = () => { let s = 0; for (const c of canvases) { const ctx = c.getContext('2d'); if (!ctx) continue;
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) s = (s * 31 + d[i] + 7 * d[i + 1]) % 1000000007; } return s; };
  const before = sig();
  window.__latency = new Promise(resolve => {
    handle.addEventListener('keydown', async () => {
      const t0 = performance.now();
      while (performance.now() - t0 < 5000) {
        await new Promise(r => requestAnimationFrame(r));
        if (sig() !== before) return resolve(performance.now() - t0);
      }
      resolve(-1);
    }, {once: true, capture: true});
  });
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*apps: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    import os

    port = free_port()
    # Options before the apps: everything after --args goes to the app.
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "--port", str(port), "--address",
                             "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}", *apps],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return proc, port


def wait_listening(port: int, proc, timeout: float = 60) -> None:
    """Wait until the server accepts connections (without opening a session, as a user's browser would)."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server on port {port} did not start")
            time.sleep(0.05)


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def interactive(page) -> None:
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
    page.wait_for_function("() => window.Bokeh && Object.keys(Bokeh.index).length > 0", timeout=60000)


def bench_cold_start(browser) -> tuple[float, float]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    t0 = time.perf_counter()
    proc, port = serve("explorer")
    try:
        url = f"http://127.0.0.1:{port}/explorer"
        wait_listening(port, proc)
        t_http = time.perf_counter() - t0
        page.goto(url)
        interactive(page)
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        page.goto(url)  # a second session: what every later visitor waits
        interactive(page)
        warm = time.perf_counter() - t1
    finally:
        page.close()
        stop(proc)
    print(f"cold start  : {cold:5.2f} s from `panel serve explorer` to an interactive page "
          f"(server up after {t_http:.2f} s); next session {warm:.2f} s")
    return cold, warm


def bench_server_recompute(moves: int) -> dict:
    import panel as pn  # noqa: F401  (views need Panel)
    from explorer.state import ExplorerState
    from explorer.studio import Studio

    state = ExplorerState()
    studio = Studio(state=state)
    rng = np.random.default_rng(0)
    digits = rng.choice(len(state.dataset), size=moves, replace=False)
    out = {}
    for key, spec in studio.specs.items():
        state.param.update(perturbation=key, perturbation_params={})
        times = []
        for k, i in enumerate(digits):
            state.current = int(i)
            p = spec.params[0]
            value = p.low + (p.high - p.low) * ((k % 7) + 1) / 8
            t = time.perf_counter()
            state.perturbation_params = {p.name: value}  # what a slider move does on the server
            times.append((time.perf_counter() - t) * 1000)
        out[key] = (statistics.median(times), float(np.percentile(times, 95)))
    print("server recompute per slider move (perturb + measure + table), median / p95 over "
          f"{moves} digits:")
    for key, (med, p95) in out.items():
        print(f"  {key:14s} {med:6.1f} ms / {p95:6.1f} ms")
    return out


def slider_latency(page, handle_sel: str, canvas_sel: str, moves: int) -> list[float]:
    handle = page.locator(handle_sel).first.element_handle()
    canvases = [c.element_handle() for c in page.locator(canvas_sel).all()]
    times = []
    for k in range(moves + 2):
        key = "ArrowLeft" if k % 2 == 0 else "ArrowRight"
        page.evaluate(_ARM_JS, [handle, canvases])
        handle.press(key)
        ms = page.evaluate("() => window.__latency")
        page.wait_for_timeout(150)
        if k >= 2:  # first moves warm up the caches of both sides
            times.append(ms)
    return times


def bench_slider_to_screen(browser, moves: int) -> tuple[float, float]:
    proc, port = serve("explorer/main.py", "benchmarks/bare_slider_app.py")
    try:
        wait_listening(port, proc)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/bare_slider_app")
        page.locator(".bare-image canvas").first.wait_for(timeout=60000)
        page.wait_for_timeout(500)
        bare = slider_latency(page, ".bare-controls .noUi-handle", ".bare-image canvas", moves)
        page.goto(f"http://127.0.0.1:{port}/main?tab=1&pert=set_slant")
        page.locator(".explorer-studio .bk-Canvas").nth(1).wait_for(timeout=60000)
        page.wait_for_timeout(500)
        studio = slider_latency(page, ".explorer-studio .noUi-handle",
                                ".explorer-studio .bk-Canvas >> nth=1 >> canvas", moves)
        page.close()
    finally:
        stop(proc)
    missed = sum(v < 0 for v in bare + studio)
    if missed:
        print(f"    ({missed} moves showed no change within 5 s and are left out)")
    bare, studio = [v for v in bare if v > 0], [v for v in studio if v > 0]
    b, s = statistics.median(bare), statistics.median(studio)
    print(f"slider->screen, median of {len(studio)} moves: explorer studio (set slant) {s:6.1f} ms, "
          f"bare Panel slider->image {b:6.1f} ms, ratio {s / b:4.2f}x")
    return s, b


def tiled_70k(big: str | None, folder: Path):
    """Write 70,000 real digits (the sample or ``big``, tiled) with their metrics as a Morpho-MNIST folder."""
    from explorer.data import export_dataset, load, load_sample

    base = load(big) if big else load_sample()
    take = np.tile(np.arange(len(base)), -(-70000 // len(base)))[:70000]
    export_dataset(folder, base.images[take], None if base.labels is None else base.labels[take],
                   base.metrics.iloc[take].reset_index(drop=True))
    return folder


def bench_70k_server(folder: Path) -> None:
    from explorer.browser import Browser
    from explorer.data import load
    from explorer.distributions import Distributions
    from explorer.state import ExplorerState

    t = time.perf_counter()
    ds = load(folder)
    t_load = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    state = ExplorerState(dataset=ds)
    Browser(state=state)
    dist = Distributions(state=state)
    t_open = (time.perf_counter() - t) * 1000

    def timed(fn, n=5):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1000)
        return statistics.median(ts)

    flip = iter(range(1000))
    t_label = timed(lambda: setattr(state, "labels", [next(flip) % 10]))
    t_range = timed(lambda: setattr(state, "ranges", {"thickness": [1.5 + next(flip) % 5 * .1, 3.5]}))
    t_sort = timed(lambda: setattr(state, "sort_by", ["slant", "area", "width"][next(flip) % 3]))
    t_page = timed(lambda: setattr(state, "page", next(flip) % 10))
    t_axes = timed(lambda: setattr(dist, "x", ["area", "width", "length"][next(flip) % 3]))
    sel = np.flatnonzero(ds.metrics["slant"].to_numpy() > 0.3)
    t_lasso = timed(lambda: setattr(state, "scatter_selection", sel[: 1000 + next(flip)]))
    print(f"70,000 digits, server side: read folder {t_load:.0f} ms, build views {t_open:.0f} ms; label filter "
          f"{t_label:.0f} ms; range filter {t_range:.0f} ms; sort {t_sort:.0f} ms; page {t_page:.0f} ms; "
          f"scatter axes {t_axes:.0f} ms; scatter selection -> grid {t_lasso:.0f} ms")


def _until(page, selector: str, needle: str, timeout: float = 30) -> None:
    page.locator(selector).first.wait_for(timeout=timeout * 1000)
    page.wait_for_function(
        """([sel, needle]) => { const walk = n => { let t = ''; if (n.shadowRoot) t += walk(n.shadowRoot);
             for (const c of n.childNodes) t += c.nodeType === 3 ? c.textContent :
               (c.nodeType === 1 && c.tagName !== 'STYLE' ? walk(c) : ''); return t; };
           const el = document.querySelector(sel) || [...document.querySelectorAll('*')].map(e => e.shadowRoot)
             .filter(Boolean).map(r => r.querySelector(sel)).find(Boolean);
           return el && walk(el).replace(/\\s+/g, ' ').includes(needle); }""",
        arg=[selector, needle], timeout=timeout * 1000)


def bench_70k_browser(browser, folder: Path, backend: str = "webgl") -> None:
    proc, port = serve("explorer/main.py", "--args", "--data", str(folder),
                       env={"MORPHO_EXPLORER_SCATTER": backend})
    try:
        wait_listening(port, proc)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        t = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/main")
        interactive(page)
        t_load = time.perf_counter() - t
        buttons = page.locator(".explorer-filters").get_by_role("button", name="7", exact=True)
        t = time.perf_counter()
        buttons.click()
        page.locator(".explorer-filters").get_by_text("7,0").first.wait_for(timeout=30000)
        t_filter = (time.perf_counter() - t) * 1000
        buttons.click()
        page.locator(".explorer-filters").get_by_text("70,000 of 70,000").first.wait_for(timeout=30000)
        t = time.perf_counter()
        page.get_by_text("Distributions", exact=True).first.click()
        page.locator(".explorer-distributions .bk-Canvas").first.wait_for(timeout=30000)
        page.wait_for_function("() => true")
        t_tab = (time.perf_counter() - t) * 1000
        canvas = page.locator(".explorer-distributions .bk-Canvas").first
        box = canvas.bounding_box()
        x0, y0 = box["x"] + box["width"] * .35, box["y"] + box["height"] * .35
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 120, y0 + 80, steps=5)
        t = time.perf_counter()
        page.mouse.up()
        page.locator(".explorer-filters").get_by_text("scatter selection active").first.wait_for(timeout=30000)
        t_select = (time.perf_counter() - t) * 1000
        page.close()
    finally:
        stop(proc)
    print(f"70,000 digits, in Chromium, scatter backend {backend}: page interactive {t_load:.2f} s; label filter click -> grid "
          f"{t_filter:.0f} ms; open scatter tab {t_tab:.0f} ms; box selection release -> browser filter "
          f"{t_select:.0f} ms")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--big", default=None, help="MNIST folder tiled to 70,000 digits (default: sample)")
    args = parser.parse_args(argv)
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        big = tiled_70k(args.big, Path(tmp) / "mnist-70k")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        bench_cold_start(browser)
        bench_slider_to_screen(browser, args.moves)
        for backend in ("webgl", "canvas"):
            bench_70k_browser(browser, big, backend)
        browser.close()
        bench_server_recompute(args.moves)
        bench_70k_server(big)


if __name__ == "__main__":
    main()
