"""Four app details of issue 20: the inspector follows the filters, the studio says when an amount does
nothing (and states the round trip), the previous export's button goes while the next one is prepared,
and the thinning slider's value stays in view at 1366 px."""
import numpy as np
import pytest

from conftest import run_async
from explorer.inspector import Inspector
from explorer.state import ExplorerState
from explorer.studio import ROUND_TRIP_NOTE, Studio
from test_explorer_browser import app, app_url, open_tab, server_log  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def state():
    return ExplorerState()


def test_inspector_leaves_a_digit_the_label_filter_removes(state):
    ds = state.dataset
    insp = Inspector(state)
    three = int(np.flatnonzero(ds.labels == 3)[0])
    state.param.update(labels=[], current=three)
    assert "label <b>3</b>" in insp._title.html
    state.labels = [5]
    assert ds.labels[state.current] == 5 and state.current in state.selection
    assert "label <b>5</b>" in insp._title.html and f"#{state.current:,}" in insp._title.html
    state.labels = []


def test_studio_says_when_the_amount_does_nothing(state):
    studio = Studio(state)
    state.param.update(perturbation="thinning", perturbation_params={"amount": 0.05})
    studio._render_perturbed()
    assert studio._warning.visible and studio._warning.object.startswith("No effect on this digit")
    assert "Thinning(amount=0.05)" in studio._warning.object
    state.perturbation_params = {"amount": 0.7}
    studio._render_perturbed()
    assert "No effect" not in studio._warning.object
    assert studio._round_trip.visible and "+0.072 px" in ROUND_TRIP_NOTE and "0.5 px" in ROUND_TRIP_NOTE
    state.param.update(perturbation="set_slant", perturbation_params={})
    assert not studio._round_trip.visible
    state.param.update(perturbation="thinning", perturbation_params={})


def test_the_previous_download_goes_while_the_next_export_is_prepared(state, monkeypatch):
    studio = Studio(state)
    studio._download.param.update(visible=True, label="Download old.zip")
    seen = []

    async def in_document(fn):
        fn()
        seen.append(studio._download.visible)

    async def run_job(*a, **k):      # the export is being prepared: what does the page show meanwhile?
        seen.append(("preparing", studio._download.visible))
        raise RuntimeError("stop here")

    monkeypatch.setattr(state, "in_document", in_document)
    monkeypatch.setattr(state, "run_job", run_job)
    monkeypatch.setattr(state, "notify", lambda *a, **k: None)
    studio._what.value = "Metrics of the selection (CSV)"
    run_async(studio._on_prepare())  # not asyncio.run: a browser test before it leaves a loop running
    assert ("preparing", False) in seen


def test_thinning_slider_value_in_view_at_1366(app):  # noqa: F811
    app.set_viewport_size({"width": 1366, "height": 768})
    open_tab(app, "Perturbation studio")
    title = app.locator(".explorer-studio .bk-slider-title").first
    title.wait_for(timeout=15000)
    text = title.inner_text()
    assert "Removed (× thickness)" in text and "0.7" in text
    clipped = title.evaluate("el => el.scrollWidth > el.clientWidth + 1")
    box, value = title.bounding_box(), app.locator(".explorer-studio .bk-slider-value").first
    assert not clipped
    if value.count():
        vb = value.bounding_box()
        assert vb["x"] + vb["width"] <= box["x"] + box["width"] + 1


def test_compare_tab_shows_effect_sizes_and_flags_grey_frames(state, tmp_path):
    from core import io as core_io
    from explorer.compare import CompareView
    from test_answers import ASSETS

    images = core_io.load_idx(ASSETS / "train-images-idx3-ubyte.gz")
    view = CompareView(state)
    np.save(tmp_path / "real.npy", images[3::25])                       # 200 real training digits
    view.load(tmp_path / "real.npy")
    view.measure()
    rep = view.report
    assert rep.answer in view._effects_note.object and rep.baseline_source in view._effects_note.object
    table = view._effects.object
    assert list(table["metric"]) == list(rep.effects["metric"]) and "resolves (sd)" in table.columns
    assert not view._quality.visible
    grey = (90 + 0.6 * images[3::25]).astype(np.uint8)                   # RBM-like grey full frames
    np.save(tmp_path / "grey.npy", grey)
    view.load(tmp_path / "grey.npy")
    view.measure()
    assert view._quality.visible and "less than 50% of the frame is blank background" in view._quality.object
    assert "beyond real digits" in view._effects.object.columns
