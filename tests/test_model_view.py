"""The live model (Model tab) with a real decoder: PCA fitted here on the bundled 5,000 MNIST digits,
a plain numpy callable codes (N, 16) -> images (N, 28, 28) in [0, 1].

Checked: the view builds without a notebook or browser, in ``Explorer(decoder=..., latent_dim=...)``
too; a slider move decodes and measures the digit; sampling and traversing feed the Compare and
Latent traversals views through the shared state; the live sliders and the traversal analysis agree
on which latent moves slant; and in Chromium, slider -> digit, sample -> comparison and traverse ->
effects, with no console or server warnings.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_async
from explorer.state import ExplorerState

D = 16



@pytest.fixture(scope="module")
def pca_decoder(sample_images):
    """PCA decoder: code z (N, 16) ~ N(0, I) -> mean + (z * sd) @ components, clipped to [0, 1]."""
    x = sample_images.reshape(len(sample_images), -1).astype(np.float64) / 255.0
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps, sd = vt[:D], s[:D] / np.sqrt(len(x) - 1)

    def decode(codes):
        codes = np.asarray(codes, np.float64)
        return np.clip(mean + (codes * sd) @ comps, 0, 1).reshape(-1, 28, 28)

    return decode


def test_model_view_builds_and_a_slider_move_redraws(pca_decoder, sample_dataset):
    from core.measure import measure_image
    from explorer.model import SLIDER_BOUND, ModelView

    view = ModelView(state=ExplorerState(sample_dataset), decoder=pca_decoder, latent_dim=D)
    assert len(view.sliders) == D
    assert all(s.start == -SLIDER_BOUND and s.end == SLIDER_BOUND for s in view.sliders)
    zero = view.image.copy()
    expected0 = np.rint(pca_decoder(np.zeros((1, D)))[0] * 255)
    assert np.abs(zero.astype(int) - expected0).max() <= 1  # the mean digit
    view.sliders[3].value = 2.5
    assert view.code[3] == 2.5 and not np.array_equal(view.image, zero)
    assert view.metrics == pytest.approx(measure_image(view.image)._asdict())
    assert "z3 = +2.50" in view.digit.title.object
    assert view.digit.sources["skeleton"].data["image"][0].any()
    assert "thickness" in view.digit.table.object
    assert view.last_ms is not None and view.last_ms > 0
    code = np.linspace(-1, 1, D)
    view.set_code(code)
    assert [s.value for s in view.sliders] == pytest.approx(code)
    with pytest.raises(ValueError, match="code of 16 latents"):
        view.set_code(np.zeros(3))
    with pytest.raises(ValueError, match="needs a decoder"):
        ModelView(state=ExplorerState(sample_dataset))
    pn_obj = view.__panel__()
    assert pn_obj is not None


def test_explorer_with_a_decoder_has_a_model_tab(pca_decoder):
    import panel as pn

    from explorer.app import Explorer
    from explorer.model import ModelView

    app = Explorer(decoder=pca_decoder, latent_dim=D)
    titles = [t for t in app.tabs._names]
    assert "Model" in titles
    view = app.view(titles.index("Model"))  # the tab holds the ModelView's layout
    assert "explorer-model" in view.css_classes
    assert len([w for w in view.select(pn.widgets.FloatSlider) if "model-slider" in w.css_classes]) == D
    assert app.state.decoder.latent_dim == D
    # the same state as ModelView(state=...) in a notebook
    assert ModelView(state=app.state).decoder is app.state.decoder


def test_samples_and_traversal_feed_the_other_views(pca_decoder, sample_dataset):
    from explorer.compare import CompareView
    from explorer.model import ModelView
    from explorer.traversals import TraversalView

    state = ExplorerState(sample_dataset)
    model = ModelView(state=state, decoder=pca_decoder, latent_dim=D)
    compare, trav = CompareView(state=state), TraversalView(state=state)
    model.n_samples = 300
    s = model.sample_now()
    assert state.model_samples is s and s.images.shape == (300, 28, 28) and s.images.dtype == np.uint8
    assert run_async(compare.load_and_measure(samples=state.model_samples))
    # PCA with 16 components: smooth digits, measurably unlike the real ones
    assert "differ" in compare.report.verdict.lower()
    model.n_bases, model.steps, model.span = 3, 7, 2.0
    t = model.traverse_now()
    assert state.model_traversal is t and t.images.shape == (3, D, 7, 28, 28)
    np.testing.assert_allclose(t.values, np.linspace(-2, 2, 7))
    trav._show_traversal(t)
    trav.measure()
    eff = trav.effects
    assert eff.table.shape == (D, 5)
    # the traversal's strongest slant latent is the one whose slider moves slant most in the live view
    slant_latent = list(eff.strongest["slant"])[0]
    moved = []
    for i in range(D):
        code = np.zeros(D)
        code[i] = 2.0
        model.set_code(code)
        plus = model.metrics["slant"]
        code[i] = -2.0
        model.set_code(code)
        moved.append(abs(plus - model.metrics["slant"]))
    assert int(np.argmax(moved)) == slant_latent, (moved, slant_latent)


@pytest.mark.browser
def test_browser_live_model_sample_and_traverse(page, tmp_path, pca_decoder, sample_dataset):
    from panel.tests.util import serve_component, wait_until

    from explorer.app import Explorer
    from test_compare_view import _fits, _Noise

    noise = _Noise(page)
    holder = {}

    def make():
        holder["app"] = app = Explorer(decoder=pca_decoder, latent_dim=D)
        return app

    page.set_viewport_size({"width": 1366, "height": 768})
    serve_component(page, make, address="127.0.0.1")
    app = holder["app"]

    def text(sel):
        loc = page.locator(sel)
        return loc.first.evaluate("e => (e.shadowRoot || e).textContent") if loc.count() else ""

    def tab(title):
        page.locator(".bk-tab", has_text=title).click()

    # visit the Compare and traversal tabs first: the live model then fills views in hidden tabs
    tab("Compare samples")
    page.locator(".compare-load").first.wait_for(timeout=20000)
    tab("Latent traversals")
    page.locator(".traversal-load").first.wait_for(timeout=20000)
    tab("Model")
    page.locator(".model-traverse").first.wait_for(timeout=20000)
    _fits(page, ".model-traverse button")
    model_tab = app.tabs._names.index("Model")
    assert app.view(model_tab) is not None
    # keyboard on the first slider's handle moves z0 and redraws the digit
    handle = page.locator(".model-slider-0 .noUi-handle").first
    handle.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    wait_until(lambda: "z0 = +" in text(".model-selected"), page, timeout=10000)
    # N = 200 samples, 2 base codes x 5 steps
    for sel, value in ((".model-n input", "200"), (".model-bases input", "2"), (".model-steps input", "5")):
        page.locator(sel).fill(value)
        page.locator(sel).press("Enter")
    page.locator(".model-sample button").click()
    wait_until(lambda: "Sent 200 samples" in text(".model-status"), page, timeout=120000)
    page.locator(".model-traverse button").click()
    wait_until(lambda: "Sent a traversal of 2 base codes" in text(".model-status"), page, timeout=120000)
    tab("Compare samples")
    wait_until(lambda: "differ" in text(".compare-verdict"), page, timeout=180000)
    assert "200 samples vs 5,000 reference digits" in text(".compare-mmd")
    tab("Latent traversals")
    wait_until(lambda: "Strongest latent" in text(".traversal-effect-note"), page, timeout=180000)
    assert "Mean over 2 base codes" in text(".traversal-effect-note")
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
    noise.check()
