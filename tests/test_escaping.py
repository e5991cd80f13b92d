"""Text a visitor or a model's file supplies (a sample's name, its provenance) is shown literally in the offline
HTML report: escaped, never markup."""
import numpy as np

from core.analysis import compare_report
from core.measure import METRICS

HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"


def test_report_html_shows_hostile_provenance_as_text(published_metrics):
    metrics = published_metrics[list(METRICS)]
    labels = np.arange(len(metrics)) % 10
    rep = compare_report(metrics.iloc[::2].reset_index(drop=True), metrics.iloc[1::2].reset_index(drop=True),
                         sample_labels=labels[::2], reference_labels=labels[1::2], n_permutations=99,
                         provenance={"samples": HOSTILE, "reference": "MNIST test digits"})
    html = rep.to_html()
    assert "<img" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;" in html
