"""The served explorer under hostile input and many users (issue 10): fair background work, limits,
checked share links, path confinement, nothing blocking the event loop.

The first tests drive :mod:`explorer.jobs`, :mod:`explorer.limits` and :class:`ExplorerState` directly;
the browser tests serve the app (``panel serve explorer/main.py``) in a subprocess and drive it with
real Chromium sessions, asserting no browser console warnings or errors and no server warnings.
"""
from __future__ import annotations

from conftest import run_async
import gc
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer import jobs
from page_text import text_of, wait_text

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------------
# explorer.jobs

def test_a_small_job_finishes_while_another_owner_measures_many_digits(sample_images):
    many = np.concatenate([sample_images] * 8)  # 40,000 real digits: minutes of work on one thread
    jobs.measure("warm-up", sample_images[:8]).result(120)  # load the compiled kernels before timing
    big = jobs.measure("owner-a", many)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a speed limit
        while big.progress[0] == 0 and time.monotonic() < deadline:  # A is under way
            time.sleep(0.05)
        small = jobs.measure("owner-b", sample_images[:300])
        df = small.result(timeout=600)
        done, total = big.progress
        assert len(df) == 300 and not df.isna().any().any()
        # B waited for at most a chunk of A's work per worker, not for A's 40,000 digits: the condition,
        # whatever the machine's load.
        assert not big.done() and done < total / 2, (done, total)
    finally:
        big.cancel()
    with pytest.raises(jobs.Cancelled.__mro__[1]):  # concurrent.futures.CancelledError
        big.result(timeout=10)


def test_results_match_a_plain_measure_batch_and_chunks_join_in_order(sample_images):
    from core.measure import measure_batch

    images = sample_images[::25]  # 200 digits, several chunks of 16
    job = jobs.measure("owner-c", images, chunksize=16)
    expected = measure_batch(images, progress=False)
    np.testing.assert_array_equal(job.result(60).to_numpy(), expected.to_numpy())
    arr = jobs.map_chunks("owner-c", lambda chunk: chunk.sum(axis=(1, 2)), images, chunksize=7)
    np.testing.assert_array_equal(arr.result(10), images.sum(axis=(1, 2)))
    empty = jobs.measure("owner-c", images[:0])
    assert empty.result(1).shape == (0, 6)


def _pid_and_nice(images, indices):
    """A digit task that says where it ran (module-level: a worker process imports it by name)."""
    return np.array([[os.getpid(), os.getpriority(os.PRIO_PROCESS, 0)]] * len(images))


def _die_in_a_worker(images, indices, parent_pid):
    """A digit task whose worker process dies (as one killed, or out of memory); in the server it works."""
    if os.getpid() != parent_pid:
        os._exit(1)
    return indices


def _where():
    """A call that says where it ran (module-level: a worker process imports it by name)."""
    return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0)


def test_worker_processes_compute_what_the_threads_do_below_the_servers_priority(sample_images, sample_dataset,
                                                                                monkeypatch):
    """Once the served explorer turns worker processes on, perturbing and measuring chunks, a comparison's
    tests and the Codes panel's partial correlations and MIG run in them (the event loop never waits for their
    GIL): the same digits, metrics, report and scores as in the pool's threads, in other processes,
    MORPHO_JOB_NICE levels down; a worker that dies costs its chunk nothing (it runs in the thread)."""
    from core.analysis import code_diagnostics, compare_report
    from explorer.perturbing import perturb_digits, perturbation_specs

    monkeypatch.setenv("MORPHO_JOB_NICE", "3")  # read when the workers start
    monkeypatch.setattr(jobs, "_WORKERS", None)
    spec, values = perturbation_specs()["fracture"], {"num_frac": 2}
    images, selection = sample_images[:300], np.arange(299, 0, -7)  # a selection, out of order

    def perturb_and_measure():
        out = jobs.map_digits("workers", perturb_digits, images, spec, values, 5, indices=selection,
                              chunksize=16).result(300)
        return out, jobs.measure("workers", out, chunksize=16).result(300)

    ds, s, r = sample_dataset, np.arange(0, 5000, 25), np.arange(7, 5000, 8)  # 200 samples, 625 references
    report_args = dict(sample_metrics=ds.metrics.iloc[s], reference_metrics=ds.metrics.iloc[r],
                       sample_labels=ds.labels[s], reference_labels=ds.labels[r], seed=0,
                       sample_images=ds.images[s], reference_images=ds.images[r])

    def report():
        job = jobs.submit_to_worker("workers", compare_report, **report_args)
        assert job.name == "compare_report"   # listed under the function's name, not the worker wrapper's
        rep = job.result(300).to_dict()
        return {k: v for k, v in rep.items() if k != "created"}

    noise = np.random.default_rng(0).normal(size=(len(s), 3))
    codes = pd.DataFrame(noise + ds.metrics.iloc[s][["thickness"]].to_numpy(), columns=["z0", "z1", "z2"])

    def diagnostics():
        pc, mig = jobs.submit_to_worker("workers", code_diagnostics, codes, ds.metrics.iloc[s]).result(300)
        return pc, mig.score, mig.per_factor

    in_threads, measured_in_threads = perturb_and_measure()
    report_in_threads = report()
    diagnostics_in_threads = diagnostics()
    jobs.use_worker_processes()
    try:
        in_workers, measured_in_workers = perturb_and_measure()
        report_in_workers = report()
        diagnostics_in_workers = diagnostics()
        where = jobs.map_digits("workers", _pid_and_nice, images[:64], chunksize=16).result(300)
        report_where = jobs.submit_to_worker("workers", _where).result(300)
        survived = jobs.map_digits("workers", _die_in_a_worker, images[:40], os.getpid(), chunksize=20).result(300)
    finally:
        jobs.use_worker_processes(False)
        if jobs._WORKERS is not None:
            jobs._WORKERS.shutdown(wait=True, cancel_futures=True)
    np.testing.assert_array_equal(in_workers, in_threads)
    assert in_workers.shape == (len(selection), 28, 28)
    pd.testing.assert_frame_equal(measured_in_workers, measured_in_threads)
    assert report_in_workers == report_in_threads and report_in_threads["tests"]["verdict"]["p_value"] is not None
    pd.testing.assert_frame_equal(diagnostics_in_workers[0], diagnostics_in_threads[0])
    assert diagnostics_in_workers[1] == diagnostics_in_threads[1] > 0
    pd.testing.assert_series_equal(diagnostics_in_workers[2], diagnostics_in_threads[2])
    assert os.getpid() not in set(where[:, 0]) | {report_where[0]}
    if sys.platform.startswith("linux"):
        assert set(where[:, 1]) | {report_where[1]} == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + 3)}
    np.testing.assert_array_equal(survived, np.arange(40))


def test_cancel_owner_stops_its_jobs_and_frees_their_data(sample_images):
    many = np.concatenate([sample_images] * 4)
    ref = weakref.ref(many)
    started = threading.Event()
    job = jobs.map_chunks("closing-session", lambda c: (started.set(), time.sleep(0.05), c.sum())[2], many,
                          chunksize=100)
    long = jobs.submit("closing-session", lambda: [time.sleep(0.05) or jobs.checkpoint() for _ in range(400)])
    assert started.wait(10)
    assert jobs.cancel_owner("closing-session") == 2
    assert job.cancelled() and long.cancelled() and jobs.owner_jobs("closing-session") == []
    del many, job
    deadline = time.time() + 10
    while ref() is not None:  # a running chunk may still hold it until it ends
        assert time.time() < deadline, "the cancelled job's data is still referenced"
        gc.collect()
        time.sleep(0.05)


def test_unsplittable_work_never_takes_the_whole_pool():
    if jobs.pool_size() < 2:
        pytest.skip("one worker thread: nothing to share")
    gate = threading.Event()
    hogs = [jobs.submit("hog", gate.wait, 30) for _ in range(jobs.pool_size())]
    try:
        quick = jobs.submit("other", lambda: 42)
        assert quick.result(timeout=10) == 42  # a worker stayed free for another session
    finally:
        gate.set()
    assert all(h.result(10) for h in hogs)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_background_work_runs_below_the_event_loops_priority():
    """A scheduler's threads are reniced by its ``nice`` (the server's is MORPHO_JOB_NICE, default 19) and the
    calling thread is not: a slider's callback on the event loop gets the CPU before anyone's measurement."""
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    scheduler = jobs._Scheduler(1, 5)
    try:
        job = jobs.Job("nice-check", "nice check",
                       iter([(0, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))]), 1,
                       lambda parts: parts[0])
        scheduler.add(job)
        assert job.result(timeout=60) == min(19, here + 5)
    finally:
        scheduler.shutdown()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here  # the caller is left alone


def test_job_nice_is_read_when_used_and_checked(monkeypatch):
    monkeypatch.delenv("MORPHO_JOB_NICE", raising=False)
    assert jobs.job_nice() == 19
    monkeypatch.setenv("MORPHO_JOB_NICE", "3")
    assert jobs.job_nice() == 3
    for bad in ("-1", "20", "low"):
        monkeypatch.setenv("MORPHO_JOB_NICE", bad)
        with pytest.raises(ValueError, match=f"MORPHO_JOB_NICE='{bad}': expected a whole number in 0..19"):
            jobs.job_nice()


def test_pool_size_is_read_when_used_and_checked(monkeypatch):
    monkeypatch.delenv("MORPHO_JOB_THREADS", raising=False)
    assert jobs.pool_size() == max(1, min(4, os.cpu_count() or 1))
    monkeypatch.setenv("MORPHO_JOB_THREADS", " 3 ")
    assert jobs.pool_size() == 3
    for bad in ("0", "-2", "2.5", "many"):
        monkeypatch.setenv("MORPHO_JOB_THREADS", bad)
        with pytest.raises(ValueError, match=f"MORPHO_JOB_THREADS='{bad}': expected a positive whole number"):
            jobs.pool_size()


def test_errors_reach_the_awaiting_coroutine():

    async def main():
        with pytest.raises(ZeroDivisionError):
            await jobs.submit("owner-e", lambda: 1 / 0)
        return await jobs.submit("owner-e", lambda x, y=0: x + y, 40, y=2)

    assert run_async(main()) == 42


# ---------------------------------------------------------------------------------------------------------
# limits, share links, paths (no browser)

def test_upload_limit_messages_name_no_server_path():
    from explorer import limits

    with pytest.raises(ValueError) as info:
        limits.check_upload("/tmp/morpho-upload-x1/0/samples.npz", limits.max_upload_bytes() + 1)
    text = str(info.value)
    assert text.startswith("samples.npz is ") and "/tmp" not in text and "MORPHO_MAX_UPLOAD_MB" in text
    limits.check_upload("ok.npy", limits.max_upload_bytes())
    assert limits.user_message("/tmp/morpho-upload-abc/0/x.npy: holds 9 digits",
                               {"/tmp/morpho-upload-abc/0/x.npy": "x.npy"}) == "x.npy: holds 9 digits"
    assert "/tmp" not in limits.user_message("cannot read /tmp/morpho-upload-q/1/y.npz (truncated)")
    # FileInput sends base64 (4/3) in one websocket message: the server's limit must let that through.
    assert limits.websocket_max_message_size() >= limits.max_upload_bytes() * 4 / 3
    assert limits.effective_upload_bytes(limits.websocket_max_message_size()) == limits.max_upload_bytes()
    assert limits.effective_upload_bytes(20 * 2**20) < 16e6
    assert limits.app_read_limits().max_digits == limits.max_upload_digits()


def test_limits_are_read_from_the_environment_when_used(monkeypatch):
    """Changing MORPHO_MAX_UPLOAD_* takes effect without re-importing explorer.limits (docs/CONTRACT.md:
    configuration is read when used, never at import); a bad value names the variable."""
    from explorer import limits
    from explorer.gate import Gate

    monkeypatch.setenv("MORPHO_MAX_UPLOAD_DIGITS", "1234")
    monkeypatch.setenv("MORPHO_MAX_UPLOAD_MB", "2")
    assert limits.max_upload_digits() == 1234 and limits.app_read_limits().max_digits == 1234
    assert limits.max_upload_bytes() == 2_000_000
    assert Gate().limits.max_digits == 1234
    with pytest.raises(ValueError, match="holds 1,235 digits.*at most 1,234"):
        limits.check_upload_digits("many.npz", 1235)
    monkeypatch.setenv("MORPHO_MAX_UPLOAD_DIGITS", "77")
    assert limits.app_read_limits().max_digits == 77 and Gate().limits.max_digits == 77
    monkeypatch.setenv("MORPHO_MAX_UPLOAD_DIGITS", "lots")
    with pytest.raises(ValueError, match="MORPHO_MAX_UPLOAD_DIGITS='lots'"):
        limits.app_read_limits()
    with pytest.raises(ValueError, match="MORPHO_MAX_UPLOAD_DIGITS"):
        Gate()
    monkeypatch.delenv("MORPHO_MAX_UPLOAD_DIGITS")
    assert limits.app_read_limits().max_digits == 100_000


def test_share_link_values_are_clamped_to_the_widgets_ranges(sample_dataset):
    from core.perturb import PERTURBATIONS
    from explorer import url
    from explorer.state import ExplorerState

    state = ExplorerState(sample_dataset)
    spec = {p.name: p for p in PERTURBATIONS["fracture"][1]}["thickness"]
    notes = url.apply_query(state, {"pert": "fracture", "pert_params": '{"thickness": 2000, "bogus": 1}',
                               "digit": "99999", "labels": "[3, 42]", "seed": "-5", "sort": "nope",
                               "ranges": '{"thickness": [5, 1]}', "sel": "10-20,4990-99999"})
    assert state.perturbation == "fracture" and state.perturbation_params == {"thickness": spec.high}
    assert state.current == len(sample_dataset) - 1 and state.labels == [3] and state.seed == 0
    assert state.sort_by == "index" and state.ranges == {"thickness": [1.0, 5.0]}
    assert state.scatter_selection.tolist() == list(range(10, 21)) + list(range(4990, 5000))
    text = url.url_notice(notes)
    assert "thickness 2000 → 4" in text and "digit 99999 → 4999" in text and "bogus" in text
    assert url.apply_query(state, {"digit": "12"}) == [] and state.current == 12
    assert url.apply_query(state, {"digit": "1e400"})  # not a number a widget could show: ignored, said so
    assert state.current == 12
    query = url.query(state)
    assert query["pert_params"] == '{"thickness":4.0}' and query["sel"] == "10-20,4990-4999"


def test_paths_are_confined_to_the_data_roots(sample_dataset, tmp_path):
    from explorer.state import ExplorerState

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "mnist").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    state = ExplorerState(sample_dataset, data_roots=[str(root)])
    assert state.resolve_user_path("mnist", "open") == (root / "mnist").resolve()
    assert state.resolve_user_path(str(root / "new-export"), "export") == (root / "new-export").resolve()
    for bad in [str(outside), "../outside", "escape/x.npy", "/etc/passwd", "mnist/../../outside"]:
        with pytest.raises(ValueError, match="outside the data folders"):
            state.resolve_user_path(bad, "open")
    # Views that open a path (e.g. "open the exported dataset") go through the same policy.

    assert run_async(state.open(outside)) is False
    assert "outside the data folders" in state.message and state.dataset is sample_dataset
    state.param.update(data_roots=[], paths_enabled=False, paths_note="Paths on the server are off.")
    with pytest.raises(ValueError, match="Paths on the server are off"):
        state.resolve_user_path(str(root / "mnist"), "open")



def test_opened_data_is_shared_until_its_files_change(sample_dataset, tmp_path):
    from explorer.data import load

    path = tmp_path / "digits.npy"
    np.save(path, sample_dataset.images[:50])
    first = load(path)
    assert load(path) is first  # a new session gets the same arrays, nothing read or measured again
    np.save(path, sample_dataset.images[:60])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert len(load(path)) == 60


# ---------------------------------------------------------------------------------------------------------
# the served app in real Chromium

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Server log lines that are problems (Bokeh/Panel/Tornado warnings and errors, Python warnings).
SERVER_PROBLEM = re.compile(r"\bWARNING\b|\bERROR\b|Traceback|Warning:|\bwarn\b", re.IGNORECASE)


#: The start of a log record (``2026-12-06 04:54:07,482 ...``): a traceback's lines do not start so.
_LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


class Server:
    """``panel serve explorer/main.py`` in a subprocess, its log in a file."""

    def __init__(self, tmp: Path, *app_args, address="127.0.0.1", env=None, serve_args=()):
        self.port = _free_port()
        self.log_path = tmp / f"server-{self.port}.log"
        self.log_file = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "explorer" / "main.py"), "--port",
               str(self.port), "--address", address, "--allow-websocket-origin", f"127.0.0.1:{self.port}",
               *serve_args]
        if app_args:
            cmd += ["--args", *map(str, app_args)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
        self.url = f"http://127.0.0.1:{self.port}/main"
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=30).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    pytest.fail(f"panel serve did not start:\n{self.log()}")
                time.sleep(0.3)
        self.mark = 0
        self.expected = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def problems_since_mark(self) -> list[str]:
        """Problem lines logged since :meth:`set_mark`, each with the lines that follow it (tracebacks),
        except the ones the running test said to expect (:meth:`expect`)."""
        lines = self.log()[self.mark:].splitlines()
        problems = []
        for i, line in enumerate(lines):
            if not SERVER_PROBLEM.search(line):
                continue
            # the problem's record: this line and what follows up to the next timestamped log line
            end = next((j for j in range(i + 1, min(len(lines), i + 40)) if _LOG_RECORD.match(lines[j])),
                       min(len(lines), i + 40))
            record = "\n".join(lines[i:end])
            if not (self.expected and self.expected.search(record)):
                problems.append(record)
        return problems

    def set_mark(self):
        self.mark = len(self.log())
        self.expected = None

    def expect(self, pattern: str):
        """Until the next :meth:`set_mark`, problem records (a log line with its traceback) matching
        ``pattern`` (multi-line: ``$`` ends a line) are not problems."""
        self.expected = re.compile(pattern, re.MULTILINE)

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log_file.close()


def _received(page, payload) -> None:
    page.frames_in.append(len(payload))
    if isinstance(payload, bytes):
        page.binary_in.append(len(payload))
    if isinstance(payload, str) and payload.startswith("{") and '"msgtype"' in payload[:200]:
        try:
            page.messages_in.append(json.loads(payload).get("msgtype"))
        except ValueError:
            pass


def wait_quiet(page, seconds: float = 2.0, timeout: float = 60) -> int:
    """Wait until ``page`` has received no websocket frame for ``seconds``; returns the frame count then."""
    deadline = time.time() + timeout
    while True:
        quiet = len(page.frames_in)
        page.wait_for_timeout(seconds * 1000)
        if len(page.frames_in) == quiet:
            return quiet
        assert time.time() < deadline, f"the page kept receiving messages: {page.frames_in[-20:]}"


def new_session(browser, url: str, *, width=1440, height=900, ready=".explorer-browser .bk-Canvas"):
    """A page of its own (its own server session), recording console warnings and errors; returns once
    ``ready`` is visible."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"{m.type}: {m.text}")
            if m.type in ("warning", "error") else None)
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    page.frames_in = []  # sizes of the websocket frames the server sent this page
    page.messages_in = []  # msgtype of each Bokeh message among them (its header frame)
    page.binary_in = []  # sizes of the binary frames among them (array buffers)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: _received(page, payload)))
    page.goto(url)
    page.locator(ready).first.wait_for(timeout=60000)
    return page


def finish(*pages) -> None:
    """Close pages once the server has sent what it was sending (closing mid-message makes Panel log
    "Failed sending message as connection was closed", which these tests count as a server warning)."""
    for page in pages:
        page.wait_for_timeout(1500)
        page.close()


def open_data(page, path) -> None:
    box = page.locator(".bk-panel-models-layout-Column input[placeholder]").first
    box = page.locator("input[placeholder^='folder of IDX files'], input[placeholder^='inside ']").first
    box.fill(str(path))
    page.get_by_role("button", name="Open", exact=True).click()


def click_digit(page, index: int) -> None:
    """Type ``index`` in the inspector's digit box and wait for the inspector to show that digit (a round
    trip through the server)."""
    box = page.locator(".explorer-inspector input").first
    box.fill(str(index))
    box.press("Enter")
    wait_text(page, ".explorer-inspector", f"Digit #{index:,}", timeout=30)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data folder: 60,000 real digits without metrics (the bundled 5,000, tiled), 300 samples, the
    40-digit folder, a FIFO, and a symlink leading out."""
    from core.io import load_idx, save_idx

    root = tmp_path_factory.mktemp("data-root")
    images = load_idx(ROOT / "assets" / "mnist-5k" / "train-images-idx3-ubyte.gz")
    labels = load_idx(ROOT / "assets" / "mnist-5k" / "train-labels-idx1-ubyte.gz")
    np.save(root / "big.npy", np.concatenate([images] * 12))
    np.save(root / "samples300.npy", images[7::16][:300])
    small = root / "small"
    small.mkdir()
    save_idx(images[::125], small / "t10k-images-idx3-ubyte.gz")
    save_idx(labels[::125].astype(np.uint8), small / "t10k-labels-idx1-ubyte.gz")
    os.mkfifo(root / "pipe.npy")
    outside = tmp_path_factory.mktemp("outside")
    np.save(outside / "secret.npy", images[:10])
    (root / "escape").symlink_to(outside)
    return root


@pytest.fixture(scope="module")
def confined_server(tmp_path_factory, data_root):
    server = Server(tmp_path_factory.mktemp("log"), "--data-root", data_root)
    yield server
    server.stop()


@pytest.fixture
def server(confined_server):
    confined_server.set_mark()
    yield confined_server
    assert confined_server.problems_since_mark() == []


@pytest.mark.browser
@pytest.mark.parametrize("how", ["open", "compare"])
def test_two_sessions_share_the_pool_fairly(browser, server, data_root, how):
    """While session A measures 60,000 digits, session B's 300 digits (opened, or compared in the Compare
    tab) are done while A's job still runs: B does not wait for A's work."""
    a = new_session(browser, server.url)
    b = new_session(browser, server.url)
    open_data(a, data_root / "big.npy")
    # Once A's first chunks are done (kernels loaded, progress shown), B starts.
    deadline = time.time() + 120
    while not re.search(r"Measuring 60,000 digits.*\((\d+)%\)", text_of(a, ".explorer-status")):
        assert time.time() < deadline, text_of(a, ".explorer-status")
        a.wait_for_timeout(200)
    if how == "compare":
        b.get_by_text("Compare samples", exact=True).first.click()
        b.locator(".compare-upload input[type=file]").first.set_input_files(str(data_root / "samples300.npy"))
        wait_text(b, ".compare-mmd", "300 samples vs", timeout=300)
    else:
        open_data(b, data_root / "samples300.npy")
        wait_text(b, ".explorer-message", "Opened samples300.npy: 300 digits", timeout=300)
    # B is done and A is still measuring (below 100%): B's 300 digits did not wait for A's 60,000.
    status = text_of(a, ".explorer-status")
    progress = re.search(r"Measuring 60,000 digits.*\((\d+)%\)", status)
    assert progress and int(progress.group(1)) < 100, status
    # A cancels: its job stops, the data it had stays.
    a.locator(".explorer-cancel button").first.click()
    wait_text(a, ".explorer-message", "was cancelled", timeout=20)
    wait_text(a, ".explorer-dataset", "MNIST sample")
    assert a.problems == [] and b.problems == []
    finish(a, b)


@pytest.mark.browser
def test_one_students_moves_send_nothing_to_another(browser, server):
    """Paging and the studio slider in session A update A's page only: an idle session B receives no message.
    (Panel's template spinner follows the server-wide busy flag: with it, every event of every student
    redrew every student's spinner, twenty document updates per move for a class of twenty.)"""
    a = new_session(browser, server.url)
    b = new_session(browser, server.url)
    wait_text(b, ".explorer-browser", "1–100 of")
    quiet = wait_quiet(b)  # B's page has finished loading
    for first in ("101", "201", "301"):
        a.keyboard.press("PageDown")
        wait_text(a, ".explorer-browser", f"{first}–")
    a.get_by_text("Perturbation studio", exact=True).first.click()
    handle = a.locator(".explorer-studio .noUi-handle").first
    handle.wait_for(timeout=30000)
    for key in ("ArrowRight", "ArrowLeft", "ArrowRight"):
        handle.press(key)
        a.wait_for_timeout(300)
    a.wait_for_timeout(1000)
    assert len(a.frames_in) > 3  # A's moves did reach A
    assert b.frames_in[quiet:] == []
    assert a.problems == [] and b.problems == []
    finish(a, b)


@pytest.mark.browser
def test_a_page_key_reaches_the_browser_as_two_messages_grid_first(browser, server):
    """PageDown changes the grid, its cells, the page box, the inspector and the URL: two patch messages, the
    grid's first (its image, cells, page box and URL), then the inspector's a tick later, so the grid is on
    screen before the inspector is measured; binary frames only for the grid image and the inspector's
    arrays (about 23 frames). Before, each changed model went in a message of its own (14 messages, 86
    frames a key), each one a serialisation and socket writes on the event loop every student shares."""
    a = new_session(browser, server.url)
    wait_text(a, ".explorer-browser", "1–100 of")
    frames, messages, buffers = wait_quiet(a), len(a.messages_in), len(a.binary_in)
    a.keyboard.press("PageDown")
    wait_text(a, ".explorer-browser", "101–200 of")
    wait_quiet(a)
    got = a.messages_in[messages:]
    assert got.count("PATCH-DOC") == 2, got
    binary = a.binary_in[buffers:]
    assert binary.count(300 * 300 * 4) == 1 and binary[0] == 300 * 300 * 4, binary  # the grid's image, first
    assert len(binary) <= 8, binary  # besides it only the inspector's arrays (masks, thickness circles)
    assert len(a.frames_in[frames:]) <= 30, a.frames_in[frames:]
    finish(a)


@pytest.mark.browser
def test_a_closed_session_stops_its_work(browser, server, data_root):
    a = new_session(browser, server.url)
    open_data(a, data_root / "big.npy")
    wait_text(a, ".explorer-status", "Measuring 60,000 digits", timeout=60)
    before = server.cpu_seconds()
    time.sleep(2)
    measuring = server.cpu_seconds() - before  # CPU s the measuring took in 2 s (up to 4 on 2 threads)
    assert a.problems == []
    # An update already on its way when the tab went: Panel notes it, or Tornado's write of it fails with
    # WebSocketClosedError ("Task exception was never retrieved"). Expected here, nowhere else.
    server.expect(r"WARNING: panel\.io\.document - Failed sending message as connection was closed$"
                  r"|^tornado\.websocket\.WebSocketClosedError$")
    a.close()
    time.sleep(3)  # the tab's connection closes; its jobs are cancelled within a second
    windows = []
    for _ in range(3):  # a one-off cleanup (gc of the session) may take a moment: the work must not go on
        before = server.cpu_seconds()
        time.sleep(2)
        windows.append(server.cpu_seconds() - before)
    assert min(windows) < 0.5 and min(windows) < measuring / 4, \
        f"the server worked {windows} CPU s per 2 s after the session closed ({measuring:.1f} while measuring)"


@pytest.mark.browser
def test_hostile_share_link_is_clamped_and_stalls_nobody(browser, server):
    other = new_session(browser, server.url)
    rss = server.rss()
    hostile = new_session(browser, server.url + '?tab=1&pert=fracture&pert_params={"thickness":2000}',
                          ready=".explorer-studio .bk-Canvas")
    text = wait_text(hostile, ".explorer-message", "thickness 2000 → 4")
    wait_text(hostile, ".explorer-studio", "Change")
    # The other session answers (click_digit waits for the round trip through the server).
    click_digit(other, 17)
    assert server.rss() - rss < 300e6
    page_text = text_of(hostile)
    assert page_text.count("thickness 2000 → 4") == 1, text  # one notice, shown once
    deadline = time.time() + 10
    while "thickness%22%3A4" not in hostile.url and '"thickness":4' not in hostile.url:
        assert time.time() < deadline, hostile.url  # the link now says what is used
        hostile.wait_for_timeout(100)
    assert hostile.problems == [] and other.problems == []
    finish(hostile, other)


@pytest.mark.browser
def test_out_of_range_link_values_give_one_notice(browser, server):
    page = new_session(browser, server.url + "?digit=99999&labels=%5B3%2C42%5D&page=77")
    wait_text(page, ".explorer-inspector", "Digit #4,999")
    text = wait_text(page, ".explorer-message", "digit 99999 → 4999")
    assert "labels: kept [3]" in text
    page.wait_for_timeout(1000)
    assert text_of(page).count("Adjusted the link") == 1
    assert page.problems == []
    finish(page)


@pytest.mark.browser
def test_path_boxes_stay_inside_the_data_roots(browser, server, data_root):
    page = new_session(browser, server.url)
    for path in ["/etc", str(data_root / "escape" / "secret.npy"), str(data_root / ".." )]:
        open_data(page, path)
        wait_text(page, ".explorer-message", "outside the data folders")
        wait_text(page, ".explorer-dataset", "MNIST sample")
    open_data(page, "small")  # relative to the data root
    wait_text(page, ".explorer-message", "Opened small: 40 digits", timeout=60)
    wait_text(page, ".explorer-dataset", "t10k")
    assert page.problems == []
    finish(page)


@pytest.mark.browser
def test_the_compare_path_box_follows_the_same_policy(browser, server, data_root):
    page = new_session(browser, server.url)
    page.get_by_text("Compare samples", exact=True).first.click()
    page.locator(".compare-path input").first.fill("/etc/passwd")
    page.locator(".compare-load button").first.click()
    wait_text(page, ".compare-error", "outside the data folders")
    page.locator(".compare-path input").first.fill(str(data_root / "pipe.npy"))
    page.locator(".compare-load button").first.click()
    text = wait_text(page, ".compare-error", "pipe.npy", timeout=15)
    assert "FIFO" in text, text  # says what is wrong, not only which file
    assert page.problems == []
    finish(page)


@pytest.mark.browser
def test_a_fifo_in_a_path_box_is_refused_and_blocks_nobody(browser, server, data_root):
    a = new_session(browser, server.url)
    b = new_session(browser, server.url)
    open_data(a, data_root / "pipe.npy")
    text = wait_text(a, ".explorer-message", "Could not open", timeout=60)
    assert "FIFO" in text and "not a regular file" in text, text  # refused unread, saying why
    click_digit(b, 3)  # the other session kept answering
    click_digit(a, 5)
    assert a.problems == [] and b.problems == []
    finish(a, b)


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    """Listening on every address, no data root, small upload limits."""
    server = Server(tmp_path_factory.mktemp("public-log"), address="0.0.0.0",
                    env={"MORPHO_MAX_UPLOAD_MB": "1", "MORPHO_MAX_UPLOAD_DIGITS": "1000"})
    yield server
    server.stop()


@pytest.mark.browser
def test_public_server_turns_path_boxes_off_but_takes_uploads(browser, public_server, tmp_path, sample_images):
    public_server.set_mark()
    page = new_session(browser, public_server.url)
    note = wait_text(page, ".explorer-paths-note", "Paths on the server are off")
    assert "--data-root" in note
    assert page.locator("input[placeholder^='folder of IDX files']").count() == 0 or \
        not page.locator("input[placeholder^='folder of IDX files']").first.is_visible()
    upload = tmp_path / "mine.npy"
    np.save(upload, sample_images[:200])
    page.locator(".explorer-upload input[type=file]").first.set_input_files(str(upload))
    wait_text(page, ".explorer-message", "Opened mine.npy: 200 digits", timeout=60)
    wait_text(page, ".explorer-dataset", "mine.npy")
    assert page.problems == []
    assert public_server.problems_since_mark() == []
    finish(page)


@pytest.mark.browser
def test_over_size_uploads_get_a_message_and_the_session_lives(browser, public_server, tmp_path, sample_images):
    public_server.set_mark()
    page = new_session(browser, public_server.url)
    too_big = tmp_path / "too-big.npy"
    np.save(too_big, np.concatenate([sample_images] * 1)[:2600])  # 2.0 MB > 1 MB
    page.locator(".explorer-upload input[type=file]").first.set_input_files(str(too_big))
    text = wait_text(page, ".explorer-message", "Upload refused", timeout=20)
    assert "too-big.npy is 2.04 MB" in text and "up to 1 MB" in text and "/tmp" not in text
    too_many = tmp_path / "too-many.npy"
    np.save(too_many, sample_images[:1200])  # 0.94 MB, 1,200 digits > 1,000
    page.locator(".explorer-upload input[type=file]").first.set_input_files(str(too_many))
    text = wait_text(page, ".explorer-message", "1,200 digits", timeout=30)
    assert "too-many.npy" in text and "/tmp" not in text and "morpho-upload" not in text
    click_digit(page, 7)  # still connected, still the sample
    wait_text(page, ".explorer-dataset", "MNIST sample")
    assert page.problems == []
    assert public_server.problems_since_mark() == []
    finish(page)


@pytest.mark.browser
def test_large_data_opens_with_a_progress_page_and_is_shared(browser, tmp_path, sample_images):
    data = tmp_path / "digits20k.npy"
    np.save(data, np.concatenate([sample_images] * 4))
    server = Server(tmp_path, "--data", data)
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("warning", "error") else None)
        page.goto(server.url)
        wait_text(page, ".explorer-loading", "digits20k.npy", timeout=120)
        page.locator(".explorer-browser .bk-Canvas").first.wait_for(timeout=300000)
        wait_text(page, ".explorer-dataset", "20,000 digits")
        second = new_session(browser, server.url)  # no progress page: the dataset is there
        wait_text(second, ".explorer-dataset", "20,000 digits · metrics: measured here")
        assert not (tmp_path / "digits20k-morpho.csv").exists()  # nothing written beside the data
        assert problems == [] and second.problems == []
        assert server.problems_since_mark() == []
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------------
# the app's options

def test_main_parses_the_app_options():
    import importlib.util

    spec = importlib.util.spec_from_file_location("explorer_main_args", ROOT / "explorer" / "main.py")
    source = (ROOT / "explorer" / "main.py").read_text()
    # parse_args only: the module's last lines serve the app, which needs a server session.
    namespace: dict = {}
    exec(compile(source.split("\npn.extension(")[0], str(spec.origin), "exec"), namespace)
    args = namespace["parse_args"](["--data", "d", "--decoder", "pkg.mod:fn", "--latent-dim", "8",
                                    "--data-root", "/a", "--data-root", "/b", "--unknown", "x"])
    assert (args.data, args.decoder, args.latent_dim, args.data_root) == ("d", "pkg.mod:fn", 8, ["/a", "/b"])
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--latent-dim", "0"])


def test_explorer_with_a_decoder_adds_the_model_tab(sample_dataset):
    from explorer.app import Explorer
    from explorer.state import ExplorerState

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 784))

    def decode(codes):  # a linear decoder: codes (N, 4) -> images (N, 28, 28) in [0, 1]
        return (1 / (1 + np.exp(-(np.asarray(codes) @ basis)))).reshape(-1, 28, 28)

    app = Explorer(decoder=decode, latent_dim=4, state=ExplorerState(sample_dataset))
    assert app.state.decoder is not None
    assert app.tabs._names[-1] == "Model"
    plain = Explorer(state=ExplorerState(sample_dataset))
    assert plain.state.decoder is None and "Model" not in plain.tabs._names
    broken = Explorer(decoder="no_such_package.module:decode", state=ExplorerState(sample_dataset))
    assert broken.state.decoder is None and "Model" not in broken.tabs._names
    assert "Could not load the decoder no_such_package.module:decode" in broken.state.message


def test_data_roots_must_be_folders(tmp_path, sample_dataset):
    from explorer.app import Explorer
    from explorer.state import ExplorerState

    with pytest.raises(ValueError, match="not a folder"):
        Explorer(data_roots=[tmp_path / "missing"], state=ExplorerState(sample_dataset))
    app = Explorer(data_roots=[tmp_path], state=ExplorerState(sample_dataset))
    assert app.state.data_roots == [str(tmp_path.resolve())]
