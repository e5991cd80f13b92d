"""Plug a generative model's decoder in: sample digits and traverse latents without files.

A :class:`Decoder` maps latent codes, float array (N, D), to digit images, uint8 (N, 28, 28), bright
digits on a dark background as :mod:`core.measure` expects. :func:`as_decoder` adapts

- a numpy callable ``f(codes) -> images`` (images in any layout and value range that
  :func:`core.samples.load_samples` accepts: (N, 28, 28), (N, 1, 28, 28), (N, 28, 28, 1) or (N, 784);
  uint8, float in [0, 1] or [-1, 1]; 32x32 with a blank 2-pixel border is cropped);
- a ``torch.nn.Module`` (only when torch is installed; never required), run on CPU under
  ``torch.no_grad()``; the module itself is moved to the CPU and set to eval mode (dropout off,
  batch-norm running statistics), as for any evaluation; codes are passed as (N, D), or
  (N, D, 1, 1) for convolutional generators that want it;
- the path of an ONNX file (``onnxruntime``, the optional extra ``pip install .[onnx]``);
- a ``"package.module:function"`` string naming any of the above.

:func:`sample` draws codes from the standard normal prior and decodes them; :func:`traverse` builds the
(B, L, S, 28, 28) latent traversal grid around B base codes. Both work in batches and can show a
progress bar (tqdm) or report progress to a callback ``progress(done, total)``.

Nothing here unpickles anything: PyTorch checkpoint files are refused with a hint (load the module
yourself and pass it, or export it to ONNX).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from core.io import UnreadableFileError, open_regular_file

__all__ = ["Decoder", "DecoderError", "as_decoder", "as_array_function", "sample", "traverse", "traversal_values"]

_SIDE = 28


class DecoderError(ValueError):
    """A decoder cannot be built or returned something that is not a batch of digit images. The
    message says what was found and what was expected."""


def _to_digits(out, n: int, value_range: Optional[str], name: str) -> tuple[np.ndarray, str, str]:
    """Decoder output -> uint8 (n, 28, 28), the value range and a note."""
    from core import samples
    from core.samples import SampleFormatError, normalise_range

    if hasattr(out, "detach") and hasattr(out, "cpu"):    # a torch tensor from a plain function
        out = out.detach().cpu().numpy()
    a = np.asarray(out)
    s = a.shape
    if a.ndim >= 1 and s[0] != n:
        raise DecoderError(f"{name}: returned {s[0]} images for {n} codes (shape {s}); expected one "
                           f"image per code")
    what = f"{name} output"
    shape_note = ""
    shaper = getattr(samples, "as_digit_images", None)
    try:
        # (its 2-D case other than (N, 784 | 1024) is one image, never a decoder's batch)
        if shaper is not None and (a.ndim != 2 or s[1] in (_SIDE * _SIDE, 32 * 32)):
            # the layouts (and 32x32 cropping) load_samples accepts, by its own rules
            a, shape_note = shaper(a, what)
        else:
            a, shape_note = _as_digit_stack(a, what)
        img, rng_name, note = normalise_range(a, value_range, what=what)
    except SampleFormatError as e:
        raise DecoderError(str(e)) from None
    if img.shape[1:] == (32, 32):   # only from the fallback shaper: crop a blank 2-pixel border
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        blank = float(np.abs(img[:, border].astype(np.float32)).max()) if img.size else 0.0
        thresh = 0.5 if img.dtype == np.uint8 else 0.5 / 255
        if blank > thresh:
            raise DecoderError(f"{what}: 32x32 images whose 2-pixel border is not blank (max {blank:.3g}); "
                               "expected 28x28 digits, or 32x32 digits padded with a blank border")
        img = img[:, 2:30, 2:30]
        shape_note = f"{what}: 32x32 images cropped to their 28x28 centre (blank 2-pixel border)"
    if shape_note:
        note += "; " + shape_note
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), rng_name, note


def _as_digit_stack(a: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """(N, 28, 28) or (N, 32, 32) view of (N,28,28), (N,1,28,28), (N,28,28,1), (N,784) and 32x32 alike
    (used when core.samples has no ``as_digit_images``)."""
    from core.samples import SampleFormatError

    s = a.shape
    n = s[0] if a.ndim else 0
    if a.ndim == 2 and s[1] in (_SIDE * _SIDE, 32 * 32):
        side = 28 if s[1] == _SIDE * _SIDE else 32
        a = a.reshape(n, side, side)
    elif a.ndim == 4 and s[1] == 1:
        a = a[:, 0]
    elif a.ndim == 4 and s[3] == 1:
        a = a[..., 0]
    if a.ndim != 3 or a.shape[1:] not in ((_SIDE, _SIDE), (32, 32)):
        raise SampleFormatError(f"{what}: found an array of shape {s}; expected images shaped (N, 28, 28), "
                                "(N, 1, 28, 28), (N, 28, 28, 1) or (N, 784) (or 32x32 with a blank border)")
    return a, ""


class Decoder:
    """A decoder from latent codes to digit images.

    Calling it maps codes, float array (N, D) (or (D,) for one code), to images, uint8 (N, 28, 28).
    The output value range is detected on the first call (:attr:`value_range`) and then required of
    every later batch, so that all images are scaled alike.

    Parameters
    ----------
    fn : callable
        ``fn(codes float32 (N, D)) -> array``, images in any layout/range described in the module
        docstring.
    latent_dim : int
        D.
    name : str
        Shown in messages and reports.
    kind : str
        ``'numpy'``, ``'torch'``, ``'onnx'``.
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declare the output range instead of detecting it.

    Attributes
    ----------
    latent_dim, name, kind, value_range, note
    """

    def __init__(self, fn: Callable, latent_dim: int, name: str = "decoder", *, kind: str = "numpy",
                 value_range: Optional[str] = None):
        if not callable(fn):
            raise TypeError(f"a decoder must be callable; got {type(fn).__name__}")
        latent_dim = int(latent_dim)
        if latent_dim < 1:
            raise DecoderError(f"latent_dim must be positive; got {latent_dim}")
        self._fn = fn
        self.latent_dim = latent_dim
        self.name = str(name)
        self.kind = kind
        self.value_range = value_range
        self.note = ""

    def __repr__(self) -> str:
        return f"Decoder({self.name!r}, latent_dim={self.latent_dim}, kind={self.kind!r})"

    def __call__(self, codes) -> np.ndarray:
        z = np.asarray(codes, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise DecoderError(f"{self.name}: codes must have shape (N, {self.latent_dim}); got {np.shape(codes)}")
        if not np.isfinite(z).all():
            raise DecoderError(f"{self.name}: codes contain NaN or infinite values")
        if len(z) == 0:
            return np.zeros((0, _SIDE, _SIDE), np.uint8)
        out = self._fn(np.ascontiguousarray(z))
        images, found, note = _to_digits(out, len(z), self.value_range, self.name)
        if self.value_range is None:
            self.value_range, self.note = found, note
        return images

    def decode(self, codes, *, batch_size: int = 256, progress=False) -> np.ndarray:
        """Decode many codes in batches; ``progress`` True (tqdm bar) or a callback ``(done, total)``."""
        z = np.asarray(codes, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        n = len(z)
        batch_size = max(1, int(batch_size))
        out = np.empty((n, _SIDE, _SIDE), np.uint8)
        bar = _progress(progress, n, f"decoding ({self.name})")
        try:
            for i in range(0, n, batch_size):
                out[i:i + batch_size] = self(z[i:i + batch_size])
                bar(min(i + batch_size, n))
        finally:
            bar(None)
        return out


def _progress(progress, total: int, desc: str):
    """A function update(done) (None: close) for a tqdm bar, a callback or nothing."""
    if callable(progress) and not isinstance(progress, bool):
        return lambda done: progress(done, total) if done is not None else None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="digit", leave=False)
        state = {"n": 0}

        def update(done):
            if done is None:
                bar.close()
                return
            bar.update(done - state["n"])
            state["n"] = done
        return update
    return lambda done: None


# --------------------------------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------------------------------

def _is_torch_module(obj) -> bool:
    torch = sys.modules.get("torch")   # a Module can only exist if torch was imported
    return torch is not None and isinstance(obj, torch.nn.Module)


def _torch_latent_dim(module) -> Optional[int]:
    for attr in ("latent_dim", "z_dim", "nz", "latent_size", "n_latent"):
        v = getattr(module, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    import torch

    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            return int(layer.in_features)
        if isinstance(layer, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)):
            return int(layer.in_channels)
    return None


def _from_torch(module, latent_dim, name, value_range) -> Decoder:
    import torch

    module = module.to("cpu")
    module.eval()   # dropout/batch-norm in inference mode, as for evaluation
    D = latent_dim or _torch_latent_dim(module)
    if D is None:
        raise DecoderError(f"{name}: cannot tell the latent size of this torch module (no latent_dim "
                           "attribute, no Linear or Conv layer found); pass latent_dim")
    try:
        dtype = next(module.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    state = {"shape": None}

    def run(z: np.ndarray):
        t = torch.from_numpy(z).to(dtype)
        with torch.no_grad():
            if state["shape"] == "4d":
                y = module(t[:, :, None, None])
            else:
                try:
                    y = module(t)
                    state["shape"] = "2d"
                except RuntimeError as first:
                    if state["shape"] == "2d":
                        raise
                    # DCGAN-style generators take (N, D, 1, 1)
                    try:
                        y = module(t[:, :, None, None])
                    except RuntimeError:
                        raise DecoderError(f"{name}: the module failed on codes shaped (N, {D}) and "
                                           f"(N, {D}, 1, 1): {first}") from None
                    state["shape"] = "4d"
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.detach().to("cpu").float().numpy()

    return Decoder(run, D, name, kind="torch", value_range=value_range)


def _from_onnx(path: Path, latent_dim, value_range) -> Decoder:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DecoderError(f"{path}: reading ONNX decoders needs onnxruntime; install the optional extra "
                           "with `pip install morpho-mnist-explorer[onnx]` (or `pip install onnxruntime`)") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3   # no console chatter for benign graph warnings
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:   # onnxruntime raises its own exception types
        raise DecoderError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise DecoderError(f"{path}: the ONNX model has {len(inputs)} inputs "
                           f"({', '.join(i.name for i in inputs)}); expected one, the latent codes")
    inp = inputs[0]
    shape = list(inp.shape)
    D = latent_dim
    if D is None and len(shape) >= 2 and isinstance(shape[1], int):
        D = shape[1]
    if D is None:
        raise DecoderError(f"{path}: the ONNX input {inp.name!r} has shape {shape}; pass latent_dim")
    dtype = np.float64 if "double" in inp.type else (np.float16 if "float16" in inp.type else np.float32)
    rank = len(shape)
    fixed_batch = shape[0] if shape and isinstance(shape[0], int) else None

    def run(z: np.ndarray):
        x = z.astype(dtype)
        if rank == 4:
            x = x[:, :, None, None]
        if fixed_batch is not None and fixed_batch != len(x):
            return np.concatenate([sess.run(None, {inp.name: x[i:i + fixed_batch]})[0]
                                   for i in range(0, len(x), fixed_batch)])
        return sess.run(None, {inp.name: x})[0]

    return Decoder(run, D, path.name, kind="onnx", value_range=value_range)


def _resolve(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DecoderError(f"{spec}: cannot import module {module_name!r} ({e}); expected "
                           "'package.module:function' importable from the current environment") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise DecoderError(f"{spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _model_file(text: str, what: str) -> Path:
    """The ONNX file named by `text`, after the checks every model file gets (exists, not a folder, never a
    pickle)."""
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{text}: {what} file not found (expected an .onnx file or "
                                "'package.module:function')")
    if path.is_dir():
        raise DecoderError(f"{text}: is a folder; expected an .onnx file")
    try:  # regular files only: a FIFO or device named x.onnx would block the reader forever
        with open_regular_file(path, f"{what} file (.onnx)", display_name=text) as f:
            head = f.read(8)
    except UnreadableFileError as e:
        raise DecoderError(str(e)) from None
    if head.startswith(b"PK\x03\x04") or head[:2] == b"\x80\x02" or path.suffix.lower() in (".pt", ".pth", ".ckpt", ".pkl"):
        raise DecoderError(f"{text}: looks like a PyTorch checkpoint or pickle, which is never unpickled "
                           "here; load your model in Python and pass the torch.nn.Module "
                           f"(Explorer({what}=model)), or export it with torch.onnx.export and pass the .onnx file")
    return path


def as_decoder(obj, latent_dim: Optional[int] = None, *, name: Optional[str] = None,
               value_range: Optional[str] = None) -> Decoder:
    """Adapt a decoder (numpy callable, torch module, ONNX file or ``"package.module:function"``).

    Parameters
    ----------
    obj : Decoder, callable, torch.nn.Module, str or os.PathLike
        The decoder; see the module docstring.
    latent_dim : int, optional
        D, the code size. Needed for plain callables without a ``latent_dim`` attribute; read from the
        ONNX input shape or the torch module (``latent_dim``/``z_dim``/``nz`` attribute, or its first
        Linear/Conv layer) otherwise.
    name : str, optional
        Name used in messages and reports (default: the function's, module's or file's name).
    value_range : {'uint8', '[0,1]', '[-1,1]'}, optional
        Declare the output range instead of detecting it on the first batch.

    Returns
    -------
    Decoder

    Raises
    ------
    DecoderError
        The object cannot be used as a decoder (the message says why and what is expected).
    FileNotFoundError
        A path that does not exist.
    """
    if isinstance(obj, Decoder):
        if latent_dim is not None and int(latent_dim) != obj.latent_dim:
            raise DecoderError(f"{obj.name}: has latent_dim {obj.latent_dim}, not {latent_dim}")
        return obj
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        path = Path(text)
        head_part, sep, tail_part = text.partition(":")
        if (sep and not path.exists() and re.fullmatch(r"[A-Za-z_][\w.]*", head_part)
                and re.fullmatch(r"[A-Za-z_][\w.]*", tail_part)):
            target = _resolve(text)
            return as_decoder(target, latent_dim, name=name or text, value_range=value_range)
        return _from_onnx(_model_file(text, "decoder"), latent_dim, value_range)
    if _is_torch_module(obj):
        return _from_torch(obj, latent_dim, name or type(obj).__name__, value_range)
    if isinstance(obj, type):
        raise DecoderError(f"{name or obj.__name__}: is a class; give a function, a module instance or an "
                           "ONNX file (e.g. 'package.module:decode', or build the model and pass it)")
    if callable(obj):
        D = latent_dim if latent_dim is not None else getattr(obj, "latent_dim", None)
        if D is None:
            raise DecoderError(f"{name or getattr(obj, '__name__', 'decoder')}: pass latent_dim, the size "
                               "of the codes this function decodes")
        return Decoder(obj, int(D), name or getattr(obj, "__name__", type(obj).__name__), kind="numpy",
                       value_range=value_range)
    raise DecoderError(f"cannot use a {type(obj).__name__} as a decoder; expected a callable codes -> "
                       "images, a torch.nn.Module, an .onnx path or 'package.module:function'")


# --------------------------------------------------------------------------------------------------
# sampling and traversals
# --------------------------------------------------------------------------------------------------

def sample(decoder, n: int, *, seed=0, batch_size: int = 256, progress=False,
           latent_dim: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` codes from the standard normal prior N(0, I) and decode them.

    Parameters
    ----------
    decoder : Decoder or anything :func:`as_decoder` accepts
    n : int
        Number of samples.
    seed : int or numpy.random.Generator
        Seed of the codes (same seed, same codes).
    batch_size : int
        Codes decoded per call.
    progress : bool or callable
        tqdm bar, or ``progress(done, total)``.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (n, 28, 28)
    codes : numpy.ndarray, float32, shape (n, D)
    """
    dec = as_decoder(decoder, latent_dim)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    codes = np.random.default_rng(seed).standard_normal((n, dec.latent_dim)).astype(np.float32)
    return dec.decode(codes, batch_size=batch_size, progress=progress), codes


def traversal_values(span: float = 2.0, steps: int = 9) -> np.ndarray:
    """The latent offsets of a traversal: ``steps`` values evenly from ``-span`` to ``+span``, shape (S,)."""
    if steps < 2:
        raise ValueError(f"a traversal needs at least 2 steps; got {steps}")
    if not span > 0:
        raise ValueError(f"span must be positive; got {span}")
    return np.linspace(-float(span), float(span), int(steps))


def traverse(decoder, base_codes, *, latents: Optional[Sequence[int]] = None, span: float = 2.0,
             steps: int = 9, batch_size: int = 256, progress=False,
             latent_dim: Optional[int] = None) -> np.ndarray:
    """Latent traversal grid: each chosen latent moved from ``-span`` to ``+span`` around each base code.

    Parameters
    ----------
    decoder : Decoder or anything :func:`as_decoder` accepts
    base_codes : array_like, shape (B, D) or (D,)
        The codes traversed around (e.g. ``np.zeros(D)``, or B codes drawn from the prior: effects
        then average over B digits, see :func:`core.analysis.traversal_effects`).
    latents : sequence of int, optional
        The L latents to traverse (default: all D).
    span : float
        Offsets go from ``base - span`` to ``base + span`` in latent units (prior standard deviations).
    steps : int
        S, number of offsets (:func:`traversal_values`).
    batch_size, progress
        As :func:`sample`.

    Returns
    -------
    numpy.ndarray, uint8, shape (B, L, S, 28, 28)
        Entry [b, l, s] decodes base code b with latent ``latents[l]`` set to ``base + values[s]``.
    """
    dec = as_decoder(decoder, latent_dim)
    base = np.asarray(base_codes, dtype=np.float32)
    if base.ndim == 1:
        base = base[None]
    if base.ndim != 2 or base.shape[1] != dec.latent_dim:
        raise ValueError(f"base_codes must have shape (B, {dec.latent_dim}) or ({dec.latent_dim},); "
                         f"got {np.shape(base_codes)}")
    lat = np.arange(dec.latent_dim) if latents is None else np.asarray(latents, dtype=np.int64).ravel()
    if lat.size == 0 or lat.min() < 0 or lat.max() >= dec.latent_dim:
        raise ValueError(f"latents must be indices in 0..{dec.latent_dim - 1}; got {list(lat)}")
    vals = traversal_values(span, steps).astype(np.float32)
    B, L, S = len(base), len(lat), len(vals)
    codes = np.repeat(base[:, None, None, :], L, axis=1).repeat(S, axis=2)   # (B, L, S, D)
    li = np.arange(L)
    codes[:, li, :, lat] = base[:, lat].T[:, :, None] + vals[None, None, :]
    images = dec.decode(codes.reshape(-1, dec.latent_dim), batch_size=batch_size, progress=progress)
    return images.reshape(B, L, S, _SIDE, _SIDE)


# --------------------------------------------------------------------------------------------------
# the same adapters for models that take images (classifiers, attribute predictors)
# --------------------------------------------------------------------------------------------------

def as_array_function(obj, *, name: Optional[str] = None) -> tuple[Callable, str, str, Optional[list]]:
    """Adapt a model taking arrays (e.g. a classifier of images) through the decoders' adapters.

    Parameters
    ----------
    obj : callable, torch.nn.Module, str or os.PathLike
        A numpy callable, a torch module (run on CPU under ``no_grad``, in eval mode), the path of an ONNX
        file, or ``"package.module:function"`` naming one of these.
    name : str, optional

    Returns
    -------
    fn : callable
        ``fn(x float32 array) -> numpy array`` (a tuple/list output gives its first element).
    kind : {'numpy', 'torch', 'onnx'}
    name : str
    input_shape : list or None
        The ONNX input's declared shape (ints or names), else None.
    """
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        head_part, sep, tail_part = text.partition(":")
        if (sep and not Path(text).exists() and re.fullmatch(r"[A-Za-z_][\w.]*", head_part)
                and re.fullmatch(r"[A-Za-z_][\w.]*", tail_part)):
            return as_array_function(_resolve(text), name=name or text)
        path = _model_file(text, "model")
        try:
            import onnxruntime as ort
        except ImportError:
            raise DecoderError(f"{path}: reading ONNX models needs onnxruntime; install the optional extra with "
                               "`pip install morpho-mnist-explorer[onnx]` (or `pip install onnxruntime`)") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:   # onnxruntime raises its own exception types
            raise DecoderError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
        inp = sess.get_inputs()[0]
        dtype = np.float64 if "double" in inp.type else np.float32
        return (lambda x: sess.run(None, {inp.name: np.asarray(x, dtype)})[0]), "onnx", name or path.name, \
            list(inp.shape)
    if _is_torch_module(obj):
        import torch

        module = obj.to("cpu")
        module.eval()

        def run(x):
            with torch.no_grad():
                y = module(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            if isinstance(y, (tuple, list)):
                y = y[0]
            return y.detach().to("cpu").float().numpy()
        return run, "torch", name or type(obj).__name__, None
    if isinstance(obj, type) or not callable(obj):
        raise DecoderError(f"cannot use a {type(obj).__name__} as a model; expected a callable, a "
                           "torch.nn.Module instance, an .onnx path or 'package.module:function'")

    def call(x):
        y = obj(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if hasattr(y, "detach") and hasattr(y, "cpu"):
            y = y.detach().cpu().numpy()
        return np.asarray(y)
    return call, "numpy", name or getattr(obj, "__name__", type(obj).__name__), None
