"""Take the README's screenshots of each explorer view in Chromium at 1440x900, a common laptop screen
(``python docs/screenshots/make_screenshots.py``)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "--port", str(port), "--address", "127.0.0.1",
                             "--allow-websocket-origin", f"127.0.0.1:{port}", "explorer/main.py"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}/main"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})

            def shot(name, wait=1500):
                page.wait_for_timeout(wait)
                page.screenshot(path=str(OUT / f"{name}.png"))
                print("wrote", OUT / f"{name}.png")

            # 1 + 2. Browser and inspector: sevens sorted by slant, one selected, every overlay on.
            page.goto(url + "?labels=%5B7%5D&sort=slant&desc=true&digit=3719")
            page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
            for name in ("Binarised", "Ellipse"):
                page.locator(".explorer-inspector").get_by_role("button", name=name).click()
            shot("browse-inspect")
            # 3. Perturbation studio: set width 19 px on a digit that cannot reach it (the warning says why).
            page.goto(url + "?tab=1&digit=2630&pert=set_width&pert_params=%7B%22target%22%3A+19%7D")
            page.locator(".explorer-studio .bk-Canvas").first.wait_for(timeout=60000)
            shot("perturbation-studio")
            # 4. Distributions: a box selection, then the mouse over a digit (its hover card).
            page.goto(url + "?tab=2")
            canvas = page.locator(".explorer-distributions .bk-Canvas").first
            canvas.wait_for(timeout=60000)
            page.wait_for_timeout(1500)
            box = canvas.bounding_box()
            x0, y0 = box["x"] + box["width"] * .45, box["y"] + box["height"] * .3
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + 140, y0 + 110, steps=6)
            page.mouse.up()
            page.wait_for_timeout(1500)
            for fx in np.linspace(.25, .45, 15):  # hover until a digit's card shows
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * .55)
                page.wait_for_timeout(150)
                if page.evaluate("""() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(
                        'hover-card'); if (m) return m.visible; } return false; }"""):
                    break
            shot("distributions", 1000)
            # 5. Browse: a filter that leaves no digit says so.
            page.goto(url + "?ranges=%7B%22thickness%22%3A+%5B9%2C+10%5D%7D")
            page.locator(".explorer-empty").first.wait_for(timeout=60000)
            shot("browse-empty")
            # 6. Opening data, and a clear message for a bad file.
            page.goto(url)
            page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
            bad = Path(tmp) / "digits-20x20.npy"
            np.save(bad, np.zeros((10, 20, 20), np.uint8))
            page.locator("input[placeholder^='folder of IDX files']").first.fill(str(bad))
            page.get_by_role("button", name="Open", exact=True).click()
            page.locator(".explorer-message").first.wait_for(timeout=30000)
            shot("open-data-error", 2500)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
