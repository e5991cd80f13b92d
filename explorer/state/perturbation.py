"""Perturbation studio settings, kept in the state so that a share link can hold them."""
from __future__ import annotations

import param

__all__ = ["PerturbationState"]


class PerturbationState(param.Parameterized):
    """The perturbation the studio applies, its parameters and seed."""

    perturbation = param.String(default="thinning", doc="Perturbation name in core.perturb.PERTURBATIONS.")
    perturbation_params = param.Dict(default={}, doc="Its parameter values.")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed for random perturbations.")
