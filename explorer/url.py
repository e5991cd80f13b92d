"""Share links: the page URL <-> the view state, in one module, on top of the gate.

A share link is a visitor's input like any other: every value is read through
:func:`explorer.gate.query_text`, :func:`explorer.gate.parse_number` and :func:`explorer.gate.parse_json`
(bounded length, depth and size; NaN, Infinity and 30,000-digit numbers refused), checked against its
widget's range, and clamped or ignored. Whatever the URL, the page renders with at most one notice, in
plain text (the app escapes it where it shows it).

Panel parses the page's query itself (:attr:`panel.state.location`, ``query_params``): ``int()`` on a
30,000-digit value raises (Python refuses more than 4,300 digits), and a 5,000-deep JSON value makes it
log a warning on every URL change. :func:`install_location` gives the session a Location that keeps the
query as text, before anything else reads it.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import numpy as np

from explorer.data import METRICS
from explorer.gate import QueryValueError, parse_json, parse_number, query_text, shown

__all__ = ["URL_PARAMETERS", "APP_KEYS", "MAX_SEED", "MAX_NOTES", "THEMES", "encode_indices", "decode_indices",
           "query", "apply_query", "read_tab", "url_notice", "page_search", "install_location"]

#: State parameters kept in the URL (parameter -> query name), so that a view can be shared.
URL_PARAMETERS = {
    "current": "digit", "labels": "labels", "perturbations": "perts", "ranges": "ranges",
    "sort_by": "sort", "descending": "desc", "page": "page", "perturbation": "pert",
    "perturbation_params": "pert_params", "seed": "seed", "scatter_x": "x", "scatter_y": "y",
    "scatter_selection": "sel",
}
#: Query names the app reads besides the state's (the tab, and the template's theme).
APP_KEYS = ("tab", "theme")
#: Themes the template knows (``?theme=``); any other value is dropped from the page URL.
THEMES = ("dark", "default")
#: Largest seed a share link may set (numpy generators take any int; this keeps URLs sane).
MAX_SEED = 2**32 - 1
#: Most phrases one notice lists (a link with 2,000 bad values still gives a short notice).
MAX_NOTES = 8


def encode_indices(indices) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (sorted, unique): a compact selection for URLs."""
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist()))


def decode_indices(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`encode_indices`, keeping only indices in [0, n).

    Raises
    ------
    ValueError
        An item is not ``a`` or ``a-b`` with whole numbers (:class:`explorer.gate.QueryValueError`).
    """
    out = []
    for item in filter(None, text.split(",")):
        a, _, b = item.partition("-")
        lo = parse_number(a, integer=True)
        hi = parse_number(b, integer=True) if b else lo
        lo, hi = max(lo, 0), min(hi, n - 1)
        if hi >= lo:
            out.append(np.arange(lo, hi + 1, dtype=np.int64))
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


def query(state) -> dict:
    """The URL query of ``state``'s view (only values that differ from the defaults), as text."""
    import json

    from explorer.gate import MAX_QUERY_VALUE

    out = {}
    for name, key in URL_PARAMETERS.items():
        value = getattr(state, name)
        if name == "scatter_selection":
            if value is not None:
                text = encode_indices(value)
                out[key] = text if len(text) <= MAX_QUERY_VALUE else None
            continue
        if value == state.param[name].default and not isinstance(value, (list, dict)):
            continue
        if isinstance(value, (list, dict)):
            if not value:
                continue
            out[key] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return {k: v for k, v in out.items() if v is not None}


def _raw_text(raw) -> str:
    """The start of a value :func:`explorer.gate.query_text` refused, for the notice."""
    if isinstance(raw, (list, tuple)):
        raw = raw[-1] if raw else ""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[:200]).decode("utf-8", "replace")
    return str(raw)[:200]


def _clamp(notes: list, what: str, v, lo, hi):
    if v < lo or v > hi:
        c = min(max(v, lo), hi)
        notes.append(f"{what} {v:g} → {c:g} (allowed {lo:g} to {hi:g})")
        return c
    return v


def _int_list(items) -> list:
    if not isinstance(items, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise QueryValueError("not a list of whole numbers")
    return items


def _perturbations() -> dict:
    """:data:`core.perturb.PERTURBATIONS`, imported only for a link that names a perturbation (core.perturb
    imports scipy and the morphology, which a plain link's first page does without)."""
    from core.perturb import PERTURBATIONS

    return PERTURBATIONS


def apply_query(state, args: dict) -> list[str]:
    """Set ``state``'s view from a share link, every value checked against its widget's range.

    Values out of range are clamped (the widgets then show what is used); values that cannot be read are
    ignored; unknown keys are named once. Nothing heavy runs before the values are checked, so no link
    can stall the server.

    Parameters
    ----------
    state : explorer.state.ExplorerState
    args : dict
        Query name (see :data:`URL_PARAMETERS`) -> text, bytes or a list of them (repeated keys: the
        last one counts). The app's own keys (:data:`APP_KEYS`) are left to the app.

    Returns
    -------
    list of str
        One short phrase per changed or ignored value (plain text), for one notice (:func:`url_notice`).
    """
    import param

    notes: list[str] = []
    values: dict = {}
    n = len(state.dataset)
    by_key = {v: k for k, v in URL_PARAMETERS.items()}
    unknown = [str(k) for k in args if str(k) not in by_key and str(k) not in APP_KEYS]
    if unknown:
        names = ", ".join(shown(k, 20) for k in unknown[:5]) + (f" and {len(unknown) - 5} more"
                                                                if len(unknown) > 5 else "")
        notes.append(f"unknown setting{'s' if len(unknown) > 1 else ''} ignored: {names}")

    for key, raw in args.items():
        name = by_key.get(str(key))
        if name is None:
            continue
        text = ""
        try:
            text = query_text(raw)
            if name == "current":
                values[name] = int(_clamp(notes, "digit", parse_number(text, integer=True), 0, n - 1))
            elif name == "page":
                values[name] = parse_number(text, integer=True)  # checked below, once the selection is known
            elif name == "seed":
                values[name] = int(_clamp(notes, "seed", parse_number(text, integer=True), 0, MAX_SEED))
            elif name == "descending":
                if text.lower() not in ("true", "false", "1", "0"):
                    raise QueryValueError("not true or false")
                values[name] = text.lower() in ("true", "1")
            elif name in ("sort_by", "scatter_x", "scatter_y"):
                if text not in state.param[name].objects:
                    raise QueryValueError("not a metric")
                values[name] = text
            elif name in ("labels", "perturbations"):
                items = _int_list(parse_json(text))
                known = state.dataset.labels if name == "labels" else state.dataset.perturbations
                allowed = set(np.unique(known).tolist()) if known is not None else set()
                kept = sorted({i for i in items if i in allowed})
                if len(kept) != len(set(items)):
                    notes.append(f"{key}: kept {kept} (others are not in this dataset)")
                values[name] = kept
            elif name == "ranges":
                items = parse_json(text)
                if not isinstance(items, dict):
                    raise QueryValueError("not an object")
                ranges = {}
                for metric, bounds in items.items():
                    if metric not in METRICS or not isinstance(bounds, list) or len(bounds) != 2:
                        notes.append(f"range {shown(metric, 20)} ignored")
                        continue
                    try:
                        lo, hi = (parse_number(str(b)) for b in bounds)
                    except QueryValueError:
                        notes.append(f"range {metric} ignored (not numbers)")
                        continue
                    ranges[metric] = [min(lo, hi), max(lo, hi)]
                values[name] = ranges
            elif name == "perturbation":
                if text not in _perturbations():
                    raise QueryValueError("not a perturbation")
                values[name] = text
            elif name == "perturbation_params":
                items = parse_json(text)
                if not isinstance(items, dict):
                    raise QueryValueError("not an object")
                values[name] = items  # checked below, against the chosen perturbation's specs
            elif name == "scatter_selection":
                values[name] = decode_indices(text, n) if text else None
        except (ValueError, TypeError, OverflowError) as e:  # QueryValueError is a ValueError
            text = text or _raw_text(raw)
            why = str(e) if isinstance(e, QueryValueError) else "not a valid value"
            notes.append(f"{key}={shown(text)} ignored ({why})")

    if "perturbation_params" in values:
        pert = values.get("perturbation", state.perturbation)
        specs = {p.name: p for p in _perturbations().get(pert, (None, ()))[1]}
        clean = {}
        for pname, v in values["perturbation_params"].items():
            spec = specs.get(pname)
            if spec is None:
                notes.append(f"{shown(pname, 30)} ignored (not a parameter of {pert})")
                continue
            try:
                v = parse_number(str(v))
            except QueryValueError:
                notes.append(f"{pname}={shown(v, 20)} ignored (not a number)")
                continue
            v = _clamp(notes, pname.replace("_", " "), v, spec.low, spec.high)
            clean[pname] = int(round(v)) if spec.integer else float(v)
        values["perturbation_params"] = clean
    page = values.pop("page", None)
    with param.parameterized.batch_call_watchers(state):
        state.param.update(**values)
    if page is not None:
        last = max(0, (len(state.selection) - 1) // state.page_size)
        state.page = int(_clamp(notes, "page", page, 0, last))
    return notes


def read_tab(raw, count: int) -> tuple[int | None, list[str]]:
    """The tab a share link opens (``?tab=``), clamped to the ``count`` tabs there are.

    Returns
    -------
    (int or None, list of str)
        The tab (None: the value was ignored) and the phrases for the notice.
    """
    text = ""
    try:
        text = query_text(raw)
        tab = parse_number(text, integer=True)
    except QueryValueError as e:
        return None, [f"tab={shown(text or _raw_text(raw))} ignored ({e})"]
    last = max(count - 1, 0)
    if not 0 <= tab <= last:
        clamped = min(max(tab, 0), last)
        return clamped, [f"tab {tab} → {clamped} (allowed 0 to {last})"]
    return tab, []


def url_notice(notes: list[str]) -> str:
    """The one notice about a share link's changed or ignored values (plain text), or ``""``."""
    if not notes:
        return ""
    listed = notes[:MAX_NOTES]
    more = f"; and {len(notes) - MAX_NOTES} more" if len(notes) > MAX_NOTES else ""
    return "Adjusted the link's settings to what this app allows: " + "; ".join(listed) + more + "."


def page_search(state, tab: int = 0, theme=None) -> str:
    """The page URL's search part (``"?digit=3&tab=1"`` or ``""``) for ``state``'s view, ``tab`` and the
    theme the page was opened with (kept only if it is one of :data:`THEMES`)."""
    q = query(state)
    if tab:
        q["tab"] = str(int(tab))
    if theme is not None:
        try:
            text = query_text(theme)
        except QueryValueError:
            text = ""
        if text in THEMES:
            q["theme"] = text
    return ("?" + urlencode(q)) if q else ""


def install_location(doc) -> None:
    """Give the session ``doc`` a :class:`panel.io.location.Location` that keeps the query as text.

    Called before anything reads :attr:`panel.state.location`: Panel's own one parses every value
    (``int()``, ``json.loads``, ``ast.literal_eval``) when it is built and on every URL change, which
    raises on a 30,000-digit value (the page stays blank) and logs a warning for a 5,000-deep list. The
    app reads the query from ``pn.state.session_args`` through this module instead.
    """
    import panel as pn

    if doc is None or doc.session_context is None:
        return
    locations = pn.state._locations  # Panel's per-document Locations (what pn.state.location returns)
    if doc in locations:
        return

    locations[doc] = _text_location_class().from_request(doc.session_context.request)


_TEXT_LOCATION = None


def _text_location_class():
    """The Location subclass of :func:`install_location` (made once, on first use: panel is imported
    only by served apps)."""
    global _TEXT_LOCATION
    if _TEXT_LOCATION is None:
        from panel.io.location import Location

        class TextLocation(Location):
            """A Location whose ``query_params`` are the query's text values (the last of repeated keys)."""

            @property
            def query_params(self) -> dict:
                return dict(parse_qsl(str(self.search or "").lstrip("?"), keep_blank_values=True))

        _TEXT_LOCATION = TextLocation
    return _TEXT_LOCATION
