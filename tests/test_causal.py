"""core.causal: intensity, SetIntensity, deepscm's SCM datasets, counterfactual soundness, generate --scm."""
import json

import numpy as np
import pandas as pd
import pytest

from core import causal
from core.measure import measure_image
from core.perturb import SetIntensity, perturb_image

# deepscm's released thickness->intensity dataset (github.com/biomedia-mira/deepscm, assets/data/morphomnist,
# t10k, first 2,000 digits), measured by `python benchmarks/causal_reference.py`: the least-squares slope and
# correlation of logit((intensity - 64) / 191) on thickness, both measured on the images.
DEEPSCM_MEASURED_SLOPE = 1.778
DEEPSCM_MEASURED_CORR = 0.906
# and deepscm's recorded (drawn) intensity against intensity() measured on its images: median |difference|
DEEPSCM_INTENSITY_MEDIAN_ABS_DIFF = 0.476


@pytest.fixture(scope="module")
def thousand(sample_images, sample_labels):
    # every 5th bundled digit: 100 of each class (the sample is sorted by label)
    return sample_images[::5], sample_labels[::5]


def _fit(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    slope = np.polyfit(x[ok], y[ok], 1)[0]
    return slope, np.corrcoef(x[ok], y[ok])[0, 1]


def test_intensity_is_the_median_of_the_stroke():
    img = np.zeros((28, 28), np.uint8)
    img[5:20, 10:14] = [[200, 210, 220, 60]] * 15   # 60 is below half of the range: not stroke
    assert causal.intensity(img) == 210.
    assert causal.intensity(img / 255.) == pytest.approx(210.)
    with pytest.raises(ValueError, match="blank"):
        causal.intensity(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize("target", [64., 120., 191., 230.])
@pytest.mark.parametrize("scale", [1, 4])
def test_set_intensity_reaches_its_target_and_keeps_the_shape(sample_images, target, scale):
    for image in sample_images[[7, 1010, 2500, 3333, 4999]]:
        out = perturb_image(image, SetIntensity(target), scale=scale)
        # (at scale 4 the brightest hi-res pixels clip first: within 3 grey levels near the top)
        assert abs(causal.intensity(out) - target) <= (1. if scale == 1 or target < 200 else 3.)
        if scale == 1:   # grey levels scaled, nothing moved: thickness unchanged to the measurement's precision
            assert measure_image(out).thickness == pytest.approx(measure_image(image).thickness, abs=.15)


@pytest.mark.parametrize("bad", [0, -3, 256, float("nan"), float("inf")])
def test_set_intensity_refuses_targets_outside_the_grey_levels(bad):
    with pytest.raises(ValueError, match=r"target must be a grey level in \(0, 255\]"):
        SetIntensity(bad)


def test_thickness_to_intensity_reproduces_deepscms_dependence(thousand):
    images, labels = thousand
    out, table = causal.scm_dataset(images, labels, scm="thickness->intensity", seed=0)
    assert out.shape == (1000, 28, 28) and out.dtype == np.uint8
    assert list(table.columns[:3]) == ["thickness", "intensity", "label"]
    np.testing.assert_array_equal(table["label"], labels)
    # the drawn values follow the formula: logit intensity = 2 (t - 2.5) + N(0, 0.5)
    slope, corr = _fit(table["thickness"], causal._logit(table["intensity"]))
    assert slope == pytest.approx(2., abs=.12)
    # the images carry the drawn values: intensity() as on deepscm's own release, thickness to ~0.1 px
    assert np.median(np.abs(table["measured_intensity"] - table["intensity"])) <= 2 * DEEPSCM_INTENSITY_MEDIAN_ABS_DIFF
    assert abs(np.mean(table["measured_thickness"] - table["thickness"])) < .25
    # measured on the images, the dependence is deepscm's release's (independent reference)
    slope, corr = _fit(table["measured_thickness"], causal._logit(table["measured_intensity"]))
    assert slope == pytest.approx(DEEPSCM_MEASURED_SLOPE, abs=.15)
    assert corr == pytest.approx(DEEPSCM_MEASURED_CORR, abs=.03)
    # inverted (deepscm's --invert): thicker is darker
    _, inv = causal.scm_dataset(images[:300], labels[:300], scm="thickness->intensity", seed=0, invert=True)
    assert _fit(inv["measured_thickness"], causal._logit(inv["measured_intensity"]))[1] < -.8


def test_intensity_to_thickness_follows_its_formula(thousand):
    images, labels = thousand
    out, table = causal.scm_dataset(images, labels, scm="intensity->thickness", seed=1)
    # log(t - 0.5) = log Gamma(10, 5) + logit(i) / 4: slope 1/4, correlation 0.25 / sqrt(1/16 + var log Gamma)
    slope, corr = _fit(causal._logit(table["intensity"]), np.log(table["thickness"] - .5))
    assert slope == pytest.approx(.25, abs=.03)
    slope_m, corr_m = _fit(causal._logit(table["measured_intensity"]), np.log(table["measured_thickness"] - .5))
    assert slope_m == pytest.approx(.25, abs=.06) and corr_m > .5
    # the same seed gives the same dataset, chunked differently; another seed another one
    again, t2 = causal.scm_dataset(images[:60], labels[:60], scm="intensity->thickness", seed=1, chunksize=7,
                                   measure=False)
    np.testing.assert_array_equal(again, out[:60])
    np.testing.assert_array_equal(t2["thickness"], table["thickness"][:60])
    other, _ = causal.scm_dataset(images[:60], labels[:60], scm="intensity->thickness", seed=2, measure=False)
    assert (other != out[:60]).any()


@pytest.mark.parametrize("kwargs, match", [
    ({"scm": "thickness->slant"}, "scm must be one of"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"scm": "intensity->thickness", "invert": True}, "invert applies to"),
    ({"noise_scale": 0}, "noise_scale must be positive"),
])
def test_scm_dataset_refuses_bad_parameters(thousand, kwargs, match):
    images, labels = thousand
    with pytest.raises(ValueError, match=match):
        causal.scm_dataset(images[:3], labels[:3], **kwargs)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        causal.scm_dataset(images[:3], labels[:2])


@pytest.fixture(scope="module")
def cf_digits(sample_images):
    return sample_images[::100]   # 50 digits, 5 of each class


def test_reference_model_is_sound_and_a_leaky_one_is_caught(cf_digits, tmp_path):
    ref = causal.counterfactual_soundness("reference", cf_digits)
    assert ref.passed, ref.by_attribute
    eff = ref.effectiveness
    hit = eff[eff["role"] == "intervened"]
    assert (hit["abs_error"] <= hit["tolerance"]).all()
    # a null intervention leaves the reference's images alone, however often composed
    assert (ref.composition["image_distance"] == 0).all()
    leaky = causal.counterfactual_soundness(causal.leaky_counterfactual, cf_digits)
    assert not leaky.passed
    assert not leaky.by_attribute.at["slant", "passed"]
    slant = leaky.effectiveness[(leaky.effectiveness["attribute"] == "slant")
                                & leaky.effectiveness["intervention"].str.contains("thickness")]
    assert (slant["abs_error"] > slant["tolerance"]).all()
    # ... and only slant fails: its thickness and intensity are as effective as the reference's
    assert leaky.by_attribute.at["thickness", "passed"] and leaky.by_attribute.at["intensity", "passed"]
    ok = leaky.effectiveness[leaky.effectiveness["intervention"].str.startswith("do(intensity")]
    assert ok[ok["role"] != "reported"]["passed"].all()
    # reports
    html = leaky.to_html()
    assert "not sound: slant" in html and "<script" not in html
    leaky.save(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["by_attribute"]
    with pytest.raises(ValueError, match="must end in .html or .json"):
        leaky.save(tmp_path / "r.txt")


def test_scm_counterfactual_parents_abduct_the_noise():
    parents = pd.DataFrame({"thickness": [2., 3.], "intensity": [150., 200.]})
    cf = causal.counterfactual_parents(parents, {"thickness": 3.}, "thickness->intensity")
    noise = causal._logit([150.])[0] - 2 * (2. - 2.5)
    assert cf["intensity"][0] == pytest.approx(64 + 191 / (1 + np.exp(-(2 * (3. - 2.5) + noise))))
    assert cf["intensity"][1] == pytest.approx(200.)   # already at thickness 3: unchanged
    cf2 = causal.counterfactual_parents(parents, {"intensity": 150.}, "intensity->thickness")
    assert cf2["thickness"][0] == pytest.approx(2.)
    assert cf2["thickness"][1] < 3.   # darker -> thinner
    with pytest.raises(ValueError, match="cannot intervene on 'slant'"):
        causal.counterfactual_parents(parents, {"slant": .1})
    with pytest.raises(ValueError, match=r"do\(thickness\) must lie in"):
        causal.counterfactual_parents(parents, {"thickness": 50.})


def test_generate_scm_is_byte_identical_for_one_and_two_workers(sample_images, sample_labels, tmp_path):
    from core import io
    from core.cli import main

    src = tmp_path / "mnist"
    src.mkdir()
    io.save_idx(sample_images[::50], src / "t10k-images-idx3-ubyte.gz")
    io.save_idx(sample_labels[::50], src / "t10k-labels-idx1-ubyte.gz")
    outs = []
    for workers, chunk in ((1, 100), (2, 7)):
        out = tmp_path / f"scm{workers}"
        assert main(["generate", str(src), "-o", str(out), "--scm", "thickness->intensity", "--splits", "t10k",
                     "--workers", str(workers), "--chunksize", str(chunk), "--seed", "3", "-q"]) == 0
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir() if not p.name.startswith("."))
    assert names == ["README.md", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-morpho.csv",
                     "t10k-scm.csv"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    scm = pd.read_csv(outs[0] / "t10k-scm.csv")
    assert list(scm.columns) == ["index", "thickness", "intensity"] and len(scm) == 100
    # the explorer's reader opens the folder with its measured table
    from core.reading import read_dataset
    d = read_dataset(outs[0], split="t10k")
    assert len(d) == 100 and d.metrics is not None
    assert main(["generate", str(src), "-o", str(outs[0]), "--scm", "thickness->intensity", "--splits", "t10k",
                 "-q"]) == 1   # exists: refused without --force
