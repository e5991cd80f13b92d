"""Medial axis (skeleton) and distance map of a binary digit, and skeleton tools for perturbations.

The medial axis is computed by ordered thinning (as ``skimage.morphology.medial_axis``): foreground pixels
are visited by increasing distance to the background, then by "cornerness" (pixels with fewer foreground
neighbours last), then by a tie-breaking permutation, and each is removed unless removing it would change
the local connectivity or it is an end point. The tie-breaker is where scikit-image changed:

- ``mode="released"``: ``numpy.random.RandomState(0).permutation`` (scikit-image < 0.19, the released tables);
- ``mode="upstream"``: ``numpy.random.default_rng(42).permutation`` (today's ``medial_axis(rng=42)``).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from ._lazy import lazy_module
from .resample import check_engine, check_mode
from .validation import check_integer, check_number

_kernels = lazy_module("core._kernels")  # numba: imported at the first compiled call
_pk = lazy_module("core._perturb_kernels")

# SKELETON_TABLE and CORNERNESS_TABLE are served by the module's __getattr__ (built at first use)
__all__ = ["medial_axis", "medial_axis_reference", "tiebreaker", "kernel_tables", "SKELETON_TABLE",  # noqa: F822
           "CORNERNESS_TABLE", "num_neighbours",  # noqa: F822
           "erase", "get_angle", "LocationSampler", "dilate_disk", "erode_disk",
           "disk", "draw_line", "dilate_footprint", "erode_footprint", "footprint_halfwidths",
           "antialiased_disk_support"]

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


def _pcg_state(seed: int) -> np.ndarray:
    # the PCG64 state of numpy.random.default_rng(seed) before any draw, as (state_hi, state_lo, inc_hi, inc_lo)
    st = np.random.default_rng(seed).bit_generator.state["state"]
    words = [st["state"] >> 64, st["state"] & (2 ** 64 - 1), st["inc"] >> 64, st["inc"] & (2 ** 64 - 1)]
    state = np.array(words, dtype=np.uint64)
    state.setflags(write=False)
    return state


def _stream(words: np.ndarray) -> np.ndarray:
    words.setflags(write=False)
    return words


@functools.cache
def kernel_tables() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """The compiled medial axis's arguments after the image: ``(TIEBREAK_DATA, SKELETON_TABLE, CORNERNESS_TABLE)``.

    Built at the first call (about 0.1 s: 1,024 labellings and two random streams), not at import, then
    shared (read-only arrays).

    - ``TIEBREAK_DATA``: the PCG64 state of ``default_rng(42)`` (uint64 (4,)), and the first 2**16 32-bit
      words of ``RandomState(0)`` and of ``default_rng(42)`` (uint32 (65536,) each): enough for any image up
      to 28x28 at scale 4 and beyond; longer permutations generate their words directly. (numpy's full-range
      uint32 draws are the generators' raw 32-bit words: tests/test_fast_path.py checks them against the
      compiled generators ``_kernels.mt_stream`` and ``_kernels.pcg_stream``.)
    - ``SKELETON_TABLE``: uint8 (512,), 1 where the 3x3 neighbourhood with that 9-bit code (row-major, bit 4 =
      centre) keeps its centre pixel (removing it changes the 8-connected components, or it is an end point).
    - ``CORNERNESS_TABLE``: int64 (512,), the number of background pixels in that neighbourhood.
    """
    keep, corner = _build_tables()
    tiebreak = (_pcg_state(42),
                _stream(np.random.RandomState(0).randint(0, 2 ** 32, size=1 << 16, dtype=np.uint32)),
                _stream(np.random.default_rng(42).integers(0, 2 ** 32, size=1 << 16, dtype=np.uint32)))
    return tiebreak, keep, corner


_LAZY_NAMES = {"TIEBREAK_DATA": lambda: kernel_tables()[0], "SKELETON_TABLE": lambda: kernel_tables()[1],
               "CORNERNESS_TABLE": lambda: kernel_tables()[2], "UPSTREAM_PCG_STATE": lambda: kernel_tables()[0][0]}


def __getattr__(name: str):
    # the tables keep their module-level names (skeleton.SKELETON_TABLE, ...) without being built at import
    if name in _LAZY_NAMES:
        return _LAZY_NAMES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        return _kernels.pcg64_permutation(n, kernel_tables()[0][0])
    return np.random.default_rng(42).permutation(np.arange(n))


def medial_axis_reference(binary: np.ndarray, mode: str = "released") -> tuple[np.ndarray, np.ndarray]:
    """Plain implementation of :func:`medial_axis` (readable; used to check the compiled one)."""
    binary = np.asarray(binary, dtype=bool)
    rows, cols = binary.shape
    distance = ndi.distance_transform_edt(binary)
    code = ndi.correlate(binary.astype(np.int64), _BITS, mode="constant")  # 9-bit neighbourhood codes
    ii, jj = np.nonzero(binary)
    tb = tiebreaker(len(ii), mode, engine="reference")
    _, skeleton_table, cornerness_table = kernel_tables()
    order = np.lexsort((tb, cornerness_table[code[binary]], distance[binary]))
    result = binary.copy()
    for k in order:
        i, j = ii[k], jj[k]
        window = np.zeros((3, 3), bool)
        i0, i1, j0, j1 = max(i - 1, 0), min(i + 2, rows), max(j - 1, 0), min(j + 2, cols)
        window[i0 - i + 1:i1 - i + 1, j0 - j + 1:j1 - j + 1] = result[i0:i1, j0:j1]
        window[1, 1] = True
        result[i, j] = bool(skeleton_table[int((window * _BITS).sum())])
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
    return _kernels.medial_axis_box(binary, count, fbox, mode == "upstream", *kernel_tables())


# --------------------------------------------------------------------------------------------------
# Binary morphology with disks (exact, via the distance transform)
# --------------------------------------------------------------------------------------------------
def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint ``x**2 + y**2 <= radius**2``, shape (2r+1, 2r+1) (``skimage.morphology.disk``).

    Cached and read-only.
    """
    r = int(radius)
    d = _DISKS.get(r)
    if d is None:
        y, x = np.mgrid[-r:r + 1, -r:r + 1]
        d = x * x + y * y <= r * r
        d.setflags(write=False)
        if r <= 64:  # the radii perturbations use; larger ones are not kept
            _DISKS[r] = d
    return d


_DISKS: dict[int, np.ndarray] = {}


def _window(binary: np.ndarray, margin: int):
    """Slices of the ink's bounding box grown by `margin` pixels (clipped to the image), or None if blank.

    Why it is exact: with background around the ink, every distance and every footprint hit that decides a
    pixel of the box lies inside the box (see dilate_disk / erode_disk); outside it the result is known.
    """
    r0, r1, c0, c1 = _pk.bbox(binary)
    if r1 == 0:
        return None
    rows, cols = binary.shape
    return (slice(max(r0 - margin, 0), min(r1 + margin, rows)), slice(max(c0 - margin, 0), min(c1 + margin, cols)))


def dilate_disk(binary: np.ndarray, radius: int) -> np.ndarray:
    """Dilation of `binary` by ``disk(radius)``: pixels within `radius` of the foreground.

    Equal to ``skimage.morphology.dilation(binary, disk(radius))`` (see :func:`dilate_footprint`).
    """
    radius = int(radius)
    if radius <= 0:
        return np.array(binary, dtype=bool, copy=True)
    return dilate_footprint(binary, disk(radius))


def erode_disk(binary: np.ndarray, radius: int) -> np.ndarray:
    """Erosion of `binary` by ``disk(radius)``: foreground pixels farther than `radius` from the background.

    Equal to ``skimage.morphology.erosion(binary, disk(radius))`` (mirrored borders never bring background
    closer than the real one, so the image edge does not erode; see :func:`erode_footprint`).
    """
    radius = int(radius)
    if radius <= 0:
        return np.array(binary, dtype=bool, copy=True)
    return erode_footprint(binary, disk(radius))


def antialiased_disk_support(radius: int, supersample: int = 16) -> np.ndarray:
    """Support (nonzero pixels) of the anti-aliased disk footprint of the original ``SetThickness``.

    The original (``morphomnist.perturb._get_disk``) draws ``disk(supersample * radius)`` as float and
    reduces it with ``pyramid_reduce(downscale=supersample, order=1)`` (Gaussian of sigma
    ``2 * supersample / 6``, then linear interpolation at the output pixel centres), and dilates/erodes
    with that float footprint, i.e. with its support (scipy's grey morphology uses ``footprint != 0``).
    The same two steps are done here with scipy (cached per radius); the support is a disk of radius about
    ``radius + 1`` clipped to the (2 * radius + 1)-square, so the strokes move by about one hi-res pixel
    more than with ``disk(radius)``.

    Parameters
    ----------
    radius : int
        Radius in pixels of the footprint's grid (hi-res pixels of the digit).
    supersample : int
        Supersampling factor of the original (16).

    Returns
    -------
    numpy.ndarray
        bool (2 * radius + 1, 2 * radius + 1) for radius >= 1; (1, 1) True for radius 0.
    """
    radius, s = int(radius), int(supersample)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, not {radius}")
    if radius not in _AA_SUPPORT or s != 16:
        big = disk(s * radius).astype(np.float64)
        if s > 1:
            # pyramid_reduce(order=1): Gaussian (sigma = 2 * s / 6, mode 'reflect' = scipy 'reflect'), then
            # linear resize to ceil(shape / s) sampling pixel centres (scipy zoom, grid_mode=True, 'mirror')
            smooth = ndi.gaussian_filter(big, 2 * s / 6.0, mode="reflect", cval=0.0)
            out_shape = tuple(-(-n // s) for n in big.shape)
            zoom = tuple(o / n for o, n in zip(out_shape, big.shape))
            reduced = ndi.zoom(smooth, zoom, order=1, mode="mirror", cval=0.0, grid_mode=True)
        else:
            reduced = big
        support = reduced > 0
        support.setflags(write=False)
        if s != 16:
            return support
        _AA_SUPPORT[radius] = support
    return _AA_SUPPORT[radius]


_AA_SUPPORT: dict[int, np.ndarray] = {}


def footprint_halfwidths(footprint: np.ndarray) -> np.ndarray:
    """Row half-widths of a symmetric, orthogonally convex footprint (-1 for an empty row). int64 (2r+1,).

    Raises
    ------
    ValueError
        If the footprint is not square with odd sides, or a row is not one run centred on the middle column.
    """
    fp = np.asarray(footprint) != 0
    key = (fp.shape, fp.tobytes())
    half = _HALFWIDTHS.get(key)
    if half is None:
        if fp.ndim != 2 or fp.shape[0] != fp.shape[1] or fp.shape[0] % 2 == 0:
            raise ValueError(f"footprint must be square with odd sides, got shape {fp.shape}")
        r = (fp.shape[1] - 1) // 2
        dist = np.abs(np.arange(fp.shape[1]) - r)
        half = np.where(fp, dist, -1).max(axis=1).astype(np.int64)
        if not np.array_equal(fp, dist[None, :] <= half[:, None]):
            raise ValueError("footprint rows must each be one run centred on the middle column")
        half.setflags(write=False)
        if len(_HALFWIDTHS) < 256:
            _HALFWIDTHS[key] = half
    return half


_HALFWIDTHS: dict = {}


def dilate_footprint(binary: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``skimage.morphology.dilation(binary, footprint)`` for a symmetric, orthogonally convex footprint.

    Parameters
    ----------
    binary : numpy.ndarray
        bool (H, W).
    footprint : numpy.ndarray
        bool (2r+1, 2r+1), symmetric, each row and column one centred run (e.g. a disk, a square, or
        :func:`antialiased_disk_support`).

    Returns
    -------
    numpy.ndarray
        bool (H, W). Computed on the ink's bounding box grown by r.
    """
    binary = np.ascontiguousarray(binary, dtype=bool)
    half = footprint_halfwidths(footprint)
    box = _window(binary, (len(half) - 1) // 2)
    if box is None:
        return binary.copy()
    out = np.zeros_like(binary)
    out[box] = _pk.footprint_dilate(np.ascontiguousarray(binary[box]), half)
    return out


def erode_footprint(binary: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``skimage.morphology.erosion(binary, footprint)`` for a footprint as in :func:`dilate_footprint`.

    Computed on the ink's bounding box grown by one pixel (that background ring is within the footprint
    wherever anything beyond it is: the footprint is orthogonally convex).
    """
    binary = np.ascontiguousarray(binary, dtype=bool)
    half = footprint_halfwidths(footprint)
    box = _window(binary, 1)
    if box is None:
        return binary.copy()
    out = np.zeros_like(binary)
    out[box] = _pk.footprint_erode(np.ascontiguousarray(binary[box]), half)
    return out


# --------------------------------------------------------------------------------------------------
# Skeleton tools (used by Swelling and Fracture); names and parameters as in morphomnist.skeleton
# --------------------------------------------------------------------------------------------------
_NB_MASK = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], int)


def num_neighbours(skel) -> np.ndarray:
    """Number of 8-neighbours of each skeleton pixel (0 off the skeleton).

    Parameters
    ----------
    skel : array_like
        (H, W) skeleton image (nonzero = skeleton).

    Returns
    -------
    numpy.ndarray
        int (H, W).
    """
    skel = np.asarray(skel)
    if skel.ndim != 2:
        raise ValueError(f"num_neighbours: expected a 2-D skeleton image, got shape {skel.shape}")
    return _pk.num_neighbours(np.ascontiguousarray(skel != 0))


def erase(skel, seeds, r: int) -> np.ndarray:
    """Remove the skeleton within a disk of radius `r` (hi-res pixels) around every seed pixel.

    Parameters
    ----------
    skel : array_like
        (H, W) bool skeleton.
    seeds : array_like
        (H, W) bool mask of the pixels to erase around.
    r : int
        Radius in pixels of `skel`.

    Returns
    -------
    numpy.ndarray
        bool (H, W), a new array. (With ``r = 0`` the original returned an empty array, as ``a[0:-0]`` is
        empty; here only the seeds are removed.)
    """
    skel = np.ascontiguousarray(skel, dtype=bool)
    seeds = np.asarray(seeds, dtype=bool)
    if skel.shape != seeds.shape:
        raise ValueError(f"erase: skel {skel.shape} and seeds {seeds.shape} must have the same shape")
    r = int(r)
    if r <= 0:
        return skel & ~seeds
    return _pk.erase_where(skel, seeds.astype(np.int64), 1, np.ascontiguousarray(~disk(r)))


def _angle_from_sums(m00, mx, my, mxx, mxy, myy) -> float:
    # morphomnist.morpho.ImageMoments(...).angle from raw sums, with the same float64 operations in the same
    # order (the sums are integers, so they are exact however they were added up)
    m00 = np.float64(m00)
    m10 = np.float64(mx) / m00
    m01 = np.float64(my) / m00
    m20 = np.float64(mxx) / m00
    m11 = np.float64(mxy) / m00
    m02 = np.float64(myy) / m00
    u20 = m20 - m10 ** 2
    u11 = m11 - m10 * m01
    u02 = m02 - m01 ** 2
    return .5 * np.arctan2(2. * u11, u20 - u02)


def get_angle(skel, i: int, j: int, r: int) -> float:
    """Orientation of the skeleton in the (2r+1)-square window centred at (i, j).

    Parameters
    ----------
    skel : array_like
        (H, W) skeleton image; pixels outside the image count as background.
    i, j : int
        Row and column of the window's centre.
    r : int
        Half-size of the window, in pixels of `skel`.

    Returns
    -------
    float
        Angle of the window's major axis, radians from the x axis (columns) towards y (rows), as
        ``ImageMoments(window).angle``.
    """
    skel = np.ascontiguousarray(np.asarray(skel) != 0)
    return _angle_from_sums(*_pk.window_sums(skel, int(i), int(j), int(r)))


def draw_line(r0: int, c0: int, r1: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the digital line from (r0, c0) to (r1, c1), end points included.

    The Bresenham line of ``skimage.draw.line``. Returns (rows, cols), int64 arrays of equal length.
    """
    return _pk.draw_line(int(r0), int(c0), int(r1), int(c1))


class LocationSampler:
    """Samples locations on a digit's skeleton, away from its tips and forks.

    Parameters
    ----------
    prune_tips, prune_forks : float, optional
        Distance (28x28 pixels) from the skeleton's end points / branch points within which no location is
        sampled.
    """

    def __init__(self, prune_tips: float | None = None, prune_forks: float | None = None):
        # pixels of the 28x28 digit: finite, non-negative, at most the digit's size
        self.prune_tips = None if prune_tips is None else check_number("LocationSampler(prune_tips)", prune_tips,
                                                                       0., 28.)
        self.prune_forks = None if prune_forks is None else check_number("LocationSampler(prune_forks)",
                                                                         prune_forks, 0., 28.)

    def _pruned(self, morph) -> np.ndarray:
        """(row, col) of the skeleton pixels that may be sampled, in raster order. int64 (n, 2)."""
        skel = np.ascontiguousarray(morph.skeleton, dtype=bool)
        radii = [-1 if p is None else int(p * morph.scale) for p in (self.prune_tips, self.prune_forks)]
        brushes = [_brush(max(r, 0)) for r in radii]
        return _pk.pruned_coords(skel, radii[0], brushes[0], radii[1], brushes[1])

    def sample(self, morph, num: int | None = None, rng=None) -> np.ndarray:
        """Sample skeleton pixel(s) of `morph` (an ImageMorphology), uniformly among those left after pruning.

        Parameters
        ----------
        morph : ImageMorphology
            Hi-res morphology of the digit.
        num : int, optional
            Number of locations (default: one, returned as a single (row, col)).
        rng : None, int, numpy.random.Generator or numpy.random.RandomState, optional
            ``None`` draws from numpy's global RNG with ``np.random.choice``, exactly as the original (so
            ``np.random.seed(s)`` reproduces its picks); a RandomState draws ``rng.choice(n, size=num)`` (the
            same picks as the global RNG seeded alike); a seed or Generator draws ``integers(n, size=num)``.

        Returns
        -------
        numpy.ndarray
            int, shape (2,) (row, col) in hi-res pixels when `num` is None, else (num, 2).

        Raises
        ------
        ValueError
            If pruning leaves no skeleton pixel ("Overpruned skeleton").
        """
        if num is not None:
            num = check_integer("LocationSampler.sample(num)", num, 0, 1_000_000)
        coords = self._pruned(morph)
        if coords.shape[0] == 0:
            raise ValueError("Overpruned skeleton")
        if rng is None:
            idx = np.random.choice(coords.shape[0], size=num)
        elif isinstance(rng, np.random.RandomState):
            idx = rng.choice(coords.shape[0], size=num)
        else:
            rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            idx = rng.integers(coords.shape[0], size=num)
        return coords[idx]


_BRUSHES: dict[int, np.ndarray] = {}


def _brush(r: int) -> np.ndarray:
    # ~disk(r), cached: the stamp that erases a disk
    if r not in _BRUSHES:
        brush = np.ascontiguousarray(~disk(r))
        brush.setflags(write=False)
        _BRUSHES[r] = brush
    return _BRUSHES[r]
