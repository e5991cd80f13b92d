"""Latent traversals: what each latent of a generative model does to the digits' morphology.

Load a traversal grid — one base code (L latents, S steps, 28, 28), several base codes
(B, L, S, 28, 28), a PNG grid, or the live model's traversal from the Model tab — measure every image
in the background (progress bar, Cancel), then see:

- the grid of each base code; click an image to see it with the inspector's overlays and its metrics
  (:mod:`explorer.traversals.grid`, :mod:`explorer.traversals.digit`);
- each metric along each latent, and each latent's effect on each metric with its confidence interval
  and sign agreement over base codes, as a slope (metric units or reference sd per latent unit) or a
  Spearman correlation; the strongest latent per metric, ties reported; HTML/JSON reports
  (:mod:`explorer.traversals.effects`);
- optionally, codes vs metrics: partial correlations and the MIG (:mod:`explorer.traversals.codes`).

The view that assembles them is :class:`TraversalView` (:mod:`explorer.traversals.view`). Works in the
app and in a notebook::

    import panel as pn
    from explorer.traversals import TraversalView
    pn.extension(inline=True)
    view = TraversalView()
    view.load("traversal.npy"); view.measure()
    view
"""
from explorer.traversals.view import TraversalView

__all__ = ["TraversalView"]
