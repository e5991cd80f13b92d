"""``morpho`` as an adversarial user meets it: bad option values, FIFOs and devices, IDX files with trailing
bytes, two runs on one output, runs killed with SIGKILL (issue 10, item 9). Real processes
(``python -m core.cli``), real digits from the bundled sample."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.io import load_idx, save_idx

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"
IMAGES = ASSETS / "train-images-idx3-ubyte.gz"


def morpho(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kw.get("cwd"))


def popen_morpho(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def mnist():
    return load_idx(IMAGES)


# ---- every numeric option validated: exit 2, one line on stderr, no traceback ---------------------------

BAD_OPTIONS = [
    (["perturb", IMAGES, "-p", "fracture", "--num-frac", "-3", "-o", "{out}"], "--num-frac"),
    (["perturb", IMAGES, "-p", "fracture", "--num-frac", "50", "-o", "{out}"], "1..6"),
    (["perturb", IMAGES, "-p", "thinning", "--amount", "nan", "-o", "{out}"], "--amount"),
    (["perturb", IMAGES, "-p", "swelling", "--strength", "inf", "-o", "{out}"], "--strength"),
    (["perturb", IMAGES, "-p", "melting", "-o", "{out}"], "unknown perturbation"),
    (["measure", IMAGES, "--threshold", "nan"], "--threshold"),
    (["measure", IMAGES, "--threshold", "5"], "--threshold"),
    (["measure", IMAGES, "--threshold", "0"], "--threshold"),
    (["measure", IMAGES, "--scale", "40"], "1..16"),
    (["measure", IMAGES, "--scale", "0"], "--scale"),
    (["measure", IMAGES, "--workers", "0"], "--workers"),
    (["measure", IMAGES, "--workers", "100000"], "--workers"),
    (["measure", IMAGES, "--chunksize", "0"], "--chunksize"),
    (["measure", IMAGES, "--chunksize", "1000000000"], "--chunksize"),
    (["measure", IMAGES, "--connect-timeout", "inf"], "--connect-timeout"),
    (["generate", ASSETS, "-o", "{out}", "--seed", "-1"], "--seed"),
    (["generate", ASSETS, "-o", "{out}", "--thin-amount", "7"], "--thin-amount"),
    (["generate", ASSETS, "-o", "{out}", "--frac-num", "0"], "--frac-num"),
    (["generate", ASSETS, "-o", "{out}", "--limit", "-5"], "--limit"),
    (["serve", "--port", "70000"], "--port"),
    (["download", "--to", "{out}", "--timeout", "-1"], "--timeout"),
    (["compare", IMAGES, "--seed", "1.5"], "--seed"),
    (["compare", IMAGES, "-o", "{out}.txt"], ".html or .json"),
    (["traverse", "--decoder", "x:y", "--steps", "1"], "--steps"),
    (["traverse", "grid.npy", "--confidence", "1.5"], "--confidence"),
    (["traverse", "grid.npy", "--latent-dim", "3"], "--decoder"),
]


@pytest.mark.parametrize("argv, what", BAD_OPTIONS, ids=[" ".join(map(str, a[0][:1] + a[0][2:4])) for a in BAD_OPTIONS])
def test_bad_option_is_a_one_line_usage_error(argv, what, tmp_path):
    out = tmp_path / "out"
    result = morpho(*[str(a).replace("{out}", str(out)) for a in argv])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and what in lines[0]
    assert lines[0].startswith(f"morpho {argv[0]}: error:")
    assert result.stdout == ""
    assert not out.exists()  # nothing was made


def test_valid_bounds_are_accepted(mnist, tmp_path):
    """The ends of the documented ranges work (the checks are not off by one)."""
    src = tmp_path / "few-images-idx3-ubyte"
    save_idx(mnist[:3], src)
    result = morpho("measure", src, "--scale", "1", "--threshold", ".99", "--workers", "1", "--chunksize", "1", "-q")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4


# ---- only regular files are read; readers accept exactly what load_idx accepts ---------------------------

@pytest.mark.parametrize("cmd", ["measure", "info", "perturb", "compare"])
def test_fifo_is_refused_before_opening(cmd, tmp_path):
    fifo = tmp_path / "t10k-images-idx3-ubyte"
    os.mkfifo(fifo)
    extra = {"measure": ["-q"], "info": [], "perturb": ["-p", "thinning", "-o", tmp_path / "o", "-q"],
             "compare": ["--reference", ASSETS, "-q"]}[cmd]
    result = morpho(cmd, fifo, *extra, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "FIFO" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_devices_are_refused(tmp_path):
    link = tmp_path / "zeros-images-idx3-ubyte"
    link.symlink_to("/dev/zero")
    for target in (Path("/dev/urandom"), link):
        result = morpho("measure", target, "-q", timeout=60)
        assert result.returncode == 1
        assert "character device" in result.stderr and "empty" not in result.stderr
    result = morpho("compare", ASSETS / "train-morpho.csv", "--reference", "/dev/zero", timeout=60)
    assert result.returncode == 1 and "character device" in result.stderr


@pytest.mark.parametrize("gz", [False, True])
def test_idx_with_trailing_bytes_is_refused_before_measuring(mnist, tmp_path, gz):
    import gzip
    good = tmp_path / "good-images-idx3-ubyte"
    save_idx(mnist[:20], good)
    raw = good.read_bytes() + b"\0"
    bad = tmp_path / ("bad-images-idx3-ubyte" + (".gz" if gz else ""))
    bad.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(Exception):
        load_idx(bad)  # the reference behaviour
    result = morpho("measure", bad, "--workers", "1", "-q")
    assert result.returncode == 1 and "trailing" in result.stderr
    assert result.stdout == ""  # refused before the header row was written
    out = tmp_path / "o.csv"
    result = morpho("measure", bad, "-o", out, "--workers", "1", "-q")
    assert result.returncode == 1 and "trailing" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))
    result = morpho("info", bad)
    assert result.returncode == 1 and "trailing" in result.stderr


# ---- one run per output, killed runs leave nothing that blocks or lingers -------------------------------

def _wait_for(pred, proc, timeout=120.):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_second_measure_on_the_same_output_is_refused_at_once(published_digits, published_metrics, tmp_path):
    src = tmp_path / "t10k-images-idx3-ubyte.gz"
    # Enough digits (MNIST test digits 0..999, thirty times over) that the first run is still measuring when
    # the others start, however fast the kernels are.
    save_idx(np.tile(published_digits[0], (30, 1, 1)), src)
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    first = popen_morpho("measure", src, "-o", out, "--workers", "1", "--chunksize", "20", "-q")
    try:
        assert _wait_for(lambda: partial.exists() and partial.read_text().count("\n") > 40, first), \
            "the first run should be measuring"
        second = morpho("measure", src, "-o", out, "--workers", "1", "-q")
        # --force does not break into a running job either
        forced = morpho("measure", src, "-o", out, "--workers", "1", "--force", "-q")
        assert first.poll() is None, "the other runs must not wait for the first"
        assert second.returncode == 1
        assert "busy" in second.stderr and "another morpho run" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert forced.returncode == 1 and "busy" in forced.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # the kernel released the killed run's lock: the next run resumes and completes
    rows_before = partial.read_text().count("\n") - 1
    third = morpho("measure", src, "-o", out, "--workers", "1", "--chunksize", "100")
    assert third.returncode == 0, third.stderr
    assert f"resuming {partial} at digit {rows_before}" in third.stderr
    table = pd.read_csv(out, index_col="index")
    # the authors' released rows (tests/data/), not a table this project made
    np.testing.assert_allclose(table.to_numpy(), np.tile(published_metrics.to_numpy(), (30, 1)), rtol=0, atol=1e-9)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name not in (src.name, out.name))
    assert leftovers == [], leftovers  # no .partial, .partial.json, .lock or .part left


def _dead_writer_part(final: Path) -> Path:
    """Kill -9 a process while it writes `final` with core.io.atomic_write; return the part it left."""
    code = ("import sys, time\nfrom core.io import atomic_write\n"
            "with atomic_write(sys.argv[1], 'w') as f:\n    f.write('half'); f.flush(); print('ready', flush=True)"
            "; time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = set(final.parent.iterdir())
    proc = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    parts = [p for p in set(final.parent.iterdir()) - before if p.name.endswith(".part")]
    assert len(parts) == 1 and parts[0].name.startswith(f".{final.name}.")
    return parts[0]


def test_stale_parts_of_killed_writers_are_removed(mnist, tmp_path):
    src = tmp_path / "t10k-images-idx3-ubyte"
    save_idx(mnist[:30], src)
    out = tmp_path / "m.csv"
    stale = [_dead_writer_part(out.with_name("m.csv.partial.json")), _dead_writer_part(out)]
    result = morpho("measure", src, "-o", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "removed 2 temporary file(s) left by an interrupted run" in result.stderr
    assert not any(p.exists() for p in stale)
    assert len(pd.read_csv(out)) == 30


@pytest.mark.slow
def test_killed_perturb_leaves_a_part_that_the_next_run_removes(mnist, tmp_path):
    """kill -9 of a real `morpho perturb` mid-run: its image file's part stays; the next run removes it
    and writes the same bytes as an uninterrupted run."""
    src = tmp_path / "t10k-images-idx3-ubyte.gz"
    save_idx(np.tile(mnist[:400], (20, 1, 1)), src)  # long enough to be killed mid-run
    out = tmp_path / "thin"
    argv = ["perturb", src, "-p", "thinning", "-o", out, "--workers", "1", "--chunksize", "10", "-q"]
    proc = popen_morpho(*argv)
    try:
        assert _wait_for(lambda: out.is_dir() and any(p.suffix == ".part" for p in out.iterdir()), proc), \
            "the run should be writing"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    parts = [p for p in out.iterdir() if p.suffix == ".part"]
    assert parts and not (out / "t10k-images-idx3-ubyte.gz").exists()
    result = morpho(*argv[:-1])
    assert result.returncode == 0, result.stderr
    assert "removed 1 temporary file(s) left by an interrupted run" in result.stderr
    assert not any(p.exists() for p in parts)
    again = tmp_path / "again"
    assert morpho(*argv[:5], again, *argv[6:]).returncode == 0
    assert (out / "t10k-images-idx3-ubyte.gz").read_bytes() == (again / "t10k-images-idx3-ubyte.gz").read_bytes()


def test_measure_to_a_closed_pipe_stops_quietly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = f"{sys.executable} -m core.cli measure {IMAGES} --workers 1 --chunksize 10 -q | head -3"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.stdout.splitlines()[0] == "index,area,length,thickness,slant,width,height"
    assert len(result.stdout.splitlines()) == 3
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_pool_workers_do_not_outlive_a_killed_run(mnist, tmp_path):
    """kill -9 of `morpho perturb --workers 2`: its worker processes end too, within seconds."""
    src = tmp_path / "t10k-images-idx3-ubyte.gz"
    save_idx(mnist[:2000], src)
    proc = popen_morpho("perturb", src, "-p", "swelling", "-o", tmp_path / "o", "--workers", "2",
                        "--chunksize", "20", "-q")
    workers: list[int] = []

    def pool_started():
        workers[:] = [w for c in _children(proc.pid) for w in _children(c)]  # forkserver -> workers
        return len(workers) >= 2

    try:
        assert _wait_for(pool_started, proc), "the pool should have started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived the killed run"


def test_checksums_file_names_stay_in_the_destination(tmp_path, capsys):
    from core.cli import main
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("0" * 64 + "  ../../etc/evil\n")
    assert main(["download", "--to", str(tmp_path / "d"), "--checksums", str(sums), "-q"]) == 1
    assert "'../../etc/evil' is not a plain file name" in capsys.readouterr().err
    os.mkfifo(tmp_path / "fifo")
    assert main(["download", "--to", str(tmp_path / "d"), "--checksums", str(tmp_path / "fifo"), "-q"]) == 1
    assert "FIFO" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_force_never_overwrites_the_inputs(mnist, tmp_path, capsys):
    from core.cli import main
    folder = tmp_path / "data"
    folder.mkdir()
    src = folder / "t10k-images-idx3-ubyte.gz"
    save_idx(mnist[:5], src)
    before = src.read_bytes()
    assert main(["measure", str(src), "-o", str(src), "--force", "-q"]) == 2
    assert "is an input of this run" in capsys.readouterr().err
    link = tmp_path / "link.csv"
    link.symlink_to(src)
    assert main(["measure", str(src), "-o", str(link), "--force", "-q"]) == 2
    assert main(["perturb", str(src), "-p", "thinning", "-o", str(folder), "--force", "-q"]) == 2
    assert "is an input of this run" in capsys.readouterr().err
    assert src.read_bytes() == before
