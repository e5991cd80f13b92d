"""The explorer renders in Jupyter: execute docs/explorer.ipynb with nbclient on a real kernel."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from explorer.data import load_sample

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "explorer.ipynb"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Strip any stored outputs: everything checked below comes from this run.
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def outputs(cell):
    return [json.dumps(o) for o in cell.get("outputs", [])]


def test_notebook_runs_without_errors(executed):
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", "".join(out.get("traceback", []))


def test_explorer_renders_inline_and_offline(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    setup = "".join(outputs(code[0]))
    # inline=True: Bokeh and Panel JavaScript come with the notebook, not from a CDN.
    assert "application/javascript" in setup and len(setup) > 500_000
    app = "".join(outputs(code[1]))
    assert "application/vnd.holoviews_exec.v0+json" in app  # a live Panel view, not a static repr
    # The dataset line names the sample and its size (its separators are JSON-escaped in the output).
    assert "MNIST sample" in app and "5,000 digits" in app
    assert "Perturbation studio" in app and "Distributions" in app


def test_single_views_share_state_in_a_notebook(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    sevens = int((load_sample().labels == 7).sum())
    first_seven = int(np.flatnonzero(load_sample().labels == 7)[0])
    assert f"Digit #{first_seven:,}" in "".join(outputs(code[2]))
    assert "application/vnd.holoviews_exec.v0+json" in "".join(outputs(code[3]))
    printed = "".join(o.get("text", "") for o in code[4].outputs)
    assert printed.strip() == f"{sevens} sevens; current digit {first_seven}"
