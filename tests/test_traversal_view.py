"""Latent-traversal view on real digits: a synthetic traversal whose latent 0 sets thickness and
latent 1 sets slant (SetThickness / SetSlant at increasing targets), codes vs metrics, a real browser
and a real notebook kernel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.state import ExplorerState
from explorer.traversals import TraversalView

STEPS = 6


@pytest.fixture(scope="module")
def grid(sample_images):
    from core.perturb import SetSlant, SetThickness, perturb_image

    base = sample_images[2000 + 13]  # a real '4'
    return np.stack([
        [perturb_image(base, SetThickness(t)) for t in np.linspace(1.5, 4.0, STEPS)],
        [perturb_image(base, SetSlant(s)) for s in np.linspace(-0.5, 0.5, STEPS)],
    ])


def _png_grid(grid: np.ndarray, path: Path, pad: int = 2) -> None:
    """Write a grid image as torchvision's make_grid does (2-px gaps, also around)."""
    L, S = grid.shape[:2]
    img = np.full((L * 28 + (L + 1) * pad, S * 28 + (S + 1) * pad), 128, np.uint8)
    for i in range(L):
        for j in range(S):
            y, x = pad + i * (28 + pad), pad + j * (28 + pad)
            img[y:y + 28, x:x + 28] = grid[i, j]
    Image.fromarray(img).save(path)


def test_png_grid_traversal_is_read_back(tmp_path, sample_dataset, grid):
    _png_grid(grid, tmp_path / "traversal.png")
    view = TraversalView(state=ExplorerState(sample_dataset))
    t = view.load(tmp_path / "traversal.png", rows=2, cols=STEPS)
    np.testing.assert_array_equal(t.images, grid)
    view.measure()
    eff = view.effects
    assert eff.shape == (2, 6)
    assert eff.loc[0, "thickness"] > 0.9 and eff.loc[1, "slant"] > 0.9
    assert eff["thickness"].abs().idxmax() == 0 and eff["slant"].abs().idxmax() == 1
    note = view._effect_note.object
    assert "thickness ← latent **0**" in note and "slant ← latent **1**" in note
    # one line per latent in each metric plot, with the measured values
    ys = [r.data_source.data["value"] for r in view._lines["slant"].renderers[::2]]
    assert len(ys) == 2
    np.testing.assert_allclose(ys[1], view.per_step.loc[1, "slant"].to_numpy())
    # the heatmap holds latents x metrics
    assert len(view._effect_src.data["value"]) == 12
    # selecting an image shows its geometry and metrics
    view.selected = (1, STEPS - 1)
    assert view._digit_title.object == f"**Latent 1, step {STEPS - 1}**"
    assert view._ov["skeleton"].data["image"][0].any()
    assert len(view._ov["para"].data["x"]) == 5
    assert "slant" in view._digit_table.object
    # the standardised slope reads the same latents
    view.method = "slope"
    assert view.effects["thickness"].abs().idxmax() == 0 and view.effects["slant"].abs().idxmax() == 1


def test_codes_partial_correlations_and_mig(tmp_path, sample_dataset, sample_images):
    idx = np.arange(0, 5000, 20)  # 250 real digits
    np.save(tmp_path / "samples.npy", sample_images[idx])
    ref = sample_dataset.metrics.iloc[idx][["length", "thickness", "slant", "width", "height"]]
    z = (ref - ref.mean()) / ref.std()
    codes = z.to_numpy() + 0.05 * np.random.default_rng(1).normal(size=z.shape)
    pd.DataFrame(codes, columns=[f"c{i}" for i in range(5)]).to_csv(tmp_path / "codes.csv", index=False)
    view = TraversalView(state=ExplorerState(sample_dataset))
    view.load_codes(tmp_path / "codes.csv", tmp_path / "samples.npy")
    view.measure_codes()  # measures the 250 samples
    pc = view.pcorr.loc[:, ["length", "thickness", "slant", "width", "height"]]
    assert pc.shape == (5, 5)
    assert (np.diag(pc) > 0.9).all(), pc
    assert view.mig_result.score > 0.3
    assert "MIG = " in view._mig.object
    with pytest.raises(ValueError, match="found 250 codes but 10 samples"):
        np.save(tmp_path / "few.npy", sample_images[:10])
        view.load_codes(tmp_path / "codes.csv", tmp_path / "few.npy")


def test_views_render_in_a_notebook(tmp_path, grid, sample_images):
    import nbformat
    from nbclient import NotebookClient

    np.save(tmp_path / "traversal.npy", grid)
    np.save(tmp_path / "samples.npy", sample_images[::100])
    cells = [
        "import panel as pn\npn.extension(inline=True)",
        "from explorer.traversals import TraversalView\nt = TraversalView()\n"
        f"t.load({str(tmp_path / 'traversal.npy')!r}); t.measure()\nt",
        "from explorer.compare import CompareView\nc = CompareView()\n"
        f"c.load({str(tmp_path / 'samples.npy')!r}); c.measure()\nc",
        "print(t.effects['slant'].abs().idxmax(), c.report.mmd.p_value > 0.01)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    for cell in nb.cells[1:3]:
        kinds = {k for out in cell.outputs for k in out.get("data", {})}
        assert "application/vnd.holoviews_exec.v0+json" in kinds or "text/html" in kinds, cell.outputs
        assert not [o for o in cell.outputs if o.output_type == "error"]
    assert nb.cells[3].outputs[0]["text"].strip() == "1 True"


# ------------------------------------------------------------------------------------------------
# in a real browser


@pytest.mark.browser
def test_browser_traversal_heatmap_and_click(page, tmp_path, sample_dataset, grid):
    from panel.tests.util import serve_component, wait_until

    np.save(tmp_path / "traversal.npy", grid)
    holder = {}

    def make():
        holder["view"] = TraversalView(state=ExplorerState(sample_dataset))
        return holder["view"]

    serve_component(page, make, address="127.0.0.1")
    page.locator(".traversal-path input").fill(str(tmp_path / "traversal.npy"))
    page.locator(".traversal-load button").click()

    def text(sel):
        loc = page.locator(sel)
        return loc.first.evaluate("e => (e.shadowRoot || e).textContent") if loc.count() else ""

    wait_until(lambda: "thickness ← latent 0" in text(".traversal-effect-note"), page, timeout=60000)
    assert "slant ← latent 1" in text(".traversal-effect-note")
    table = page.locator(".traversal-effects-table table")
    assert "latent 0" in table.inner_text() and "thickness" in table.inner_text()
    # click the image of latent 1, last step, in the grid canvas
    view = holder["view"]
    canvas = page.locator(".bk-Canvas").first
    canvas.wait_for(state="visible")
    box = page.locator("div.bk-Figure").first.bounding_box()
    w, h = box["width"], box["height"]
    page.mouse.click(box["x"] + w * (STEPS - 0.5) / STEPS, box["y"] + h * 0.75)
    wait_until(lambda: view.selected == (1, STEPS - 1), page, timeout=10000)
    wait_until(lambda: f"Latent 1, step {STEPS - 1}" in text(".traversal-selected"), page, timeout=10000)
    page.screenshot(path=str(tmp_path / "traversal.png"), full_page=True)
