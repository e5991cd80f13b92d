"""Model diagnostics from morphometrics (Castro et al., JMLR 2019, sections 4 and 5).

Morpho-MNIST asks "to what extent has my model learned to represent specific factors of
variation?". This package holds the paper's analysis, in plain numpy/scipy/pandas:

- :func:`mmd_test`: kernel two-sample test (Gretton et al., 2012) between two morphometric tables,
  e.g. metrics of a generative model's samples against those of the test data (paper, section 4.1):
  the linear-time statistic with its asymptotic p-value, or the unbiased quadratic-time statistic with
  an (adaptive) permutation p-value reusing one kernel matrix.
- :func:`compare_report`: both tests (the verdict from the quadratic one up to
  :data:`QUADRATIC_MAX_N` rows, the linear one beyond), per-label tests and per-metric distances in one
  :class:`ComparisonReport` with ``to_text`` / ``to_json`` / ``to_html`` (``morpho compare``, the app).
- :func:`metric_distances`: per-metric Wasserstein-1 and Kolmogorov-Smirnov distances.
- :func:`partial_correlations`: correlation of each latent code with each metric, controlling for
  the other codes (paper, section 4.2, Fig. 6).
- :func:`mig`: mutual information gap (Chen et al., 2018) with histogram discretisation;
  :func:`code_diagnostics`: both for codes against the diagnostic metrics (the app's Codes panel).
- :func:`traversal_effects`: measure a (multi-base) latent traversal grid and summarise each latent's
  effect on each metric with confidence intervals (:class:`TraversalEffects`); :func:`encoder_effects`
  reads the same latents from the encoder side (codes of real digits) and says where the two agree.
- :func:`distance_to_data`: how far each sample lies from the reference digits (for galleries).
- :func:`format_p`: p-values as people read them.

All diagnostics use one metric set, :data:`DIAGNOSTIC_METRICS` (the paper's: length, thickness,
slant, width, height). Metrics are in the units of :mod:`core.measure`: area in px²,
length/thickness/width/height in px (28x28 pixel units), slant in radians.

Where this differs from the original ``analysis/`` code (MMD shuffling RNG and standard errors, MIG
binning of integer codes, zero-entropy factors), an argument restores the original's choice
(``shuffle="original"``, ``sem="original"``, ``binning="original"``, ``zero_entropy="original"``);
``python -m core.analysis.differences`` prints the size of each difference on the bundled sample.

The original's modules are here under their own names, with their functions' names, parameters and
tuple results, so that code written for ``analysis`` runs on this package
(``sys.modules['analysis'] = core.analysis``; docs/upstream.md, "The analysis modules"):
:mod:`core.analysis.mmd` (``mmd2``, ``test``, ``asymptotic_linear_test``, ``bound_threshold_biased``,
``bound_threshold_unbiased``), :mod:`core.analysis.kernels`, :mod:`core.analysis.correlations` and
:mod:`core.analysis.mig`. ``core.analysis.mig`` is both the original's module (``mig.mig(...)``
returns ``(score, mi, entropy)``) and callable as the project's :func:`mig` (a :class:`MIGResult`).
"""
from ._common import ALPHA, DIAGNOSTIC_METRICS, METRICS, MMD_COLUMNS, format_p, format_p_cell
from .comparison import ComparisonReport, compare_report, distance_to_data, metric_distances
from . import correlations, kernels, mig  # noqa: F401  (the original's modules, as attributes)
from .disentanglement import MIGResult, code_diagnostics, discretise, mutual_information, partial_correlations
from .mmd import PERMUTATION_STAGES, QUADRATIC_MAX_N, MMDResult, bandwidth, gaussian_kernel, mmd_test
from .traversal import EncoderEffects, TraversalEffects, encoder_effects, measure_traversal, traversal_effects

__all__ = [
    "METRICS",
    "DIAGNOSTIC_METRICS",
    "MMD_COLUMNS",
    "ALPHA",
    "QUADRATIC_MAX_N",
    "PERMUTATION_STAGES",
    "format_p",
    "format_p_cell",
    "MMDResult",
    "bandwidth",
    "gaussian_kernel",
    "mmd_test",
    "metric_distances",
    "ComparisonReport",
    "compare_report",
    "partial_correlations",
    "MIGResult",
    "mig",
    "mutual_information",
    "discretise",
    "code_diagnostics",
    "measure_traversal",
    "traversal_effects",
    "TraversalEffects",
    "encoder_effects",
    "EncoderEffects",
    "distance_to_data",
]
