"""A hostile visitor against the served explorer (issue 16), in Chromium.

The app is served (``panel serve``) with a data folder (``--data-root``) and a decoder (the Model tab).
The visitor uploads files named with script payloads (good and bad content) through every upload,
types the payloads in every path box, sends files whose column names are payloads, and sends files
over the digit cap through every file route. Nothing may run (no dialog, no injected element), every
name must show literally, every over-cap file is refused with a message while the server's memory
grows by less than 300 MB. Quick tab switches on a busy server still draw the Model tab's first frame.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.gate import safe_name
from hostile import INJECTED, PAYLOADS, npz_declaring
from page_text import text_of, wait_text
from test_server import ROOT, Server, finish, new_session

pytestmark = pytest.mark.browser


DECODER = '''"""A PCA decoder of the bundled digits (the Model tab of the served app)."""
import numpy as np

from core.io import load_idx

_x = load_idx({images!r}).reshape(-1, 784)[:2000] / 255.0
_mean = _x.mean(0)
_, _s, _vt = np.linalg.svd(_x - _mean, full_matrices=False)
_comps, _sd = _vt[:8], _s[:8] / np.sqrt(len(_x) - 1)


def decode(codes):
    codes = np.asarray(codes, np.float64)
    return np.clip(_mean + (codes * _sd) @ _comps, 0, 1).reshape(-1, 28, 28)
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_images):
    """The data folder: good files, bad files, payload-named columns, and over-cap files."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("hostile-root")
    np.save(root / "good.npy", sample_images[:60])
    np.save(root / "traversal.npy", np.stack([sample_images[i:i + 6] for i in (0, 10, 20)]))
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(60, 3)), columns=PAYLOADS[:3]).to_csv(root / "codes.csv", index=False)
    pd.DataFrame(rng.normal(size=(60, 3)), columns=["length", "slant", PAYLOADS[0]]).to_csv(
        root / "metrics.csv", index=False)
    (root / "bad.npy").write_text("not numpy")
    torch.save(torch.zeros(1).expand(700_000, 28, 28), root / "stride0.npz")
    npz_declaring(root / "declared.npz", (2_000_000, 28, 28), "|u1")
    torch.save(torch.zeros(1).expand(2_000_000, 8), root / "codes0.npz")
    rows = 100_001  # one over the app's digit cap
    (root / "rows.csv").write_text("length,slant\n" + "1,2\n" * rows)
    mods = tmp_path_factory.mktemp("hostile-mods")
    (mods / "hostile_decoder.py").write_text(DECODER.format(
        images=str(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz")))
    return root, mods


@pytest.fixture(scope="module")
def server(tmp_path_factory, files):
    root, mods = files
    server = Server(tmp_path_factory.mktemp("hostile-log"), "--data-root", root, "--decoder",
                    "hostile_decoder:decode", "--latent-dim", "8",
                    env={"PYTHONPATH": f"{ROOT}:{mods}"})
    import explorer
    assert Path(explorer.__file__).resolve().parent.parent == ROOT  # this checkout is what is tested
    yield server
    server.stop()


@pytest.fixture
def page(browser, server):
    page = new_session(browser, server.url)
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    page.wait_for_timeout(500)
    page.close()


def _bad(payload: str) -> bytes:
    """Not an array; different for each payload (a FileInput ignores the same bytes sent again)."""
    return f"not numpy {payload}".encode()


def _clean(page):
    """No script ran, no element was injected."""
    assert page.dialogs == []
    assert page.evaluate(INJECTED) == []


def _tab(page, title):
    page.locator(".bk-tab", has_text=title).first.click()


def _upload(page, selector, name, data: bytes, timeout: float = 180):
    # An upload box is disabled while its session works; on a fresh numba cache the first measuring compiles
    # the kernels (a minute or more on a loaded 2-core machine): Playwright's 30 s default is too short.
    page.locator(f"{selector} input[type=file]").first.set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": data}, timeout=timeout * 1000)


def _fill(page, selector, text):
    page.locator(f"{selector} input").first.fill(text)


def _click(page, selector):
    page.locator(f"{selector} button").first.click()


def _shown(page, selector, needle, timeout=60):
    """Wait for ``needle`` to read literally in ``selector``; then nothing ran or was injected."""
    wait_text(page, selector, needle, timeout=timeout)
    _clean(page)


# ------------------------------------------------------------------------------------------------------
# payload names

def test_payload_names_in_the_sidebar_upload(page, files):
    root, _ = files
    good = (root / "good.npy").read_bytes()
    for i, p in enumerate(PAYLOADS):
        name = f"{p}.npy"
        _upload(page, ".explorer-upload", name, good if i == 0 else _bad(p))
        _shown(page, ".explorer-message", safe_name(name), timeout=180)  # the good one is measured first


def test_payload_names_in_compare_and_traversal_uploads(page, files):
    root, _ = files
    good = (root / "good.npy").read_bytes()
    _tab(page, "Compare samples")
    for i, p in enumerate(PAYLOADS):
        name = f"{p}.npy"
        _upload(page, ".compare-upload", name, good if i == 0 else _bad(p))
        _shown(page, ".compare-info" if i == 0 else ".compare-error", safe_name(name), timeout=180)
    _tab(page, "Latent traversals")
    trav = (root / "traversal.npy").read_bytes()
    for i, p in enumerate(PAYLOADS):
        name = f"{p}.npy"
        _upload(page, ".traversal-upload", name, trav if i == 0 else _bad(p))
        _shown(page, ".traversal-info" if i == 0 else ".traversal-error", safe_name(name), timeout=180)


def test_payload_names_and_columns_in_the_codes_uploads(page, files):
    root, _ = files
    _tab(page, "Latent traversals")
    for i, p in enumerate(PAYLOADS[:3]):
        _upload(page, ".traversal-codes-upload", f"{p}.csv", (root / "codes.csv").read_bytes())
        samples = (root / "good.npy").read_bytes() if i == 0 else _bad(p)
        _upload(page, ".traversal-samples-upload", f"{p}.npy", samples)
        page.wait_for_timeout(300)  # both uploads sent before the click
        _click(page, ".traversal-codes-load")
        if i == 0:  # the codes' column names are payloads: shown as text
            _shown(page, ".traversal-codes-info", f"{PAYLOADS[0]}, {PAYLOADS[1]}", timeout=180)
            _shown(page, ".traversal-codes-info", f"samples: {safe_name(p + '.npy')}")
        else:
            _shown(page, ".traversal-error", safe_name(f"{p}.npy"))


def _as_path(payload: str) -> str:
    """A typed payload as the message names the path: resolved, so "http://" reads "http:/"."""
    return re.sub("/+", "/", payload)


def _as_file(payload: str) -> str:
    """A typed payload as a loader names the file: its last part (after the last "/")."""
    return Path(_as_path(payload)).name


def test_payloads_typed_in_the_sidebar_path_box(page, files):
    for p in PAYLOADS:
        box = page.locator("input[placeholder^='inside ']").first
        box.fill(p)
        page.get_by_role("button", name="Open", exact=True).click()
        _shown(page, ".explorer-message", _as_path(p))


def test_payloads_typed_in_every_view_path_box(page, files):
    root, _ = files
    _tab(page, "Compare samples")
    for p in PAYLOADS:
        _fill(page, ".compare-path", p)
        _click(page, ".compare-load")
        _shown(page, ".compare-error", _as_file(p))
    _tab(page, "Latent traversals")
    for p in PAYLOADS:
        _fill(page, ".traversal-path", p)
        _click(page, ".traversal-load")
        _shown(page, ".traversal-error", _as_file(p))
    for p in PAYLOADS:
        _fill(page, ".traversal-codes-path", p)
        _fill(page, ".traversal-samples-path", str(root / "good.npy"))
        _click(page, ".traversal-codes-load")
        _shown(page, ".traversal-error", _as_file(p))
    # a metrics CSV whose columns are payloads, by path: the known columns are used, nothing runs
    _fill(page, ".traversal-codes-path", str(root / "codes.csv"))
    _fill(page, ".traversal-samples-path", str(root / "metrics.csv"))
    _click(page, ".traversal-codes-load")
    _shown(page, ".traversal-codes-info", PAYLOADS[2], timeout=120)
    wait_text(page, ".traversal-mig", "MIG", timeout=120)
    _clean(page)


# ------------------------------------------------------------------------------------------------------
# over-cap files through every route

def _refused(page, server, act, selector, needle="limit", timeout=60):
    rss = server.rss()
    act()
    text = wait_text(page, selector, needle, timeout=timeout)
    assert server.rss() - rss < 300e6, f"server RSS grew by {(server.rss() - rss) / 1e6:.0f} MB"
    assert "/tmp" not in text and "morpho-upload" not in text
    return text


@pytest.mark.parametrize("name", ["stride0.npz", "declared.npz"])
def test_over_cap_files_are_refused_by_every_route(page, server, files, name):
    root, _ = files
    data = (root / name).read_bytes()
    # uploads go as "up-NAME", so that each path route's message (" NAME: ...") is told from the upload's
    up = f"up-{name}"
    _refused(page, server, lambda: _upload(page, ".explorer-upload", up, data), ".explorer-message")

    def open_path():
        page.locator("input[placeholder^='inside ']").first.fill(str(root / name))
        page.get_by_role("button", name="Open", exact=True).click()
    page.wait_for_timeout(500)
    _refused(page, server, open_path, ".explorer-message", needle=f" {name}: ")
    _tab(page, "Compare samples")
    _refused(page, server, lambda: _upload(page, ".compare-upload", up, data), ".compare-error")
    _fill(page, ".compare-path", str(root / name))
    _refused(page, server, lambda: _click(page, ".compare-load"), ".compare-error", needle=f" {name}: ")
    _tab(page, "Latent traversals")
    _refused(page, server, lambda: _upload(page, ".traversal-upload", up, data), ".traversal-error")
    _fill(page, ".traversal-path", str(root / name))
    _refused(page, server, lambda: _click(page, ".traversal-load"), ".traversal-error", needle=f" {name}: ")
    # the codes' samples, by upload and by path
    _upload(page, ".traversal-codes-upload", "codes.csv", (root / "codes.csv").read_bytes())
    _upload(page, ".traversal-samples-upload", up, data)
    page.wait_for_timeout(300)
    _refused(page, server, lambda: _click(page, ".traversal-codes-load"), ".traversal-error",
             needle=f"codes: {up}")
    _fill(page, ".traversal-samples-path", str(root / name))
    _refused(page, server, lambda: _click(page, ".traversal-codes-load"), ".traversal-error",
             needle=f" {name}: ")
    _clean(page)


def test_over_cap_codes_and_metrics_are_refused(page, server, files):
    root, _ = files
    _tab(page, "Latent traversals")
    codes0 = (root / "codes0.npz").read_bytes()
    _upload(page, ".traversal-codes-upload", "codes0.npz", codes0)
    _upload(page, ".traversal-samples-upload", "good.npy", (root / "good.npy").read_bytes())
    page.wait_for_timeout(300)
    _refused(page, server, lambda: _click(page, ".traversal-codes-load"), ".traversal-error",
             needle="codes0.npz: holds 2,000,000")
    _fill(page, ".traversal-codes-path", str(root / "codes0.npz"))
    _refused(page, server, lambda: _click(page, ".traversal-codes-load"), ".traversal-error",
             needle="codes0.npz: holds 2,000,000")
    _fill(page, ".traversal-codes-path", str(root / "codes.csv"))
    _fill(page, ".traversal-samples-path", str(root / "rows.csv"))
    _refused(page, server, lambda: _click(page, ".traversal-codes-load"), ".traversal-error",
             needle="holds 100,001")


# ------------------------------------------------------------------------------------------------------
# the Model tab draws its first frame whatever the order and speed of tab switches

def test_quick_tab_switches_on_a_busy_server_draw_the_model_digit(browser, server, files):
    from test_pixels import DIGITS, wait_drawn

    root, _ = files
    busy = new_session(browser, server.url)  # a busy server: another session measures 60,000 digits
    np.save(root / "big.npy", np.concatenate([np.load(root / "good.npy")] * 1000))
    busy.locator("input[placeholder^='inside ']").first.fill(str(root / "big.npy"))
    busy.get_by_role("button", name="Open", exact=True).click()
    orders = [["Perturbation studio", "Distributions", "Compare samples", "Latent traversals", "Counterfactuals",
               "Model"],
              ["Model", "Browse & inspect", "Model", "Compare samples", "Model"],
              ["Latent traversals", "Model", "Counterfactuals", "Model"]]
    for order in orders * 2:
        page = new_session(browser, server.url)
        for title in order:
            _tab(page, title)
        wait_drawn(page, "model-digit", DIGITS, timeout=60)
        page.wait_for_timeout(1000)  # late patches would fail now
        assert not [p for p in page.problems if "isn't known" in p], page.problems
        page.close()
    busy.close()


# ------------------------------------------------------------------------------------------------------
# two sessions: what A sends never reaches B

def test_session_b_is_unaffected_while_a_sends_everything(browser, server, files, tmp_path):
    """Session A sends every hostile input (share link, payload names, a typed payload path, over-cap files
    on two routes, a 200 MB upload); between A's moves session B pages and opens digits: each of B's moves
    completes, B never sees a dialog, a notice or a change of its data or URL, and A's session still works."""
    root, _ = files
    b = new_session(browser, server.url)
    b.dialogs = []
    b.on("dialog", lambda d: (b.dialogs.append(d.message), d.dismiss()))
    b_url, b_data = b.url, text_of(b, ".explorer-dataset")
    moves = iter(range(100, 10_000, 100))

    def b_moves():
        """B opens another digit (a round trip through the server) and pages the grid."""
        n = next(moves)
        box = b.locator(".explorer-inspector input").first
        box.fill(str(n))
        box.press("Enter")
        wait_text(b, ".explorer-inspector", f"Digit #{n:,}", timeout=120)

    deep = "[" * 5000 + "]" * 5000
    hostile = (f"?digit=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&labels={deep}&seed={'9' * 30000}"
               f"&pert_params=%7B%22%3Csvg%20onload%3Dalert(1)%3E%22%3A1%7D&tab=99&tab=98&nonsense=1")
    a = new_session(browser, server.url + hostile, ready=".bk-tab")  # tab=99: the last tab, not Browse
    a.dialogs = []
    a.on("dialog", lambda d: (a.dialogs.append(d.message), d.dismiss()))
    wait_text(a, ".explorer-message", "Adjusted the link", timeout=60)
    b_moves()
    good = (root / "good.npy").read_bytes()
    for p in PAYLOADS[:3]:
        _upload(a, ".explorer-upload", f"{p}.npy", _bad(p))
        _shown(a, ".explorer-message", safe_name(f"{p}.npy"))
        b_moves()
    a.locator("input[placeholder^='inside ']").first.fill(PAYLOADS[0])
    a.get_by_role("button", name="Open", exact=True).click()
    _shown(a, ".explorer-message", _as_path(PAYLOADS[0]))
    b_moves()
    huge = tmp_path / "huge-digits.npy"
    with open(huge, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    _tab(a, "Compare samples")
    a.locator(".compare-upload input[type=file]").first.set_input_files(str(huge))
    wait_text(a, ".explorer-message", "Upload refused", timeout=60)
    b_moves()
    for name in ("stride0.npz", "declared.npz"):
        _refused(a, server, lambda: _upload(a, ".compare-upload", f"up-{name}", (root / name).read_bytes()),
                 ".compare-error", needle=f"up-{name}")
        b_moves()
    # A's session still works: it opens good data.
    _upload(a, ".explorer-upload", "good.npy", good)
    wait_text(a, ".explorer-message", "Opened good.npy: 60 digits", timeout=120)
    b_moves()
    # B saw none of it.
    assert b.dialogs == [] and a.dialogs == []
    assert b.evaluate(INJECTED) == [] and a.evaluate(INJECTED) == []
    assert text_of(b, ".explorer-message").strip() == ""
    assert text_of(b, ".explorer-dataset") == b_data
    assert b.url.split("?")[0] == b_url.split("?")[0] and "tab=" not in b.url and "seed=" not in b.url
    assert b.problems == [], b.problems
    finish(a, b)
