"""The Counterfactuals tab in a real Chromium: do(thickness) thickens the reference's digit and the leaky
model's, whose digit also shears; judged by the pixels of the images on screen."""
from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest

from page_text import text_of, wait_text
from test_explorer_browser import app, app_url, open_tab, server_log  # noqa: F401

pytestmark = pytest.mark.browser


def pixels(page, selector: str) -> np.ndarray:
    """The 28 x 28 grey levels of the digit image inside ``selector`` as drawn on screen (each digit pixel a
    6 x 6 block: read at the blocks' centres, so a sub-pixel offset of the element does not matter)."""
    from PIL import Image

    img = page.locator(f"{selector} img").first
    img.wait_for(timeout=30000)
    shot = np.asarray(Image.open(BytesIO(img.screenshot())).convert("L"), dtype=np.float64)
    r = ((np.arange(28) + .5) * shot.shape[0] / 28).astype(int)
    c = ((np.arange(28) + .5) * shot.shape[1] / 28).astype(int)
    return shot[np.ix_(r, c)]


def wait_changed(page, selector: str, before: np.ndarray, timeout_ms: int = 20000) -> np.ndarray:
    from playwright.sync_api import Error

    for _ in range(timeout_ms // 200):
        try:
            now = pixels(page, selector)
        except Error:   # the image was replaced while being captured: look again
            now = before
        if np.abs(now - before).max() > 0:
            page.wait_for_timeout(500)   # the last of the slider's updates drawn
            return pixels(page, selector)
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector}: the image did not change")


def column_centroid_by_row(img: np.ndarray) -> float:
    """Slope of the ink's column centroid against row: how much the digit leans (px per px)."""
    rows = np.arange(img.shape[0])
    mass = img.sum(axis=1)
    ok = mass > mass.max() * .05
    cols = (img * np.arange(img.shape[1])[None]).sum(axis=1)[ok] / mass[ok]
    return float(np.polyfit(rows[ok], cols, 1)[0])


def test_thickness_intervention_shows_the_model_beside_the_reference(app):
    open_tab(app, "Counterfactuals")
    wait_text(app, ".cf-attributes", "thickness")
    original = pixels(app, ".cf-original")
    model0 = pixels(app, ".cf-model")
    ref0 = pixels(app, ".cf-reference")
    # no intervention yet: both show the digit itself
    assert np.abs(model0 - original).max() == 0 and np.abs(ref0 - original).max() == 0
    # do(thickness) to the slider's top (8 px), from the keyboard
    handle = app.locator(".cf-thickness .noUi-handle").first
    handle.focus()
    app.keyboard.press("End")
    ref = wait_changed(app, ".cf-reference", ref0)
    model = wait_changed(app, ".cf-model", model0)
    ink = original > 127
    assert (ref > 127).sum() > 1.5 * ink.sum()          # the reference thickened the stroke
    assert (model > 127).sum() > 1.5 * ink.sum()        # so did the leaky model ...
    lean_orig, lean_ref, lean_model = (column_centroid_by_row(x) for x in (original, ref, model))
    # ... which also sheared it: its lean moved much more than the reference's
    assert abs(lean_model - lean_orig) > 2 * abs(lean_ref - lean_orig) + .05
    text = text_of(app, ".cf-attributes")
    assert "slant" in text and "intensity" in text
    # the soundness tables: the leaky model fails on slant
    app.get_by_role("button", name="Soundness tables (20 digits from this one)").click()
    wait_text(app, ".cf-tables", "not sound", timeout=120)
    assert "FAIL" in text_of(app, ".cf-tables")
