"""The misclassified and most outlying digits of a classifier, by perturbation (a :class:`core.tasks.TaskReport`).

    from core.tasks import evaluate_classifier
    from explorer.evaluate import EvaluateView
    EvaluateView(report=evaluate_classifier(model, "path/to/morpho-mnist"))

The accuracy table heads the view; a perturbation and a kind (misclassified, most confident first; or most
outlying, highest outlier score first) pick the digits shown, each with its index in its dataset, label,
prediction and confidence. Only fixed choices and numbers reach the page; text is escaped.
"""
from __future__ import annotations

import base64

import numpy as np
import panel as pn
import param

from explorer.counterfactuals import digit_png
from explorer.gate import escape_html

__all__ = ["EvaluateView", "accuracy_table"]

_PX = 84
_SHOWN = 24


def accuracy_table(report) -> str:
    """The per-perturbation accuracy, shift and AUROC as an HTML table (escaped)."""
    def f(v):
        return "–" if not np.isfinite(v) else f"{v:.3f}"
    rows = "".join(f"<tr><td class='s'>{escape_html(str(g))}</td><td>{int(r['n'])}</td><td>{f(r['accuracy'])}</td>"
                   f"<td>{f(r['ci_low'])}–{f(r['ci_high'])}</td><td>{f(r['shift'])}</td><td>{f(r['auroc'])}</td></tr>"
                   for g, r in report.accuracy.iterrows())
    return ("<table class='cf'><tr><th class='s'>perturbation</th><th>n</th><th>accuracy</th><th>95% CI</th>"
            "<th>shift from plain</th><th>AUROC vs plain</th></tr>" + rows + "</table>")


class EvaluateView(pn.viewable.Viewer):
    """A classifier's misclassified and most outlying digits by perturbation.

    Parameters
    ----------
    report : core.tasks.TaskReport
    """

    report = param.Parameter(doc="A core.tasks.TaskReport (with its images).")

    def __init__(self, **params):
        super().__init__(**params)
        groups = list(self.report.accuracy.index)
        self.group = pn.widgets.Select(name="Perturbation", options=groups, value=groups[0], width=200)
        self.kind = pn.widgets.RadioButtonGroup(options=["misclassified", "outlying"], value="misclassified")
        self.table = pn.pane.HTML(accuracy_table(self.report))
        self.grid = pn.pane.HTML("", css_classes=["eval-grid"])
        self.group.param.watch(lambda e: self._draw(), "value")
        self.kind.param.watch(lambda e: self._draw(), "value")
        self._draw()

    def _draw(self):
        g = self.group.value
        rows = self.report.worst(g, self.kind.value, _SHOWN)
        images = self.report.images.get(g)
        if images is None or not len(rows):
            self.grid.object = f"<p>No {escape_html(self.kind.value)} digits in {escape_html(str(g))}.</p>"
            return
        pos = {int(i): k for k, i in enumerate(self.report.digits.loc[self.report.digits["group"] == g, "index"])}
        cells = []
        for _, r in rows.iterrows():
            png = base64.b64encode(digit_png(images[pos[int(r['index'])]], _PX)).decode()
            cells.append(f"<figure style='margin:4px;text-align:center;font-size:11px'>"
                         f"<img width='{_PX}' height='{_PX}' src='data:image/png;base64,{png}'>"
                         f"<figcaption>#{int(r['index'])}: {int(r['label'])}→{int(r['predicted'])} "
                         f"({r['confidence']:.2f})</figcaption></figure>")
        self.grid.object = "<div style='display:flex;flex-wrap:wrap'>" + "".join(cells) + "</div>"

    def __panel__(self):
        return pn.Column(self.table, pn.Row(self.group, self.kind), self.grid, sizing_mode="stretch_width")
