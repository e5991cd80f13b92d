"""Compare-samples view: loading, background measuring with progress/cancel, the comparison results.

Reference data: the bundled real digits (assets/mnist-5k); samples: real digits written to tmp_path
(plain, or thickened so that the test must tell them apart).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import io

import numpy as np
import pandas as pd
import pytest

from explorer.compare import CompareView, MeasureCancelled, measure_in_chunks
from explorer.state import ExplorerState


def _run(coro):
    """Run a coroutine on its own event loop in a thread: the browser tests' Playwright keeps a loop running
    in this thread, where asyncio.run() would refuse."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _view(sample_dataset, **kw) -> CompareView:
    return CompareView(state=ExplorerState(sample_dataset), **kw)


def test_plain_samples_in_tanh_range_match_the_data(tmp_path, sample_dataset, sample_images):
    idx = np.arange(3, 5000, 25)  # 200 digits, 20 per label
    np.save(tmp_path / "gan.npy", (sample_images[idx] / 127.5 - 1).astype(np.float32)[:, None])
    view = _view(sample_dataset)
    samples = view.load(tmp_path / "gan.npy")
    assert samples.source_range == "[-1,1]"
    assert "range [-1,1]" in view._info.object
    metrics = view.measure()
    assert len(metrics) == 200
    rep = view.report
    assert rep is not None and rep.mmd.p_value > 0.01
    assert "not distinguishable" in view._mmd.object
    table = view._table.object
    assert list(table["metric"][:6]) == ["area", "length", "thickness", "slant", "width", "height"]
    # histograms hold densities of both sets over shared bins
    fig, ref_src, smp_src = view._hists["thickness"]
    widths = np.asarray(smp_src.data["right"]) - np.asarray(smp_src.data["left"])
    assert np.sum(np.asarray(smp_src.data["top"]) * widths) == pytest.approx(1.0)
    assert np.array_equal(ref_src.data["left"], smp_src.data["left"])
    # per-label histograms use only the reference digits of that label (samples have no labels)
    view.label = "7"
    assert "no labels" in view._hist_note.object
    # CSV download: the measured metrics
    csv = pd.read_csv(io.StringIO(view._csv().getvalue()), index_col="index")
    np.testing.assert_allclose(csv.to_numpy(), metrics.to_numpy(), rtol=1e-12)
    assert view._download.filename == "gan-morpho.csv"


def test_thickened_samples_differ_and_the_gallery_shows_the_oddest(tmp_path, sample_dataset, sample_images):
    from core.perturb import Thickening, perturb_image

    idx = np.arange(11, 5000, 50)  # 100 digits, 10 per label
    thick = np.stack([perturb_image(sample_images[i], Thickening(amount=1.5)) for i in idx])
    labels = np.repeat(np.arange(10), 10)
    np.savez(tmp_path / "thick.npz", images=thick, labels=labels)
    view = _view(sample_dataset, gallery_size=12)
    view.load(tmp_path / "thick.npz")
    view.measure()
    assert view.report.mmd.p_value < 0.01
    assert "**differ**" in view._mmd.object
    d = view.report.distances
    assert set(d["label"].astype(str)) == {"all", *map(str, range(10))}
    # gallery: 12 samples, furthest first
    dist = np.asarray(view._gallery_cells.data["distance"])
    assert len(dist) == 12 and np.all(np.diff(dist) <= 0)
    csv = pd.read_csv(io.StringIO(view._csv().getvalue()))
    assert list(csv.columns[:2]) == ["index", "label"]
    # switching to the quadratic statistic recomputes the report
    view.linear = False
    assert not view.report.mmd.linear and view.report.mmd.p_value < 0.01


def test_bad_file_shows_what_was_found(tmp_path, sample_dataset):
    (tmp_path / "x.npy").write_text("not numpy")
    view = _view(sample_dataset)
    ok = _run(view.load_and_measure(tmp_path / "x.npy"))
    assert not ok
    assert view._error.visible
    assert "found a text file starting with 'not numpy'" in view._error.object
    assert "expected" in view._error.object


def test_measuring_can_be_cancelled(sample_images):
    import threading

    cancel = threading.Event()
    seen = []

    def report(done, total):
        seen.append(done)
        if done >= 20:
            cancel.set()

    with pytest.raises(MeasureCancelled, match="cancelled after 20 of 100 digits"):
        measure_in_chunks(sample_images[:100], cancel=cancel, report=report, chunk=10)
    assert seen == [0, 10, 20]


def test_background_measure_reports_progress_and_cancels(tmp_path, sample_dataset, sample_images):
    np.save(tmp_path / "s.npy", sample_images[:3000])
    view = _view(sample_dataset)
    view.job.chunk = 5  # 600 small steps: the bar is seen moving long before the end
    values = []

    async def scenario():
        task = asyncio.ensure_future(view.load_and_measure(tmp_path / "s.npy"))
        while not task.done():
            await asyncio.sleep(0.02)
            if view.job.progress.visible:
                values.append(view.job.progress.value)
            if values and values[-1] > 0:
                view.job.cancel()
        return task.result()

    assert _run(scenario()) is False
    assert any(0 < v < 100 for v in values)
    assert "cancelled after" in view._info.object
    assert view.sample_metrics is None and not view.job.progress.visible


# ------------------------------------------------------------------------------------------------
# in a real browser


def _text(page, selector: str) -> str:
    """Text of a Panel component, whose content lives in its shadow root."""
    loc = page.locator(selector)
    if loc.count() == 0:
        return ""
    return loc.first.evaluate("e => (e.shadowRoot || e).textContent")


def _serve(page, make):
    from panel.tests.util import serve_component

    serve_component(page, make, address="127.0.0.1")


@pytest.mark.browser
def test_browser_upload_progress_and_table(page, tmp_path, sample_dataset, sample_images):
    from panel.tests.util import wait_until

    idx = np.arange(0, 5000, 5)  # 1,000 real digits
    np.save(tmp_path / "samples.npy", sample_images[idx])
    holder = {}

    def make():
        view = CompareView(state=ExplorerState(sample_dataset))
        view.job.chunk = 10  # many small steps, so that the bar is seen moving
        holder["view"] = view
        return view

    _serve(page, make)
    page.locator(".compare-upload input[type=file]").set_input_files(str(tmp_path / "samples.npy"))
    bar = page.locator(".compare-progress progress")
    bar.wait_for(state="visible", timeout=20000)
    wait_until(lambda: 0 < float(bar.get_attribute("value") or 0) < 100, page, timeout=20000)
    assert page.locator(".compare-cancel").is_visible()
    label = _text(page, ".compare-progress-label")
    assert "Measuring" in label and "/ 1,000 digits" in label
    # the app stays responsive while measuring: the label selector still answers
    table = page.locator(".compare-table table")
    table.wait_for(state="visible", timeout=120000)
    text = table.inner_text()
    for m in ("area", "length", "thickness", "slant", "width", "height"):
        assert m in text
    assert "W1" in text and "KS" in text
    mmd = _text(page, ".compare-mmd")
    assert "MMD²_l" in mmd and "1,000 samples vs 5,000 reference digits" in mmd
    assert not bar.is_visible()
    view = holder["view"]
    assert len(view.sample_metrics) == 1000
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)


@pytest.mark.browser
def test_browser_cancel_and_error(page, tmp_path, sample_dataset, sample_images):
    from panel.tests.util import wait_until

    np.save(tmp_path / "samples.npy", sample_images[:2000])
    (tmp_path / "notes.txt").write_text("hello")

    def make():
        view = CompareView(state=ExplorerState(sample_dataset))
        view.job.chunk = 5
        return view

    _serve(page, make)
    page.locator(".compare-path input").fill(str(tmp_path / "samples.npy"))
    page.locator(".compare-load button").click()
    page.locator(".compare-cancel button").wait_for(state="visible", timeout=20000)
    page.locator(".compare-cancel button").click()
    wait_until(lambda: "cancelled after" in _text(page, ".compare-info"), page, timeout=20000)
    assert not page.locator(".compare-table table").is_visible()

    page.locator(".compare-path input").fill(str(tmp_path / "notes.txt"))
    page.locator(".compare-load button").click()
    err = page.locator(".compare-error")
    err.wait_for(state="visible", timeout=20000)
    assert "found a text file starting with 'hello'" in _text(page, ".compare-error")
