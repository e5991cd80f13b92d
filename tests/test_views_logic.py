"""The views' logic without a browser, on the bundled real MNIST sample: scatter raster and picking,
keyboard navigation, empty results, the studio's warnings and exports."""
from __future__ import annotations

from conftest import run_async
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from explorer.distributions import Distributions
from explorer.distributions.raster import PALETTE_RGB, in_polygon, in_rect, nearest, rasterize
from explorer.state import ExplorerState


@pytest.fixture
def state(sample_dataset):
    return ExplorerState(dataset=sample_dataset)


# ------------------------------------------------------------------------------------------------------
# scatter raster


def test_rasterize_puts_each_point_in_its_pixel_with_its_colour():
    x = np.array([0.05, 0.95, 0.5, np.nan])
    y = np.array([0.05, 0.95, 0.5, 0.5])
    code = np.array([0, 1, 11, 2])
    img = rasterize(x, y, code, (0, 1), (0, 1), 10, 10, dot=1).view(np.uint8).reshape(10, 10, 4)
    assert tuple(img[0, 0]) == (*PALETTE_RGB[0], 255)  # bottom-left (row 0 = bottom), opaque
    assert tuple(img[9, 9]) == (*PALETTE_RGB[1], 255)
    assert tuple(img[5, 5]) == (*PALETTE_RGB[11], 255)
    assert (img[..., 3] > 0).sum() == 3  # the NaN point is not drawn; the background is transparent


def test_rasterize_draws_the_selection_on_top_and_fades_the_rest():
    x = np.array([0.5, 0.5])
    y = np.array([0.5, 0.5])
    code = np.array([3, 4])
    on_top = rasterize(x, y, code, (0, 1), (0, 1), 4, 4, dot=1, selected=np.array([True, False]))
    px = on_top.view(np.uint8).reshape(4, 4, 4)[2, 2]
    assert tuple(px) == (*PALETTE_RGB[3], 255)  # selected wins although drawn first by index
    faded = rasterize(x[1:], y[1:], code[1:], (0, 1), (0, 1), 4, 4, dot=1, selected=np.array([False]))
    assert tuple(faded.view(np.uint8).reshape(4, 4, 4)[2, 2]) == (*PALETTE_RGB[4], 64)  # see-through


def test_nearest_uses_screen_distance_and_a_radius():
    x = np.array([0.0, 10.0])
    y = np.array([0.0, 0.1])
    # 1 px per x unit, 100 px per y unit: (5, 0.1) is 5 px from point 1 in x... and 10 px in y from point 0
    assert nearest(x, y, 9.0, 0.1, 1.0, 100.0, max_px=8) == 1
    assert nearest(x, y, 5.0, 0.5, 1.0, 100.0, max_px=8) == -1
    assert nearest(x, y, 0.0, 0.0, 1.0, 1.0, candidates=np.array([1]), max_px=20) == 1


def test_box_and_lasso_pick_the_points_inside(sample_dataset):
    x = sample_dataset.metrics["thickness"].to_numpy()
    y = sample_dataset.metrics["slant"].to_numpy()
    box = in_rect(x, y, 3.0, 2.0, 0.3, -0.1)  # bounds in any order
    np.testing.assert_array_equal(box, np.flatnonzero((x >= 2) & (x <= 3) & (y >= -0.1) & (y <= 0.3)))
    # A lasso that is the same box, and a triangle (half of it, below the diagonal).
    square = in_polygon(x, y, [2, 3, 3, 2], [-0.1, -0.1, 0.3, 0.3])
    assert set(square) <= set(box) and len(box) - len(square) < 5  # edges may differ
    tri = in_polygon(x, y, [2, 3, 3], [-0.1, -0.1, 0.3])
    expect = np.flatnonzero((x > 2) & (x < 3) & (y > -0.1) & (y - -0.1 < (x - 2) * 0.4))
    assert abs(len(tri) - len(expect)) < 5 and 0 < len(tri) < len(square)


# ------------------------------------------------------------------------------------------------------
# distributions view


class _Event:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_box_selection_filters_the_browser_and_lives_in_the_state(state):
    dist = Distributions(state=state)
    x = state.dataset.metrics["thickness"].to_numpy()
    y = state.dataset.metrics["slant"].to_numpy()
    dist._on_geometry(_Event(final=True, geometry={"type": "rect", "x0": 2, "x1": 3, "y0": 0, "y1": 0.3}))
    expect = np.flatnonzero((x >= 2) & (x <= 3) & (y >= 0) & (y <= 0.3))
    assert list(state.scatter_selection) == expect.tolist()
    np.testing.assert_array_equal(np.sort(state.selection), expect)
    assert f"{len(expect):,} selected" in dist._info.object
    state.scatter_x = "area"  # the axes are state: the view follows
    assert dist._fig.xaxis.axis_label.startswith("Area")
    np.testing.assert_array_equal(dist._xs, state.dataset.metrics["area"].to_numpy())


def test_hover_describes_the_nearest_digit_and_a_click_makes_it_current(state):
    dist = Distributions(state=state)
    i = 1234
    x = float(state.dataset.metrics["thickness"][i])
    y = float(state.dataset.metrics["slant"][i])
    # Exactly on the digit: it or one drawn at the same place is picked.
    dist._on_hover(_Event(x=x, y=y))
    text = dist._card.text
    j = int(text.split("·")[0].strip("# ").replace(",", ""))
    assert dist._card.visible
    assert f"label {state.dataset.labels[j]}" in text
    assert f"thickness {state.dataset.metrics['thickness'][j]:.2f} px" in text
    assert f"slant {state.dataset.metrics['slant'][j]:.2f} rad" in text
    np.testing.assert_array_equal(dist._thumb.data["image"][0], state.dataset.images[j][::-1])
    dist._on_tap(_Event(x=x, y=y))
    assert state.current == j
    dist._on_hover(_Event(x=1e6, y=1e6))  # far from every digit
    assert not dist._card.visible


def test_violins_keep_their_axes_when_nothing_passes(state):
    dist = Distributions(state=state)
    state.ranges = {"thickness": [100.0, 200.0]}
    assert len(state.selection) == 0
    assert dist._violins["x"].data["xs"] == []
    vr = dist._violin_figs["x"].y_range
    assert vr.start < state.dataset.metrics["thickness"].min() < vr.end  # the axis still spans the data


# ------------------------------------------------------------------------------------------------------
# browser


def test_a_filter_leaving_no_digit_says_so(state):
    from explorer.browser import Browser

    browser = Browser(state=state, filters=False)
    state.ranges = {"thickness": [100.0, 200.0]}
    assert browser._empty.visible and not browser._pane.visible
    assert "No digit passes the filters" in browser._empty.object
    assert "of 0" not in browser._page_info.html and "0–" not in browser._page_info.html
    state.reset_filters()
    assert not browser._empty.visible and browser._pane.visible


def test_the_page_holding_the_current_digit_is_shown(state):
    from explorer.browser import Browser

    state.current = 2630
    browser = Browser(state=state, filters=False)
    assert state.page == 26 and 2630 in browser.page_indices()
    state.sort_by = "slant"
    state.current = int(state.selection[777])
    assert state.page == 7


def test_keys_step_digits_and_pages(state):
    from explorer.browser import Browser

    browser = Browser(state=state, filters=False)
    state.labels = [7]
    sevens = state.selection
    state.current = int(sevens[0])
    browser.on_key("ArrowRight")
    assert state.current == sevens[1]
    browser.on_key("ArrowLeft")
    browser.on_key("ArrowLeft")  # wraps around to the last seven
    assert state.current == sevens[-1]
    state.current = int(sevens[0])
    browser.on_key("PageDown")
    assert state.page == 1 and state.current == sevens[100]
    browser.on_key("ArrowDown")  # one row down
    assert state.current == sevens[110]
    browser.on_key("PageUp")
    assert state.page == 0 and state.current == sevens[0]
    # no page beyond the first or the last: the key leaves the digit being looked at where it is
    state.current = int(sevens[5])
    browser.on_key("PageUp")
    assert state.page == 0 and state.current == sevens[5]
    last = (len(sevens) - 1) // state.page_size
    state.current = int(sevens[-3])
    assert state.page == last
    browser.on_key("PageDown")
    assert state.page == last and state.current == sevens[-3]


def test_a_page_step_draws_and_sends_the_grid_once(state):
    """PageDown moves the page and the current digit together: one new grid image, not two (each is a
    360 KB message to the browser; a class pages a lot)."""
    from explorer.browser import Browser

    browser = Browser(state=state, filters=False)
    sent = []
    browser._image.on_change("data", lambda attr, old, new: sent.append(new["image"][0]))
    browser.on_key("PageDown")
    assert len(sent) == 1
    assert state.page == 1 and state.current == int(state.selection[100])
    # the new current digit is the first of the page (top left): its gutter is drawn in the highlight colour
    assert sent[0].view(np.uint8).reshape(300, 300, 4)[-1, 0, :3].tolist() == [255, 140, 0]
    browser.on_key("PageUp")
    assert len(sent) == 2 and state.page == 0 and state.current == int(state.selection[0])


def test_prev_next_and_the_page_box_move_the_current_digit_like_page_keys(state):
    """Prev/Next and a typed page number turn the page as PageDown does: the current digit (the one the
    inspector shows) becomes the new page's first, in the same one grid update; the page box showing the
    page of a shared digit moves nothing."""
    from explorer.browser import Browser

    state.current = 2630
    browser = Browser(state=state, filters=False)
    assert state.page == 26 and state.current == 2630  # the page box echoes page 27 and leaves the digit alone
    sent = []
    browser._image.on_change("data", lambda attr, old, new: sent.append(new["image"][0]))
    browser._next.clicks += 1
    assert state.page == 27 and state.current == int(state.selection[2700])
    assert state.current in browser.page_indices() and len(sent) == 1
    browser._prev.clicks += 1
    browser._prev.clicks += 1
    assert state.page == 25 and state.current == int(state.selection[2500]) and len(sent) == 3
    browser._page_input.value = 8  # pages are numbered from 1 in the box
    assert state.page == 7 and state.current == int(state.selection[700]) and len(sent) == 4
    state.current = int(state.selection[1234])  # a digit chosen elsewhere: its page is shown, it stays current
    assert state.page == 12 and state.current == int(state.selection[1234])
    assert browser._page_input.value == 13


# ------------------------------------------------------------------------------------------------------
# studio


def test_studio_warns_when_set_width_cannot_reach_the_target(state):
    from explorer.studio import Studio

    studio = Studio(state=state)
    state.current = 2630
    state.param.update(perturbation="set_width", perturbation_params={"target": 19.0})
    got = studio.last_metrics["width"]
    assert got < 18  # this real digit cannot be made 19 px wide in the 28 px frame
    assert studio._warning.visible
    assert f"got {got:.2f} px" in studio._warning.object and "clipped" in studio._warning.object
    state.param.update(perturbation_params={"target": 14.0})
    assert abs(studio.last_metrics["width"] - 14) < 0.7
    assert not studio._warning.visible
    assert "#2,630" in studio._title.html


def test_slider_labels_are_words_not_parameter_names(state):
    from core.perturb import PERTURBATIONS
    from explorer.studio import PARAM_LABELS, Studio

    studio = Studio(state=state)
    for key, (_, params) in PERTURBATIONS.items():
        state.perturbation = key
        names = [w.name for w in studio._slider_widgets.values()]
        assert names == [PARAM_LABELS[(key, p.name)] for p in params]
        assert not any("_" in n or "sqrt" in n or "(rad)" == n[-5:] for n in names)


def test_exports_round_trip(state, tmp_path):
    from core.io import load_idx
    from explorer.data import load
    from explorer.studio import Studio

    studio = Studio(state=state)
    state.labels = [1]
    state.ranges = {"thickness": [0.0, 1.6]}
    idx = state.selection.copy()
    assert 0 < len(idx) < 60
    # Metrics CSV of the selection.
    studio._what.value = "Metrics of the selection (CSV)"
    run_async(studio._on_prepare())
    table = pd.read_csv(io.BytesIO(studio._download.file.getvalue()))
    assert table["index"].tolist() == idx.tolist() and (table["label"] == 1).all()
    np.testing.assert_allclose(table["thickness"], state.dataset.metrics["thickness"].to_numpy()[idx])
    # The selection perturbed: a zip in the released layout that the explorer opens.
    state.param.update(perturbation="thickening", perturbation_params={"amount": 1.5})
    studio._what.value = "Perturbed selection (zip: IDX + CSV)"
    run_async(studio._on_prepare())
    assert studio._download.visible and studio._download.filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(studio._download.file.getvalue())) as zf:
        zf.extractall(tmp_path)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    images = load_idx(folder / "train-images-idx3-ubyte.gz")
    assert images.shape == (len(idx), 28, 28)
    np.testing.assert_array_equal(load_idx(folder / "train-pert-idx1-ubyte.gz"), 2)  # "thickened"
    exported = load(folder)
    assert (exported.metrics["thickness"].to_numpy() > state.dataset.metrics["thickness"].to_numpy()[idx]).all()
    assert pd.read_csv(folder / "source-index.csv")["source_index"].tolist() == idx.tolist()
    # Unperturbed: the very digits.
    studio._what.value = "Selection unperturbed (zip: IDX + CSV)"
    run_async(studio._on_prepare())
    with zipfile.ZipFile(io.BytesIO(studio._download.file.getvalue())) as zf:
        name = next(n for n in zf.namelist() if n.endswith("images-idx3-ubyte.gz"))
        (tmp_path / "plain.gz").write_bytes(zf.read(name))
    np.testing.assert_array_equal(load_idx(tmp_path / "plain.gz"), state.dataset.images[idx])


def test_a_random_perturbation_exports_what_the_preview_showed(state, tmp_path):
    from core.io import load_idx
    from explorer.studio import Studio

    studio = Studio(state=state)
    state.labels = [4]
    state.ranges = {"thickness": [0.0, 1.7]}
    idx = state.selection.copy()
    assert 3 < len(idx) < 100
    state.param.update(perturbation="fracture", perturbation_params={"num_frac": 3}, seed=11)
    state.current = int(idx[2])
    preview = studio.last_perturbed.copy()
    studio._what.value = "Perturbed selection (zip: IDX + CSV)"
    run_async(studio._on_prepare())
    with zipfile.ZipFile(io.BytesIO(studio._download.file.getvalue())) as zf:
        name = next(n for n in zf.namelist() if n.endswith("images-idx3-ubyte.gz"))
        (tmp_path / "x.gz").write_bytes(zf.read(name))
    exported = load_idx(tmp_path / "x.gz")
    np.testing.assert_array_equal(exported[2], preview)  # the same breaks, seeded by (seed, digit index)
    assert not np.array_equal(exported[2], state.dataset.images[idx[2]])
