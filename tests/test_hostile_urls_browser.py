"""Hostile share links and over-size uploads against the served explorer in real Chromium (issue 16).

- A link carrying a markup or script payload in every parameter fires no dialog, injects no element
  (looked for through Panel's shadow DOMs) and shows the payload literally in one notice.
- Links that once crashed the page (5,000-deep JSON, a 30,000-digit number) render it, with one notice.
- ``?tab=99`` and ``?tab=-3`` are clamped and the page URL says what is used.
- A 200 MB file set on any file input (sidebar, Compare, traversal, codes), entering at ``/main``,
  ``?tab=3`` or ``?tab=4``, is refused in the browser with a message naming it, and the session keeps
  working (its websocket stays open).
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

from hostile import INJECTED, PAYLOADS
from page_text import text_of, wait_text
from test_server import Server, click_digit, finish

pytestmark = pytest.mark.browser

KEYS = ["digit", "seed", "sort", "x", "y", "labels", "perts", "ranges", "pert", "pert_params", "sel", "page",
        "desc", "tab"]

@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("hostile-log"))
    yield server
    server.stop()


@pytest.fixture
def server(app_server):
    app_server.set_mark()
    yield app_server
    assert app_server.problems_since_mark() == []


def watch(page):
    """Record dialogs (alert, confirm, ...) and websocket closes on ``page``."""
    page.dialogs, page.closed_sockets = [], []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()
    page.on("dialog", on_dialog)
    page.on("websocket", lambda ws: ws.on("close", lambda _: page.closed_sockets.append(ws.url)))


def hostile_session(browser, url):
    """A session of its own, dialogs and websocket closes recorded from before the page loads."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"{m.type}: {m.text}")
            if m.type in ("warning", "error") else None)
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    watch(page)
    page.goto(url)
    page.locator(".explorer-upload").first.wait_for(timeout=60000)
    return page


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_in_every_parameter_stays_text(browser, server, payload):
    query = {key: payload for key in KEYS}
    query["pert_params"] = '{"%s": "%s"}' % (payload.replace('"', '\\"'), payload.replace('"', '\\"'))
    query[payload] = payload  # an unknown key, too
    page = hostile_session(browser, server.url + "?" + urlencode(query, quote_via=quote))
    text = wait_text(page, ".explorer-message", "Adjusted the link", timeout=60)
    assert payload in text, text  # shown literally
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)  # the page works
    page.wait_for_timeout(1500)  # time for a payload to run, had it been injected
    assert page.dialogs == []
    assert page.evaluate(INJECTED) == []
    assert text_of(page).count("Adjusted the link") == 1
    assert page.closed_sockets == [] and page.problems == []
    finish(page)


@pytest.mark.parametrize("query", [
    {"labels": "[" * 5000 + "]" * 5000},
    {"ranges": '{"a":' * 3000 + "1" + "}" * 3000},
    {"pert_params": "[" * 5000 + "]" * 5000},
    {"digit": "1" * 30_000},
    # within Tornado's 64 KB request head (a longer URL is refused before the app sees it)
    {"digit": "1" * 30_000, "labels": "[" * 3000 + "]" * 3000, "seed": "9" * 5000, "page": "NaN"},
], ids=["deep-labels", "deep-ranges", "deep-pert-params", "30000-digits", "all-at-once"])
def test_links_that_crashed_the_page_render_it_with_one_notice(browser, server, query):
    page = hostile_session(browser, server.url + "?" + urlencode(query))
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
    wait_text(page, ".explorer-message", "ignored", timeout=30)
    page.wait_for_timeout(1000)
    assert text_of(page).count("Adjusted the link") == 1
    click_digit(page, 7)  # the session works
    assert page.dialogs == [] and page.closed_sockets == [] and page.problems == []
    finish(page)


@pytest.mark.parametrize("tab, expected", [("99", "tab=5"), ("-3", None)])
def test_an_out_of_range_tab_is_clamped_and_the_url_rewritten(browser, server, tab, expected):
    page = hostile_session(browser, server.url + f"?tab={tab}")
    wait_text(page, ".explorer-message", f"tab {tab} →", timeout=60)
    deadline_ms = 20_000
    while deadline_ms > 0:
        search = page.evaluate("() => window.location.search")
        if (expected and expected in search and f"tab={tab}" not in search) or (not expected and "tab" not in search):
            break
        page.wait_for_timeout(100)
        deadline_ms -= 100
    else:
        raise AssertionError(f"the URL still says {page.url}")
    assert page.problems == []
    finish(page)


@pytest.fixture(scope="module")
def huge_file(tmp_path_factory):
    """A real 200 MB file (all zeros, as the filesystem stores it) to upload."""
    path = tmp_path_factory.mktemp("huge") / "huge-digits.npy"
    with open(path, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    return path


@pytest.mark.parametrize("entry, tab, selector", [
    ("", None, ".explorer-upload"),
    ("", "Compare samples", ".compare-upload"),
    ("", "Latent traversals", ".traversal-upload"),
    ("?tab=3", None, ".compare-upload"),
    ("?tab=3", None, ".explorer-upload"),
    ("?tab=4", None, ".traversal-upload"),
    ("?tab=4", None, ".traversal-codes-upload"),
    ("?tab=4", None, ".traversal-samples-upload"),
])
def test_a_200_mb_upload_is_refused_on_every_tab_and_entry_url(browser, server, huge_file, entry, tab, selector):
    page = hostile_session(browser, server.url + entry)
    if tab:
        page.get_by_text(tab, exact=True).first.click()
    box = page.locator(f"{selector} input[type=file]").first
    box.wait_for(state="attached", timeout=60000)
    box.set_input_files(str(huge_file))
    text = wait_text(page, ".explorer-message", "Upload refused", timeout=30)
    assert "huge-digits.npy is 210 MB" in text and "up to 50 MB" in text, text
    # The session lives: its websocket stays open and it still answers.
    page.get_by_text("Browse & inspect", exact=True).first.click()
    page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=60000)
    click_digit(page, 11)
    assert page.closed_sockets == [] and page.problems == []
    finish(page)
