"""Share links under hostile values (issue 16): every query value of :mod:`explorer.url`, with every payload,
leaves a clean state and at most one notice, in plain text that the app shows escaped.

No browser here: :mod:`tests.test_hostile_urls_browser` serves the app and checks the same links in
Chromium.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from explorer import url
from explorer.gate import MAX_QUERY_VALUE, escape_md
from explorer.state import URL_PARAMETERS, ExplorerState
from hostile import PAYLOADS

#: Values nothing may choke on: deep JSON, huge and non-finite numbers, overlong text.
DEEP_LIST = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000
HOSTILE_VALUES = PAYLOADS + [
    DEEP_LIST, DEEP_OBJECT, "1" * 30_000, "9" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
    "nan", "inf", "1e308", "-0", "0x10", "١٢", "", " ", "x" * (MAX_QUERY_VALUE + 1), "[1e400]", "[NaN]",
    "[" + "1," * 5000 + "1]", '{"thickness": [NaN, 1]}', '{"thickness": [1e400, 2]}',
    '{"thickness": [[[[1]]], 2]}', "[true, false]", "[" + "9" * 400 + "]",
]
QUERY_KEYS = list(URL_PARAMETERS.values())


def defaults(state) -> dict:
    """The share-link parameters of a fresh state (what a link that says nothing usable leaves)."""
    out = {}
    for name in URL_PARAMETERS:
        value = getattr(state, name)
        out[name] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


@pytest.fixture
def fresh(sample_dataset):
    def make():
        return ExplorerState(sample_dataset)
    return make


def check_notice(notes: list) -> str:
    """One notice at most, plain text that no escaping can turn into markup, of bounded length."""
    text = url.url_notice(notes)
    assert isinstance(text, str)
    assert len(text) < 3_000, len(text)
    shown = escape_md(text)
    assert "<" not in shown and ">" not in shown and "](" not in shown, shown[:300]
    return text


@pytest.mark.parametrize("key", QUERY_KEYS + ["tab"])
@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=lambda v: repr(v[:24]) + (f"+{len(v)}" if len(v) > 24 else ""))
def test_every_hostile_value_gives_a_clean_state_and_one_notice(fresh, key, value):
    state = fresh()
    before = defaults(state)
    if key == "tab":
        tab, notes = url.read_tab(value, 6)
        assert tab is None or 0 <= tab <= 5
    else:
        notes = url.apply_query(state, {key: value})
    check_notice(notes)
    after = defaults(state)
    changed = {k for k in before if before[k] != after[k]}
    # A few hostile-looking values are legitimate numbers: the state then holds a clamped, valid value.
    allowed = {"seed": {"seed"}, "digit": {"current"}, "page": {"page"}, "sel": {"scatter_selection"},
               "labels": {"labels"}, "perts": {"perturbations"}, "ranges": {"ranges"},
               "pert_params": {"perturbation_params"}}.get(key, set())
    assert changed <= allowed, (changed, {k: after[k] for k in changed})
    if "current" in changed:
        assert 0 <= state.current < len(state.dataset)
    if "seed" in changed:
        assert 0 <= state.seed <= url.MAX_SEED
    for bounds in state.ranges.values():
        assert all(np.isfinite(bounds))
    assert all(isinstance(i, int) for i in state.labels + state.perturbations)
    for v in state.perturbation_params.values():
        assert np.isfinite(v)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_as_json_keys_and_values(fresh, payload):
    state = fresh()
    texts = {
        "pert_params": [json.dumps({payload: 1}), json.dumps({"thickness": payload}),
                        json.dumps({payload: payload})],
        "ranges": [json.dumps({payload: [0, 1]}), json.dumps({"thickness": [payload, 1]})],
        "labels": [json.dumps([payload]), json.dumps([1, payload])],
        "perts": [json.dumps([payload])],
    }
    for key, values in texts.items():
        for text in values:
            notes = url.apply_query(state, {key: text, "pert": "thinning"})
            assert notes, (key, text)
            check_notice(notes)
    assert state.perturbation_params == {} and state.ranges == {} and state.labels == []


@pytest.mark.parametrize("key", ["labels", "perts", "ranges", "pert_params"])
@pytest.mark.parametrize("deep", [DEEP_LIST, DEEP_OBJECT, '{"a":' * 3000 + "1" + "}" * 3000, "[" * 4 + "]" * 4],
                         ids=["list-5000", "object-5000", "object-3000", "list-4"])
def test_deep_json_is_refused_before_it_is_parsed(fresh, key, deep):
    notes = url.apply_query(fresh(), {key: deep})
    text = check_notice(notes)
    assert len(notes) == 1 and ("deep" in text or "too long" in text) and key in text


def test_unknown_keys_are_named_once_and_shortened(fresh):
    state = fresh()
    args = {f"bogus{i}": "1" for i in range(40)}
    args["<img src=x onerror=alert(1)>" + "y" * 100] = "1"
    notes = url.apply_query(state, args)
    assert len(notes) == 1 and "unknown settings ignored" in notes[0] and "and 36 more" in notes[0]
    assert len(notes[0]) < 300
    assert url.apply_query(state, {"theme": "dark", "tab": "2"}) == []  # the app's own keys


def test_repeated_keys_the_last_one_counts(fresh):
    state = fresh()
    assert url.apply_query(state, {"digit": [b"3", b"7"], "labels": [b"[1]", b"[2, 3]"]}) == []
    assert state.current == 7 and state.labels == [2, 3]
    tab, notes = url.read_tab([b"1", b"99"], 6)
    assert tab == 5 and notes == ["tab 99 → 5 (allowed 0 to 5)"]


def test_tab_is_clamped_or_ignored():
    assert url.read_tab("2", 6) == (2, [])
    assert url.read_tab("99", 6)[0] == 5 and url.read_tab("-3", 6)[0] == 0
    tab, notes = url.read_tab("1" * 30_000, 6)
    assert tab is None and len(notes) == 1 and len(notes[0]) < 200
    assert url.read_tab("NaN", 6)[0] is None and url.read_tab("2.5", 6)[0] is None


def test_a_30000_digit_value_and_many_bad_values_give_one_short_notice(fresh):
    state = fresh()
    params = json.dumps({f"p{i}": i for i in range(500)}, separators=(",", ":"))  # within the length bound
    notes = url.apply_query(state, {"digit": "1" * 30_000, "seed": "9" * 400, "pert_params": params})
    text = check_notice(notes)
    assert text.count("Adjusted the link") == 1 and "more" in text
    assert state.current == 0 and state.seed == 0 and state.perturbation_params == {}


def test_huge_and_non_finite_numbers(fresh):
    state = fresh()
    notes = url.apply_query(state, {"seed": "1e308", "digit": "1e400", "page": "-1e300"})
    assert state.seed == url.MAX_SEED and state.current == 0 and state.page == 0
    text = check_notice(notes)
    assert "digit=1e400 ignored" in text and "seed" in text
    for bad in ["NaN", "Infinity", "-Infinity", "1e400"]:
        notes = url.apply_query(state, {"ranges": json.dumps({"thickness": [0, 1]}).replace("1]", bad + "]")})
        assert state.ranges == {} and notes


def test_selection_links(fresh):
    state = fresh()
    assert url.apply_query(state, {"sel": "10-20,4990-99999"}) == []
    assert state.scatter_selection.tolist() == list(range(10, 21)) + list(range(4990, 5000))
    assert url.apply_query(state, {"sel": "1-" + "9" * 100}) and len(state.scatter_selection) == 21
    assert url.query(state)["sel"] == "10-20,4990-4999"
    assert url.encode_indices([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert url.decode_indices("0-2,5,7-8", 10).tolist() == [0, 1, 2, 5, 7, 8]


def test_a_clean_link_round_trips(fresh):
    state = fresh()
    notes = url.apply_query(state, {"digit": "12", "labels": "[3]", "sort": "thickness", "desc": "true",
                                    "pert": "fracture", "pert_params": '{"thickness": 2}', "seed": "5",
                                    "x": "slant", "y": "width", "ranges": '{"thickness": [1, 3]}'})
    assert notes == []
    other = fresh()
    assert url.apply_query(other, url.query(state)) == []
    assert defaults(other) == defaults(state)
    assert url.page_search(state, 2, theme=[b"dark"]).endswith("&tab=2&theme=dark")
    assert "theme" not in url.page_search(state, 0, theme=[b"<script>"])


def test_the_text_location_keeps_the_query_as_text():
    """Panel's own Location parses every value (int() of 30,000 digits raises); the app's keeps text."""
    from panel.io.location import Location

    search = "?digit=" + "1" * 30_000 + "&labels=" + DEEP_LIST + "&tab=3&tab=4"
    with pytest.raises(ValueError):
        Location(search=search).query_params  # why explorer.url installs its own
    loc = url._text_location_class()(search=search)
    params = loc.query_params
    assert params["tab"] == "4" and len(params["digit"]) == 30_000
    loc.search = "?digit=3"  # the app rewrites the URL: nothing parses the old value
    assert loc.query_params == {"digit": "3"}
