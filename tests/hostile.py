"""What a hostile visitor sends, shared by the gate, URL, hostile-input and read-memory tests: the markup and
script payloads, the check that none of them made an element, and a small file declaring a huge array."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

#: Markup and script payloads a visitor may put in a link, a file name, a path or a column name.
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    "<svg onload=alert(1)>",
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "![x](http://example.com/x.png)",
]

#: ``page.evaluate(INJECTED)``: the elements a payload would have made, looked for in the page and every
#: shadow root (Panel renders inside them); ``[]`` when nothing was injected.
INJECTED = """() => {
    const found = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
            const tag = el.tagName.toLowerCase();
            if (tag === 'img' && /^(x|https?:)/.test(el.getAttribute('src') || '')) found.push('img');
            if (tag === 'svg' && el.hasAttribute('onload')) found.push('svg[onload]');
            if (tag === 'script' && !el.hasAttribute('src') && (el.textContent || '').includes('alert(1)')) found.push('script');
            if (tag === 'a' && /^\\s*javascript:/i.test(el.getAttribute('href') || '')) found.push('a[javascript:]');
            for (const attr of el.attributes) { if (/^on/i.test(attr.name) && /alert/.test(attr.value)) found.push(tag + '[' + attr.name + ']'); }
            if (el.shadowRoot) walk(el.shadowRoot);
        }
    };
    walk(document);
    return found;
}"""


def npz_declaring(path: Path, shape, descr: str) -> Path:
    """A real .npz whose member ``images.npy`` declares ``shape`` of ``descr`` and holds that many zero bytes,
    deflated: small on disk, huge once read."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
            left = int(np.prod(shape)) * np.dtype(descr).itemsize
            chunk = bytes(1 << 22)
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
    return path
