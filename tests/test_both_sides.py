"""Traversals read from both sides (decoder slopes beside encoder-code regressions), pinned on a synthetic
model whose answer is known: latent 0 sets the stroke's thickness, latent 1 its slant, latent 2 nothing
(a collapsed latent, whose codes barely vary)."""
import json

import numpy as np
import pandas as pd
import pytest

from core.analysis import EncoderEffects, encoder_effects, traversal_effects
from core.measure import measure_batch

THICK_PER_UNIT = 0.6    # px of stroke width per unit of latent 0
SLANT_PER_UNIT = 0.25   # rad per unit of latent 1


def decode(z: np.ndarray) -> np.ndarray:
    """(N, 3) codes -> (N, 28, 28) float images: an anti-aliased stroke of width 2.5 + 0.6 z0, slant 0.25 z1."""
    z = np.atleast_2d(z)
    y, x = np.mgrid[0:28, 0:28].astype(float)
    out = []
    for z0, z1, _ in z:
        w = 2.5 + THICK_PER_UNIT * z0
        cx = 14 + np.tan(SLANT_PER_UNIT * z1) * (14 - y)      # top to the right: positive slant
        img = np.clip(w / 2 - np.abs(x - cx) + 0.5, 0, 1) * ((y >= 5) & (y <= 22))
        out.append(img)
    return np.stack(out)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * [1.0, 1.0, 0.0]
    digits = decode(z)
    metrics = measure_batch(digits, workers=1)
    codes = z.copy()
    codes[:, 2] = 0.02 * rng.normal(size=len(z))          # the collapsed latent: codes near 0
    values = np.linspace(-1.5, 1.5, 7)
    bases = rng.normal(size=(6, 3)) * 0.5
    grid = np.empty((6, 3, 7, 28, 28))
    for b, base in enumerate(bases):
        for lat in range(3):
            steps = np.repeat(base[None], 7, 0)
            steps[:, lat] += values
            grid[b, lat] = decode(steps)
    eff = traversal_effects(grid, values=values, reference_metrics=metrics, workers=1)
    eff.raw = {"grid": grid, "values": values, "digits": digits}
    return eff, codes, metrics


def test_decoder_and_encoder_agree_where_the_model_is_known(model):
    eff, codes, metrics = model
    both = eff.with_encoder(codes, metrics)
    enc = both.encoder
    assert isinstance(enc, EncoderEffects)
    sd_t, sd_s = metrics["thickness"].std(), metrics["slant"].std()
    # latent 0 -> thickness, latent 1 -> slant, on both sides, in sd per latent unit
    for lat, m, sd, per_unit in ((0, "thickness", sd_t, THICK_PER_UNIT), (1, "slant", sd_s, SLANT_PER_UNIT)):
        d, e = enc.decoder.loc[lat, m], enc.encoder.loc[lat, m]
        assert abs(d * sd - per_unit) < 0.25 * per_unit, (m, d * sd)
        assert abs(e * sd - per_unit) < 0.25 * per_unit, (m, e * sd)
        assert enc.agreement.loc[lat, m] == "agree"
    assert enc.agreement.loc[0, "slant"] == "none" and enc.agreement.loc[1, "thickness"] == "none"
    # latent 2 does nothing in the decoder; its codes hardly vary: flagged, whatever its coefficient
    assert (enc.decoder.loc[2].abs() < 1e-9).all()
    assert list(enc.active) == [True, True, False]
    assert (enc.agreement.loc[2] == "inactive latent").all()
    pl = enc.per_latent.set_index("latent")
    assert pl.loc[0, "agree"] >= 1 and not pl.loc[2, "active"] and pl.loc[2, "code_sd"] < 0.1


def test_the_strongest_latent_holds_over_resampled_bases(model):
    eff, _, _ = model
    st = eff.stability().set_index("metric")
    assert st.loc["thickness", "strongest"] == 0 and st.loc["thickness", "holds"] == st.loc["thickness", "of"] == 200
    assert st.loc["slant", "strongest"] == 1 and st.loc["slant", "text"] == "holds in 200 of 200 resamples of the bases"


def test_an_unstable_strongest_latent_is_reported_as_such():
    # two latents of equal true effect: which one is "strongest" depends on the bases drawn
    rng = np.random.default_rng(5)
    P = rng.normal(1.0, 0.5, size=(8, 2, 1))
    idx = pd.MultiIndex.from_product([range(8), range(2), range(3)], names=["base", "latent", "step"])
    per_step = pd.DataFrame({"thickness": (P[:, :, :, None] * np.arange(3)).reshape(-1)}, index=idx)
    eff = traversal_effects(per_step, values=[0.0, 1.0, 2.0], metrics=["thickness"])
    st = eff.stability().iloc[0]
    assert 0 < st["holds"] < st["of"] == 200


def test_both_sides_in_every_report(model):
    eff, codes, metrics = model
    both = eff.with_encoder(codes, metrics)
    text = both.to_text()
    assert "Both sides" in text and "inactive latent" in text and "holds in 200 of 200" in text
    d = json.loads(both.to_json())
    rows = {(r["latent"], r["metric"]): r for r in d["encoder"]["table"]}
    assert rows[(0, "thickness")]["agreement"] == "agree" and rows[(2, "thickness")]["active"] is False
    assert d["stability"][1]["holds"] == 200
    html = both.to_html()
    assert "Both sides: traversal and encoder" in html and "Stability of the strongest latent" in html


def test_bad_encoder_input_is_refused(model):
    eff, codes, metrics = model
    with pytest.raises(ValueError, match="one row per digit"):
        encoder_effects(codes[:10], metrics, eff)
    with pytest.raises(ValueError, match=r"have no code column"):
        encoder_effects(codes[:, :2], metrics, eff)
    steps_only = traversal_effects(eff.per_step, reference_metrics=metrics)
    with pytest.raises(ValueError, match="values are unknown"):
        encoder_effects(codes, metrics, steps_only)


def test_cli_reads_both_sides(model, tmp_path, capsys):
    from core.cli import main
    eff, codes, metrics = model
    grid, enc = tmp_path / "grid.npz", tmp_path / "encoded.npz"
    np.savez(grid, images=(eff.raw["grid"] * 255).round().astype(np.uint8), values=eff.raw["values"])
    np.savez(enc, codes=codes, images=(eff.raw["digits"] * 255).round().astype(np.uint8))
    out = tmp_path / "t.json"
    assert main(["traverse", str(grid), "--encoded", str(enc), "--no-reference", "-o", str(out), "-q",
                 "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "Both sides" in text and "inactive latent" in text and "holds in 200 of 200" in text
    rows = {(r["latent"], r["metric"]): r for r in json.loads(out.read_text())["encoder"]["table"]}
    assert rows[(0, "thickness")]["agreement"] == "agree" and rows[(1, "slant")]["agreement"] == "agree"
    bad = tmp_path / "bad.npz"
    np.savez(bad, codes=codes)
    assert main(["traverse", str(grid), "--encoded", str(bad), "-q"]) != 0
    assert "'images'" in capsys.readouterr().err


def test_traversals_tab_shows_both_sides_and_stability(model):
    from explorer.traversals.effects import UNITS, EffectsPanel
    eff, codes, metrics = model
    panel = EffectsPanel()
    panel.set_traversal(eff.per_step, eff.raw["values"], metrics)
    assert "thickness ← 0: 200 of 200" in panel.note.object and "slant ← 1: 200 of 200" in panel.note.object
    assert "per latent unit" in panel.note.object and not any("latent unit" in v for v in UNITS.values())
    assert panel.both_sides.object == ""
    panel.set_encoder(codes, metrics)
    html = panel.both_sides.object
    assert "inactive latent" in html and html.count("<tr>") == 1 + 3 * 5 and "agree" in html
    steps = EffectsPanel()
    steps.set_traversal(eff.per_step, None, metrics)        # a grid image: values unknown, slopes per step
    assert "per step" in steps.note.object
