"""Perturbations of Morpho-MNIST digits, and interventions that set a morphometric.

Each perturbation is called on an :class:`~core.morpho.ImageMorphology` and returns a hi-res image, which
``morph.downscale(...)`` brings back to a 28x28 uint8 digit, as in the original ``morphomnist.perturb``::

    morph = ImageMorphology(image, scale=4)
    thinned = morph.downscale(Thinning(amount=.7)(morph))

Random perturbations (Swelling, Fracture) take ``rng``: a seed or a ``numpy.random.Generator``; the same seed
gives the same image (the original used the global numpy RNG). Warps of binary images are bilinear in
``"released"`` mode (scikit-image < 0.19) and nearest-neighbour in ``"upstream"`` mode (today's
``skimage.transform.warp`` of a boolean image), following the morphology's mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import resample
from .morpho import ImageMoments, ImageMorphology, bounding_parallelogram
from .skeleton import LocationSampler, dilate_disk, disk, draw_line, erode_disk, get_angle

__all__ = ["Perturbation", "Thinning", "Thickening", "Deformation", "Swelling", "Fracture", "SetThickness",
           "SetSlant", "SetWidth", "perturb_image", "PERTURBATIONS", "ParamSpec", "PERTURBATION_LABELS"]

# Labels of the released -pert files (global and local datasets)
PERTURBATION_LABELS = {0: "plain", 1: "thinned", 2: "thickened", 3: "swollen", 4: "fractured"}


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Perturbation:
    """A hi-res image transformation: ``pert(morph) -> hi-res image`` (bool or float in [0, 1])."""

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Thinning(Perturbation):
    """Erode the digit by a disk of radius ``amount * thickness / 2`` (a fraction of the stroke's half-width).

    Parameters
    ----------
    amount : float
        Fraction of the mean thickness removed (0.7 in the released 'thin' dataset).
    """

    def __init__(self, amount: float = .7):
        self.amount = float(amount)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        radius = int(self.amount * morph.scale * morph.mean_thickness / 2.)
        return erode_disk(morph.binary_image, radius)


class Thickening(Perturbation):
    """Dilate the digit by a disk of radius ``amount * thickness / 2``.

    Parameters
    ----------
    amount : float
        Fraction of the mean thickness added (1.0 in the released 'thic' dataset).
    """

    def __init__(self, amount: float = 1.):
        self.amount = float(amount)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        radius = int(self.amount * morph.scale * morph.mean_thickness / 2.)
        return dilate_disk(morph.binary_image, radius)


class Deformation(Perturbation):
    """A perturbation defined by an inverse coordinate map ``warp(xy, morph) -> source xy``."""

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        rows, cols = morph.binary_image.shape
        yy, xx = np.mgrid[0:rows, 0:cols]
        xy = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)
        src = self.warp(xy, morph)
        src_c = src[:, 0].reshape(rows, cols)
        src_r = src[:, 1].reshape(rows, cols)
        if morph.mode == "released":
            return resample.bilinear_warp(morph.binary_image, src_r, src_c, morph.engine)
        # today's scikit-image warps boolean images with nearest-neighbour interpolation
        r = np.rint(src_r).astype(np.int64)
        c = np.rint(src_c).astype(np.int64)
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        out = np.zeros((rows, cols), bool)
        out[inside] = morph.binary_image[r[inside], c[inside]]
        return out

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        """Map output (x, y) coordinates, shape (P, 2), to source coordinates, shape (P, 2)."""
        raise NotImplementedError


class Swelling(Deformation):
    """Local swelling: a radial power warp around a random skeleton location.

    Parameters
    ----------
    strength : float
        Exponent of the warp (> 1 swells; 3 in the released 'swel' dataset).
    radius : float
        Radius of the swollen region, in units of ``sqrt(thickness) / 2`` pixels (7 in the released data).
    rng : int or numpy.random.Generator, optional
        Seed or generator for the location.
    """

    def __init__(self, strength: float = 3, radius: float = 7, rng=None):
        self.strength = float(strength)
        self.radius = float(radius)
        self.rng = rng
        self._rng = _generator(rng)
        self.loc_sampler = LocationSampler()
        self.last_centre = None  # (row, col) hi-res, of the last call; for display

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        centre_rc = self.loc_sampler.sample(morph, rng=self._rng)
        self.last_centre = tuple(int(v) for v in centre_rc)
        centre = centre_rc[::-1].astype(float)  # (x, y)
        radius = (self.radius * np.sqrt(morph.mean_thickness) / 2.) * morph.scale
        offset = xy - centre
        distance = np.hypot(offset[:, 0], offset[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = (distance / radius) ** (self.strength - 1)
        weight[distance > radius] = 1.
        return centre + weight[:, None] * offset


class Fracture(Perturbation):
    """Break strokes: erase thin lines across the skeleton at random locations away from tips and forks.

    Parameters
    ----------
    thickness : float
        Width of each break, in pixels.
    prune : float
        Distance from the skeleton's tips and forks (pixels) within which no break is placed.
    num_frac : int
        Number of breaks (3 in the released 'frac' dataset).
    rng : int or numpy.random.Generator, optional
        Seed or generator for the locations.
    """

    _ANGLE_WINDOW = 2
    _FRAC_EXTENSION = .5

    def __init__(self, thickness: float = 1.5, prune: float = 2, num_frac: int = 3, rng=None):
        self.thickness = float(thickness)
        self.prune = float(prune)
        self.num_frac = int(num_frac)
        self.rng = rng
        self._rng = _generator(rng)
        self.loc_sampler = LocationSampler(prune, prune)
        self.last_centres = None  # hi-res (row, col) of the last call's breaks; for display

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        up_thickness = self.thickness * morph.scale
        r = max(int(np.ceil((up_thickness - 1) / 2)), 0)
        brush = ~disk(r)
        frac_img = np.pad(morph.binary_image, pad_width=r, mode="constant", constant_values=False)
        try:
            centres = self.loc_sampler.sample(morph, self.num_frac, rng=self._rng)
        except ValueError:  # the skeleton vanished with pruning: sample without it
            centres = LocationSampler().sample(morph, self.num_frac, rng=self._rng)
        self.last_centres = [tuple(int(v) for v in c) for c in centres]
        h, w = brush.shape
        rows, cols = frac_img.shape
        for centre in centres:
            p0, p1 = self._endpoints(morph, centre)
            ii, jj = draw_line(*p0, *p1)
            for i, j in zip(ii, jj):
                # clip the brush to the image: near the border the original crashed or wrapped around
                i0, j0 = max(i, 0), max(j, 0)
                i1, j1 = min(i + h, rows), min(j + w, cols)
                if i0 >= i1 or j0 >= j1:
                    continue
                frac_img[i0:i1, j0:j1] &= brush[i0 - i:i1 - i, j0 - j:j1 - j]
        return frac_img[r:frac_img.shape[0] - r, r:frac_img.shape[1] - r]

    def _endpoints(self, morph: ImageMorphology, centre):
        angle = get_angle(morph.skeleton, *centre, self._ANGLE_WINDOW * morph.scale)
        length = morph.distance_map[centre[0], centre[1]] + self._FRAC_EXTENSION * morph.scale
        angle += np.pi / 2.  # perpendicular to the skeleton
        normal = length * np.array([np.sin(angle), np.cos(angle)])
        p0 = (centre + normal).astype(int)
        p1 = (centre - normal).astype(int)
        return p0, p1


class SetThickness(Perturbation):
    """Intervention: dilate or erode the digit so that its mean thickness becomes `target` pixels.

    The change of radius is half the difference of thickness (in hi-res pixels, rounded down), as in the
    interventions of Pawlowski, Castro & Glocker (2020).

    Parameters
    ----------
    target : float
        Target mean thickness, in pixels of the 28x28 image.
    """

    def __init__(self, target: float):
        self.target = float(target)

    def __call__(self, morph: ImageMorphology) -> np.ndarray:
        delta = self.target - morph.mean_thickness
        radius = int(morph.scale * abs(delta) / 2.)
        if delta >= 0:
            return dilate_disk(morph.binary_image, radius)
        return erode_disk(morph.binary_image, radius)


class _LinearDeformation(Deformation):
    """An affine warp about the centroid of the binary image."""

    def _matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        raise NotImplementedError

    def warp(self, xy: np.ndarray, morph: ImageMorphology) -> np.ndarray:
        moments = ImageMoments(morph.binary_image)
        centroid = np.array(moments.centroid)
        matrix = self._matrix(moments, morph)
        return (xy - centroid) @ matrix.T + centroid


class SetSlant(_LinearDeformation):
    """Intervention: shear the digit horizontally so that its slant becomes `target_rad`.

    Parameters
    ----------
    target_rad : float
        Target slant in radians (positive leans right), as measured by ``measure_image``.
    """

    def __init__(self, target_rad: float):
        self.target_rad = float(target_rad)

    def _matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        delta = -np.tan(self.target_rad) - moments.horizontal_shear
        return np.array([[1., -delta], [0., 1.]])


class SetWidth(_LinearDeformation):
    """Intervention: stretch the digit along its slant so that its width becomes `target` pixels.

    Parameters
    ----------
    target : float
        Target width in pixels of the 28x28 image (as measured by ``measure_image``).
    """

    def __init__(self, target: float):
        self.target = float(target)

    def _matrix(self, moments: ImageMoments, morph: ImageMorphology) -> np.ndarray:
        top_left, top_right = bounding_parallelogram(morph.hires_image, .02, engine=morph.engine)[:2]
        source_width = (top_right[0] - top_left[0]) / morph.scale
        factor = source_width / self.target
        shear = moments.horizontal_shear
        return np.array([[factor, shear * (1. - factor)], [0., 1.]])


def perturb_image(image, perturbation: Perturbation, *, mode: str = "released", threshold: float = .5,
                  scale: int = 4, engine: str = "fast") -> np.ndarray:
    """Apply a perturbation to a 28x28 digit and return the perturbed 28x28 uint8 digit."""
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
