"""Morpho-MNIST Explorer: an interactive Panel app on :mod:`core`.

``panel serve explorer`` from the repository root serves it (options after ``--args``: ``--data PATH``,
``--decoder model.onnx|package.module:function``, ``--latent-dim D``, ``--data-root DIR`` (repeatable);
see :mod:`explorer.main`). In a notebook::

    import panel as pn
    pn.extension(inline=True)
    from explorer import Explorer
    Explorer()                              # the bundled 5,000-digit sample
    Explorer(data=PATH)                     # an MNIST / Morpho-MNIST folder, or a .npy/.npz array
    Explorer(decoder=decode, latent_dim=D)  # a generative model's decoder: adds the Model tab

Served, every session's background work runs on one fair worker pool (:mod:`explorer.jobs`), within the
limits of :mod:`explorer.limits`.
"""
from __future__ import annotations

__all__ = ["Explorer"]


def __getattr__(name):
    # Imported lazily so that ``explorer.data`` can be used without importing Panel.
    if name == "Explorer":
        from explorer.app import Explorer
        return Explorer
    raise AttributeError(name)
