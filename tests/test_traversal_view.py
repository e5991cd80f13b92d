"""Latent-traversal view on real digits: a synthetic multi-base traversal (three real digits as base
codes) whose latent 0 sets thickness and latents 1 and 2 both set slant (SetThickness / SetSlant at
increasing targets; latent 2 repeats latent 1, so slant's strongest latent is a tie), codes vs metrics,
a real browser and a real notebook kernel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.models import Legend
from PIL import Image

from explorer.state import ExplorerState
from explorer.traversals import TraversalView

STEPS = 6
BASES = (2000 + 13, 1003, 3507)  # real digits of three labels



def _traversal_of(image):
    from core.perturb import SetSlant, SetThickness, perturb_image

    thick = [perturb_image(image, SetThickness(t)) for t in np.linspace(1.5, 4.0, STEPS)]
    slant = [perturb_image(image, SetSlant(s)) for s in np.linspace(-0.5, 0.5, STEPS)]
    return np.stack([thick, slant, slant])


@pytest.fixture(scope="module")
def grid(sample_images):
    """(B=3, L=3, S=6, 28, 28) uint8."""
    return np.stack([_traversal_of(sample_images[i]) for i in BASES])


def _png_grid(grid: np.ndarray, path: Path, pad: int = 2) -> None:
    """Write a grid image as torchvision's make_grid does (2-px gaps, also around)."""
    L, S = grid.shape[:2]
    img = np.full((L * 28 + (L + 1) * pad, S * 28 + (S + 1) * pad), 128, np.uint8)
    for i in range(L):
        for j in range(S):
            y, x = pad + i * (28 + pad), pad + j * (28 + pad)
            img[y:y + 28, x:x + 28] = grid[i, j]
    Image.fromarray(img).save(path)


def _view(sample_dataset):
    return TraversalView(state=ExplorerState(sample_dataset))


def test_multi_base_effects_ci_sign_agreement_and_ties(tmp_path, sample_dataset, grid):
    from core.samples import Traversal

    view = _view(sample_dataset)
    # as the Model tab hands it over (a multi-base file goes through core.samples.load_traversal)
    view.show(Traversal(images=grid, source_range="uint8", description="3 bases x 3 latents x 6 steps",
                        path=""))
    assert view.grid.images.shape == (3, 3, STEPS, 28, 28)
    assert view.grid._base_slider.visible and view.grid._base_slider.end == 2
    view.measure()
    assert view.per_step.index.names == ["base", "latent", "step"] and len(view.per_step) == 3 * 3 * STEPS
    for method in ("slope", "spearman"):
        view.method = method
        eff = view.effects
        assert eff.table["thickness"].idxmax() == 0
        assert list(eff.strongest["thickness"]) == [0]
        # latents 1 and 2 are the same slant traversal: a tie, reported as such
        assert sorted(eff.strongest["slant"]) == [1, 2]
        assert eff.sign_agreement.loc[0, "thickness"] == 1.0
        assert eff.ci_low.loc[0, "thickness"] <= eff.table.loc[0, "thickness"] <= eff.ci_high.loc[0, "thickness"]
        note = view.effects_panel.note.object
        assert "thickness ← latent **0**" in note and "slant ← tie between latents **1, 2**" in note
        assert "Mean over 3 base codes" in note
        # heatmap and table: one source holding exactly the effects shown
        src = view.effects_panel.source
        table = view.effects_panel.table.object
        for lat, m, text in zip(src.data["y"], src.data["x"], src.data["text"]):
            assert f"data-latent='{lat}' data-metric='{m}'><span class='v'>{text}</span>" in table
        shown = view.effects_panel.table_frame(eff)
        for lat, m, v in zip(src.data["y"], src.data["x"], src.data["value"]):
            assert v == pytest.approx(float(shown.loc[int(lat), m]), nan_ok=True)
        stars = {(y, x): s for y, x, s in zip(src.data["y"], src.data["x"], src.data["strongest"])}
        assert stars[("1", "slant")] == stars[("2", "slant")] == "tie" and stars[("0", "thickness")] == "★"
    # slope units: reference sd per latent unit vs metric units differ by the reference sd
    view.method = "slope"
    view.effects_panel.units = "metric"
    metric_units = view.effects_panel.source.data["value"]
    view.effects_panel.units = "sd"
    sd_units = view.effects_panel.source.data["value"]
    ref_sd = sample_dataset.metrics["thickness"].std()
    i = [k for k, (y, x) in enumerate(zip(view.effects_panel.source.data["y"], view.effects_panel.source.data["x"]))
         if (y, x) == ("0", "thickness")][0]
    assert sd_units[i] == pytest.approx(metric_units[i] / ref_sd, rel=0.02)
    # line plots: every latent in a legend below the plot, click-to-hide
    f = view.effects_panel._lines["slant"]
    legends = [x for x in f.below if isinstance(x, Legend)]
    assert len(legends) == 1 and not any(isinstance(x, Legend) for x in f.center)
    assert [it.label.value for it in legends[0].items] == ["latent 0", "latent 1", "latent 2"]
    assert legends[0].click_policy == "hide"
    # selecting an image of base 2 shows its geometry and metrics
    view.grid.selected = (2, 1, STEPS - 1)
    assert view.grid.digit.title.object.startswith(f"**base 2, latent 1, step {STEPS - 1}")
    assert view.grid.digit.sources["skeleton"].data["image"][0].any()
    assert len(view.grid.digit.sources["para"].data["x"]) == 5
    assert "slant" in view.grid.digit.table.object
    # reports
    import json
    assert json.loads(view.effects_panel._json().getvalue()) == json.loads(view.effects.to_json())
    assert b"<html" in view.effects_panel._html().getvalue().lower()


def test_png_grid_traversal_is_read_back(tmp_path, sample_dataset, grid):
    _png_grid(grid[0], tmp_path / "traversal.png")
    view = _view(sample_dataset)
    view.load(tmp_path / "traversal.png", rows=3, cols=STEPS)
    np.testing.assert_array_equal(view.grid.images[0], grid[0])
    assert not view.grid._base_slider.visible
    view.measure()
    eff = view.effects
    assert list(eff.strongest["thickness"]) == [0]
    assert "One base code" in view.effects_panel.note.object


def test_codes_partial_correlations_and_mig(tmp_path, sample_dataset, sample_images):
    idx = np.arange(0, 5000, 20)  # 250 real digits
    np.save(tmp_path / "samples.npy", sample_images[idx])
    ref = sample_dataset.metrics.iloc[idx][["length", "thickness", "slant", "width", "height"]]
    z = (ref - ref.mean()) / ref.std()
    codes = z.to_numpy() + 0.05 * np.random.default_rng(1).normal(size=z.shape)
    pd.DataFrame(codes, columns=[f"c{i}" for i in range(5)]).to_csv(tmp_path / "codes.csv", index=False)
    view = _view(sample_dataset)
    view.load_codes(tmp_path / "codes.csv", tmp_path / "samples.npy")
    view.measure_codes()  # measures the 250 samples
    panel = view.codes_panel
    pc = panel.pcorr.loc[:, ["length", "thickness", "slant", "width", "height"]]
    assert pc.shape == (5, 5)
    assert (np.diag(pc) > 0.9).all(), pc
    assert panel.mig_result.score > 0.3
    assert "MIG = " in panel.mig_text.object
    assert len(panel.source.data["x"]) == 25
    with pytest.raises(ValueError, match="found 250 codes but 10 samples"):
        np.save(tmp_path / "few.npy", sample_images[:10])
        view.load_codes(tmp_path / "codes.csv", tmp_path / "few.npy")


def test_views_render_in_a_notebook(tmp_path, grid, sample_images):
    import nbformat
    from nbclient import NotebookClient

    np.save(tmp_path / "traversal.npy", grid[0])
    np.save(tmp_path / "samples.npy", sample_images[::100])
    cells = [
        "import panel as pn\npn.extension(inline=True)",
        "from explorer.traversals import TraversalView\nt = TraversalView()\n"
        f"t.load({str(tmp_path / 'traversal.npy')!r}); t.measure()\nt",
        "from explorer.compare import CompareView\nc = CompareView()\n"
        f"c.load({str(tmp_path / 'samples.npy')!r}); c.measure()\nc",
        "print(list(t.effects.strongest['thickness']), 'differ' not in c.report.verdict.lower())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    for cell in nb.cells[1:3]:
        kinds = {k for out in cell.outputs for k in out.get("data", {})}
        assert "application/vnd.holoviews_exec.v0+json" in kinds or "text/html" in kinds, cell.outputs
        assert not [o for o in cell.outputs if o.output_type == "error"]
    assert nb.cells[3].outputs[0]["text"].strip() == "[0] True"


# ------------------------------------------------------------------------------------------------
# in a real browser


@pytest.mark.browser
def test_browser_multi_base_method_toggle_and_click(page, tmp_path, sample_dataset, grid):
    from panel.tests.util import serve_component, wait_until

    from test_compare_view import _fits, _Noise

    noise = _Noise(page)
    np.save(tmp_path / "traversal.npy", grid[0])  # one base code; multi-base: test_model_view's browser test
    holder = {}

    def make():
        holder["view"] = TraversalView(state=ExplorerState(sample_dataset))
        return holder["view"]

    page.set_viewport_size({"width": 1026, "height": 768})  # 1366 less the app's sidebar
    serve_component(page, make, address="127.0.0.1")
    _fits(page, ".traversal-load button")
    page.locator(".traversal-path input").fill(str(tmp_path / "traversal.npy"))
    page.locator(".traversal-load button").click()

    def text(sel):
        loc = page.locator(sel)
        return loc.first.evaluate("e => (e.shadowRoot || e).textContent") if loc.count() else ""

    wait_until(lambda: "thickness ← latent 0" in text(".traversal-effect-note"), page, timeout=90000)
    assert "slant ← tie between latents 1, 2" in text(".traversal-effect-note")
    assert "One base code" in text(".traversal-effect-note")
    view = holder["view"]

    def shown_matches():
        # every cell of the table in the page shows the heatmap source's text for its (latent, metric)
        data = view.effects_panel.source.data
        lookup = {(y, x): t for y, x, t in zip(data["y"], data["x"], data["text"])}
        cells = page.locator(".traversal-effects-table").first.evaluate(
            """e => [...(e.shadowRoot || e).querySelectorAll('td[data-metric]')].map(
                   td => [td.dataset.latent, td.dataset.metric, td.querySelector('.v').textContent])""")
        return len(cells) == len(lookup) > 0 and all(lookup[(y, x)] == t for y, x, t in cells)

    wait_until(shown_matches, page, timeout=20000)
    for label in ("Spearman ρ", "Slope", "Spearman ρ"):
        page.locator(".traversal-method button", has_text=label).click()
        method = "spearman" if label.startswith("Spearman") else "slope"
        wait_until(lambda: view.method == method, page, timeout=5000)
        wait_until(shown_matches, page, timeout=5000)
    # click the image of latent 1, last step, in base 0's grid canvas
    from explorer.traversals.grid import TOOLBAR

    fig = view.grid.figure
    canvas = next(c for c in page.locator(".bk-Canvas").all()
                  if (b := c.bounding_box()) and round(b["width"]) == fig.width and round(b["height"]) == fig.height)
    canvas.scroll_into_view_if_needed()  # the toggles above scrolled the page
    box = canvas.bounding_box()
    top, plot_h = box["y"] + TOOLBAR, fig.height - TOOLBAR
    page.mouse.click(box["x"] + fig.width * (STEPS - 0.5) / STEPS, top + plot_h * 1.5 / 3)
    wait_until(lambda: view.grid.selected == (0, 1, STEPS - 1), page, timeout=10000)
    wait_until(lambda: f"latent 1, step {STEPS - 1}" in text(".traversal-selected"), page, timeout=10000)
    page.screenshot(path=str(tmp_path / "traversal.png"), full_page=True)
    noise.check()
