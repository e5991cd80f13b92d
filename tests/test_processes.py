"""measure_batch in parallel behaves from anywhere: plain scripts, tqdm, threads, notebooks, killed parents.

Parallel measurement runs the compiled (nogil) kernels on threads, so there are no start methods, no
pickling and no worker processes to orphan; a user's own Pool or Executor still works.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from core.measure import measure_batch

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def digits(sample_images):
    return sample_images[::25]  # 200 real digits, every label


@pytest.fixture(scope="module")
def serial(digits):
    return measure_batch(digits, progress=False)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces: split after it
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (forked or spawned workers keep their parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def test_script_without_main_guard_with_a_tqdm_bar(tmp_path, serial):
    # The failure of old: a process pool switched to forkserver by tqdm's monitor thread re-ran this
    # unguarded module in every worker (RuntimeError / BrokenProcessPool).
    script = tmp_path / "measure_script.py"
    out = tmp_path / "metrics.csv"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from tqdm import tqdm
        from core.io import load_idx
        from core.measure import measure_batch

        images = load_idx({str(SAMPLE)!r})[::25]
        outer = tqdm(total=2, desc="outer")  # a bar with its monitor thread, as in a typical script
        df = measure_batch(images, workers=2)  # with measure_batch's own tqdm bar
        outer.update(1)
        df2 = measure_batch(images, workers=2, progress=False)
        outer.update(1)
        outer.close()
        assert df.equals(df2)
        df.to_csv({str(out)!r}, index=False)
        print("measured", len(df))
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measured 200" in proc.stdout
    assert "200/200" in proc.stderr  # the progress bar ran to the end
    np.testing.assert_array_equal(pd.read_csv(out).to_numpy(), serial.to_numpy())


def test_kill_9_of_the_parent_leaves_no_worker(tmp_path):
    script = tmp_path / "long_batch.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import numpy as np
        from core.io import load_idx
        from core.measure import measure_batch

        images = np.tile(load_idx({str(SAMPLE)!r}), (20, 1, 1))  # 100,000 digits: far longer than the test

        def report(done, total):
            if done >= 1000:
                print("running", flush=True)

        measure_batch(images, workers=2, progress=report, chunksize=100)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()[-3000:]
        children = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while (any(_alive(c) for c in children) or _running(str(script))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], f"workers {children} outlived their parent"
    assert not _running(str(script)), "a process of the killed script is still running"


def test_threads_and_executors_equal_serial(digits, serial):
    pd.testing.assert_frame_equal(measure_batch(digits, workers=2, progress=False, chunksize=7), serial)
    pd.testing.assert_frame_equal(measure_batch(digits, workers=os.cpu_count(), progress=False), serial)
    with cf.ThreadPoolExecutor(3) as executor:
        pd.testing.assert_frame_equal(measure_batch(digits, executor=executor, progress=False), serial)
    # measure_batch called from several threads at once (e.g. a server's sessions)
    results = {}

    def run(k):
        results[k] = measure_batch(digits, workers=2, progress=False, chunksize=13)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(results) == [0, 1, 2]
    for df in results.values():
        pd.testing.assert_frame_equal(df, serial)


def test_user_pool_as_in_the_original(digits, serial):
    # the original measure_batch(images, threshold, scale, bound_frac, pool, chunksize): pool.imap over chunks
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        df = measure_batch(digits, .5, 4, .02, pool, 50, progress=False)
    pd.testing.assert_frame_equal(df, serial)


def test_float_digits_on_threads(digits, serial):
    as_float = digits.astype(np.float64) / 255.0
    pd.testing.assert_frame_equal(measure_batch(as_float, workers=2, progress=False), serial)


def test_from_a_notebook(tmp_path, serial):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from core.io import load_idx
        from core.measure import measure_batch
        df = measure_batch(load_idx({str(SAMPLE)!r})[::25], workers=2)
        df.to_csv({str(tmp_path / "nb.csv")!r}, index=False)
        print(len(df))
    """))]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o["output_type"] == "error"], outputs
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "nb.csv").to_numpy(), serial.to_numpy())
