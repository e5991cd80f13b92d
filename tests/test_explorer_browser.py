"""The explorer in a real Chromium: the served app (``panel serve explorer/main.py``) on real MNIST digits."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from core.io import save_idx
from explorer.data import load_sample
from page_text import text_of, wait_text

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
GRID_CELL_PX = 30 * 1.4  # browser thumbnail cell on screen (explorer.browser: CELL * zoom)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("server") / "panel-serve.log"


@pytest.fixture(scope="module")
def app_url(server_log, tmp_path_factory):
    """The full app served on 127.0.0.1, as users start it; its output goes to ``server_log``. Its data
    folder is pytest's base temporary folder, which holds every test's ``tmp_path`` (a served app
    without ``--data-root`` has its path boxes off)."""
    port = _free_port()
    log = open(server_log, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(ROOT / "explorer" / "main.py"), "--port", str(port),
         "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
         "--args", "--data-root", str(tmp_path_factory.getbasetemp())],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/main"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"panel serve did not start:\n{server_log.read_text()}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def server_problems(server_log, start: int) -> list[str]:
    """Warnings, errors and tracebacks the server logged after byte ``start`` of its log, one entry per log
    record (a record starts with a timestamp and runs to the next)."""
    text = server_log.read_text(errors="replace")[start:]
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
    problems = []
    for record in records:
        if not any(w in record for w in ("WARNING", "ERROR", "Traceback", "Warning:", "W-1", "E-1")):
            continue
        # A page closed (navigated away) while the server was writing to it: Tornado logs the write it
        # could not finish. That is the browser leaving, not a problem of the app.
        if "WebSocketClosedError" in record:
            continue
        problems.append(record[:2000])
    return problems


def watch_console(page) -> list[str]:
    """Collect the page's console errors and warnings (e.g. Bokeh's "could not set initial ranges")."""
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    return problems


@pytest.fixture
def app(page, app_url, server_log):
    """A fresh session of the app; collects console errors and warnings, and checks after the test that
    the browser and the server reported none."""
    start = server_log.stat().st_size
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.errors = watch_console(page)
    page.goto(app_url)
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=30000)
    yield page
    page.wait_for_timeout(300)
    assert page.errors == []
    assert server_problems(server_log, start) == []


def canvas_png(page, selector: str) -> bytes:
    return page.locator(selector).first.screenshot()


def wait_changed(page, selector: str, before: bytes, timeout: float = 10) -> bytes:
    deadline = time.time() + timeout
    while True:
        now = canvas_png(page, selector)
        if now != before:
            return now
        if time.time() > deadline:
            raise AssertionError(f"{selector} did not change")
        page.wait_for_timeout(100)


def _metric_row(text: str, metric: str) -> tuple[float, float, float]:
    """(before, after, change) of a metric in the studio's table."""
    m = re.search(rf"\b{metric} (-?[\d.]+) (-?[\d.]+) ([+-][\d.]+) ", text)
    assert m, text
    return tuple(float(v) for v in m.groups())


def open_tab(page, title: str):
    page.get_by_text(title, exact=True).first.click()


def open_data(page, path) -> None:
    # the placeholder names the data folder the server offers (--data-root)
    box = page.locator("input[placeholder^='folder of IDX files'], input[placeholder^='inside ']").first
    box.fill(str(path))
    page.get_by_role("button", name="Open", exact=True).click()


def test_app_loads_every_view_without_console_errors(app):
    wait_text(app, ".explorer-inspector", "Digit #0")
    wait_text(app, ".explorer-filters", "5,000 of 5,000 digits")
    for title, selector in [("Perturbation studio", ".explorer-studio"), ("Distributions", ".explorer-distributions"),
                            ("Browse & inspect", ".explorer-browser")]:
        open_tab(app, title)
        app.locator(f"{selector} .bk-Canvas").first.wait_for(timeout=15000)
    app.wait_for_timeout(500)
    assert app.errors == []


def test_clicking_a_digit_shows_it_with_overlays(app):
    sample = load_sample()
    wait_text(app, ".explorer-inspector", "Digit #0")
    before = canvas_png(app, ".explorer-inspector .bk-Canvas")
    box = app.locator(".explorer-browser .bk-Canvas").first.bounding_box()
    row, col = 2, 3  # the 24th thumbnail of the first page: digit #23 of the sample
    app.mouse.click(box["x"] + (col + .5) * GRID_CELL_PX, box["y"] + (row + .5) * GRID_CELL_PX)
    text = wait_text(app, ".explorer-inspector", f"{sample.metrics['thickness'][23]:.3f}")  # the table is last
    assert f"label {sample.labels[23]}" in text
    assert f"{sample.metrics['thickness'][23]:.3f}" in text  # its metrics, with units and explanations
    assert "Mean stroke thickness" in text
    with_overlays = wait_changed(app, ".explorer-inspector .bk-Canvas", before)
    # Toggling overlays off and on changes the picture.
    app.locator(".explorer-inspector").get_by_role("button", name="Skeleton").click()
    app.locator(".explorer-inspector").get_by_role("button", name="Thickness").click()
    without = wait_changed(app, ".explorer-inspector .bk-Canvas", with_overlays)
    app.locator(".explorer-inspector").get_by_role("button", name="Ellipse").click()
    wait_changed(app, ".explorer-inspector .bk-Canvas", without)
    assert app.errors == []


def test_perturbation_slider_updates_preview_and_metrics(app):
    open_tab(app, "Perturbation studio")
    studio = ".explorer-studio"
    table = wait_text(app, studio, "Change")
    app.locator(f"{studio} .bk-Canvas").nth(1).wait_for()
    before = app.locator(f"{studio} .bk-Canvas").nth(1).screenshot()
    handle = app.locator(f"{studio} .noUi-handle").first
    handle.focus()
    for _ in range(4):  # thinning amount 0.70 -> 0.50
        handle.press("ArrowLeft")
    wait_text(app, studio, "Removed (× thickness): 0.5")
    deadline = time.time() + 10
    while app.locator(f"{studio} .bk-Canvas").nth(1).screenshot() == before:
        assert time.time() < deadline, "perturbed preview did not change"
        app.wait_for_timeout(100)
    # Less thinning: a thicker result; the "before" column stays the digit's own thickness.
    before_row = _metric_row(table, "thickness")
    deadline = time.time() + 10
    while (after_row := _metric_row(text_of(app, studio), "thickness")) == before_row:
        assert time.time() < deadline, "metrics did not change"
        app.wait_for_timeout(100)
    assert after_row[0] == before_row[0] == pytest.approx(load_sample().metrics["thickness"][0], abs=1e-3)
    assert after_row[1] > before_row[1]
    assert app.errors == []


def test_scatter_selection_filters_the_grid(app):
    open_tab(app, "Distributions")
    canvas = app.locator(".explorer-distributions .bk-Canvas").first
    canvas.wait_for()
    app.wait_for_timeout(500)
    box = canvas.bounding_box()
    # Box-select (the active drag tool) a patch in the middle of the point cloud.
    x0, y0 = box["x"] + box["width"] * .35, box["y"] + box["height"] * .35
    app.mouse.move(x0, y0)
    app.mouse.down()
    app.mouse.move(x0 + 60, y0 + 40, steps=8)
    app.mouse.move(x0 + 120, y0 + 80, steps=8)
    app.mouse.up()
    text = wait_text(app, ".explorer-filters", "scatter selection active")
    shown = int(text.split(" of 5,000 digits")[0].split()[-1].replace(",", ""))
    assert 0 < shown < 5000
    wait_text(app, ".explorer-distributions", f"{shown:,} selected")
    open_tab(app, "Browse & inspect")
    wait_text(app, ".explorer-browser", f"of {shown:,}")
    assert app.errors == []


def test_open_a_data_folder(app, tmp_path):
    sample = load_sample()
    folder = tmp_path / "my-mnist"
    folder.mkdir()
    pick = np.arange(0, 5000, 125)  # 40 digits, all labels
    save_idx(sample.images[pick], folder / "t10k-images-idx3-ubyte.gz")
    save_idx(sample.labels[pick].astype(np.uint8), folder / "t10k-labels-idx1-ubyte.gz")
    open_data(app, folder)
    wait_text(app, ".explorer-filters", "40 of 40 digits", timeout=60)
    text = wait_text(app, ".explorer-message", "Opened my-mnist")
    assert "40 digits" in text and "measured 40 digits" in text  # kept in the explorer's cache
    wait_text(app, ".explorer-browser", "of 40")
    assert app.errors == []


def test_bad_inputs_give_a_message_and_keep_the_data(app, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05garbage")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((6, 20, 20), np.uint8))
    cases = [(empty, "no MNIST digits here"), (corrupt, "corrupt images IDX file"),
             (wrong, "found an array of shape (6, 20, 20)")]
    for path, message in cases:
        open_data(app, path)
        text = wait_text(app, ".explorer-message", message, timeout=30)
        # The file is named; its folder is not when it lies under /tmp (explorer.limits.user_message hides
        # temporary paths, the test's included).
        assert path.name in text and "Kept MNIST sample" in text
        # The app keeps running with what was loaded.
        wait_text(app, ".explorer-filters", "5,000 of 5,000 digits")
    box = app.locator(".explorer-browser .bk-Canvas").first.bounding_box()
    app.mouse.click(box["x"] + 1.5 * GRID_CELL_PX, box["y"] + .5 * GRID_CELL_PX)
    wait_text(app, ".explorer-inspector", "Digit #1")
    assert app.errors == []


def test_url_keeps_the_view_state(app, app_url, page):
    box = app.locator(".explorer-browser .bk-Canvas").first.bounding_box()
    app.mouse.click(box["x"] + 4.5 * GRID_CELL_PX, box["y"] + .5 * GRID_CELL_PX)
    wait_text(app, ".explorer-inspector", "Digit #4")
    deadline = time.time() + 10
    while "digit=4" not in app.url:
        assert time.time() < deadline, app.url
        app.wait_for_timeout(100)
    shared = app_url + "?digit=4321&labels=%5B8%5D&pert=swelling&seed=7"
    page.goto(shared)
    wait_text(page, ".explorer-inspector", "Digit #4,321")
    wait_text(page, ".explorer-filters", "of 5,000 digits")
    text = text_of(page, ".explorer-filters")
    assert f"{int((load_sample().labels == 8).sum()):,} of 5,000" in text
    open_tab(page, "Perturbation studio")
    wait_text(page, ".explorer-studio", "Swelling strength")


def test_apply_to_selection_downloads_a_released_dataset(page, app_url, tmp_path):
    import zipfile

    from core.io import load_idx
    from core.measure import measure_batch
    from explorer.data import load

    sample = load_sample()
    thin_ones = np.flatnonzero((sample.labels == 1) & (sample.metrics["thickness"].to_numpy() < 1.6))
    assert 0 < len(thin_ones) < 60
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(app_url + '?tab=1&labels=%5B1%5D&ranges=%7B%22thickness%22%3A+%5B0%2C+1.6%5D%7D'
                        '&pert=thickening&pert_params=%7B%22amount%22%3A+1.5%7D')
    studio = ".explorer-studio"
    wait_text(page, studio, f"{len(thin_ones):,} digits")
    page.locator(studio).get_by_role("button", name="Prepare download").click()
    wait_text(page, ".explorer-message", f"Exported {len(thin_ones):,} perturbed digits", timeout=60)
    with page.expect_download() as info:
        page.locator(studio).get_by_role("button", name=re.compile("^Download ")).click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == f"mnist-thickening-{len(thin_ones)}.zip"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "unzipped")
    out = tmp_path / "unzipped" / path.stem
    images = load_idx(out / "train-images-idx3-ubyte.gz")
    assert images.shape == (len(thin_ones), 28, 28)
    np.testing.assert_array_equal(load_idx(out / "train-labels-idx1-ubyte.gz"), 1)
    np.testing.assert_array_equal(load_idx(out / "train-pert-idx1-ubyte.gz"), 2)  # Morpho-MNIST's "thickened"
    exported = load(out)
    np.testing.assert_allclose(exported.metrics.to_numpy(), measure_batch(images, progress=False).to_numpy())
    assert (exported.metrics["thickness"].to_numpy() > sample.metrics["thickness"].to_numpy()[thin_ones]).all()
