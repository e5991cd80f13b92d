"""The one gate (explorer.gate): text escaping against every payload form, rendered through Panel's own
Markdown renderer; upload names; the typed-path policy; uploads (size refusal, atomic store); and every
read route refusing files over the app's caps before they cost memory.
"""
from __future__ import annotations

import html
import os
import tracemalloc
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import pytest

from core.io import ReadLimits
from explorer.gate import Gate, Upload, escape_html, escape_md, safe_name
from explorer.limits import UploadRefused, app_read_limits, max_upload_digits
from hostile import PAYLOADS as VISITOR_PAYLOADS, npz_declaring

#: The visitor payloads, and Markdown and HTML text that must read literally too.
PAYLOADS = VISITOR_PAYLOADS + [
    "<a href='javascript:alert(1)'>x</a>",
    "<http://example.com>",
    "**bold** _em_ `code` # not a heading",
    "a & b &amp; c \\ d",
]



class _Parsed(HTMLParser):
    """Tags, attributes and text of rendered HTML."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def _rendered(pane) -> _Parsed:
    """The HTML the browser receives for ``pane``, parsed.

    Panel's markup panes send their HTML entity-escaped once (the page decodes it into innerHTML): one
    unescape gives what the browser parses.
    """
    props = pane._transform_object(pane.object)
    parsed = _Parsed()
    parsed.feed(html.unescape(props["object"]))
    parsed.close()
    return parsed


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("kind", ["markdown", "alert"])
def test_escape_md_renders_payload_as_literal_text(payload, kind):
    text = f"Could not load {escape_md(payload)}"
    pane = pn.pane.Markdown(text) if kind == "markdown" else pn.pane.Alert(text)
    parsed = _rendered(pane)
    assert set(parsed.tags) <= {"p"}, parsed.tags  # no element, link, image, emphasis or code
    assert not parsed.attrs
    assert "".join(parsed.text).strip() == f"Could not load {payload}"  # reads as given


def test_our_bold_may_surround_escaped_text():
    parsed = _rendered(pn.pane.Markdown(f"**Showing** {escape_md('<img src=x onerror=alert(1)>.npy')}"))
    assert parsed.tags == ["p", "strong"] and not parsed.attrs
    assert "".join(parsed.text).strip() == "Showing <img src=x onerror=alert(1)>.npy"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_html_renders_payload_as_literal_text(payload):
    parsed = _rendered(pn.pane.HTML(f"<p>{escape_html(payload)}</p>"))
    assert parsed.tags == ["p"] and not parsed.attrs
    assert "".join(parsed.text) == payload


def test_safe_name_is_one_harmless_component():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\evil.npy") == "evil.npy"
    assert safe_name("a\x00b\x07c.npy") == "abc.npy"
    assert safe_name("...hidden.npy") == "hidden.npy"
    assert safe_name("") == safe_name(None) == safe_name("/") == "upload"
    long = safe_name("x" * 500 + ".npz")
    assert len(long) <= 120 and long.endswith(".npz")
    name = safe_name("<img src=x onerror=alert(1)>.npy")
    assert name == "<img src=x onerror=alert(1)>.npy" and "/" not in name  # harmless as a path; escaped where shown


# ------------------------------------------------------------------------------------------------------
# typed paths

def test_path_policy(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "s.npy").write_bytes(b"")
    outside = tmp_path / "secret.npy"
    outside.write_bytes(b"")
    (root / "link.npy").symlink_to(outside)
    gate = Gate(data_roots=[str(root)])
    assert gate.path(str(root / "sub" / "s.npy"), "samples") == root / "sub" / "s.npy"
    assert gate.path("sub/s.npy", "samples") == root / "sub" / "s.npy"  # relative: in the first root
    for text in (str(outside), str(root / ".." / "secret.npy"), str(root / "link.npy"), "../secret.npy", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the data folders"):
            gate.path(text, "samples")
    with pytest.raises(ValueError, match="Type a samples path first"):
        gate.path("  ", "samples")
    with pytest.raises(ValueError, match="not a valid path"):
        gate.path("a\x00b", "samples")
    with pytest.raises(ValueError, match="not a valid path"):
        gate.path("x" * 5000, "samples")
    off = Gate(paths_enabled=False, paths_note="Paths are off: upload instead.")
    with pytest.raises(ValueError, match="Paths are off"):
        off.path(str(root / "sub" / "s.npy"))


# ------------------------------------------------------------------------------------------------------
# uploads

def test_upload_refused_over_the_limit_stores_nothing():
    gate = Gate()
    with pytest.raises(UploadRefused) as e:
        gate.upload([b"x" * 5000], ["<img src=x onerror=alert(1)>.npy"], limit=1000)
    assert "<img src=x onerror=alert(1)>.npy" in str(e.value) and "/tmp" not in str(e.value)
    assert gate._tmp is None  # nothing stored, not even a folder
    with pytest.raises(ValueError, match="no file"):
        gate.upload([], [])
    gate.close()


def test_upload_stored_atomically_under_a_safe_name():
    gate = Gate()
    try:
        up = gate.upload(b"abc", "../../evil.npy")
        assert isinstance(up, Upload) and up.path.name == "evil.npy" and up.path.read_bytes() == b"abc"
        folder = up.path.parent
        assert Path(gate._tmp.name) in folder.parents
        assert sorted(p.name for p in folder.iterdir()) == ["evil.npy"]  # no partial file left
        # several files: one folder, clashing names kept apart
        many = gate.upload([b"1", b"2"], ["a.png", "a.png"])
        assert many.path.is_dir() and sorted(p.name for p in many.path.iterdir()) == ["2-a.png", "a.png"]
        # messages name the upload, never the server's temporary path
        msg = gate.message(f"{up.path}: holds 9 digits", up)
        assert msg == "evil.npy: holds 9 digits"
        up.discard()
        assert not folder.exists()
    finally:
        tmp = gate._tmp.name
        gate.close()
    assert not os.path.exists(tmp)


# ------------------------------------------------------------------------------------------------------
# every read route refuses over-cap files before they cost memory

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Files a hostile visitor sends: a stride-0 torch tensor named .npz, an npz declaring 2,000,000 digits."""
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("hostile")
    stride0 = folder / "stride0.npz"
    torch.save(torch.zeros(1).expand(700_000, 28, 28), stride0)
    assert stride0.stat().st_size < 4_000
    big = npz_declaring(folder / "two-million.npz", (2_000_000, 28, 28), "|u1")
    assert big.stat().st_size < 3_000_000
    codes = folder / "codes0.npz"
    torch.save(torch.zeros(1).expand(2_000_000, 16), codes)
    return {"stride0": stride0, "declared": big, "codes": codes}


def _refused(call) -> str:
    """Run ``call`` and return its refusal message; its traced allocations must stay small."""
    tracemalloc.start()
    try:
        with pytest.raises((ValueError, OSError)) as e:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, f"{peak / 1e6:.0f} MB allocated before refusing"
    return str(e.value)


@pytest.mark.parametrize("name", ["stride0", "declared"])
@pytest.mark.parametrize("route", ["dataset", "samples", "traversal"])
def test_image_routes_refuse_over_cap_files(hostile, name, route):
    gate = Gate()
    assert gate.limits == app_read_limits() and gate.limits.max_digits == max_upload_digits()
    msg = _refused(lambda: getattr(gate, route)(hostile[name]))
    assert "limit" in msg


def test_image_routes_refuse_uploads_and_name_them(hostile):
    gate = Gate()
    try:
        up = gate.upload(hostile["declared"].read_bytes(), "<img src=x onerror=alert(1)>.npz")
        for route in ("samples", "traversal"):
            msg = gate.message(_refused(lambda: getattr(gate, route)(up)), up)
            assert "<img src=x onerror=alert(1)>.npz" in msg and gate._tmp.name not in msg
    finally:
        gate.close()


def test_codes_route_refuses_over_cap_files(hostile):
    msg = _refused(lambda: Gate().codes(hostile["codes"]))
    assert "limit" in msg


def _metrics_csv(path: Path, rows: int, columns=("area", "length", "thickness", "slant", "width", "height")):
    pd.DataFrame(np.ones((rows, len(columns))), columns=list(columns)).to_csv(path, index_label="index")
    return path


def test_metrics_routes_refuse_too_many_rows(tmp_path):
    gate = Gate(ReadLimits(max_digits=100, max_bytes=app_read_limits().max_bytes))
    over = _metrics_csv(tmp_path / "over.csv", 101)
    assert "over the limit of 100 digits" in _refused(lambda: gate.metrics_table(over))
    assert "over the limit of 100 digits" in _refused(lambda: gate.code_metrics(over, ["length", "slant"]))
    assert "over the limit of 100 digits" in _refused(lambda: gate.codes(over))
    ok = _metrics_csv(tmp_path / "ok.csv", 100, ("length", "slant", "<img src=x>"))
    got = gate.code_metrics(ok, ["length", "thickness", "slant"])
    assert list(got.columns) == ["length", "slant"] and len(got) == 100 and got.dtypes.eq("float64").all()
    none = _metrics_csv(tmp_path / "none.csv", 3, ("<img src=x onerror=alert(1)>",))
    with pytest.raises(ValueError, match="expected metric columns"):
        gate.code_metrics(none, ["length"])
    small = Gate(ReadLimits(max_bytes=1000))
    assert "limit" in _refused(lambda: small.code_metrics(over, ["length"]))


def test_app_limits_refuse_more_digits_than_the_cap(tmp_path):
    cap = max_upload_digits()
    path = npz_declaring(tmp_path / "cap.npz", (cap + 1, 28, 28), "|u1")
    msg = _refused(lambda: Gate().samples(path))
    assert f"{cap:,}" in msg


def test_no_view_reads_visitor_files_itself():
    """Every file route goes through the gate: no view calls the readers or stores uploads itself.

    ``explorer/data.py`` is the gate's data-set route (:meth:`Gate.dataset` calls it with the gate's limits).
    """
    import re

    root = Path(__file__).resolve().parents[1] / "explorer"
    readers = re.compile(r"\b(load_samples|load_traversal|load_codes|read_csv|read_metrics_table|read_dataset|"
                         r"save_upload)\s*\(")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name in ("gate.py", "data.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if readers.search(code) and not code.lstrip().startswith("def "):  # a view's own public method
                offenders.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    assert offenders == []
