"""Perturbations of Morpho-MNIST digits, and interventions that set a morphometric.

Names, parameters (by name and position) and the ``_get_matrix`` hook follow ``morphomnist.perturb``
(Castro et al., 2019; interventions from Pawlowski, Castro & Glocker, 2020). Each perturbation is called on
an :class:`~core.morpho.ImageMorphology` and returns a hi-res image, which ``morph.downscale(...)`` brings
back to a 28x28 uint8 digit::

    morph = ImageMorphology(image, scale=4)
    thinned = morph.downscale(Thinning(amount=.7)(morph))

The morphology's ``mode`` decides how the perturbation behaves (docs/upstream.md lists every difference):

``"upstream"``
    Byte for byte what today's original code gives with today's scikit-image: boolean warps are
    nearest-neighbour (``skimage.transform.warp`` of a bool image), Fracture's brush is placed as the
    original does since 2021 (``img[i - h // 2:i + h - h // 2, ...]`` in the padded image, a stamp that
    does not fit skipped).
``"released"``
    The released datasets (2018): warps of binary images bilinear (scikit-image < 0.19), the 2018 Fracture
    brush (``img[i:i + h, ...]`` in the padded image, i.e. centred on the line; clipped at the border where
    2018 crashed). The interventions (2020) follow the original's rules in both modes: SetThickness dilates
    or erodes with the support of the anti-aliased disk, SetWidth measures the source width with the
    moments of the binary image.

Random perturbations (Swelling, Fracture) take ``rng``: ``None`` (the default) draws the locations from
numpy's global RNG with ``np.random.choice`` exactly as the original, so ``np.random.seed(s)`` before a call
reproduces the original's image; a ``numpy.random.RandomState(s)`` draws the same picks without touching
the global RNG; a seed or a ``numpy.random.Generator`` gives a reproducible stream of its own.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from . import resample
from ._lazy import lazy_module
from .morpho import ImageMoments, ImageMorphology, bounding_parallelogram
from .perturbation_labels import PERTURBATION_CODES, PERTURBATION_LABELS  # re-exported: the public names
from .skeleton import (LocationSampler, antialiased_disk_support, dilate_disk, dilate_footprint, disk,
                       erode_disk, erode_footprint, get_angle)
from .validation import check_integer, check_number

_pk = lazy_module("core._perturb_kernels")  # numba: imported at the first compiled call

__all__ = ["NoEffectWarning", "Perturbation", "Thinning", "Thickening", "Deformation", "Swelling", "Fracture", "SetThickness",
           "LinearDeformation", "SetSlant", "SetWidth", "perturb_image", "PERTURBATIONS", "ParamSpec",
           "PERTURBATION_LABELS", "PERTURBATION_CODES", "warm_up"]


class NoEffectWarning(UserWarning):
    """A requested amount rounds to no change of the binary digit (a disk of radius 0).

    Thinning, Thickening and SetThickness act with a disk of integer radius in hi-res pixels: Thickening
    amounts below about 0.19 (``amount * scale * thickness / 2 < 1``) and SetThickness changes under
    0.5 px (``scale * |delta| / 2 < 1``, scale 4) leave the binary image as it is. The returned digit then
    differs from the input only by the up-scale -> binarise -> down-scale round trip (+0.072 px mean
    thickness, 0.10 sd, on the bundled digits: ``python scripts/no_effect_table.py``).
    """


def _warn_no_effect(what: str, radius_expr: str) -> None:
    warnings.warn(f"{what} rounds to a disk of radius 0 ({radius_expr} < 1 hi-res pixel) on this digit: the "
                  "binary image is unchanged, so the result differs from the input only by the up-scale -> "
                  "binarise -> down-scale round trip", NoEffectWarning, stacklevel=3)


def _generator(rng):
    """None stays None (numpy's global RNG, as the original), as does a RandomState; a seed becomes a Generator."""
    if rng is None or isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    return np.random.default_rng(rng)


def _one_of(name: str, value, alias_name: str, alias):
    # the original's parameter name, or the project's older keyword; exactly one of them
    if value is None and alias is None:
        raise TypeError(f"missing required argument {name!r}")
    if value is not None and alias is not None:
        raise TypeError(f"give {name!r} or its alias {alias_name!r}, not both")
    return value if value is not None else alias


# Valid ranges of the parameters (docs/upstream.md, "Parameters the library refuses"): finite, positive where a
# size, and capped where more would only take longer (a 28x28 digit is at most 28 pixels across).
MAX_AMOUNT = 10.          # Thinning / Thickening: multiples of the mean thickness
MAX_LENGTH = 28.          # sizes in pixels of the 28x28 digit (Fracture thickness and prune, SetThickness target)
MAX_STRENGTH = 20.        # Swelling exponent
MAX_SWELL_RADIUS = 100.   # Swelling radius, in sqrt(thickness) / 2 pixels
MAX_FRACTURES = 1000      # Fracture num_frac
MAX_WIDTH = 100.          # SetWidth target, pixels


class Perturbation:
    """A hi-res image transformation: ``pert(morph) -> hi-res image`` (bool, or float in [0, 1])."""

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        """Apply the perturbation.

        Parameters
        ----------
        morph : ImageMorphology
            Morphology of the input digit.

        Returns
        -------
        numpy.ndarray
            (scale * H, scale * W) perturbed hi-res image; ``morph.downscale(...)`` brings it to (H, W) uint8.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Thinning(Perturbation):
    """Erode the digit by ``disk(int(amount * scale * thickness / 2))`` (a fraction of the stroke's width).

    Parameters
    ----------
    amount : float
        Fraction of the mean thickness removed (0.7 in the released 'thin' dataset).
    """

    def __init__(self, amount: float = .7):
        self.amount = check_number("Thinning(amount)", amount, 0., MAX_AMOUNT)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        radius = int(self.amount * morph.scale * morph.mean_thickness / 2.)
        if radius == 0:
            _warn_no_effect(f"Thinning(amount={self.amount:g})", "amount x scale x thickness / 2")
        return erode_disk(morph.binary_image, radius)


class Thickening(Perturbation):
    """Dilate the digit by ``disk(int(amount * scale * thickness / 2))``.

    Parameters
    ----------
    amount : float
        Fraction of the mean thickness added (1.0 in the released 'thic' dataset).
    """

    def __init__(self, amount: float = 1.):
        self.amount = check_number("Thickening(amount)", amount, 0., MAX_AMOUNT)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        radius = int(self.amount * morph.scale * morph.mean_thickness / 2.)
        if radius == 0:
            _warn_no_effect(f"Thickening(amount={self.amount:g})", "amount x scale x thickness / 2")
        return dilate_disk(morph.binary_image, radius)


class Deformation(Perturbation):
    """A perturbation defined by an inverse coordinate map ``warp(xy, morph) -> source xy``.

    As ``skimage.transform.warp(morph.binary_image, lambda xy: self.warp(xy, morph))``: `xy` is built the
    same way (columns outer, rows inner), so an overriding ``warp`` sees what it saw in the original.
    Upstream mode samples nearest-neighbour (bool result); released mode bilinearly (float result).
    """

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        src_r, src_c = self._source_maps(morph)
        binary = np.ascontiguousarray(morph.binary_image, dtype=bool)
        if morph.mode == "released":
            return resample.bilinear_warp(binary, src_r, src_c, morph.engine)
        return _pk.nearest_warp(binary, src_r, src_c)

    def _source_maps(self, morph: ImageMorphology) -> tuple[np.ndarray, np.ndarray]:
        """Source row and column of every output pixel, float64 (H, W) each, from ``self.warp``."""
        rows, cols = morph.binary_image.shape
        # skimage.transform.warp_coords: (x, y) pairs, x outer
        xy = np.indices((cols, rows), dtype=np.float64).reshape(2, -1).T
        src = np.asarray(self.warp(xy, morph), dtype=np.float64)
        if src.shape != xy.shape:
            raise ValueError(f"{type(self).__name__}.warp returned shape {src.shape}, expected {xy.shape}")
        maps = src.T.reshape((-1, cols, rows)).swapaxes(1, 2)
        return np.ascontiguousarray(maps[1]), np.ascontiguousarray(maps[0])

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        """Map output coordinates to input coordinates.

        Parameters
        ----------
        xy : numpy.ndarray
            float64 (H * W, 2): (x, y) = (column, row) of each output pixel, hi-res.
        morph : ImageMorphology

        Returns
        -------
        numpy.ndarray
            float64 (H * W, 2): the (x, y) in the input image each output pixel takes its value from.
        """
        raise NotImplementedError


class Swelling(Deformation):
    """Local swelling: a radial power warp around a random skeleton location.

    Coordinates within ``R`` of the centre ``r0`` map to ``r0 + (r - r0) (|r - r0| / R) ** (strength - 1)``.

    Parameters
    ----------
    strength : float
        Exponent of the warp (> 1 swells; 3 in the released 'swel' dataset).
    radius : float
        Radius of the swollen region, in units of ``sqrt(thickness) / 2`` pixels (7 in the released data).
    rng : None, int, numpy.random.Generator or numpy.random.RandomState, optional
        ``None``: numpy's global RNG, as the original; else a seed or generator for the location.
    """

    def __init__(self, strength: float = 3, radius: float = 7, rng=None):
        self.strength = check_number("Swelling(strength)", strength, 0., MAX_STRENGTH, low_open=True)
        self.radius = check_number("Swelling(radius)", radius, 0., MAX_SWELL_RADIUS, low_open=True)
        self.rng = rng
        self._rng = _generator(rng)
        self.loc_sampler = LocationSampler()
        self.last_centre = None  # (row, col) hi-res, of the last call; for display

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        if type(self).warp is not Swelling.warp:  # a subclass's own map: the generic path
            return super().__call__(morph)
        # Outside the swollen disk the map is the identity, exactly ((x - c) * 1. + c == x for integers), so
        # only the disk's bounding box is mapped, with the same numpy expressions as warp() (same values).
        binary = np.ascontiguousarray(morph.binary_image, dtype=bool)
        rows, cols = binary.shape
        centre, radius = self._centre_and_radius(morph)
        reach = int(np.ceil(radius)) if np.isfinite(radius) else max(rows, cols)
        x0, x1 = max(int(centre[0]) - reach, 0), min(int(centre[0]) + reach + 1, cols)
        y0, y1 = max(int(centre[1]) - reach, 0), min(int(centre[1]) + reach + 1, rows)
        out = binary.astype(np.float64) if morph.mode == "released" else binary.copy()
        if x0 >= x1 or y0 >= y1:
            return out
        xy = np.indices((x1 - x0, y1 - y0), dtype=np.float64).reshape(2, -1).T + np.array([x0, y0], np.float64)
        maps = self._swell(xy, centre, radius).T.reshape((-1, x1 - x0, y1 - y0)).swapaxes(1, 2)
        src_c, src_r = np.ascontiguousarray(maps[0]), np.ascontiguousarray(maps[1])
        if morph.mode == "released":
            out[y0:y1, x0:x1] = resample.bilinear_warp(binary, src_r, src_c, morph.engine)
        else:
            out[y0:y1, x0:x1] = _pk.nearest_warp(binary, src_r, src_c)
        return out

    def _centre_and_radius(self, morph: ImageMorphology):
        centre_rc = self.loc_sampler.sample(morph, rng=self._rng)
        self.last_centre = tuple(int(v) for v in centre_rc)
        centre = centre_rc[::-1]  # (x, y), int as in the original
        radius = (self.radius * np.sqrt(morph.mean_thickness) / 2.) * morph.scale
        return centre, radius

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        return self._swell(xy, *self._centre_and_radius(morph))

    def _swell(self, xy, centre, radius):
        offset_xy = xy - centre
        distance = np.hypot(*offset_xy.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = (distance / radius) ** (self.strength - 1)
        weight[distance > radius] = 1.
        return centre + weight[:, None] * offset_xy


class Fracture(Perturbation):
    """Break strokes: erase thin lines across the skeleton at random locations away from tips and forks.

    Parameters
    ----------
    thickness : float
        Width of each break, in pixels of the 28x28 image.
    prune : float
        Distance (pixels) from the skeleton's tips and forks within which no break is placed.
    num_frac : int
        Number of breaks (3 in the released 'frac' dataset).
    rng : None, int, numpy.random.Generator or numpy.random.RandomState, optional
        ``None``: numpy's global RNG, as the original; else a seed or generator for the locations.
    """

    _ANGLE_WINDOW = 2
    _FRAC_EXTENSION = .5

    def __init__(self, thickness: float = 1.5, prune: float = 2, num_frac: int = 3, rng=None):
        self.thickness = check_number("Fracture(thickness)", thickness, 0., MAX_LENGTH, low_open=True)
        self.prune = check_number("Fracture(prune)", prune, 0., MAX_LENGTH)
        self.num_frac = check_integer("Fracture(num_frac)", num_frac, 1, MAX_FRACTURES)
        self.rng = rng
        self._rng = _generator(rng)
        self.loc_sampler = LocationSampler(prune, prune)
        self.last_centres = None  # hi-res (row, col) of the last call's breaks; for display

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        up_thickness = self.thickness * morph.scale
        # the original's r; a break thinner than one hi-res pixel (r < 0) crashed np.pad there
        r = max(int(np.ceil((up_thickness - 1) / 2)), 0)
        brush = np.ascontiguousarray(~disk(r))
        binary = morph.binary_image
        frac_img = np.zeros((binary.shape[0] + 2 * r, binary.shape[1] + 2 * r), bool)  # np.pad(binary, r)
        frac_img[r:r + binary.shape[0], r:r + binary.shape[1]] = binary
        try:
            centres = self.loc_sampler.sample(morph, self.num_frac, rng=self._rng)
        except ValueError:  # the skeleton vanished with pruning: sample without it, as the original
            centres = LocationSampler().sample(morph, self.num_frac, rng=self._rng)
        self.last_centres = [tuple(int(v) for v in c) for c in centres]
        for centre in centres:
            p0, p1 = self._endpoints(morph, centre)
            if morph.mode == "released":
                _pk.stamp_line_clipped(frac_img, int(p0[0]), int(p0[1]), int(p1[0]), int(p1[1]), brush)
            else:
                self._draw_line(frac_img, p0, p1, brush)
        # (the original's frac_img[r:-r, r:-r] is empty when r = 0; the image is returned whole instead)
        return frac_img[r:frac_img.shape[0] - r, r:frac_img.shape[1] - r]

    def _endpoints(self, morph: ImageMorphology, centre):
        angle = get_angle(morph.skeleton, *centre, self._ANGLE_WINDOW * morph.scale)
        length = morph.distance_map[centre[0], centre[1]] + self._FRAC_EXTENSION * morph.scale
        angle += np.pi / 2.  # perpendicular to the skeleton
        normal = length * np.array([np.sin(angle), np.cos(angle)])
        p0 = (centre + normal).astype(int)
        p1 = (centre - normal).astype(int)
        return p0, p1

    @staticmethod
    def _draw_line(img, p0, p1, brush):
        """Stamp `brush` (``&=``) on `img` in place along the line p0-p1, as the original does today: each
        stamp ``img[i - h // 2:i + h - h // 2, j - w // 2:j + w - w // 2]``, skipped where it does not fit."""
        brush = np.ascontiguousarray(brush, dtype=bool)
        h, w = brush.shape
        _pk.stamp_line_numpy(img, int(p0[0]), int(p0[1]), int(p1[0]), int(p1[1]), brush, h // 2, w // 2)


def _get_disk(radius: int, scale: int) -> np.ndarray:
    """Support of the original's anti-aliased SetThickness disk (see ``skeleton.antialiased_disk_support``)."""
    return antialiased_disk_support(radius, scale)


class SetThickness(Perturbation):
    """Intervention: dilate or erode the digit so that its mean thickness becomes `target_thickness` pixels.

    The radius is ``int(scale * |target - thickness| / 2)`` hi-res pixels and the footprint the support of
    the original's anti-aliased disk (``disk(16 r)`` reduced 16 times by ``pyramid_reduce``, order 1),
    which reaches about one pixel farther than ``disk(r)`` (Pawlowski, Castro & Glocker, 2020).

    Parameters
    ----------
    target_thickness : float
        Target mean thickness, in pixels of the 28x28 image. ``target`` is accepted as an alias.
    """

    _disk_cache: dict[int, np.ndarray] = {}

    def __init__(self, target_thickness: float | None = None, *, target: float | None = None):
        self.target_thickness = check_number(
            "SetThickness(target_thickness)", _one_of("target_thickness", target_thickness, "target", target), 0.,
            MAX_LENGTH, low_open=True)

    @property
    def target(self) -> float:
        """Alias of `target_thickness`."""
        return self.target_thickness

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        delta = self.target_thickness - morph.mean_thickness
        radius = int(morph.scale * abs(delta) / 2.)
        if radius not in self._disk_cache:
            self._disk_cache[radius] = _get_disk(radius, scale=16)
        footprint = self._disk_cache[radius]
        if footprint.sum() <= 1:
            _warn_no_effect(f"SetThickness(target_thickness={self.target_thickness:g}), a change of "
                            f"{delta:+.3g} px,", "scale x |change| / 2")
        if delta >= 0:
            return dilate_footprint(morph.binary_image, footprint)
        return erode_footprint(morph.binary_image, footprint)


class LinearDeformation(Deformation):
    """An affine warp about the centroid of the binary image; subclasses give its matrix in ``_get_matrix``."""

    def _get_matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        """The (2, 2) matrix mapping output offsets (x, y) from the centroid to input offsets.

        Parameters
        ----------
        moments : ImageMoments
            Moments of ``morph.binary_image``.
        morph : ImageMorphology
        """
        raise NotImplementedError

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        centroid, matrix = self._centroid_and_matrix(morph)
        return (xy - centroid) @ matrix.T + centroid

    def _centroid_and_matrix(self, morph: ImageMorphology):
        binary = np.ascontiguousarray(morph.binary_image, dtype=bool)
        # sums of a binary image are integers, hence exact in any order: the same moments as ImageMoments
        moments = ImageMoments.from_raw(*(np.float64(v) for v in _pk.binary_moments(binary)))
        centroid = np.array(moments.centroid)
        return centroid, self._get_matrix(moments, morph)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        if type(self).warp is not LinearDeformation.warp:  # a subclass's own map: the generic path
            return super().__call__(morph)
        binary = np.ascontiguousarray(morph.binary_image, dtype=bool)
        rows, cols = binary.shape
        centroid, matrix = self._centroid_and_matrix(morph)
        # warp()'s expression on the full grid (the same matrix product, so the same values) ...
        xy = np.indices((cols, rows), dtype=np.float64).reshape(2, -1).T
        mapped = (xy - centroid) @ matrix.T
        # ... then "+ centroid" column by column (additions are exactly rounded: same values; numpy is slow to
        # broadcast over an inner axis of length 2) and sampling only where the source can touch the ink
        ys, xs = self._output_box(binary, centroid, matrix)
        src_c = np.ascontiguousarray(mapped[:, 0].reshape(cols, rows).T[ys, xs] + centroid[0])
        src_r = np.ascontiguousarray(mapped[:, 1].reshape(cols, rows).T[ys, xs] + centroid[1])
        if morph.mode == "released":
            out = np.zeros((rows, cols))
            out[ys, xs] = resample.bilinear_warp(binary, src_r, src_c, morph.engine)
        else:
            out = np.zeros((rows, cols), bool)
            out[ys, xs] = _pk.nearest_warp(binary, src_r, src_c)
        return out

    @staticmethod
    def _output_box(binary: np.ndarray, centroid: np.ndarray, matrix: np.ndarray) -> tuple[slice, slice]:
        """Rows and columns of the output whose source may be within one pixel of the ink (else the whole image).

        Outside it both samplings give 0: nearest needs a source rounding onto ink, bilinear one within a
        pixel of it. The box is the inverse image of the ink's box grown by a pixel, plus a 2-pixel margin
        for rounding.
        """
        rows, cols = binary.shape
        full = (slice(0, rows), slice(0, cols))
        r0, r1, c0, c1 = _pk.bbox(binary)
        if r1 == 0:
            return (slice(0, 0), slice(0, 0))
        (a, b), (c, d) = matrix.tolist()
        det = a * d - b * c
        if det == 0 or not math.isfinite(det):
            return full
        cx, cy = float(centroid[0]), float(centroid[1])
        xs_out, ys_out = [], []
        for x, y in ((c0 - 1., r0 - 1.), (c1, r0 - 1.), (c0 - 1., r1), (c1, r1)):  # the ink box's corners
            u, v = x - cx, y - cy
            xs_out.append((d * u - b * v) / det + cx)  # inverse of the 2x2 matrix
            ys_out.append((a * v - c * u) / det + cy)
        if not all(math.isfinite(z) for z in xs_out + ys_out):
            return full
        x_lo, y_lo = math.floor(min(xs_out)) - 2, math.floor(min(ys_out)) - 2
        x_hi, y_hi = math.ceil(max(xs_out)) + 3, math.ceil(max(ys_out)) + 3
        ys = slice(int(min(max(y_lo, 0), rows)), int(min(max(y_hi, 0), rows)))
        xs = slice(int(min(max(x_lo, 0), cols)), int(min(max(x_hi, 0), cols)))
        return ys, xs


class SetSlant(LinearDeformation):
    """Intervention: shear the digit horizontally so that its slant becomes `target_slant_rad`.

    Parameters
    ----------
    target_slant_rad : float
        Target slant in radians (positive leans right), as measured by ``measure_image``. ``target_rad``
        is accepted as an alias.
    """

    def __init__(self, target_slant_rad: float | None = None, *, target_rad: float | None = None):
        self.target_slant_rad = check_number(
            "SetSlant(target_slant_rad)", _one_of("target_slant_rad", target_slant_rad, "target_rad", target_rad),
            -np.pi / 2, np.pi / 2, low_open=True, high_open=True)
        self.target_shear = -np.tan(self.target_slant_rad)

    @property
    def target_rad(self) -> float:
        """Alias of `target_slant_rad`."""
        return self.target_slant_rad

    def _get_matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        source_shear = moments.horizontal_shear
        delta = self.target_shear - source_shear
        return np.array([[1., -delta], [0., 1.]])


def _measure_width(morph: ImageMorphology, frac: float = .02, moments: ImageMoments | None = None) -> float:
    """Width of the bounding parallelogram of ``morph.hires_image`` (with the given moments), in pixels."""
    img = morph.hires_image
    if moments is None or morph.engine != "fast" or img.dtype != np.uint8:
        top_left, top_right = bounding_parallelogram(img, frac, moments, engine=morph.engine)[:2]
        return (top_right[0] - top_left[0]) / morph.scale
    # bounding_parallelogram's arithmetic on exact integer counts (uint8 sums are integers: same values)
    middle = moments.centroid[1]
    shear = moments.horizontal_shear
    hcount, vcount, total = _pk.parallelogram_counts(np.ascontiguousarray(img), shear, middle)
    total = np.float64(total)
    hcdf, vcdf = hcount / total, vcount / total
    frac /= 2
    left, right = np.interp([frac, 1. - frac], hcdf, np.arange(img.shape[1]))
    top = np.interp([frac, 1. - frac], vcdf, np.arange(len(vcdf)))[0]
    return ((right + shear * (top - middle)) - (left + shear * (top - middle))) / morph.scale


class SetWidth(LinearDeformation):
    """Intervention: stretch the digit along its slant so that its width becomes `target_width` pixels.

    The source width is the bounding parallelogram of the hi-res image sheared by the moments of the
    binary image, as in the original.

    Parameters
    ----------
    target_width : float
        Target width in pixels of the 28x28 image (as measured by ``measure_image``). ``target`` is
        accepted as an alias.
    validate : bool
        Re-measure the result and, if it is more than 1 pixel off, apply the intervention again to the
        downscaled result (printing a note, as the original; at most 20 rounds here, unbounded there).
    """

    _tolerance = 1.
    _max_rounds = 20

    def __init__(self, target_width: float | None = None, validate: bool = False, *, target: float | None = None):
        self.target_width = check_number("SetWidth(target_width)", _one_of("target_width", target_width, "target",
                                                                             target), 0., MAX_WIDTH, low_open=True)
        self._validate = bool(validate)

    @property
    def target(self) -> float:
        """Alias of `target_width`."""
        return self.target_width

    def _get_matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        source_width = _measure_width(morph, moments=moments)
        factor = source_width / self.target_width
        shear = moments.horizontal_shear
        return np.array([[factor, shear * (1. - factor)], [0., 1.]])

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        pert_hires_image = super().__call__(morph)
        rounds = 0
        while self._validate and rounds < self._max_rounds:
            pert_image = morph.downscale(pert_hires_image)
            pert_morph = ImageMorphology(pert_image, threshold=morph.threshold, scale=morph.scale, mode=morph.mode,
                                         engine=morph.engine)
            width = _measure_width(pert_morph)
            if abs(width - self.target_width) <= self._tolerance:
                break
            print(f"Incorrect width after transformation: {width:.1f}, expected {self.target_width:.1f}.")
            pert_hires_image, morph = super().__call__(pert_morph), pert_morph
            rounds += 1
        return pert_hires_image


def perturb_image(image, perturbation: Perturbation, *, mode: str | None = None, threshold: float = .5,
                  scale: int = 4, engine: str = "fast") -> np.ndarray:
    """Apply a perturbation to a digit and return the perturbed digit.

    Parameters
    ----------
    image : numpy.ndarray
        (28, 28) digit, uint8 or float in [0, 1].
    perturbation : Perturbation
    mode : {"released", "upstream"}, optional
        Default: ``core.morpho.default_mode()`` ("released" unless ``$MORPHO_MNIST_MODE`` says otherwise).

    Returns
    -------
    numpy.ndarray
        uint8 (28, 28).
    """
    morph = ImageMorphology(image, threshold, scale, mode, engine=engine)
    return morph.downscale(perturbation(morph))


@dataclass(frozen=True)
class ParamSpec:
    """A perturbation parameter, for user interfaces and command lines."""
    name: str
    default: float
    low: float
    high: float
    step: float
    unit: str = ""
    doc: str = ""
    integer: bool = False


# name -> (class, parameters); ranges are what makes sense on MNIST digits
PERTURBATIONS: dict[str, tuple[type, tuple[ParamSpec, ...]]] = {
    "thinning": (Thinning, (ParamSpec("amount", .7, 0., 1., .05, "× thickness", "fraction of the stroke removed"),)),
    "thickening": (Thickening, (ParamSpec("amount", 1., 0., 3., .05, "× thickness", "fraction of the stroke added"),)),
    "swelling": (Swelling, (ParamSpec("strength", 3., 1., 6., .1, "", "power of the radial warp"),
                            ParamSpec("radius", 7., 1., 14., .5, "√thickness/2 px", "size of the swollen region"))),
    "fracture": (Fracture, (ParamSpec("thickness", 1.5, .5, 4., .1, "px", "width of each break"),
                            ParamSpec("prune", 2., 0., 5., .5, "px", "distance kept from tips and forks"),
                            ParamSpec("num_frac", 3, 1, 6, 1, "", "number of breaks", integer=True))),
    "set_thickness": (SetThickness, (ParamSpec("target", 3., .5, 9., .1, "px", "target mean thickness"),)),
    "set_slant": (SetSlant, (ParamSpec("target_rad", 0., -.8, .8, .01, "rad", "target slant"),)),
    "set_width": (SetWidth, (ParamSpec("target", 12., 2., 24., .5, "px", "target width"),)),
}


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every kernel the perturbations use, in both modes.

    Runs each perturbation once on a synthetic ring digit with the argument types real digits give, so that a
    later first call does not pay for compilation. Safe to call from any thread; takes well under a second
    with a warm cache.
    """
    yy, xx = np.mgrid[0:28, 0:28]
    ring = np.abs(np.hypot(yy - 13.5, xx - 13.5) - 7) < 2
    digit = (ring * 255).astype(np.uint8)
    for mode in ("released", "upstream"):
        morph = ImageMorphology(digit, mode=mode)
        for pert in (Thinning(), Thickening(), Swelling(rng=0), Fracture(rng=0), SetThickness(1.), SetThickness(9.),
                     SetSlant(.3), SetWidth(10.)):
            morph.downscale(pert(morph))


# --------------------------------------------------------------------------------------------------
# Intensity (deepscm's causal Morpho-MNIST: Pawlowski, Castro & Glocker, NeurIPS 2020)
# --------------------------------------------------------------------------------------------------

def stroke_intensity(image: np.ndarray) -> float:
    """Median grey level of the stroke, 0..255 (deepscm's ``get_intensity``; public as ``core.causal.intensity``).

    The stroke is every pixel at or above half the image's range (``min + .5 (max - min)``).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) digit, uint8 in [0, 255] or float in [0, 1] (read as 255 times its value).
    """
    from .morpho import as_digit

    img = as_digit(image)
    img = img.astype(np.float64) * (1. if img.dtype == np.uint8 else 255.)
    lo, hi = img.min(), img.max()
    return float(np.median(img[img >= lo + (hi - lo) * .5]))


class SetIntensity(Perturbation):
    """Intervention: scale the grey levels so that the stroke's intensity becomes `target` (0..255).

    deepscm's rule: multiply the digit by ``target / intensity`` and clip to 255, the intensity being the
    median of the stroke (:func:`stroke_intensity`). It acts on grey levels, not on shape: at ``scale=1``
    (``perturb_image(image, SetIntensity(t), scale=1)``) it scales the 28x28 digit itself, as deepscm does;
    at a larger scale it scales the hi-res image, whose round trip smooths the stroke (its median drops by
    10-70 grey levels). Either way the factor is then corrected (at most 6 times) until the *downscaled*
    result is within half a grey level of the target, which deepscm's single multiplication misses when
    pixels clip at 255. Targets near 255 saturate: the median cannot exceed the brightest pixels.

    Parameters
    ----------
    target : float
        Target stroke intensity in grey levels, in (0, 255].
    """

    _max_rounds = 6

    def __init__(self, target: float):
        target = float(target)
        if not (math.isfinite(target) and 0. < target <= 255.):
            raise ValueError(f"SetIntensity: target must be a grey level in (0, 255]; got {target!r}")
        self.target = target

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        if morph.scale == 1:
            base = np.asarray(morph.image, dtype=np.float64)
            base = base / 255. if morph.image.dtype == np.uint8 else base
        else:
            base = np.asarray(morph.hires_image, dtype=np.float64) / 255.
        # deepscm's factor first; pixels clipping at 255 (and, above scale 1, the round trip) move the median,
        # so a few multiplicative corrections follow while the result is more than half a grey level off
        factor = self.target / stroke_intensity(morph.image) if morph.scale == 1 else 1.
        out = np.clip(base * factor, 0., 1.)
        for _ in range(self._max_rounds):
            reached = stroke_intensity(morph.downscale(out))
            if abs(reached - self.target) <= .5:
                break
            factor *= self.target / reached
            out = np.clip(base * factor, 0., 1.)
        return out


__all__ += ["SetIntensity", "stroke_intensity"]
