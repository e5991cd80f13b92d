"""Every plot of every tab verified by its pixels, in a real Chromium (issue 17).

A view can send the right text while its canvases stay blank (the Latent traversals tab did: plots inside a
layout added after the first render got a 0x0 frame and never drew). So each figure is found by its Bokeh
name, screenshotted, and must hold a drawing once its data has arrived: ink on black for digit images,
saturated colour for charts (axes and labels alone are grey). The inspector's overlays are checked against
the numbers it shows: the slant line's angle and the bounding parallelogram's extent, in screen pixels.
"""
from __future__ import annotations

import io
import math
import time

import numpy as np
import pytest
from PIL import Image

from core.io import save_idx
from page_text import wait_text

pytestmark = pytest.mark.browser

D = 8  # latents of the PCA decoder below

# Bokeh figure names -> kind of drawing
DIGITS, CHART, GREY = "digits", "chart", "grey"  # GREY: a chart drawn in grey (unlabelled violins)


@pytest.fixture(scope="module")
def pca_decoder(sample_images):
    """A real decoder: PCA of the bundled 5,000 MNIST digits, codes (N, D) ~ N(0, I) -> images in [0, 1]."""
    x = sample_images.reshape(len(sample_images), -1).astype(np.float64) / 255.0
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps, sd = vt[:D], s[:D] / np.sqrt(len(x) - 1)

    def decode(codes):
        codes = np.asarray(codes, np.float64)
        return np.clip(mean + (codes * sd) @ comps, 0, 1).reshape(-1, 28, 28)

    decode.project = lambda images: ((images.reshape(len(images), -1) / 255.0 - mean) @ comps.T) / sd
    return decode


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_images, pca_decoder):
    """Real files the tabs load: 600 MNIST digits as samples; a traversal (3 latents x 6 steps of one
    digit: thickness, slant, slant); PCA codes of 600 digits with the digits themselves."""
    from core.perturb import SetSlant, SetThickness, perturb_image

    folder = tmp_path_factory.mktemp("pixels")
    save_idx(sample_images[1000:1600], folder / "samples-idx3-ubyte")
    image = sample_images[7]
    thick = [perturb_image(image, SetThickness(t)) for t in np.linspace(1.5, 4.0, 6)]
    slant = [perturb_image(image, SetSlant(s)) for s in np.linspace(-0.5, 0.5, 6)]
    np.save(folder / "traversal.npy", np.stack([thick, slant, slant]))
    digits = sample_images[2000:2600]
    np.save(folder / "codes.npy", pca_decoder.project(digits.astype(np.float64)))
    np.save(folder / "codes-samples.npy", digits)
    return folder


# ------------------------------------------------------------------------------------------------------
# reading a figure's pixels

_RECT = """(name) => { let found = null;
  const walk = (v) => { if (v.model && v.model.name === name && v.model.type === 'Figure') found = v;
                        if (v.child_views) for (const c of v.child_views) walk(c); };
  for (const v of Object.values(Bokeh.index)) walk(v);
  if (!found || !found.el.isConnected) return null;
  found.el.scrollIntoView({block: 'center'});
  const r = found.el.getBoundingClientRect(), f = found.frame.bbox;
  return {x: r.x, y: r.y, width: r.width, height: r.height,
          frame: {x: f.x, y: f.y, width: f.width, height: f.height}}; }"""


def figure_pixels(page, name: str):
    """(RGB array of the figure on screen, its frame box {x, y, width, height} in that array), or None."""
    rect = page.evaluate(_RECT, name)
    if rect is None or rect["width"] < 2 or rect["height"] < 2:
        return None
    page.wait_for_timeout(50)
    rect = page.evaluate(_RECT, name)
    png = page.screenshot(clip={k: rect[k] for k in ("x", "y", "width", "height")})
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int), rect["frame"]


def drawing(rgb: np.ndarray, frame: dict, kind: str) -> dict:
    """What the figure's frame holds: ink on black (``digits``) or saturated colour (``chart``)."""
    x, y, w, h = (int(round(frame[k])) for k in ("x", "y", "width", "height"))
    area = rgb[y:y + h, x:x + w]
    if area.size == 0:
        return {"frame": (w, h), "ok": False}
    grey = area.mean(-1)
    sat = area.max(-1) - area.min(-1)
    out = {"frame": (w, h), "ink": int((grey > 160).sum()), "black": float((grey < 40).mean()),
           "colour": int((sat > 60).sum()), "colours": len(np.unique(area.reshape(-1, 3), axis=0))}
    if kind == DIGITS:
        out["ok"] = out["ink"] >= 150 and out["black"] > 0.2
    elif kind == GREY:  # grid lines are lighter than 200
        out["dark"] = int((grey < 200).sum())
        out["ok"] = out["dark"] >= 500
    else:
        out["ok"] = out["colour"] >= 300 and out["colours"] >= 8
    return out


def wait_drawn(page, name: str, kind: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    last = None
    while True:
        got = figure_pixels(page, name)
        if got is not None:
            last = drawing(*got, kind)
            if last["ok"]:
                return last
        if time.time() > deadline:
            raise AssertionError(f"{name}: no {kind} drawing after {timeout} s: {last}")
        page.wait_for_timeout(200)


def tab(page, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()


# ------------------------------------------------------------------------------------------------------

@pytest.fixture
def served(page, pca_decoder, files):
    """The full explorer (bundled sample, the PCA decoder: every tab) served to this page, its path boxes
    confined to the test files' folder (a served app without a data root has them off)."""
    from panel.tests.util import serve_component

    from explorer.app import Explorer

    holder = {}

    def make():
        holder["app"] = Explorer(decoder=pca_decoder, latent_dim=D, data_roots=[files])
        return holder["app"]

    page.set_viewport_size({"width": 1600, "height": 1000})
    serve_component(page, make, address="127.0.0.1")
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
    return holder["app"]


def _colour_mask(rgb, colour, tol=60):
    return (np.abs(rgb - np.array(colour)).sum(-1) < tol)


def test_browse_grid_and_inspector_overlays_match_the_metrics(page, served):
    wait_drawn(page, "digit-grid", DIGITS)
    wait_drawn(page, "inspector-digit", DIGITS)
    # only the slant line and the parallelogram, so their colours can be read alone
    for name in ("Skeleton", "Thickness"):  # on by default (Binarised and Ellipse are off)
        page.locator(".explorer-inspector .bk-btn", has_text=name).first.click()
        page.wait_for_timeout(400)  # one toggle at a time reaches the server
    state = served.state
    i = state.current
    metrics = state.dataset.metrics.iloc[i]
    deadline = time.time() + 20
    while True:
        rgb, frame = figure_pixels(page, "inspector-digit")
        slant_px = _colour_mask(rgb, (0, 180, 216))
        para_px = _colour_mask(rgb, (124, 252, 0))
        others = _colour_mask(rgb, (230, 30, 60)).sum() + _colour_mask(rgb, (255, 102, 204)).sum()
        if slant_px.sum() > 40 and para_px.sum() > 80 and others == 0:
            again = figure_pixels(page, "inspector-digit")  # and the layout has settled (no colour bar)
            if again[1] == frame and np.array_equal(again[0], rgb):
                break
        assert time.time() < deadline, (slant_px.sum(), para_px.sum(), others)
        page.wait_for_timeout(200)
    kx, ky = frame["width"] / 112, frame["height"] / 112  # screen px per hi-res px (4 per image px)
    # slant line: x - cx = shear (y - cy) in image coordinates (y down, as the screen), slant = atan(-shear)
    ys, xs = np.nonzero(slant_px)
    slope = np.polyfit(ys, xs, 1)[0]  # screen dx / dy
    expected = -math.tan(metrics["slant"]) * kx / ky
    assert abs(math.degrees(math.atan(slope) - math.atan(expected))) < 2.0, (slope, expected)
    # parallelogram: horizontal top and bottom edges; height and width in image px x 4 x screen scale
    ys, xs = np.nonzero(para_px)
    line = 2.5  # its line width
    assert abs((ys.max() - ys.min() + 1 - line) - metrics["height"] * 4 * ky) < 3.0, (ys.min(), ys.max())
    top = xs[ys <= ys.min() + 1]
    assert abs((top.max() - top.min() + 1 - line) - metrics["width"] * 4 * kx) < 3.5, (top.min(), top.max())


def test_studio_and_distributions_draw(page, served):
    tab(page, "Perturbation studio")
    wait_drawn(page, "studio-original", DIGITS)
    wait_drawn(page, "studio-perturbed", DIGITS)
    tab(page, "Distributions")
    wait_drawn(page, "scatter", CHART)
    wait_drawn(page, "violins-x", CHART)
    wait_drawn(page, "violins-y", CHART)


def test_compare_and_traversal_from_files_draw(page, served, files):
    tab(page, "Compare samples")
    page.locator(".compare-path input").fill(str(files / "samples-idx3-ubyte"))
    page.locator(".compare-load button").click()
    wait_text(page, ".compare-mmd", "600 samples", timeout=120)
    for m in ("area", "length", "thickness", "slant", "width", "height"):
        wait_drawn(page, f"compare-hist-{m}", CHART)
    wait_drawn(page, "compare-gallery", DIGITS)

    tab(page, "Latent traversals")
    page.locator(".traversal-path input").fill(str(files / "traversal.npy"))
    page.locator(".traversal-load button").click()
    wait_text(page, ".traversal-effect-note", "thickness ← latent 0", timeout=120)
    _traversal_drawn(page)
    page.locator(".traversal-codes-path input").fill(str(files / "codes.npy"))
    page.locator(".traversal-samples-path input").fill(str(files / "codes-samples.npy"))
    page.locator(".traversal-codes-load button").click()
    wait_text(page, ".traversal-mig", "MIG", timeout=120)
    wait_drawn(page, "traversal-pcorr", CHART)


def _traversal_drawn(page):
    wait_drawn(page, "traversal-grid", DIGITS)
    wait_drawn(page, "traversal-digit", DIGITS)
    for m in ("length", "thickness", "slant", "width", "height"):
        wait_drawn(page, f"traversal-line-{m}", CHART)
    wait_drawn(page, "traversal-effects", CHART)


def test_model_digit_and_a_traversal_from_the_model_tab_draw(page, served):
    tab(page, "Model")
    wait_drawn(page, "model-digit", DIGITS)
    page.locator(".model-traverse button").click()
    wait_text(page, ".model-status", "Sent a traversal", timeout=120)
    tab(page, "Latent traversals")
    wait_text(page, ".traversal-effect-note", "Strongest latent", timeout=180)
    _traversal_drawn(page)


def _legend_swatch(rgb, frame, colour):
    """Centre (x, y) of the legend swatch of ``colour``, right of the scatter's frame, or None."""
    right = int(frame["x"] + frame["width"]) + 2
    mask = _colour_mask(rgb[:, right:], colour, tol=30)
    if mask.sum() < 20:
        return None
    ys, xs = np.nonzero(mask)
    return right + xs.mean(), ys.mean()


def test_distributions_legend_click_hides_and_shows_a_label(page, served):
    tab(page, "Distributions")
    wait_drawn(page, "scatter", CHART)
    red = (214, 39, 40)  # label 3 (Category10)
    rgb, frame = figure_pixels(page, "scatter")
    x, y, w, h = (int(round(frame[k])) for k in ("x", "y", "width", "height"))

    def label_3_points():
        rgb, _ = figure_pixels(page, "scatter")
        return int(_colour_mask(rgb[y:y + h, x:x + w], red, tol=30).sum())

    before = label_3_points()
    assert before > 200
    sx, sy = _legend_swatch(rgb, frame, red)
    rect = page.evaluate(_RECT, "scatter")
    page.mouse.click(rect["x"] + sx, rect["y"] + sy)
    deadline = time.time() + 20
    while label_3_points() > 0.02 * before:
        assert time.time() < deadline, "clicking label 3 in the legend did not hide its points"
        page.wait_for_timeout(200)
    assert figure_pixels(page, "scatter") is not None and drawing(*figure_pixels(page, "scatter"), CHART)["ok"]
    rect = page.evaluate(_RECT, "scatter")
    page.mouse.click(rect["x"] + sx, rect["y"] + sy)
    while label_3_points() < 0.9 * before:
        assert time.time() < deadline + 20, "clicking label 3 again did not show its points"
        page.wait_for_timeout(200)


def test_unlabelled_data_has_no_label_legend_and_no_minus_one(page, tmp_path, sample_images):
    from panel.tests.util import serve_component

    from explorer.app import Explorer
    from explorer.data import load
    from explorer.state import ExplorerState

    np.save(tmp_path / "unlabelled.npy", sample_images[:600])
    dataset = load(tmp_path / "unlabelled.npy")  # measured here: an array file has no labels
    assert dataset.labels is None
    page.set_viewport_size({"width": 1600, "height": 1000})
    serve_component(page, lambda: Explorer(state=ExplorerState(dataset)), address="127.0.0.1")
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=120000)
    tab(page, "Distributions")
    wait_drawn(page, "violins-x", GREY)
    wait_drawn(page, "scatter", GREY)
    rgb, frame = figure_pixels(page, "scatter")
    from explorer.distributions.raster import PALETTE_RGB

    for code in (0, 1, 2, 3, 4, 5, 6, 8, 9):  # no swatch of a label colour beside the plot (7 is text grey)
        assert _legend_swatch(rgb, frame, tuple(int(c) for c in PALETTE_RGB[code])) is None, code
    shown = page.evaluate("""() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name('scatter');
        if (m) return m.right.find(x => x.items !== undefined).items.filter(i => i.visible).map(i => i.label.value); }
        return null; }""")
    assert shown == ["no label", "filtered"]
    factors = page.evaluate("""() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name('violins-x');
        if (m) return m.x_range.factors; } return null; }""")
    assert factors == ["all"]
