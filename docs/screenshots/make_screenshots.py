"""Take the README's screenshots of each explorer view in Chromium (``python docs/screenshots/make_screenshots.py``)."""
from __future__ import annotations

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
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            page = browser.new_page(viewport={"width": 1600, "height": 980})

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
            # 3. Perturbation studio: swelling.
            page.goto(url + "?tab=1&digit=2630&pert=swelling&pert_params=%7B%22strength%22%3A+4.0%2C+%22radius%22"
                            "%3A+7.0%7D&seed=3")
            page.locator(".explorer-studio .bk-Canvas").first.wait_for(timeout=60000)
            shot("perturbation-studio")
            # 4. Distributions with a box selection.
            page.goto(url + "?tab=2")
            canvas = page.locator(".explorer-distributions .bk-Canvas").first
            canvas.wait_for(timeout=60000)
            page.wait_for_timeout(1000)
            box = canvas.bounding_box()
            x0, y0 = box["x"] + box["width"] * .5, box["y"] + box["height"] * .25
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + 150, y0 + 110, steps=6)
            page.mouse.up()
            shot("distributions", 2500)
            # 5. Opening data, and a clear message for a bad file.
            page.goto(url)
            page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
            bad = Path(tmp) / "digits-32x32.npy"
            np.save(bad, np.zeros((10, 32, 32), np.uint8))
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
