"""Reading a served page's text in browser tests: one helper for every test module.

Panel draws inside shadow roots, so ``text_of`` walks them. ``wait_text`` polls until a needle appears; a page
too busy to answer (a loaded CI machine) counts against the caller's deadline, never a shorter one of its own
(each page call is given the time that is left, not Playwright's 30 s default).
"""
from __future__ import annotations

import time

_WALK_JS = """el => {
    const out = [];
    const walk = n => { if (n.shadowRoot) walk(n.shadowRoot);
        for (const c of n.childNodes) { if (c.nodeType === 3) out.push(c.textContent);
            else if (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.tagName)) walk(c); } };
    walk(el); return out.join(' ').replace(/\\s+/g, ' '); }"""


def text_of(page, selector: str = "body", timeout: float = 30) -> str:
    """All text inside the first element matching ``selector``, through shadow roots, whitespace collapsed
    (``timeout`` seconds for the element to be there and the page to answer)."""
    return page.locator(selector).first.evaluate(_WALK_JS, timeout=timeout * 1000)


def wait_text(page, selector: str, needle: str, timeout: float = 20) -> str:
    """Wait up to ``timeout`` seconds for ``needle`` in the element's text; returns that text."""
    deadline = time.time() + timeout
    while True:
        text = text_of(page, selector, timeout=max(1.0, deadline - time.time()))
        if needle in text:
            return text
        if time.time() > deadline:
            raise AssertionError(f"{needle!r} not in {selector}: {text[:600]!r}")
        page.wait_for_timeout(100)
