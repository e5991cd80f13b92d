"""Baseline for bench_explorer.py and cold_start.py: a bare Panel slider that redraws a digit image (no explorer
code, nothing imported from it)."""
from pathlib import Path

import numpy as np
import panel as pn
from bokeh.models import LinearColorMapper
from bokeh.palettes import Greys256
from bokeh.plotting import figure

from core.io import load_idx

pn.extension()
SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"  # the bundled sample
digit = load_idx(SAMPLE / "train-images-idx3-ubyte.gz")[0][::-1].astype(np.float64)
slider = pn.widgets.FloatSlider(name="gain", start=0.05, end=1.0, step=0.05, value=0.7, width=260)
fig = figure(width=300, height=300, x_range=(0, 28), y_range=(0, 28), tools="", toolbar_location=None)
renderer = fig.image(image=[digit * slider.value], x=0, y=0, dw=28, dh=28,
                      color_mapper=LinearColorMapper(palette=Greys256[::-1], low=0, high=255))


def redraw(event):
    renderer.data_source.data = {"image": [digit * event.new]}


slider.param.watch(redraw, "value")
pn.Row(pn.Column(slider, css_classes=["bare-controls"]), pn.Column(fig, css_classes=["bare-image"])).servable()
