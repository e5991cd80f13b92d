"""The codes that label perturbed digits in Morpho-MNIST datasets (their ``-pert`` IDX files).

A module of its own, without numpy or scipy, so that reading a dataset's labels (the explorer's first
page) does not import the morphology that :mod:`core.perturb` needs. :mod:`core.perturb` exports both
tables under the same names.
"""
from __future__ import annotations

__all__ = ["PERTURBATION_LABELS", "PERTURBATION_CODES"]

#: Labels of the released ``-pert`` files (global and local datasets): code -> what was done.
PERTURBATION_LABELS = {0: "plain", 1: "thinned", 2: "thickened", 3: "swollen", 4: "fractured"}

#: The one table of perturbation codes: :data:`core.perturb.PERTURBATIONS` key -> code; 0-4 as the
#: released datasets, 5-7 the interventions, so that exported datasets stay self-describing.
PERTURBATION_CODES = {"plain": 0, "thinning": 1, "thickening": 2, "swelling": 3, "fracture": 4,
                      "set_thickness": 5, "set_slant": 6, "set_width": 7}
