"""Are the samples digits at all? Blank frames, ink on the border, no background, speckle, label shares.

A generative model's "samples" can be grey full frames (an RBM's mean field), empty images or ink
with scattered dots; measuring them gives numbers (a grey frame gets height 27.4 px) that mean
nothing. :func:`sample_quality` counts such samples so that a comparison can say so before it
reads the distances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from ._common import ContentCache, content_key

__all__ = ["QUALITY_FLAGS", "SampleQuality", "sample_quality", "quality_flags", "reference_shares"]

#: Ink: intensity at least this (in [0, 1]; the measuring threshold, 128/255).
INK = 0.5
#: Background: intensity at most this (in [0, 1]); MNIST's background is exactly 0.
BACKGROUND = 0.1
#: A frame "has no blank background" when less than this share of its pixels is background
#: (real MNIST digits: 63-96% background over the 5,000 bundled training digits; a grey full frame: 0%).
MIN_BACKGROUND_SHARE = 0.5
#: Ink components of at most this many pixels, beside a larger one, are speckle.
SPECKLE_MAX_PX = 3
#: A flag "matters" when its share of samples exceeds the reference's by this much (or, without
#: reference images, exceeds this share).
MATTERS = 0.02
#: Label shares "matter" when the total variation distance between the samples' and the
#: reference's label proportions exceeds this and a chi-square test rejects equal proportions at 1%
#: (a random 1,000 of the bundled digits is at about 0.05 from the other 4,000).
LABELS_MATTER = 0.1

#: The flags, in report order, with what each means.
QUALITY_FLAGS = {
    "blank": "no ink (no pixel at or above half intensity)",
    "touches_border": "ink on the outermost row or column of the frame",
    "no_background": f"less than {MIN_BACKGROUND_SHARE:.0%} of the frame is blank background "
                     f"(intensity <= {BACKGROUND:g})",
    "speckle": f"small separate ink components (<= {SPECKLE_MAX_PX} px) beside the stroke",
}


def _unit(images) -> np.ndarray:
    """(N, H, W) float in [0, 1] from uint8 [0, 255] or float [0, 1] images."""
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.size and (not np.isfinite(a).all() or a.min() < -1e-6 or a.max() > 1 + 1e-6):
        raise ValueError("float images must hold finite values in [0, 1]; uint8 images values in [0, 255]")
    return a


def quality_flags(images) -> pd.DataFrame:
    """Per-image quality flags.

    Parameters
    ----------
    images : array_like, shape (N, H, W)
        uint8 in [0, 255] or float in [0, 1].

    Returns
    -------
    pandas.DataFrame
        N rows, one boolean column per flag of :data:`QUALITY_FLAGS`.
    """
    x = _unit(images)
    n = len(x)
    ink = x >= INK
    any_ink = ink.reshape(n, -1).any(1)
    border = ink[:, 0, :].any(1) | ink[:, -1, :].any(1) | ink[:, :, 0].any(1) | ink[:, :, -1].any(1)
    bg_share = (x <= BACKGROUND).reshape(n, -1).mean(1)
    speckle = np.zeros(n, bool)
    eight = np.ones((3, 3), bool)
    for i in np.flatnonzero(any_ink):
        lab, k = ndimage.label(ink[i], structure=eight)
        if k < 2:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        speckle[i] = bool((sizes <= SPECKLE_MAX_PX).any() and sizes.max() > SPECKLE_MAX_PX)
    return pd.DataFrame({"blank": ~any_ink, "touches_border": border,
                         "no_background": bg_share < MIN_BACKGROUND_SHARE, "speckle": speckle})


@dataclass
class SampleQuality:
    """Shares of samples that are not plain digits, and label proportions.

    Attributes
    ----------
    shares : pandas.DataFrame
        One row per flag of :data:`QUALITY_FLAGS`: ``flag``, ``meaning``, ``count``, ``share`` (of the
        samples, in [0, 1]), ``reference_share`` (NaN without reference images), ``matters``.
    labels : pandas.DataFrame or None
        When both sides have labels: ``label``, ``sample_share``, ``reference_share``, ``difference``.
    label_distance : float
        Total variation distance between the two label proportions (NaN without labels).
    label_p_value : float
        Chi-square test of equal label proportions (NaN without labels).
    n_samples : int
    flags : pandas.DataFrame
        Per-sample flags (:func:`quality_flags`).
    """

    shares: pd.DataFrame
    n_samples: int
    labels: Optional[pd.DataFrame] = None
    label_distance: float = float("nan")
    label_p_value: float = float("nan")
    flags: Optional[pd.DataFrame] = field(default=None, repr=False)

    @property
    def matters(self) -> bool:
        """Whether any flag or the label proportions deserve the reader's attention."""
        return bool(self.shares["matters"].any() or self.labels_matter)

    @property
    def labels_matter(self) -> bool:
        """Label proportions off by more than :data:`LABELS_MATTER` (total variation), significantly."""
        return bool(self.label_distance > LABELS_MATTER and self.label_p_value < 0.01)

    @property
    def findings(self) -> list:
        """Sentences for what matters (empty when the samples look like digits)."""
        out = []
        for _, r in self.shares[self.shares["matters"]].iterrows():
            ref = (f" (reference: {r['reference_share']:.1%})" if np.isfinite(r["reference_share"]) else "")
            out.append(f"{r['share']:.1%} of samples: {r['meaning']}{ref}")
        if self.labels_matter:
            d = self.labels.reindex(self.labels["difference"].abs().sort_values(ascending=False).index)
            top = ", ".join(f"{lab}: {a:.1%} vs {b:.1%}" for lab, a, b in
                            zip(d["label"][:3], d["sample_share"][:3], d["reference_share"][:3]))
            out.append(f"label proportions differ from the reference's (total variation "
                       f"{self.label_distance:.2f}; {top})")
        return out

    def to_dict(self) -> dict:
        return {"n_samples": self.n_samples, "matters": self.matters, "findings": self.findings,
                "shares": self.shares, "labels": self.labels, "label_distance": self.label_distance,
                "label_p_value": self.label_p_value}


def _label_table(sample_labels, reference_labels):
    s, r = np.asarray(sample_labels), np.asarray(reference_labels)
    labs = np.union1d(np.unique(s), np.unique(r))
    ss = np.array([(s == v).mean() for v in labs])
    rs = np.array([(r == v).mean() for v in labs])
    t = pd.DataFrame({"label": [v.item() if hasattr(v, "item") else v for v in labs],
                      "sample_share": ss, "reference_share": rs, "difference": ss - rs})
    counts = np.array([[(s == v).sum() for v in labs], [(r == v).sum() for v in labs]])
    counts = counts[:, counts.sum(0) > 0]
    p = float(stats.chi2_contingency(counts).pvalue) if counts.shape[1] > 1 else 1.0
    return t, float(0.5 * np.abs(ss - rs).sum()), p


_REFERENCE_SHARES = ContentCache(size=8)


def reference_shares(images) -> dict:
    """Each flag's share (0-1) among real digits: ``{flag: share}``, NaN for no images.

    Computed once per content of ``images`` (N, H, W) and kept (a few of them): every comparison against a
    dataset needs its shares, and flagging 70,000 digits takes seconds.
    """
    images = np.asarray(images)

    def compute() -> dict:
        ref = quality_flags(images)
        return {name: float(ref[name].mean()) if len(ref) else np.nan for name in QUALITY_FLAGS}

    return dict(_REFERENCE_SHARES.get(content_key(images), compute))


def sample_quality(images=None, *, reference_images=None, sample_labels=None,
                   reference_labels=None) -> SampleQuality:
    """How many samples are blank, touch the border, have no blank background or carry speckle.

    Parameters
    ----------
    images : array_like, shape (N, H, W), optional
        The samples (uint8 [0, 255] or float [0, 1]). Without them only labels are compared.
    reference_images : array_like, shape (M, H, W), optional
        Real digits: their shares are given beside the samples' (what is normal).
    sample_labels, reference_labels : array_like, optional
        Labels; when both are given, their proportions are compared.

    Returns
    -------
    SampleQuality
        A flag ``matters`` when its share exceeds the reference's by :data:`MATTERS` (2 points),
        or exceeds 2% without reference images.
    """
    flags = quality_flags(images) if images is not None else None
    ref = reference_shares(reference_images) if reference_images is not None else None
    rows = []
    for name, meaning in QUALITY_FLAGS.items():
        count = int(flags[name].sum()) if flags is not None else 0
        share = count / len(flags) if flags is not None and len(flags) else np.nan
        rshare = ref[name] if ref is not None else np.nan
        base = rshare if np.isfinite(rshare) else 0.0
        rows.append({"flag": name, "meaning": meaning, "count": count, "share": share,
                     "reference_share": rshare, "matters": bool(np.isfinite(share) and share > base + MATTERS)})
    labels, dist, p = None, float("nan"), float("nan")
    if sample_labels is not None and reference_labels is not None:
        labels, dist, p = _label_table(sample_labels, reference_labels)
    n = len(flags) if flags is not None else (len(sample_labels) if sample_labels is not None else 0)
    return SampleQuality(pd.DataFrame(rows), n, labels, dist, p, flags)
