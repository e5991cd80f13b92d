"""The ``morpho`` command line, on real MNIST digits from the bundled sample (assets/mnist-5k)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.measure
from core.cli import main
from core.io import load_idx, save_idx
from core.measure import measure_batch
from core.morpho import ImageMorphology
from core.perturb import Swelling, Thinning

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"
HEADER = "index,area,length,thickness,slant,width,height"
SUBCOMMANDS = ["measure", "perturb", "generate", "download", "info", "serve", "compare", "traverse"]


@pytest.fixture(scope="module")
def mnist():
    return load_idx(ASSETS / "train-images-idx3-ubyte.gz"), load_idx(ASSETS / "train-labels-idx1-ubyte.gz")


@pytest.fixture
def digits(tmp_path, mnist):
    """150 real digits (every 33rd of the sample: all classes) with labels, in a t10k-named folder."""
    images, labels = mnist
    pick = np.arange(0, 5000, 33)[:150]
    folder = tmp_path / "data"
    folder.mkdir()
    save_idx(images[pick], folder / "t10k-images-idx3-ubyte.gz")
    save_idx(labels[pick], folder / "t10k-labels-idx1-ubyte.gz")
    return folder, pick


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder where files cannot be created (permission bits, or a read-only mount when we are root)."""
    if os.geteuid() != 0:
        d = tmp_path / "locked"
        d.mkdir()
        d.chmod(0o555)
        return d
    for cand in (Path("/sys/fs"), Path("/sys"), Path("/proc/self")):
        try:
            fd, p = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(p)
    pytest.skip("no unwritable folder available to root here")


# ---- help and usage -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help_on_every_subcommand(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: morpho {cmd}")


def test_console_script_installed():
    result = subprocess.run(["morpho", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and all(c in result.stdout for c in SUBCOMMANDS)


def test_usage_errors(capsys):
    assert main([]) == 2
    assert main(["measure"]) == 2
    assert main(["measure", "x", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert main(["generate", "x", "-o", "y", "--seed", "-3"]) == 2
    assert "non-negative" in capsys.readouterr().err


# ---- measure --------------------------------------------------------------------------------------------

def test_measure_reproduces_the_published_table(published_digits, published_metrics, tmp_path, capsys):
    """`morpho measure` gives the authors' released rows (tests/data/) of 150 MNIST test digits."""
    pick = np.arange(0, 1000, 5)[:150]
    folder = tmp_path / "data"
    folder.mkdir()
    save_idx(published_digits[0][pick], folder / "t10k-images-idx3-ubyte.gz")
    out = tmp_path / "m.csv"
    assert main(["measure", str(folder / "t10k-images-idx3-ubyte.gz"), "-o", str(out), "--workers", "1",
                 "--chunksize", "40", "-q"]) == 0
    text = out.read_text()
    assert text.splitlines()[0] == HEADER
    table = pd.read_csv(out, index_col="index")
    assert table.index.tolist() == list(range(150))
    np.testing.assert_allclose(table.to_numpy(), published_metrics.to_numpy()[pick], rtol=0, atol=1e-9)
    # standard output gives the same bytes; a folder with one image file is accepted
    assert main(["measure", str(folder), "--workers", "1", "-q"]) == 0
    assert capsys.readouterr().out == text
    assert not list(tmp_path.glob("*.partial*"))


def test_measure_workers_give_identical_bytes(digits, tmp_path):
    folder, _ = digits
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["measure", str(folder), "-o", str(a), "--workers", "1", "-q"]) == 0
    assert main(["measure", str(folder), "-o", str(b), "--workers", "2", "--chunksize", "32", "-q"]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_measure_upstream_mode(digits, tmp_path):
    folder, _ = digits
    out = tmp_path / "up.csv"
    assert main(["measure", str(folder), "-o", str(out), "--mode", "upstream", "--workers", "1", "-q"]) == 0
    images = load_idx(folder / "t10k-images-idx3-ubyte.gz")
    expected = measure_batch(images, mode="upstream", workers=1, progress=False)
    np.testing.assert_array_equal(pd.read_csv(out, index_col="index").to_numpy(), expected.to_numpy())


def test_measure_resumes_after_interrupt(digits, tmp_path, monkeypatch, capsys):
    folder, _ = digits
    full = tmp_path / "full.csv"
    assert main(["measure", str(folder), "-o", str(full), "--workers", "1", "-q"]) == 0
    out = tmp_path / "out.csv"
    sizes = []
    interrupt_at = [3]
    real = core.measure.measure_batch

    def interrupted(images, **kw):
        sizes.append(len(images))
        if len(sizes) == interrupt_at[0]:
            raise KeyboardInterrupt
        return real(images, **kw)

    monkeypatch.setattr(core.measure, "measure_batch", interrupted)
    argv = ["measure", str(folder), "-o", str(out), "--workers", "1", "--chunksize", "25", "-q"]
    assert main(argv) == 130
    assert "interrupted after 50 of 150 digits" in capsys.readouterr().err
    assert not out.exists()
    partial = tmp_path / "out.csv.partial"
    assert partial.read_text().count("\n") == 51
    sizes.clear()
    interrupt_at[0] = None
    assert main(argv) == 0
    assert sizes == [25, 25, 25, 25]  # only the 100 missing digits were measured
    assert out.read_bytes() == full.read_bytes()
    assert not partial.exists() and not (tmp_path / "out.csv.partial.json").exists()


def test_measure_resumes_after_the_process_is_killed(tmp_path, published_digits, published_metrics):
    """A real `morpho measure` process is killed (SIGKILL) part-way; running it again completes the table,
    which is the authors' released one (MNIST test digits 0..999, three times over)."""
    images = np.tile(published_digits[0], (3, 1, 1))
    src = tmp_path / "train-images-idx3-ubyte.gz"
    save_idx(images, src)
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    cmd = [sys.executable, "-m", "core.cli", "measure", str(src), "-o", str(out), "--workers", "1",
           "--chunksize", "20", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists():
            rows = partial.read_text().count("\n") - 1
            if rows >= 60:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert rows >= 60 and not out.exists(), "the run should have been killed part-way"
    # simulate a torn write of the last row
    with open(partial, "ab") as f:
        f.write(b"1234,56.0,12")
    result = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    table = pd.read_csv(out, index_col="index")
    assert table.index.tolist() == list(range(3000))
    np.testing.assert_allclose(table.to_numpy(), np.tile(published_metrics.to_numpy(), (3, 1)), rtol=0, atol=1e-9)


def test_measure_refuses_partial_of_other_images(digits, tmp_path, mnist, capsys):
    folder, _ = digits
    out = tmp_path / "o.csv"
    (tmp_path / "o.csv.partial").write_text(HEADER + "\n0,1,2,3,4,5,6\n")
    (tmp_path / "o.csv.partial.json").write_text('{"count": 3}')
    assert main(["measure", str(folder), "-o", str(out), "-q", "--workers", "1"]) == 1
    assert "left from a run on other images" in capsys.readouterr().err
    assert main(["measure", str(folder), "-o", str(out), "-q", "--workers", "1", "--force"]) == 0
    assert len(pd.read_csv(out)) == 150


def test_measure_never_overwrites_without_force(digits, tmp_path, capsys):
    folder, _ = digits
    out = tmp_path / "o.csv"
    out.write_text("precious")
    assert main(["measure", str(folder), "-o", str(out), "-q"]) == 1
    assert "exists already; use --force" in capsys.readouterr().err
    assert out.read_text() == "precious"


def test_measure_errors(tmp_path, mnist, capsys):
    assert main(["measure", str(tmp_path / "missing.gz"), "-q"]) == 1
    assert "missing.gz: no such file or folder" in capsys.readouterr().err
    bad = tmp_path / "bad-images-idx3-ubyte.gz"
    save_idx(mnist[0][:30], bad)
    bad.write_bytes(bad.read_bytes()[:200])
    assert main(["measure", str(bad), "-o", str(tmp_path / "x.csv"), "-q", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and not (tmp_path / "x.csv").exists()
    locked = _unwritable_folder(tmp_path)
    good = tmp_path / "good-images-idx3-ubyte.gz"
    save_idx(mnist[0][:5], good)
    assert main(["measure", str(good), "-o", str(locked / "x.csv"), "-q"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_measure_reports_blank_digits(tmp_path, mnist, capsys):
    images = mnist[0][:10].copy()
    images[4] = 0
    src = tmp_path / "b-images-idx3-ubyte"
    save_idx(images, src)
    out = tmp_path / "b.csv"
    assert main(["measure", str(src), "-o", str(out), "--workers", "1", "--chunksize", "3", "-q"]) == 0
    assert "1 of 10 digits could not be measured" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[5] == "4,,,,,,"


# ---- info -----------------------------------------------------------------------------------------------

def test_info_on_the_bundled_sample(capsys):
    assert main(["info", str(ASSETS)]) == 0
    out = capsys.readouterr().out
    assert "train-images-idx3-ubyte.gz: IDX, gzip-compressed, uint8 array of shape (5000, 28, 28)" in out
    assert "5000 items of shape (28, 28), values 0..255" in out
    assert "5000 values; counts " + ", ".join(f"{d}: 500" for d in range(10)) in out
    assert "train-morpho.csv: morphometrics table, 5000 rows" in out
    assert "counts agree" in out
    ref = pd.read_csv(ASSETS / "train-morpho.csv")
    assert f"{ref['thickness'].mean():9.3f}" in out


def test_info_on_files(tmp_path, capsys):
    assert main(["info", str(ASSETS / "train-labels-idx1-ubyte.gz")]) == 0
    assert "uint8 array of shape (5000,)" in capsys.readouterr().out
    assert main(["info", str(ASSETS / "train-morpho.csv")]) == 0
    assert "5000 rows" in capsys.readouterr().out
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x1f\x8bnot really")
    assert main(["info", str(junk)]) == 1
    assert "junk.bin" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nothing")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_info_folder_problems(tmp_path, mnist, capsys):
    images, labels = mnist
    save_idx(images[:20], tmp_path / "train-images-idx3-ubyte.gz")
    assert main(["info", str(tmp_path)]) == 0
    assert "no label file" in capsys.readouterr().out
    save_idx(labels[:19], tmp_path / "train-labels-idx1-ubyte.gz")
    assert main(["info", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "20 images but train-labels-idx1-ubyte.gz holds 19 labels" in captured.err
    assert "uint8 array of shape (19,)" in captured.out  # what was found is still shown


# ---- perturb --------------------------------------------------------------------------------------------

def test_perturb_thinning_exact(digits, tmp_path, capsys):
    folder, _ = digits
    out = tmp_path / "thin"
    assert main(["perturb", str(folder / "t10k-images-idx3-ubyte.gz"), "--perturbation", "thinning",
                 "--amount", ".5", "-o", str(out), "--workers", "1", "--measure", "-q"]) == 0
    raw = load_idx(folder / "t10k-images-idx3-ubyte.gz")
    result = load_idx(out / "t10k-images-idx3-ubyte.gz")
    for img, got in zip(raw[:40], result[:40]):
        morph = ImageMorphology(img, .5, 4)
        np.testing.assert_array_equal(got, morph.downscale(Thinning(.5)(morph)))
    np.testing.assert_array_equal(load_idx(out / "t10k-labels-idx1-ubyte.gz"),
                                  load_idx(folder / "t10k-labels-idx1-ubyte.gz"))
    metrics = pd.read_csv(out / "t10k-morpho.csv", index_col="index")
    np.testing.assert_array_equal(metrics.to_numpy(), measure_batch(result, workers=1, progress=False).to_numpy())
    assert "thinning(amount=0.5)" in (out / "README.md").read_text()
    # again: refused without --force
    assert main(["perturb", str(folder), "-p", "thin", "-o", str(out), "-q"]) == 1
    assert "exist already" in capsys.readouterr().err


def test_perturb_swelling_seeded(digits, tmp_path):
    folder, _ = digits
    runs = {}
    for name, extra in (("a", ["--workers", "1"]), ("b", ["--workers", "2", "--chunksize", "13"]),
                        ("c", ["--workers", "1", "--seed", "4"])):
        out = tmp_path / name
        seed = [] if "--seed" in extra else ["--seed", "3"]
        assert main(["perturb", str(folder), "-p", "swel", "--radius", "5", "-o", str(out), "-q"] + seed + extra) == 0
        runs[name] = (out / "t10k-images-idx3-ubyte.gz").read_bytes()
    assert runs["a"] == runs["b"]  # same seed, other workers and chunks: same bytes
    assert runs["a"] != runs["c"]
    raw = load_idx(folder / "t10k-images-idx3-ubyte.gz")
    result = load_idx(tmp_path / "a" / "t10k-images-idx3-ubyte.gz")
    for i in (0, 77, 149):  # t10k is split 1; swelling's key is 3
        morph = ImageMorphology(raw[i], .5, 4)
        expected = morph.downscale(Swelling(3, 5, rng=np.random.default_rng([3, 1, i, 3]))(morph))
        np.testing.assert_array_equal(result[i], expected)


def test_perturb_errors(digits, tmp_path, capsys):
    folder, _ = digits
    # usage errors (exit 2), found before any output is made
    assert main(["perturb", str(folder), "-p", "melting", "-o", str(tmp_path / "x"), "-q"]) == 2
    assert "unknown perturbation 'melting'" in capsys.readouterr().err
    assert main(["perturb", str(folder), "-p", "thinning", "--radius", "3", "-o", str(tmp_path / "x"), "-q"]) == 2
    assert "--radius is not a parameter of thinning" in capsys.readouterr().err
    assert main(["perturb", str(folder), "-p", "fracture", "--num-frac", "two", "-o", str(tmp_path / "x"), "-q"]) == 2
    assert "expected an integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    locked = _unwritable_folder(tmp_path)
    assert main(["perturb", str(folder), "-p", "thinning", "-o", str(locked / "out"), "-q"]) == 1
    assert str(locked) in capsys.readouterr().err


def test_perturb_mismatched_labels(tmp_path, mnist, capsys):
    images, labels = mnist
    save_idx(images[:10], tmp_path / "train-images-idx3-ubyte.gz")
    save_idx(labels[:12], tmp_path / "train-labels-idx1-ubyte.gz")
    assert main(["perturb", str(tmp_path), "-p", "thickening", "-o", str(tmp_path / "o"), "-q"]) == 1
    assert "10 images but train-labels-idx1-ubyte.gz holds 12 labels" in capsys.readouterr().err
    assert not (tmp_path / "o" / "train-images-idx3-ubyte.gz").exists()


# ---- generate -------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_mnist(tmp_path, mnist):
    images, labels = mnist
    folder = tmp_path / "mnist"
    folder.mkdir()
    pick = np.arange(3, 5000, 173)
    save_idx(images[pick[:20]], folder / "train-images-idx3-ubyte.gz")
    save_idx(labels[pick[:20]], folder / "train-labels-idx1-ubyte.gz")
    save_idx(images[pick[20:]], folder / "t10k-images-idx3-ubyte.gz")
    save_idx(labels[pick[20:]], folder / "t10k-labels-idx1-ubyte.gz")
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_cli_deterministic(tiny_mnist, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["generate", str(tiny_mnist), "-o", str(a), "--seed", "11", "--workers", "1", "-q"]) == 0
    assert main(["generate", str(tiny_mnist), "-o", str(b), "--seed", "11", "--workers", "2", "--chunksize", "3",
                 "-q"]) == 0
    ta = _tree(a)
    assert ta == _tree(b)
    assert len(ta) == 53
    assert load_idx(a / "global" / "t10k-pert-idx1-ubyte.gz").shape == (9,)
    # info understands the generated root
    assert main(["info", str(a)]) == 0
    out = capsys.readouterr().out
    assert "7 dataset folder(s)" in out and out.count("counts agree") == 14
    # refuses to overwrite; --force rewrites the same bytes
    assert main(["generate", str(tiny_mnist), "-o", str(a), "--seed", "11", "-q"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["generate", str(tiny_mnist), "-o", str(a), "--seed", "11", "--force", "--workers", "1", "-q"]) == 0
    assert _tree(a) == ta


def test_generate_cli_errors(tmp_path, mnist, capsys):
    images, labels = mnist
    src = tmp_path / "src"
    src.mkdir()
    save_idx(images[:6], src / "t10k-images-idx3-ubyte.gz")
    assert main(["generate", str(src), "-o", str(tmp_path / "out"), "--splits", "t10k", "-q"]) == 1
    assert "t10k-images-idx3-ubyte.gz has no label file" in capsys.readouterr().err
    assert main(["generate", str(src), "-o", str(tmp_path / "out"), "-q"]) == 1
    assert "no train images" in capsys.readouterr().err
    save_idx(labels[:6], src / "t10k-labels-idx1-ubyte.gz")
    locked = _unwritable_folder(tmp_path)
    assert main(["generate", str(src), "-o", str(locked / "out"), "--splits", "t10k", "-q"]) == 1
    assert "out" in capsys.readouterr().err


# ---- serve ----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_answers_where_the_readme_says_and_stops_on_sigterm(tmp_path):
    """``morpho serve`` answers at /explorer (README); SIGTERM to it alone stops the server and every process
    it started (forked server processes, the kernel compiler) and frees the port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", str(ASSETS), "--port", str(port),
                             "--processes", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    group = None
    try:
        deadline = time.monotonic() + 180
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/explorer", timeout=30) as r:
                    page = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert page is not None, proc.stdout.read().decode() if proc.poll() is not None else "no answer"
        assert "<html" in page.lower() and "bokeh" in page.lower()
        server = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                 text=True).stdout.split()]
        assert len(server) == 1
        group = os.getpgid(server[0])
        assert group != os.getpgid(proc.pid)  # its own group, which SIGTERM must empty
        members = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout.split()
        assert len(members) >= 3  # the server and its two forked processes (and perhaps the compiler)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        gone = time.monotonic() + 10
        while subprocess.run(["pgrep", "-g", str(group)], capture_output=True).returncode == 0:
            assert time.monotonic() < gone, "processes of the server survived SIGTERM"
            time.sleep(0.1)
        with socket.socket() as s:  # nothing listens on the port any more (as a new server would bind it)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if group is not None:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_serve_command_line(tmp_path):
    """The panel serve command: the explorer's folder (answering at /explorer), app options passed after
    --args with paths resolved, --processes as Bokeh's --num-procs; no limits of the app's (it derives them)."""
    from core.cli import build_parser
    from core.cli.serve import serve_command

    def command(*argv):
        return serve_command(build_parser("serve").parse_args(["serve", *argv]))

    cmd = command(str(ASSETS), "--data-root", str(tmp_path), "--port", "5123")
    assert Path(cmd[cmd.index("serve") + 1]).name == "explorer"
    assert cmd[cmd.index("--args"):] == ["--args", "--data", str(ASSETS.resolve()), "--data-root",
                                         str(tmp_path.resolve())]
    assert "--websocket-max-message-size" not in cmd and "--num-procs" not in cmd
    cmd = command("--processes", "3")
    assert cmd[cmd.index("--num-procs") + 1] == "3"
    assert "--args" not in cmd
    with pytest.raises(SystemExit):
        command("--processes", "0")


def test_serve_missing_data(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "none")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


# ---- compare --------------------------------------------------------------------------------------------

def _mmd_p(report: str) -> float:
    """p of the linear-time test line ("p = 0.53", or "p < 1e-300" read as its bound)."""
    import re
    return float(re.search(r"MMD²_l = .*\bp [=<≤] ([0-9.e+-]+)", report).group(1))


def images_area(images) -> float:
    return float(measure_batch(images, workers=1, progress=False)["area"].mean())


def test_compare_thinned_samples_against_the_sample(tmp_path, mnist, capsys):
    images = mnist[0][::25]  # 200 real digits, all classes
    thin = np.stack([ImageMorphology(im, .5, 4).downscale(Thinning(.7)(ImageMorphology(im, .5, 4)))
                     for im in images])
    np.save(tmp_path / "thin.npy", thin)
    np.save(tmp_path / "plain.npy", images)
    assert main(["compare", str(tmp_path / "thin.npy"), "--workers", "1", "-q"]) == 0
    out_thin = capsys.readouterr().out
    assert "Samples: 200" in out_thin and "reference: 5000" in out_thin
    assert _mmd_p(out_thin) < 1e-3  # thinned digits differ from MNIST
    assert "Verdict: The samples' morphometrics differ" in out_thin  # the quadratic test (n = 200) says so too
    assert main(["compare", str(tmp_path / "plain.npy"), "--reference", str(ASSETS), "--workers", "1", "-q"]) == 0
    out_plain = capsys.readouterr().out
    assert _mmd_p(out_plain) > .01  # a subset of the reference itself does not
    assert "not distinguishable" in out_plain
    area = [line.split() for line in out_plain.splitlines() if line.split()[:2] == ["all", "area"]][0]
    assert float(area[2]) == pytest.approx(images_area(images), rel=1e-3)  # printed with 4 digits
    assert main(["compare", str(tmp_path / "none.npy"), "-q"]) == 1
    assert "none.npy" in capsys.readouterr().err


def test_generate_cli_limit_and_no_measure(tiny_mnist, tmp_path):
    out = tmp_path / "trial"
    assert main(["generate", str(tiny_mnist), "-o", str(out), "--splits", "t10k", "--limit", "4", "--no-measure",
                 "--frac-num", "1", "--workers", "1", "-q"]) == 0
    assert sorted(p.name for p in (out / "local").iterdir()) == [
        "README.md", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-pert-idx1-ubyte.gz"]
    assert load_idx(out / "frac" / "t10k-images-idx3-ubyte.gz").shape == (4, 28, 28)
    readme = (out / "frac" / "README.md").read_text()
    assert "--seed 0 --frac-num 1 --splits t10k --limit 4 --no-measure" in readme
    assert "num_frac=1" in readme
