"""Compare-samples view: loading, background measuring in the shared pool with progress/cancel, the
comparison report (verdict from both MMD tests, per label), readable p-values, downloads, and a real
browser (upload, progress, cancel, verdict, downloads, no console/server warnings, fits 1366x768).

Reference data: the bundled real digits (assets/mnist-5k); samples: real digits written to tmp_path
(plain, or thickened so that the test must tell them apart).
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.models import Legend

from conftest import run_async
from explorer.compare import CompareView, user_message
from explorer.gate import Gate
from explorer.state import ExplorerState



def _plain(markdown: str) -> str:
    """What a Markdown pane's text reads as: escape_md's backslashes and entities undone."""
    import html
    import re

    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def _view(sample_dataset, **kw) -> CompareView:
    return CompareView(state=ExplorerState(sample_dataset), **kw)


@pytest.fixture(scope="module")
def thick(sample_images):
    """100 real digits (10 per label) thickened by 1.5 px, with their labels."""
    from core.perturb import Thickening, perturb_image

    idx = np.arange(11, 5000, 50)
    return (np.stack([perturb_image(sample_images[i], Thickening(amount=1.5)) for i in idx]),
            np.repeat(np.arange(10), 10))


def test_plain_samples_in_tanh_range_match_the_data(tmp_path, sample_dataset, sample_images):
    idx = np.arange(3, 5000, 25)  # 200 digits, 20 per label
    np.save(tmp_path / "gan.npy", (sample_images[idx] / 127.5 - 1).astype(np.float32)[:, None])
    view = _view(sample_dataset)
    samples = view.load(tmp_path / "gan.npy")
    assert samples.source_range == "[-1,1]"
    assert "range [-1,1]" in _plain(view._info.object)
    metrics = view.measure()
    assert len(metrics) == 200
    rep = view.report
    assert rep is not None
    assert not rep.differs and rep.verdict in view._verdict.object  # the decision, not a word in its sentence
    # both tests are shown, each with its p-value formatted by format_p
    assert "MMD²_u" in view._mmd.object and "MMD²_l" in view._mmd.object
    assert "e-32" not in view._mmd.object
    table = view._table.object
    assert list(table["metric"][:6]) == ["area", "length", "thickness", "slant", "width", "height"]
    assert all(str(p).startswith("p ") for p in table["KS p"])
    # histograms hold densities of both sets over shared bins
    fig, ref_src, smp_src = view._hists["thickness"]
    widths = np.asarray(smp_src.data["right"]) - np.asarray(smp_src.data["left"])
    assert np.sum(np.asarray(smp_src.data["top"]) * widths) == pytest.approx(1.0)
    assert np.array_equal(ref_src.data["left"], smp_src.data["left"])
    # the legend lies above the plot area: it cannot cover a bar
    assert any(isinstance(x, Legend) for x in fig.above) and not any(isinstance(x, Legend) for x in fig.center)
    # per-label histograms use only the reference digits of that label (samples have no labels)
    view.label = "7"
    assert "no labels" in view._hist_note.object
    # CSV download: the measured metrics
    csv = pd.read_csv(io.StringIO(view._csv().getvalue()), index_col="index")
    np.testing.assert_allclose(csv.to_numpy(), metrics.to_numpy(), rtol=1e-12)
    assert view._download.filename == "gan-morpho.csv"


def test_thickened_samples_differ_per_label_and_reports_download(tmp_path, sample_dataset, thick):
    images, labels = thick
    np.savez(tmp_path / "thick.npz", images=images, labels=labels)
    view = _view(sample_dataset, gallery_size=12)
    view.load(tmp_path / "thick.npz")
    view.measure()
    rep = view.report
    assert "differ" in rep.verdict.lower()
    d = rep.distances
    assert set(d["label"].astype(str)) == {"all", *map(str, range(10))}
    # per-label tests are shown when both sides have labels
    assert view._per_label.visible and len(view._per_label.object) == 10
    # gallery: 12 samples, furthest first
    dist = np.asarray(view._gallery_cells.data["distance"])
    assert len(dist) == 12 and np.all(np.diff(dist) <= 0)
    csv = pd.read_csv(io.StringIO(view._csv().getvalue()))
    assert list(csv.columns[:2]) == ["index", "label"]
    # report downloads: the same report as HTML and JSON
    html = view._report_html().getvalue().decode()
    assert html.lstrip().lower().startswith("<!doctype html") and "differ from the reference data" in html
    assert view._download_html.filename == "thick-comparison.html"
    data = json.loads(view._report_json().getvalue())
    assert data == json.loads(rep.to_json())


def rep_text(view) -> str:
    return view._verdict.object + view._mmd.object


def test_failed_load_keeps_the_results_on_show(tmp_path, sample_dataset, sample_images):
    np.save(tmp_path / "good.npy", sample_images[::50])
    (tmp_path / "x.npy").write_text("not numpy")
    view = _view(sample_dataset)
    assert run_async(view.load_and_measure(tmp_path / "good.npy"))
    shown, report = view._info.object, view.report
    rep_text_before = rep_text(view)
    assert "good.npy" in _plain(shown) and view.report is not None
    assert not run_async(view.load_and_measure(tmp_path / "x.npy"))
    assert view._error.visible
    assert "found a text file starting with 'not numpy'" in view.error_text
    # the failed file's name is only in the error; what is shown is still the good samples' results
    assert view._info.object == shown and "x.npy" not in _plain(view._info.object)
    assert view.report is report and view.samples.path.endswith("good.npy")
    assert rep_text(view) == rep_text_before


def test_value_range_control_reads_float_0_255(tmp_path, sample_dataset, sample_images):
    np.save(tmp_path / "f255.npy", sample_images[:60].astype(np.float32))
    view = _view(sample_dataset)
    assert not run_async(view.load_and_measure(tmp_path / "f255.npy"))
    msg = view.error_text
    # the advice names the view's control, which exists, not a Python argument
    assert "value_range=" not in msg and "Value range “uint8 (0–255)”" in msg
    assert "uint8 (0–255)" in view._range.options
    view.value_range = "uint8 (0–255)"
    assert run_async(view.load_and_measure(tmp_path / "f255.npy"))
    assert view.samples.source_range == "uint8" and len(view.sample_metrics) == 60


def test_uploads_are_checked_and_messages_hide_server_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MORPHO_MAX_UPLOAD_MB", "0.001")  # 1000 bytes, read when the upload is checked
    gate = Gate()
    with pytest.raises(ValueError) as e:
        gate.upload([b"x" * 5000], ["big.npy"])
    assert "big.npy" in str(e.value) and str(tmp_path) not in str(e.value)
    assert gate._tmp is None or not any(p.is_file() for p in Path(gate._tmp.name).rglob("*"))
    err = FileNotFoundError(f"{tmp_path}/up/s.npy: no such file")
    assert user_message(err, tmp_path / "up") == "s.npy: no such file"


def test_background_measure_reports_progress_and_cancels(tmp_path, sample_dataset, sample_images):
    np.save(tmp_path / "s.npy", sample_images[:3000])
    view = _view(sample_dataset)
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

    assert run_async(scenario()) is False
    assert any(0 < v < 100 for v in values)
    assert "cancelled after" in view.error_text and view._error.alert_type == "warning"
    assert view.sample_metrics is None and not view.job.progress.visible


def test_live_model_samples_are_compared(sample_dataset, sample_images):
    from core.samples import Samples

    state = ExplorerState(sample_dataset)
    view = CompareView(state=state)
    s = Samples(images=sample_images[1::40], source_range="uint8", description="125 model samples", path="")
    assert run_async(view.load_and_measure(samples=s))
    assert len(view.sample_metrics) == 125 and "125 model samples" in _plain(view._info.object)


# ------------------------------------------------------------------------------------------------
# in a real browser


def _text(page, selector: str) -> str:
    """Text of a Panel component, whose content lives in its shadow root."""
    loc = page.locator(selector)
    if loc.count() == 0:
        return ""
    return loc.first.evaluate("e => (e.shadowRoot || e).textContent")


class _Noise:
    """Browser console warnings/errors and server log warnings during a browser test."""

    LOGGERS = ("bokeh", "panel", "param", "tornado", "explorer", "core")

    def __init__(self, page):
        self.console = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}")
                if m.type in ("warning", "error") else None)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.server = []
        outer = self

        class Handler(logging.Handler):
            def emit(self, record):
                # a previous test's server closing its connections is not this app's noise
                if "connection was closed" in record.getMessage():
                    return
                if record.name.split(".")[0] in outer.LOGGERS:
                    outer.server.append(f"{record.name}: {record.getMessage()}")

        self.handler = Handler(level=logging.WARNING)
        logging.getLogger().addHandler(self.handler)

    def check(self):
        logging.getLogger().removeHandler(self.handler)
        assert self.console == [], self.console
        assert self.server == [], self.server


def _heading_sizes(page) -> dict:
    """Font sizes of the h2/h3 headings on the page, through every (nested) shadow root."""
    return page.evaluate("""() => { const out = {H2: new Set(), H3: new Set()};
        const walk = root => { for (const e of root.querySelectorAll('*')) {
            if (e.tagName in out) out[e.tagName].add(getComputedStyle(e).fontSize);
            if (e.shadowRoot) walk(e.shadowRoot); } };
        walk(document);
        return {H2: [...out.H2], H3: [...out.H3]}; }""")


def _serve(page, make, width=1366, height=768):
    from panel.tests.util import serve_component

    page.set_viewport_size({"width": width, "height": height})
    serve_component(page, make, address="127.0.0.1")


def _fits(page, selector: str):
    """The element is inside the viewport's width and the page has no horizontal scroll."""
    box = page.locator(selector).first.bounding_box()
    vw = page.viewport_size["width"]
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= vw, (box, vw)
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.browser
def test_browser_upload_progress_verdict_and_downloads(page, tmp_path, sample_dataset, sample_images):
    from panel.tests.util import wait_until

    noise = _Noise(page)
    np.save(tmp_path / "samples.npy", sample_images[::-1])  # all 5,000: measuring lasts long enough to watch
    holder = {}

    def make():
        holder["view"] = CompareView(state=ExplorerState(sample_dataset))
        return holder["view"]

    # 1026 px: a 1366 px screen less the app's 340 px sidebar
    _serve(page, make, width=1026, height=768)
    _fits(page, ".compare-load button")
    page.locator(".compare-upload input[type=file]").set_input_files(str(tmp_path / "samples.npy"))
    bar = page.locator(".compare-progress progress")
    bar.wait_for(state="visible", timeout=30000)
    wait_until(lambda: 0 < float(bar.get_attribute("value") or 0) < 100
               and "/ 5,000 digits" in _text(page, ".compare-progress-label"), page, timeout=30000)
    assert page.locator(".compare-cancel").is_visible()
    table = page.locator(".compare-table table")
    table.wait_for(state="visible", timeout=180000)
    text = table.inner_text()
    for m in ("area", "length", "thickness", "slant", "width", "height"):
        assert m in text
    assert "W1" in text and "KS p" in text
    view = holder["view"]
    verdict = _text(page, ".compare-verdict")
    assert view.report.verdict.split()[0] in verdict
    mmd = _text(page, ".compare-mmd")
    assert "MMD²_l" in mmd and "MMD²_u" in mmd and "5,000 samples vs 5,000 reference digits" in mmd
    assert not bar.is_visible()
    assert len(view.sample_metrics) == 5000
    # section headings have one size
    sizes = _heading_sizes(page)
    assert len(sizes["H3"]) == 1 and len(sizes["H2"]) == 1, sizes
    # downloads in the browser: HTML and JSON reports, metrics CSV
    for sel, suffix in ((".compare-download-html", ".html"), (".compare-download-json", ".json"),
                        (".compare-download", ".csv")):
        with page.expect_download(timeout=30000) as dl:
            page.locator(f"{sel} button, {sel} a").first.click()
        path = dl.value.path()
        assert dl.value.suggested_filename == f"samples-{'morpho' if suffix == '.csv' else 'comparison'}{suffix}"
        body = open(path, "rb").read()
        if suffix == ".html":
            assert b"<html" in body.lower() and b"distinguishable from the reference data" in body
        if suffix == ".csv":
            assert len(pd.read_csv(io.BytesIO(body))) == 5000
        if suffix == ".json":
            assert json.loads(body) == json.loads(view.report.to_json())
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    noise.check()


@pytest.mark.browser
def test_browser_cancel_and_error_keep_results(page, tmp_path, sample_dataset, sample_images):
    from panel.tests.util import wait_until

    noise = _Noise(page)
    np.save(tmp_path / "samples.npy", sample_images)  # 5,000: time to press Cancel
    (tmp_path / "notes.txt").write_text("hello")

    def make():
        return CompareView(state=ExplorerState(sample_dataset))

    _serve(page, make, width=1100, height=900)
    page.locator(".compare-path input").fill(str(tmp_path / "samples.npy"))
    page.locator(".compare-load button").click()
    page.locator(".compare-cancel button").wait_for(state="visible", timeout=30000)
    page.locator(".compare-cancel button").click()
    wait_until(lambda: "cancelled after" in _text(page, ".compare-error"), page, timeout=30000)
    assert "No samples compared yet" in _text(page, ".compare-verdict")

    page.locator(".compare-path input").fill(str(tmp_path / "notes.txt"))
    page.locator(".compare-load button").click()
    wait_until(lambda: "found a text file starting with 'hello'" in _text(page, ".compare-error"), page,
               timeout=30000)
    assert "notes.txt" not in _text(page, ".compare-info")
    noise.check()
