"""Supervised tasks on Morpho-MNIST: a classifier's domain shift and outlier detection by perturbation.

Morpho-MNIST proposes its perturbed datasets "to assess the performance of unsupervised and supervised
methods on challenging tasks such as outlier detection and domain adaptation" (Castro et al., 2019).
:func:`evaluate_classifier` runs a classifier of digits (the decoders' adapters: a numpy callable, a torch
module, an ONNX file or ``"package.module:function"``) on the datasets (plain, thin, thic, swel, frac,
global, local folders, or arrays with perturbation labels) and reports, per perturbation, the accuracy and
its shift from plain, the confusion matrix, and the AUROC with which an outlier score (by default the
classifier's maximum softmax probability, Hendrycks & Gimpel 2017) separates plain digits from perturbed ones.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

__all__ = ["evaluate_classifier", "TaskReport", "auroc", "load_task_datasets", "INPUT_RANGES", "LAYOUTS"]

#: What the classifier receives: float32 in [0, 1] (default), in [-1, 1], or the uint8 grey levels as float.
INPUT_RANGES = ("[0,1]", "[-1,1]", "uint8")
#: Input layouts; None picks (N, 28, 28) for numpy callables, (N, 1, 28, 28) for torch, the declared one for ONNX.
LAYOUTS = ("N,28,28", "N,1,28,28", "N,28,28,1", "N,784")
_ALL = ("plain", "thin", "thic", "swel", "frac", "global", "local")
_MAX_SHOWN = 24


def auroc(negatives, positives) -> float:
    """Area under the ROC curve of scores separating `positives` (higher) from `negatives` (ties count half:
    the Mann-Whitney U statistic / (n_neg n_pos)). NaN when either side is empty."""
    from scipy.stats import rankdata

    neg = np.asarray(negatives, float)
    pos = np.asarray(positives, float)
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([neg, pos]))
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2.
    return float(u / (len(neg) * len(pos)))


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------

def _groups_from_data(name: str, images, labels, perts) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(group, images, labels, index in its dataset) per perturbation present."""
    from core.datasets import DATASETS, INTERLEAVED

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"datasets[{name!r}]: images must have shape (N, 28, 28); got {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"datasets[{name!r}]: labels must have shape ({len(images)},); got {labels.shape}")
    if perts is None:
        if name in INTERLEAVED:
            raise ValueError(f"datasets[{name!r}]: an interleaved dataset needs its perturbation labels "
                             "(the -pert-idx1-ubyte file)")
        return [(name, images, labels, np.arange(len(images)))]
    perts = np.asarray(perts)
    if perts.shape != (len(images),):
        raise ValueError(f"datasets[{name!r}]: perturbation labels must have shape ({len(images)},); got {perts.shape}")
    if perts.dtype.kind in "iu":
        bad = perts[(perts < 0) | (perts >= len(DATASETS))]
        if len(bad):
            raise ValueError(f"datasets[{name!r}]: perturbation code {int(bad[0])} is not one of 0..4 "
                             f"({', '.join(DATASETS)})")
        names = np.array(DATASETS)[perts.astype(int)]
    else:
        names = perts.astype(str)
    out = []
    for g in sorted(dict.fromkeys(names.tolist()), key=lambda v: (DATASETS.index(v) if v in DATASETS else 99, v)):
        idx = np.flatnonzero(names == g)
        out.append((g if name in ("", "data") else f"{name}:{g}", images[idx], labels[idx], idx))
    return out


def load_task_datasets(datasets, *, split: Optional[str] = "t10k", limit: Optional[int] = None) -> list:
    """The groups :func:`evaluate_classifier` evaluates: list of (group name, images uint8 (n, 28, 28),
    labels (n,), index of each digit in its dataset (n,)).

    Parameters
    ----------
    datasets : str, os.PathLike, dict or tuple
        - a folder holding Morpho-MNIST dataset folders (plain, thin, thic, swel, frac, global, local: those
          present), or one dataset folder;
        - ``{name: folder or (images, labels) or (images, labels, perturbations)}``;
        - ``(images, labels, perturbations)``: arrays, perturbations as names (``"plain"``, ``"thin"``, ...)
          or the -pert codes 0..4.
        Interleaved datasets (global, local) are split by their perturbation labels into ``global:plain``,
        ``global:thin``, ...
    split : str, optional
        Split read from folders (default t10k; None: every split).
    limit : int, optional
        At most this many digits of each dataset (the first ones).
    """
    from core.reading import read_dataset

    def cut(a):
        return a if a is None or limit is None else a[:int(limit)]

    def from_folder(name, path):
        d = read_dataset(path, split=split)
        if d.labels is None or (d.labels < 0).any():
            raise ValueError(f"{path}: the digits have no labels; a classifier cannot be scored without them")
        return _groups_from_data(name, cut(d.images), cut(d.labels), cut(d.perturbations))

    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be at least 1; got {limit}")
    groups = []
    if isinstance(datasets, (str, os.PathLike)):
        root = Path(datasets)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        subs = [n for n in _ALL if (root / n).is_dir()]
        if subs:
            for n in subs:
                groups += from_folder(n, root / n)
        else:
            groups += from_folder(root.name if root.name in _ALL else "data", root)
    elif isinstance(datasets, dict):
        if not datasets:
            raise ValueError("datasets is an empty dict")
        for n, v in datasets.items():
            if isinstance(v, (str, os.PathLike)):
                groups += from_folder(str(n), v)
            elif isinstance(v, (tuple, list)) and len(v) in (2, 3):
                groups += _groups_from_data(str(n), cut(np.asarray(v[0])), cut(np.asarray(v[1])),
                                            cut(np.asarray(v[2])) if len(v) == 3 else None)
            else:
                raise ValueError(f"datasets[{n!r}] must be a folder or (images, labels[, perturbations]); "
                                 f"got {type(v).__name__}")
    elif isinstance(datasets, (tuple, list)) and len(datasets) == 3:
        groups += _groups_from_data("data", cut(np.asarray(datasets[0])), cut(np.asarray(datasets[1])),
                                    cut(np.asarray(datasets[2])))
    else:
        raise ValueError("datasets must be a folder, a dict {name: folder or (images, labels[, perturbations])} "
                         f"or a tuple (images, labels, perturbations); got {type(datasets).__name__}")
    from core.causal import _check_images
    return [(g, _check_images(im, f"images of {g}"), lab.astype(np.int64), idx) for g, im, lab, idx in groups]


# --------------------------------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------------------------------

def _layout_for(kind: str, input_shape) -> str:
    if kind == "onnx" and input_shape is not None:
        if len(input_shape) == 2:
            return "N,784"
        if len(input_shape) == 3:
            return "N,28,28"
        if len(input_shape) == 4:
            return "N,28,28,1" if input_shape[-1] == 1 and input_shape[1] != 1 else "N,1,28,28"
    return "N,1,28,28" if kind == "torch" else "N,28,28"


def _prepare(images: np.ndarray, layout: str, input_range: str) -> np.ndarray:
    x = images.astype(np.float32)
    if input_range == "[0,1]":
        x /= 255.
    elif input_range == "[-1,1]":
        x = x / 127.5 - 1.
    n = len(x)
    return {"N,28,28": x, "N,1,28,28": x.reshape(n, 1, 28, 28), "N,28,28,1": x.reshape(n, 28, 28, 1),
            "N,784": x.reshape(n, 784)}[layout]


def _softmax(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    if (s >= 0).all() and (s <= 1).all() and np.allclose(s.sum(axis=1), 1., atol=1e-3):
        return s   # already probabilities
    z = np.exp(s - s.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class _Classifier:
    def __init__(self, classifier, layout, input_range, batch_size, name):
        from core.decoders import as_array_function

        if input_range not in INPUT_RANGES:
            raise ValueError(f"input_range must be one of {', '.join(INPUT_RANGES)}; got {input_range!r}")
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
        self.fn, self.kind, self.name, shape = as_array_function(classifier, name=name)
        self.layout = layout or _layout_for(self.kind, shape)
        self.input_range = input_range
        self.batch_size = max(1, int(batch_size))
        self.classes = None

    def scores(self, images: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(images), self.batch_size):
            batch = images[s:s + self.batch_size]
            y = np.asarray(self.fn(_prepare(batch, self.layout, self.input_range)), dtype=np.float64)
            if y.ndim != 2 or len(y) != len(batch) or y.shape[1] < 2:
                raise ValueError(f"classifier {self.name}: returned an array of shape {y.shape} for {len(batch)} "
                                 f"images (layout {self.layout}); expected class scores (N, C), C >= 2")
            if self.classes is None:
                self.classes = y.shape[1]
            elif y.shape[1] != self.classes:
                raise ValueError(f"classifier {self.name}: returned {y.shape[1]} classes, earlier {self.classes}")
            if not np.isfinite(y).all():
                raise ValueError(f"classifier {self.name}: returned NaN or infinite scores")
            out.append(y)
        return np.concatenate(out) if out else np.empty((0, self.classes or 10))


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------

@dataclass
class TaskReport:
    """A classifier evaluated on Morpho-MNIST by perturbation.

    Attributes
    ----------
    accuracy : pandas.DataFrame
        Per group (index): ``n``, ``correct``, ``accuracy``, its 95% Wilson interval ``ci_low``/``ci_high``,
        ``shift`` (accuracy minus the plain accuracy), ``mean_confidence`` (max softmax), ``auroc`` (outlier
        score separating plain from the group; NaN for plain itself) and ``reference`` (the plain group used).
    confusion : dict
        Group -> int64 array (C, C): rows true class, columns predicted.
    digits : pandas.DataFrame
        One row per digit: group, index (in its dataset), label, predicted, correct, confidence, outlier.
    images : dict
        Group -> uint8 (n, 28, 28), kept for views (not in the JSON).
    settings : dict
    """

    accuracy: pd.DataFrame
    confusion: dict
    digits: pd.DataFrame
    images: dict = field(default_factory=dict, repr=False)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from core.analysis._common import json_safe
        from core.report import versions

        acc = self.accuracy.reset_index()
        return json_safe({"kind": "classifier_evaluation", "settings": self.settings, "accuracy": acc,
                          "confusion": {g: m for g, m in self.confusion.items()}, "versions": versions()})

    def to_json(self) -> str:
        from core.report import dumps_json
        return dumps_json(self.to_dict())

    def worst(self, group: str, kind: str = "misclassified", n: int = _MAX_SHOWN) -> pd.DataFrame:
        """Rows of `digits` for `group`: the misclassified ones (most confident first) or the most
        outlying ones (``kind="outlying"``, highest outlier score first)."""
        d = self.digits[self.digits["group"] == group]
        if kind == "misclassified":
            return d[~d["correct"]].sort_values("confidence", ascending=False, kind="stable").head(n)
        if kind == "outlying":
            return d.sort_values("outlier", ascending=False, kind="stable").head(n)
        raise ValueError(f"kind must be 'misclassified' or 'outlying'; got {kind!r}")

    def to_html(self) -> str:
        from core.report import _dl, _esc, _page, _table

        parts = [f"<h1>Classifier on Morpho-MNIST: {_esc(self.settings.get('classifier', ''))}</h1>",
                 "<p class='muted'>Accuracy by perturbation (95% Wilson interval), its shift from plain (domain "
                 "shift), and the AUROC with which the outlier score separates plain digits from each "
                 "perturbation (0.5: indistinguishable; 1: perfectly flagged).</p>",
                 "<h2>By perturbation</h2>", _table(self.accuracy, index=True, left=("reference",))]
        parts.append("<h2>Confusion by perturbation</h2><div class='figs'>")
        for g, m in self.confusion.items():
            df = pd.DataFrame(m, index=pd.Index(range(len(m)), name="true \\ predicted"),
                              columns=[str(c) for c in range(m.shape[1])])
            parts.append(f"<div><b>{_esc(g)}</b>{_table(df, index=True, formats={c: str for c in df.columns})}</div>")
        parts.append("</div>")
        parts.append("<h2>Misclassified and most outlying digits (indices in their dataset)</h2>")
        rows = []
        for g in self.accuracy.index:
            mis = self.worst(g, "misclassified", 10)
            out = self.worst(g, "outlying", 10)
            rows.append({"group": g, "misclassified (label→predicted)":
                         ", ".join(f"{i} ({a}→{b})" for i, a, b in zip(mis["index"], mis["label"], mis["predicted"])),
                         "most outlying": ", ".join(str(i) for i in out["index"])})
        parts.append(_table(pd.DataFrame(rows), left=tuple(rows[0]) if rows else ()))
        parts.append("<h2>Settings</h2>" + _dl(self.settings))
        return _page("Classifier on Morpho-MNIST", "".join(parts))

    def save(self, path) -> Path:
        """Write the report as HTML (``.html``/``.htm``) or JSON (``.json``), atomically."""
        from core.report import write_text

        suffix = Path(path).suffix.lower()
        if suffix not in (".html", ".htm", ".json"):
            raise ValueError(f"report path must end in .html or .json; got {str(path)!r}")
        return write_text(path, self.to_json() if suffix == ".json" else self.to_html())


def _reference_group(group: str, names: list) -> Optional[str]:
    if ":" in group:
        own = group.split(":")[0] + ":plain"
        if own in names:
            return own
    for cand in ("plain", "data:plain"):
        if cand in names:
            return cand
    return next((n for n in names if n.endswith(":plain")), None)


def evaluate_classifier(classifier, datasets, *, outlier_score: Optional[Callable] = None,
                        split: Optional[str] = "t10k", limit: Optional[int] = None,
                        input_range: str = "[0,1]", layout: Optional[str] = None, batch_size: int = 500,
                        name: Optional[str] = None) -> TaskReport:
    """Evaluate a digit classifier on the Morpho-MNIST datasets, by perturbation.

    Parameters
    ----------
    classifier : callable, torch.nn.Module, str or os.PathLike
        Anything :func:`core.decoders.as_array_function` adapts; it maps images (float32 in `layout`,
        values in `input_range`) to class scores (N, C), logits or probabilities.
    datasets : folder, dict or tuple
        See :func:`load_task_datasets`.
    outlier_score : callable, optional
        ``outlier_score(images uint8 (n, 28, 28), scores (n, C)) -> (n,)``, higher = more outlying.
        Default: minus the maximum softmax probability.
    split, limit
        See :func:`load_task_datasets`.
    input_range : {"[0,1]", "[-1,1]", "uint8"}
    layout : {"N,28,28", "N,1,28,28", "N,28,28,1", "N,784"}, optional
    batch_size : int
    name : str, optional
        The classifier's name in the report.

    Returns
    -------
    TaskReport
    """
    clf = _Classifier(classifier, layout, input_range, batch_size, name)
    groups = load_task_datasets(datasets, split=split, limit=limit)
    if outlier_score is not None and not callable(outlier_score):
        raise ValueError(f"outlier_score must be callable (images, scores) -> (n,); got {outlier_score!r}")
    rows, confusion, frames, images = [], {}, [], {}
    per = {}
    for g, imgs, labels, idx in groups:
        scores = clf.scores(imgs)
        C = scores.shape[1]
        if len(labels) and (labels.min() < 0 or labels.max() >= C):
            raise ValueError(f"{g}: labels in [{labels.min()}, {labels.max()}] but the classifier gives {C} classes")
        prob = _softmax(scores)
        pred = scores.argmax(axis=1)
        conf = prob.max(axis=1)
        if outlier_score is None:
            out = -conf
        else:
            out = np.asarray(outlier_score(imgs, scores), dtype=np.float64).reshape(-1)
            if out.shape != (len(imgs),):
                raise ValueError(f"outlier_score returned shape {out.shape} for {len(imgs)} images")
        cm = np.zeros((C, C), np.int64)
        np.add.at(cm, (labels, pred), 1)
        confusion[g] = cm
        per[g] = out
        images[g] = imgs
        frames.append(pd.DataFrame({"group": g, "index": idx, "label": labels, "predicted": pred,
                                    "correct": pred == labels, "confidence": conf, "outlier": out}))
        k, n = int((pred == labels).sum()), len(labels)
        lo, hi = _wilson(k, n)
        rows.append({"group": g, "n": n, "correct": k, "accuracy": k / n if n else float("nan"),
                     "ci_low": lo, "ci_high": hi, "mean_confidence": float(conf.mean()) if n else float("nan")})
    acc = pd.DataFrame(rows).set_index("group")
    names = list(acc.index)
    refs = [_reference_group(g, names) for g in names]
    acc["shift"] = [acc.at[g, "accuracy"] - acc.at[r, "accuracy"] if r else float("nan") for g, r in zip(names, refs)]
    acc["auroc"] = [auroc(per[r], per[g]) if r and r != g else float("nan") for g, r in zip(names, refs)]
    acc["reference"] = [r or "" for r in refs]
    settings = {"classifier": clf.name, "adapter": clf.kind, "layout": clf.layout, "input_range": input_range,
                "outlier_score": "minus max softmax" if outlier_score is None
                else getattr(outlier_score, "__name__", type(outlier_score).__name__),
                "datasets": str(datasets) if isinstance(datasets, (str, os.PathLike)) else "arrays",
                "split": split or "all", "limit": limit if limit is not None else "none"}
    return TaskReport(acc, confusion, pd.concat(frames, ignore_index=True), images, settings)
