"""Explorer speed as a user sees it, measured side by side in one run (prints figures; asserts nothing).

1. Cold start: ``panel serve explorer`` launched to an interactive page (grid drawn, current digit shown)
   in Chromium, on the bundled sample; then a second session.
2. Tab switches: a click on a tab until its plots are drawn, first visit (the view is built) and later
   visits, for Browse, Perturbation studio and Distributions.
3. Slider -> changed pixels: for the perturbation studio and for a bare Panel slider -> image app
   (benchmarks/bare_slider_app.py), served by one server and measured alternately, move by move, in the
   same Chromium: from the slider's input event (a key press on its handle) until the pixels of the
   perturbed digit's canvas differ, polled every animation frame. Median of ``--moves`` moves each;
   then the server's time per move, per perturbation.
4. 70,000 digits (the sample tiled, or ``--big``): a box selection in the scatter, from the mouse release
   until the browser's filtered count and the scatter's pixels both changed, then the Browse tab showing
   the filtered grid; the server side of the same steps.

Usage: ``python benchmarks/bench_explorer.py [--moves 20] [--big PATH]`` (needs /usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import os
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
VIEWPORT = {"width": 1440, "height": 900}

def sig_js(every: int = 1, count_draws: bool = False) -> str:
    """``window.__sig(canvas)``: a signature of a canvas's pixels (the RGB of every ``every``-th pixel), to
    notice a change; with ``count_draws``, also ``window.__draws``: the page's 2D drawing calls so far (a
    canvas's pixels change only by such a call), for :func:`arm_js` ``(after_draws=True)``."""
    js = f"""
window.__sig = (canvas) => {{ const ctx = canvas.getContext('2d'); if (!ctx) return 0;
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data; let s = 0;
  for (let i = 0; i < d.length; i += {4 * every}) s = (s * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
  return s; }};
"""
    if count_draws:
        js += """
window.__draws = 0;
for (const name of ['drawImage', 'putImageData', 'fill', 'stroke', 'fillRect', 'strokeRect', 'clearRect',
                    'fillText', 'strokeText']) {
  const original = CanvasRenderingContext2D.prototype[name];
  CanvasRenderingContext2D.prototype[name] = function (...args) {
    window.__draws++;
    return original.apply(this, args);
  };
}
"""
    return js


# Every pixel: one tab waits at a time here.
_SIG_JS = sig_js()

def arm_js(after_draws: bool = False) -> str:
    """Arm a watcher: at the handle's next keydown (the input event) note the time, then check the canvas every
    animation frame until its pixels change; ``window.__latency`` resolves to the milliseconds in between
    (-1: no change within 5 s). With ``after_draws`` a frame looks only if the page drew since the last look
    (needs ``sig_js(count_draws=True)``): hashing at every frame while waiting costs the CPU being measured."""
    skip = """
        if (window.__draws === seen) continue;
        seen = window.__draws;""" if after_draws else ""
    seen = """
      let seen = -1;  // the first frame always looks""" if after_draws else ""
    return f"""
([handle, canvas]) => {{
  const before = window.__sig(canvas);
  window.__latency = new Promise(resolve => {{
    handle.addEventListener('keydown', async (event) => {{
      const t0 = event.timeStamp;  // when the browser received the key press{seen}
      while (performance.now() - t0 < 5000) {{
        await new Promise(r => requestAnimationFrame(r));{skip}
        if (window.__sig(canvas) !== before) return resolve(performance.now() - t0);
      }}
      resolve(-1);
    }}, {{once: true, capture: true}});
  }});
}}
"""


_ARM_JS = arm_js()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*apps: str, args: list[str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    # Server options before the apps; everything after --args goes to the app.
    cmd = [sys.executable, "-m", "panel", "serve", "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}", *apps] + (["--args", *args] if args else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return proc, port


def wait_listening(port: int, proc, timeout: float = 120) -> None:
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


def interactive(page, selector: str = ".explorer-browser") -> None:
    page.locator(f"{selector} .bk-Canvas").first.wait_for(timeout=120000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60000)


def bench_cold_start(browser) -> dict:
    page = browser.new_page(viewport=VIEWPORT)
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
    print(f"cold start   : {cold:5.2f} s from `panel serve explorer` to an interactive page "
          f"(server up after {t_http:.2f} s); next session {warm:.2f} s")
    return {"cold": cold, "warm": warm, "http": t_http}


def bench_tabs(browser) -> dict:
    proc, port = serve("explorer")
    out = {}
    try:
        wait_listening(port, proc)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"http://127.0.0.1:{port}/explorer")
        interactive(page)
        page.wait_for_timeout(500)
        tabs = [("Perturbation studio", ".explorer-studio"), ("Distributions", ".explorer-distributions"),
                ("Browse & inspect", ".explorer-browser")]
        for visit in ("first", "again"):
            for title, selector in tabs:
                t = time.perf_counter()
                page.get_by_text(title, exact=True).first.click()
                page.locator(f"{selector} .bk-Canvas").first.wait_for(state="visible", timeout=60000)
                # Drawn: two animation frames after the plot became visible (Bokeh paints in the first).
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                out[(title, visit)] = (time.perf_counter() - t) * 1000
        page.close()
    finally:
        stop(proc)
    print("tab switch   : " + "; ".join(f"{title} {out[(title, 'first')]:.0f} ms first, "
                                         f"{out[(title, 'again')]:.0f} ms again" for title, _ in
                                         [("Perturbation studio", 0), ("Distributions", 0),
                                          ("Browse & inspect", 0)]))
    return out


def _canvas_of(page, selector: str):
    """The <canvas> element inside the Bokeh plot at ``selector`` (through its shadow root)."""
    return page.locator(f"{selector} canvas").first.element_handle()


def one_move(page, handle, canvas, key: str) -> float:
    page.evaluate(_ARM_JS, [handle, canvas])
    handle.press(key)
    ms = page.evaluate("() => window.__latency")
    page.wait_for_timeout(120)  # let the page settle (the URL update, the table)
    return ms


def bench_slider_to_screen(browser, moves: int) -> dict:
    proc, port = serve("explorer/main.py", "benchmarks/bare_slider_app.py")
    try:
        wait_listening(port, proc)
        bare = browser.new_page(viewport=VIEWPORT)
        bare.add_init_script(_SIG_JS)
        bare.goto(f"http://127.0.0.1:{port}/bare_slider_app")
        bare.locator(".bare-image canvas").first.wait_for(timeout=60000)
        studio = browser.new_page(viewport=VIEWPORT)
        studio.add_init_script(_SIG_JS)
        studio.goto(f"http://127.0.0.1:{port}/main?tab=1&pert=set_slant")
        studio.locator(".explorer-studio .bk-Canvas").nth(1).wait_for(timeout=60000)
        studio.wait_for_timeout(1000)
        sides = {
            "bare": (bare, bare.locator(".bare-controls .noUi-handle").first.element_handle(),
                     _canvas_of(bare, ".bare-image")),
            "studio": (studio, studio.locator(".explorer-studio .noUi-handle").first.element_handle(),
                       studio.locator(".explorer-studio .bk-Canvas").nth(1).locator("canvas").first
                       .element_handle()),
        }
        times = {"bare": [], "studio": []}
        for k in range(moves + 2):
            key = "ArrowLeft" if k % 2 == 0 else "ArrowRight"
            for name in ("bare", "studio") if k % 2 == 0 else ("studio", "bare"):  # alternate who goes first
                page, handle, canvas = sides[name]
                page.bring_to_front()
                ms = one_move(page, handle, canvas, key)
                if k >= 2:  # the first moves warm up the caches of both sides
                    times[name].append(ms)
        bare.close()
        studio.close()
    finally:
        stop(proc)
    missed = sum(v < 0 for v in times["bare"] + times["studio"])
    b = statistics.median([v for v in times["bare"] if v > 0])
    s = statistics.median([v for v in times["studio"] if v > 0])
    print(f"slider->pixels, median of {moves} alternating moves (input event to changed canvas pixels): "
          f"studio (set slant, overlays on) {s:6.1f} ms, bare Panel slider->image {b:6.1f} ms, "
          f"ratio {s / b:4.2f}x" + (f" ({missed} moves without change in 5 s left out)" if missed else ""))
    return {"studio": s, "bare": b, "ratio": s / b}


def bench_server_recompute(moves: int) -> dict:
    """Server time of a studio slider move (perturb, geometry, metrics, table), per perturbation."""
    import panel as pn  # noqa: F401  (views need Panel)
    from explorer.state import ExplorerState
    from explorer.studio import Studio

    state = ExplorerState()
    studio = Studio(state=state)
    digits = np.random.default_rng(0).choice(len(state.dataset), size=moves, replace=False)
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
        out[key] = statistics.median(times)
    print(f"studio server time per slider move (perturb + geometry + metrics + table), median of {moves}: "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in out.items()))
    return out


def tiled_70k(big: str | None, folder: Path) -> Path:
    """Write 70,000 real digits (the sample or ``big``, tiled) with their metrics as a Morpho-MNIST folder."""
    from explorer.data import export_dataset, load, load_sample

    base = load(big) if big else load_sample()
    take = np.tile(np.arange(len(base)), -(-70000 // len(base)))[:70000]
    export_dataset(folder, base.images[take], None if base.labels is None else base.labels[take],
                   base.metrics.iloc[take].reset_index(drop=True))
    return folder


def _text(page, selector: str) -> str:
    return page.locator(selector).first.evaluate("""el => { const out = [];
        const walk = n => { if (n.shadowRoot) walk(n.shadowRoot); for (const c of n.childNodes) {
          if (c.nodeType === 3) out.push(c.textContent);
          else if (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.tagName)) walk(c); } };
        walk(el); return out.join(' ').replace(/\\s+/g, ' '); }""")


def bench_70k_browser(browser, folder: Path) -> dict:
    proc, port = serve("explorer/main.py", args=["--data", str(folder)])
    out = {}
    try:
        wait_listening(port, proc)
        page = browser.new_page(viewport=VIEWPORT)
        page.add_init_script(_SIG_JS)
        t = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/main")
        interactive(page)
        page.locator(".explorer-filters").get_by_text("70,000 of 70,000").first.wait_for(timeout=120000)
        out["load"] = time.perf_counter() - t
        # A second tab: the server shares the loaded dataset and its metrics between sessions.
        again = browser.new_page(viewport=VIEWPORT)
        t = time.perf_counter()
        again.goto(f"http://127.0.0.1:{port}/main")
        interactive(again)
        again.locator(".explorer-filters").get_by_text("70,000 of 70,000").first.wait_for(timeout=120000)
        out["new_tab"] = time.perf_counter() - t
        again.close()
        t = time.perf_counter()
        page.get_by_text("Distributions", exact=True).first.click()
        page.locator(".explorer-distributions .bk-Canvas").first.wait_for(timeout=60000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        out["tab"] = (time.perf_counter() - t) * 1000
        page.wait_for_timeout(1500)
        canvas_el = page.locator(".explorer-distributions .bk-Canvas").first
        canvas = canvas_el.locator("canvas").first.element_handle()
        box = canvas_el.bounding_box()
        times, grid_times = [], []
        for k in range(5):
            x0 = box["x"] + box["width"] * (.25 + .04 * k)
            y0 = box["y"] + box["height"] * .3
            before_sig = page.evaluate("(c) => window.__sig(c)", canvas)
            before_count = _text(page, ".explorer-filters")
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + 90, y0 + 70, steps=4)
            t = time.perf_counter()
            page.mouse.up()
            deadline = time.time() + 30
            count_changed = pixels_changed = False
            while not (count_changed and pixels_changed) and time.time() < deadline:
                count_changed = count_changed or _text(page, ".explorer-filters") != before_count
                pixels_changed = pixels_changed or page.evaluate("(c) => window.__sig(c)", canvas) != before_sig
                if not (count_changed and pixels_changed):
                    page.wait_for_timeout(5)
            times.append((time.perf_counter() - t) * 1000)
            # The Browse tab: its grid shows the filtered digits.
            t = time.perf_counter()
            page.get_by_text("Browse & inspect", exact=True).first.click()
            page.locator(".explorer-browser .bk-Canvas").first.wait_for(state="visible", timeout=30000)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            grid_times.append((time.perf_counter() - t) * 1000)
            page.get_by_text("Distributions", exact=True).first.click()
            page.locator(".explorer-distributions .bk-Canvas").first.wait_for(state="visible")
            page.wait_for_timeout(400)
        page.close()
    finally:
        stop(proc)
    out["select"] = statistics.median(times)
    out["grid"] = statistics.median(grid_times)
    print(f"70,000 digits in Chromium: page interactive {out['load']:.2f} s (first session), "
          f"{out['new_tab']:.2f} s (a new tab); open Distributions "
          f"{out['tab']:.0f} ms; box select release -> filtered count and redrawn scatter, median of 5: "
          f"{out['select']:.0f} ms; then Browse tab with the filtered grid {out['grid']:.0f} ms")
    return out


def bench_70k_server(folder: Path) -> dict:
    from explorer.browser import Browser
    from explorer.data import load
    from explorer.distributions import Distributions
    from explorer.state import ExplorerState

    t = time.perf_counter()
    ds = load(folder)
    t_load = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    state = ExplorerState(dataset=ds)
    Browser(state=state, filters=False)
    dist = Distributions(state=state)
    t_open = (time.perf_counter() - t) * 1000

    def timed(fn, n=5):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1000)
        return statistics.median(ts)

    class Box:  # what Bokeh sends at the end of a box selection
        final = True

        def __init__(self, k):
            self.geometry = {"type": "rect", "x0": 2.0 + .1 * k, "x1": 3.0, "y0": -0.1, "y1": 0.3}

    flip = iter(range(1000))
    t_label = timed(lambda: setattr(state, "labels", [next(flip) % 10]))
    state.labels = []
    t_box = timed(lambda: dist._on_geometry(Box(next(flip) % 5)))
    t_axes = timed(lambda: setattr(state, "scatter_x", ["area", "width", "length"][next(flip) % 3]))
    t_page = timed(lambda: setattr(state, "page", next(flip) % 10))
    print(f"70,000 digits, server side: read folder {t_load:.0f} ms, build views {t_open:.0f} ms; label filter "
          f"{t_label:.0f} ms; box selection -> state, grid, scatter image, violins {t_box:.0f} ms; scatter axes "
          f"{t_axes:.0f} ms; page {t_page:.0f} ms")
    return {"box": t_box}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--big", default=None, help="MNIST folder tiled to 70,000 digits (default: sample)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only some parts: cold, tabs, slider, 70k")
    args = parser.parse_args(argv)
    import tempfile

    from playwright.sync_api import sync_playwright

    parts = set(args.only or ["cold", "tabs", "slider", "70k"])
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        if "cold" in parts:
            bench_cold_start(browser)
        if "tabs" in parts:
            bench_tabs(browser)
        if "slider" in parts:
            bench_slider_to_screen(browser, args.moves)
            bench_server_recompute(args.moves)
        if "70k" in parts:
            big = tiled_70k(args.big, Path(tmp) / "mnist-70k")
            bench_70k_browser(browser, big)
            bench_70k_server(big)
        browser.close()


if __name__ == "__main__":
    main()
