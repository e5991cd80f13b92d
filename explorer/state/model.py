"""A live model (:mod:`explorer.model`): its decoder and what it produced, for the Compare and traversal
views."""
from __future__ import annotations

import param

__all__ = ["ModelState"]


class ModelState(param.Parameterized):
    """The session's decoder and its samples and traversal, when a model is loaded."""

    decoder = param.Parameter(default=None, doc="None or a core.decoders.Decoder.")
    model_samples = param.Parameter(default=None, doc="None or core.samples.Samples drawn from the decoder.")
    model_traversal = param.Parameter(default=None, doc="None or core.samples.Traversal of the decoder.")
