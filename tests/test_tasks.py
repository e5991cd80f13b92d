"""core.tasks: a classifier's accuracy, confusion and outlier AUROC by perturbation; morpho evaluate."""
import json

import numpy as np
import pytest

from core import io, tasks
from core.datasets import generate


@pytest.fixture(scope="module")
def morpho(sample_images, sample_labels, tmp_path_factory):
    """The seven Morpho-MNIST datasets of 1,000 bundled digits (every 5th: 100 per class) and a nearest class
    mean classifier fitted on the other 4,000."""
    root = tmp_path_factory.mktemp("tasks")
    src = root / "mnist"
    src.mkdir()
    held = np.arange(0, 5000, 5)
    io.save_idx(sample_images[held], src / "t10k-images-idx3-ubyte.gz")
    io.save_idx(sample_labels[held], src / "t10k-labels-idx1-ubyte.gz")
    generate(src, root / "mm", splits=["t10k"], measure=False, progress=False)
    fit = np.setdiff1d(np.arange(5000), held)
    x = sample_images[fit].reshape(-1, 784) / 255.
    means = np.stack([x[sample_labels[fit] == c].mean(0) for c in range(10)])

    def nearest_class_mean(images):
        flat = images.reshape(len(images), -1)
        return -((flat[:, None, :] - means[None]) ** 2).sum(-1)
    nearest_class_mean.means = means
    return root / "mm", nearest_class_mean


def test_auroc_is_the_mann_whitney_statistic():
    assert tasks.auroc([0, 1, 2], [3, 4]) == 1.
    assert tasks.auroc([3, 4], [0, 1, 2]) == 0.
    assert tasks.auroc([1, 2], [1, 2]) == .5
    assert tasks.auroc([0, 2], [1]) == .5
    assert np.isnan(tasks.auroc([], [1.]))


def test_nearest_class_mean_loses_accuracy_on_fractures_and_swelling(morpho):
    folder, clf = morpho
    rep = tasks.evaluate_classifier(clf, folder)
    acc = rep.accuracy
    assert set(acc.index) >= {"plain", "thin", "thic", "swel", "frac", "global:plain", "local:frac"}
    assert (acc.loc[["plain", "thin", "thic", "swel", "frac"], "n"] == 1000).all()
    plain = acc.at["plain", "accuracy"]
    assert .7 < plain < .95   # a nearest class mean on raw pixels
    for g in ("swel", "frac", "thin", "thic"):
        assert acc.at[g, "accuracy"] < plain, g
        assert acc.at[g, "shift"] == pytest.approx(acc.at[g, "accuracy"] - plain)
    # the digits are the same: the fall is paired, more digits lost than gained
    d = rep.digits.set_index(["group", "index"])["correct"]
    for g in ("swel", "frac"):
        lost = int((d["plain"] & ~d[g]).sum())
        gained = int((~d["plain"] & d[g]).sum())
        assert lost > 2 * gained, (g, lost, gained)
    # thinning hurts most and its digits are the most confidently flagged as outliers
    assert acc["accuracy"].idxmin() in ("thin", "global:thin")
    assert acc.at["thin", "auroc"] > .6
    # confusion matrices add up to the group sizes and their diagonals to the accuracies
    for g, m in rep.confusion.items():
        assert m.shape == (10, 10) and m.sum() == acc.at[g, "n"]
        assert np.trace(m) == acc.at[g, "correct"]
    # interleaved datasets are scored against their own plain digits
    assert acc.at["local:frac", "reference"] == "local:plain"
    assert np.isnan(acc.at["plain", "auroc"])


def test_arrays_with_perturbation_labels_and_a_custom_outlier_score(morpho, sample_images, sample_labels):
    folder, clf = morpho
    imgs = sample_images[::50]
    perts = np.array(["plain", "frac"] * 50)
    rep = tasks.evaluate_classifier(clf, (imgs, sample_labels[::50], perts),
                                    outlier_score=lambda images, scores: -images.astype(float).sum(axis=(1, 2)))
    assert list(rep.accuracy.index) == ["plain", "frac"]
    assert rep.accuracy.at["frac", "n"] == 50
    assert rep.settings["outlier_score"] == "<lambda>"
    codes = tasks.evaluate_classifier(clf, (imgs, sample_labels[::50], np.array([0, 4] * 50)))
    assert list(codes.accuracy.index) == ["plain", "frac"]
    np.testing.assert_array_equal(codes.confusion["frac"], tasks.evaluate_classifier(
        clf, {"frac": (imgs[1::2], sample_labels[::50][1::2])}).confusion["frac"])


@pytest.mark.parametrize("bad, match", [
    (lambda x: np.zeros(len(x)), r"expected class scores \(N, C\)"),
    (lambda x: np.full((len(x), 10), np.nan), "NaN or infinite"),
    (lambda x: np.zeros((len(x), 3)), "labels in"),
])
def test_bad_classifier_outputs_are_named(morpho, sample_images, sample_labels, bad, match):
    with pytest.raises(ValueError, match=match):
        tasks.evaluate_classifier(bad, {"plain": (sample_images[2500:2510], sample_labels[2500:2510])})


def test_bad_datasets_are_named(morpho, sample_images, sample_labels, tmp_path):
    _, clf = morpho
    with pytest.raises(ValueError, match="perturbation code 7"):
        tasks.evaluate_classifier(clf, (sample_images[:2], sample_labels[:2], np.array([0, 7])))
    with pytest.raises(ValueError, match="interleaved dataset needs its perturbation labels"):
        tasks.evaluate_classifier(clf, {"global": (sample_images[:2], sample_labels[:2])})
    with pytest.raises(FileNotFoundError):
        tasks.evaluate_classifier(clf, tmp_path / "nothing")
    with pytest.raises(ValueError, match="input_range must be one of"):
        tasks.evaluate_classifier(clf, tmp_path, input_range="0-255")


def test_morpho_evaluate_writes_html_and_json(morpho, tmp_path, monkeypatch, capsys):
    import sys
    import types

    from core.cli import main

    folder, clf = morpho
    mod = types.ModuleType("h21_test_classifier")
    mod.ncm = clf
    monkeypatch.setitem(sys.modules, "h21_test_classifier", mod)
    out = tmp_path / "report.json"
    assert main(["evaluate", str(folder), "--classifier", "h21_test_classifier:ncm", "-o", str(out), "-q"]) == 0
    data = json.loads(out.read_text())
    rows = {r["group"]: r for r in data["accuracy"]}
    assert rows["frac"]["accuracy"] < rows["plain"]["accuracy"]
    assert "frac" in capsys.readouterr().out
    html_out = tmp_path / "report.html"
    assert main(["evaluate", str(folder), "--classifier", "h21_test_classifier:ncm", "-o", str(html_out), "-q",
                 "--limit", "50"]) == 0
    text = html_out.read_text()
    assert "Confusion by perturbation" in text and "<script" not in text
    assert main(["evaluate", str(folder), "--classifier", "h21_test_classifier:ncm", "-o", str(html_out),
                 "-q"]) == 1   # exists: refused without --force
    assert main(["evaluate", str(folder), "--classifier", "no_such_module_h21:f", "-q"]) == 1


def test_the_same_classifier_as_onnx_file_and_torch_module_scores_alike(morpho, tmp_path):
    """The decoders' adapters, generalised: nearest class mean as a linear layer, argmax of 2 m.x - |m|^2."""
    onnx = pytest.importorskip("onnx", reason="optional: pip install .[onnx] onnx")
    pytest.importorskip("onnxruntime", reason="optional: pip install .[onnx]")
    torch = pytest.importorskip("torch", reason="optional: torch")
    from onnx import TensorProto, helper, numpy_helper

    folder, clf = morpho
    means = clf.means.astype(np.float32)
    w, b = (2 * means).T.copy(), -(means ** 2).sum(1)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["scores"])], "ncm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(np.array([-1, 784], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "ncm.onnx"))
    linear = torch.nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T.copy()))
        linear.bias.copy_(torch.from_numpy(b))
    module = torch.nn.Sequential(torch.nn.Flatten(), linear)
    want = tasks.evaluate_classifier(clf, folder, limit=300)
    for model_in, kind, layout in ((tmp_path / "ncm.onnx", "onnx", "N,1,28,28"), (module, "torch", "N,1,28,28")):
        got = tasks.evaluate_classifier(model_in, folder, limit=300)
        assert got.settings["adapter"] == kind and got.settings["layout"] == layout
        # float32 against float64 distances: at most a digit or two flips between near-equal classes
        diff = np.abs(got.accuracy["accuracy"] - want.accuracy["accuracy"]).max()
        assert diff <= 2 / 300, (kind, diff)
    with pytest.raises(Exception, match="pickle"):
        (tmp_path / "m.pt").write_bytes(b"\x80\x02junk")
        tasks.evaluate_classifier(tmp_path / "m.pt", folder)
