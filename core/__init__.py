"""Morpho-MNIST core: IDX I/O, morphology, morphometrics, perturbations, datasets and analysis.

Public names follow the original ``morphomnist`` package (``io.load_idx``, ``measure.measure_image``,
``perturb.Thinning``, ...), so switching is a change of import::

    from core import io, measure, perturb
"""
__version__ = "0.1.0"
