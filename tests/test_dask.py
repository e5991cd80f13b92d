"""Running on a Dask distributed cluster (a real LocalCluster of 2 worker processes on 127.0.0.1): results
are identical to a local run, and chunks are streamed (only a few in flight at once)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from core import datasets  # noqa: E402
from core.cli import main  # noqa: E402
from core.io import load_idx, save_idx  # noqa: E402
from core.measure import measure_batch  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mnist-5k"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def mnist():
    return load_idx(ASSETS / "train-images-idx3-ubyte.gz"), load_idx(ASSETS / "train-labels-idx1-ubyte.gz")


@pytest.fixture
def small(tmp_path, mnist):
    """200 real digits (all classes) as a train split, and a 20 + 12 digit MNIST_DIR."""
    images, labels = mnist
    pick = np.arange(0, 5000, 25)
    folder = tmp_path / "mnist"
    folder.mkdir()
    save_idx(images[pick], folder / "train-images-idx3-ubyte.gz")
    save_idx(labels[pick], folder / "train-labels-idx1-ubyte.gz")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    save_idx(images[pick[:20]], tiny / "train-images-idx3-ubyte.gz")
    save_idx(labels[pick[:20]], tiny / "train-labels-idx1-ubyte.gz")
    save_idx(images[pick[100:112]], tiny / "t10k-images-idx3-ubyte.gz")
    save_idx(labels[pick[100:112]], tiny / "t10k-labels-idx1-ubyte.gz")
    return folder, tiny, pick


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_measure_batch_with_a_client(client, published_digits, published_metrics):
    images = published_digits[0][::5]
    local = measure_batch(images, workers=1, progress=False)
    remote = measure_batch(images, executor=client, progress=False)
    pd.testing.assert_frame_equal(remote, local)
    # the authors' released rows (tests/data/), not a table this project made
    np.testing.assert_allclose(remote.to_numpy(), published_metrics.to_numpy()[::5], rtol=0, atol=1e-9)


def test_cli_measure_on_the_cluster(cluster, small, tmp_path):
    folder, _, _ = small
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert main(["measure", str(folder), "-o", str(local), "--workers", "1", "-q"]) == 0
    assert main(["measure", str(folder), "-o", str(remote), "--scheduler", cluster.scheduler_address,
                 "--chunksize", "60", "-q"]) == 0
    assert remote.read_bytes() == local.read_bytes()


def test_cli_perturb_on_the_cluster(cluster, small, tmp_path):
    folder, _, _ = small
    for name, extra in (("local", ["--workers", "1"]), ("remote", ["--scheduler", cluster.scheduler_address])):
        assert main(["perturb", str(folder), "-p", "fracture", "--seed", "2", "-o", str(tmp_path / name),
                     "--chunksize", "30", "--measure", "-q"] + extra) == 0
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local")


def test_cli_generate_on_the_cluster(cluster, small, tmp_path):
    _, tiny, _ = small
    assert main(["generate", str(tiny), "-o", str(tmp_path / "local"), "--seed", "8", "--workers", "1", "-q"]) == 0
    assert main(["generate", str(tiny), "-o", str(tmp_path / "remote"), "--seed", "8", "--chunksize", "5",
                 "--scheduler", cluster.scheduler_address, "-q"]) == 0
    local = _tree(tmp_path / "local")
    assert len(local) == 53 and _tree(tmp_path / "remote") == local


def test_chunks_are_streamed(client, mnist, tmp_path):
    """map_ordered draws chunks lazily: when the first result arrives at most `max_pending` chunks were read."""
    path = tmp_path / "s-images-idx3-ubyte.gz"
    save_idx(mnist[0][:400], path)
    drawn = []

    def tasks():
        for start, chunk in datasets.iter_idx_chunks(path, 20):
            drawn.append(start)
            yield chunk, start, 0, 1, "thinning", {}

    results = datasets.map_ordered(datasets.perturb_chunk, tasks(), client, max_pending=3)
    first = next(results)
    assert len(drawn) <= 3 and first.shape == (20, 28, 28)
    rest = list(results)
    assert len(drawn) == 20 and sum(len(r) for r in rest) == 380
    local = datasets.perturb_chunk(mnist[0][:400], 0, 0, 1, "thinning", {})
    np.testing.assert_array_equal(np.concatenate([first] + rest), local)


def test_unreachable_scheduler(tmp_path, small, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder, _, _ = small
    assert main(["measure", str(folder), "-o", str(tmp_path / "x.csv"), "--scheduler", f"tcp://127.0.0.1:{port}",
                 "--connect-timeout", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot connect to the Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert not (tmp_path / "x.csv").exists()
