"""Distributions: any metric against any other, coloured by digit label, with per-label violins.

The view is :class:`~explorer.distributions.view.Distributions`; the scatter is drawn on the server
(:mod:`explorer.distributions.raster`) and the violins come from :mod:`explorer.distributions.violins`.
"""
from explorer.distributions.view import Distributions
from explorer.distributions.violins import violin_patches

__all__ = ["Distributions", "violin_patches"]
