"""explorer.plotting.digit_geometry: the inspector's overlays checked against numbers, not against "the canvas
changed". Every shape is tied to a metric of the authors' released table (tests/data/) or to moments computed
here from the hi-res image with plain numpy."""
import numpy as np
import pytest

from explorer.plotting import digit_geometry

DIGITS = [0, 1, 2, 3, 4, 7, 11, 18, 61, 999]  # MNIST test digits: every class, some strongly slanted
TOL = 1e-9


@pytest.fixture(scope="module", params=DIGITS)
def case(request, published_digits, published_metrics):
    i = request.param
    geo = digit_geometry(published_digits[0][i], max_circles=100_000)  # a circle on every skeleton pixel
    return geo, published_metrics.loc[i]


def _ink_moments(geo):
    """Centroid and covariance of the hi-res intensity, in plot coordinates (pixel centres, y up)."""
    img = np.asarray(geo["hires"], float)  # bottom row first: row r is plot y = r + 0.5
    y, x = np.mgrid[:img.shape[0], :img.shape[1]] + 0.5
    m = img.sum()
    cx, cy = (x * img).sum() / m, (y * img).sum() / m
    cov = np.array([[((x - cx) ** 2 * img).sum(), ((x - cx) * (y - cy) * img).sum()],
                    [((x - cx) * (y - cy) * img).sum(), ((y - cy) ** 2 * img).sum()]]) / m
    return cx, cy, cov


def test_masks_give_the_published_area_and_length(case):
    geo, row = case
    assert geo["size"] == 112 and geo["scale"] == 4
    assert geo["binary_mask"].sum() / 16 == pytest.approx(row["area"], abs=TOL)
    # stroke length as the paper defines it: skeleton neighbour pairs, 1 straight and sqrt(2) diagonal
    sk = geo["skeleton_mask"].astype(bool)
    straight = (sk[:, :-1] & sk[:, 1:]).sum() + (sk[:-1] & sk[1:]).sum()
    diagonal = (sk[:-1, :-1] & sk[1:, 1:]).sum() + (sk[:-1, 1:] & sk[1:, :-1]).sum()
    assert (straight + np.sqrt(2) * diagonal) / 4 == pytest.approx(row["length"], abs=TOL)
    assert not (geo["skeleton_mask"] & (1 - geo["binary_mask"])).any()  # the skeleton lies inside the ink


def test_circles_sit_on_the_skeleton_and_average_to_the_published_thickness(case):
    geo, row = case
    c = geo["circles"]
    cols = (np.asarray(c["x"]) - 0.5).round().astype(int)
    rows = (np.asarray(c["y"]) - 0.5).round().astype(int)
    assert geo["skeleton_mask"][rows, cols].all()  # every centre on a skeleton pixel
    assert len(cols) == geo["skeleton_mask"].sum()
    np.testing.assert_allclose(c["t"], 2 * np.asarray(c["r"]) / 4, rtol=0, atol=1e-12)
    assert np.mean(c["t"]) == pytest.approx(row["thickness"], abs=TOL)
    # a circle of radius r fits in the ink: its centre is at least r - 1 px from the background
    assert (np.asarray(c["r"]) >= 1).all()


def test_slant_line_and_parallelogram_follow_the_published_slant_width_and_height(case):
    geo, row = case
    tan = np.tan(row["slant"])  # positive: leaning right, x grows with y (y up)
    (x0, x1), (y0, y1) = geo["slant_line"]
    assert (x1 - x0) / (y1 - y0) == pytest.approx(tan, abs=TOL)
    cx, cy = geo["centroid"]
    assert x0 + (cy - y0) * (x1 - x0) / (y1 - y0) == pytest.approx(cx, abs=1e-9)  # through the centroid
    xs, ys = map(np.asarray, geo["parallelogram"])
    assert len(xs) == 5 and xs[0] == xs[-1] and ys[0] == ys[-1]  # closed: top-left, top-right, bottom-right, bottom-left
    assert ys[0] == ys[1] and ys[2] == ys[3]  # top and bottom are horizontal
    assert (xs[1] - xs[0]) / 4 == pytest.approx(row["width"], abs=TOL)
    assert (xs[2] - xs[3]) / 4 == pytest.approx(row["width"], abs=TOL)
    assert (ys[0] - ys[3]) / 4 == pytest.approx(row["height"], abs=TOL)
    for a, b in [(0, 3), (1, 2)]:  # the sides are parallel to the slant line
        assert (xs[a] - xs[b]) / (ys[a] - ys[b]) == pytest.approx(tan, abs=TOL)


def test_centroid_and_ellipse_are_the_moments_of_the_ink(case):
    geo, _ = case
    cx, cy, cov = _ink_moments(geo)
    assert geo["centroid"] == pytest.approx((cx, cy), abs=1e-9)
    e = geo["ellipse"]
    assert (e["x"], e["y"]) == pytest.approx((cx, cy), abs=1e-9)
    evals, evecs = np.linalg.eigh(cov)
    assert e["width"] == pytest.approx(4 * np.sqrt(evals[1]), rel=1e-9)  # two standard deviations a side
    assert e["height"] == pytest.approx(4 * np.sqrt(evals[0]), rel=1e-9)
    major = np.array([np.cos(e["angle"]), np.sin(e["angle"])])
    assert abs(major @ evecs[:, 1]) == pytest.approx(1, abs=1e-9)  # along the major axis


def test_a_blank_digit_draws_no_geometry():
    with pytest.raises(ValueError, match="blank"):
        digit_geometry(np.zeros((28, 28), np.uint8))
