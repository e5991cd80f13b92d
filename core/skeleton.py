"""Medial axis (skeleton) and distance map of a binary digit, and skeleton tools for perturbations.

The medial axis is computed by ordered thinning (as ``skimage.morphology.medial_axis``): foreground pixels
are visited by increasing distance to the background, then by "cornerness" (pixels with fewer foreground
neighbours last), then by a tie-breaking permutation, and each is removed unless removing it would change
the local connectivity or it is an end point. The tie-breaker is where scikit-image changed:

- ``mode="released"``: ``numpy.random.RandomState(0).permutation`` (scikit-image < 0.19, the released tables);
- ``mode="upstream"``: ``numpy.random.default_rng(42).permutation`` (today's ``medial_axis(rng=42)``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import _kernels
from .resample import check_engine, check_mode

__all__ = ["medial_axis", "medial_axis_reference", "tiebreaker", "SKELETON_TABLE", "CORNERNESS_TABLE",
           "num_neighbours", "erase", "get_angle", "LocationSampler", "dilate_disk", "erode_disk",
           "disk", "draw_line"]

_BITS = (2 ** np.arange(9)).reshape(3, 3)


def _pattern_of(index: int) -> np.ndarray:
    """The 3x3 boolean neighbourhood whose bits (row-major, bit 4 = centre) form `index`."""
    return (index & _BITS) != 0


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    eight = np.ones((3, 3), bool)
    keep = np.zeros(512, np.uint8)
    corner = np.zeros(512, np.int64)
    for index in range(512):
        pattern = _pattern_of(index)
        corner[index] = 9 - pattern.sum()
        if not pattern[1, 1]:
            continue
        # keep a pixel whose removal changes the number of 8-connected components, or an end point
        changes_topology = ndi.label(pattern, eight)[1] != ndi.label(_pattern_of(index & ~16), eight)[1]
        keep[index] = changes_topology or pattern.sum() < 3
    keep.setflags(write=False)
    corner.setflags(write=False)
    return keep, corner


SKELETON_TABLE, CORNERNESS_TABLE = _build_tables()


def _pcg_state(seed: int) -> np.ndarray:
    # the PCG64 state of numpy.random.default_rng(seed) before any draw, as (state_hi, state_lo, inc_hi, inc_lo)
    st = np.random.default_rng(seed).bit_generator.state["state"]
    words = [st["state"] >> 64, st["state"] & (2 ** 64 - 1), st["inc"] >> 64, st["inc"] & (2 ** 64 - 1)]
    state = np.array(words, dtype=np.uint64)
    state.setflags(write=False)
    return state


UPSTREAM_PCG_STATE = _pcg_state(42)


def _stream(words: np.ndarray) -> np.ndarray:
    words.setflags(write=False)
    return words


# What the compiled medial axis needs to break ties in either mode: the PCG64 state of default_rng(42), and
# the first 2**16 32-bit words of RandomState(0) and of default_rng(42) (enough for any image up to
# 28x28 at scale 4 and beyond; longer permutations generate their words directly).
# (numpy's full-range uint32 draws are the generators' raw 32-bit words: tests/test_fast_path.py checks them
# against the compiled generators _kernels.mt_stream and _kernels.pcg_stream)
TIEBREAK_DATA = (UPSTREAM_PCG_STATE,
                 _stream(np.random.RandomState(0).randint(0, 2 ** 32, size=1 << 16, dtype=np.uint32)),
                 _stream(np.random.default_rng(42).integers(0, 2 ** 32, size=1 << 16, dtype=np.uint32)))


def tiebreaker(n: int, mode: str = "released", engine: str = "fast") -> np.ndarray:
    """The tie-breaking permutation of the `n` foreground pixels (raster order) used by the medial axis.

    ``numpy.random.RandomState(0).permutation(n)`` in released mode, ``numpy.random.default_rng(42)
    .permutation(n)`` in upstream mode; the fast engine computes both in compiled code (same numbers).
    """
    if mode == "released":
        if engine == "fast":
            return _kernels.legacy_permutation(n, 0)
        return np.random.RandomState(0).permutation(np.arange(n))
    if engine == "fast":
        return _kernels.pcg64_permutation(n, UPSTREAM_PCG_STATE)
    return np.random.default_rng(42).permutation(np.arange(n))


def medial_axis_reference(binary: np.ndarray, mode: str = "released") -> tuple[np.ndarray, np.ndarray]:
    """Plain implementation of :func:`medial_axis` (readable; used to check the compiled one)."""
    binary = np.asarray(binary, dtype=bool)
    rows, cols = binary.shape
    distance = ndi.distance_transform_edt(binary)
    code = ndi.correlate(binary.astype(np.int64), _BITS, mode="constant")  # 9-bit neighbourhood codes
    ii, jj = np.nonzero(binary)
    tb = tiebreaker(len(ii), mode, engine="reference")
    order = np.lexsort((tb, CORNERNESS_TABLE[code[binary]], distance[binary]))
    result = binary.copy()
    for k in order:
        i, j = ii[k], jj[k]
        window = np.zeros((3, 3), bool)
        i0, i1, j0, j1 = max(i - 1, 0), min(i + 2, rows), max(j - 1, 0), min(j + 2, cols)
        window[i0 - i + 1:i1 - i + 1, j0 - j + 1:j1 - j + 1] = result[i0:i1, j0:j1]
        window[1, 1] = True
        result[i, j] = bool(SKELETON_TABLE[int((window * _BITS).sum())])
    return result, distance


def medial_axis(binary: np.ndarray, mode: str = "released", engine: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """Medial axis and Euclidean distance map of a binary image.

    Parameters
    ----------
    binary : numpy.ndarray
        bool (rows, cols).
    mode : {"released", "upstream"}
        Tie-breaking rule (see module docstring).
    engine : {"fast", "reference"}

    Returns
    -------
    skeleton : numpy.ndarray
        bool (rows, cols).
    distance : numpy.ndarray
        float64 (rows, cols): distance of each foreground pixel to the nearest background pixel, in pixels
        of `binary` (0 on the background; pixels outside the image are not background).
    """
    check_mode(mode)
    if check_engine(engine) == "reference":
        return medial_axis_reference(binary, mode)
    binary = np.ascontiguousarray(binary, dtype=bool)
    # the medial axis is computed on the foreground's box (see _kernels.medial_axis_box)
    count, fbox = _kernels.foreground_box(binary)
    return _kernels.medial_axis_box(binary, count, fbox, mode == "upstream", TIEBREAK_DATA,
                                    SKELETON_TABLE, CORNERNESS_TABLE)


# --------------------------------------------------------------------------------------------------
# Binary morphology with disks (exact, via the distance transform)
# --------------------------------------------------------------------------------------------------
def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint ``x**2 + y**2 <= radius**2``, shape (2r+1, 2r+1)."""
    r = int(radius)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def dilate_disk(binary: np.ndarray, radius: int) -> np.ndarray:
    """Dilation of `binary` by ``disk(radius)``: pixels within `radius` of the foreground.

    Equal to ``skimage.morphology.dilation(binary, disk(radius))``, computed with the exact distance transform.
    """
    binary = np.ascontiguousarray(binary, dtype=bool)
    if radius <= 0 or not binary.any():
        return binary.copy()
    return _kernels.squared_edt(~binary) <= int(radius) ** 2


def erode_disk(binary: np.ndarray, radius: int) -> np.ndarray:
    """Erosion of `binary` by ``disk(radius)``: foreground pixels farther than `radius` from the background.

    Equal to ``skimage.morphology.erosion(binary, disk(radius))`` (mirrored borders never bring background
    closer than the real one, so the image edge does not erode).
    """
    binary = np.ascontiguousarray(binary, dtype=bool)
    if radius <= 0 or binary.all():
        return binary.copy()
    return _kernels.squared_edt(binary) > int(radius) ** 2


# --------------------------------------------------------------------------------------------------
# Skeleton tools (used by Swelling and Fracture)
# --------------------------------------------------------------------------------------------------
_NB_MASK = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], int)


def num_neighbours(skel: np.ndarray) -> np.ndarray:
    """Number of 8-neighbours of each skeleton pixel (0 off the skeleton). int (rows, cols)."""
    skel = np.asarray(skel).astype(int)
    return ndi.convolve(skel, _NB_MASK, mode="constant") * skel


def erase(skel: np.ndarray, seeds: np.ndarray, r: int) -> np.ndarray:
    """Remove the skeleton within a disk of radius `r` around every seed pixel."""
    skel = np.asarray(skel, dtype=bool)
    if r <= 0:
        return skel & ~np.asarray(seeds, dtype=bool)
    erased = np.pad(skel, pad_width=r, mode="constant", constant_values=False)
    brush = ~disk(r)
    for i, j in zip(*np.nonzero(seeds)):
        erased[i:i + 2 * r + 1, j:j + 2 * r + 1] &= brush
    return erased[r:-r, r:-r]


def get_angle(skel: np.ndarray, i: int, j: int, r: int) -> float:
    """Orientation (radians) of the skeleton in the (2r+1)-square window centred at (i, j)."""
    from .morpho import ImageMoments  # local: morpho imports this module

    padded = np.pad(np.asarray(skel, dtype=float), pad_width=r, mode="constant", constant_values=0)
    window = padded[i:i + 2 * r + 1, j:j + 2 * r + 1]
    return float(ImageMoments(window).angle)


def draw_line(r0: int, c0: int, r1: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the digital line from (r0, c0) to (r1, c1), end points included (Bresenham)."""
    r0, c0, r1, c1 = int(r0), int(c0), int(r1), int(c1)
    steep = abs(r1 - r0) > abs(c1 - c0)
    n = max(abs(r1 - r0), abs(c1 - c0)) + 1
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    if steep:
        rr = np.arange(n) * np.sign(r1 - r0) + r0 if r1 != r0 else np.full(n, r0)
        cc = np.rint(c0 + (c1 - c0) * t).astype(int)
    else:
        cc = np.arange(n) * np.sign(c1 - c0) + c0 if c1 != c0 else np.full(n, c0)
        rr = np.rint(r0 + (r1 - r0) * t).astype(int)
    return np.asarray(rr, int), np.asarray(cc, int)


class LocationSampler:
    """Samples locations on a digit's skeleton, away from its tips and forks.

    Parameters
    ----------
    prune_tips, prune_forks : float, optional
        Distance (28x28 pixels) from the skeleton's end points / branch points within which no location is
        sampled.
    """

    def __init__(self, prune_tips: float | None = None, prune_forks: float | None = None):
        self.prune_tips = prune_tips
        self.prune_forks = prune_forks

    def sample(self, morph, num: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sample skeleton pixel(s) of `morph` (an ImageMorphology).

        Returns
        -------
        numpy.ndarray
            int, shape (2,) (row, col) when `num` is None, else (num, 2).

        Raises
        ------
        ValueError
            If pruning leaves no skeleton pixel.
        """
        rng = np.random.default_rng(rng)
        skel = morph.skeleton
        if self.prune_tips is not None:
            skel = erase(skel, num_neighbours(skel) == 1, int(self.prune_tips * morph.scale))
        if self.prune_forks is not None:
            skel = erase(skel, num_neighbours(skel) == 3, int(self.prune_forks * morph.scale))
        coords = np.argwhere(skel)
        if coords.shape[0] == 0:
            raise ValueError("Overpruned skeleton")
        return coords[rng.integers(coords.shape[0], size=num)]
