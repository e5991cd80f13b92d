"""Shared fixtures: real MNIST digits from the bundled sample, and the Chromium used by browser tests."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Metrics the explorer measures are kept in a per-user cache: tests (and the servers they start, which
# inherit the environment) use a throw-away one, never the developer's ~/.cache.
os.environ.setdefault("MORPHO_EXPLORER_CACHE", tempfile.mkdtemp(prefix="morpho-test-cache-"))
# The job pool's threads normally run at nice 19 (explorer.jobs.job_nice): on a CI machine shared with other
# work, the suite's waits for a measurement would then depend on that other work. The suite runs them at
# the server's own priority; test_server.py checks the renicing itself on a scheduler of its own.
os.environ.setdefault("MORPHO_JOB_NICE", "0")

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium: Playwright cannot download its own browser here."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


def pytest_collection_modifyitems(config, items):
    # Browser tests need Debian's chromium. On a developer machine without it they are skipped with a
    # reason; in CI (CI=true) a missing browser is a failure, never a silent skip.
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


SAMPLE = ASSETS / "mnist-5k"


@pytest.fixture(scope="session")
def sample_images():
    """The bundled 5,000 real MNIST training digits (uint8, (5000, 28, 28)), sorted by label; row 2500 is
    MNIST training digit 0."""
    from core.io import load_idx

    return load_idx(SAMPLE / "train-images-idx3-ubyte.gz")


PUBLISHED = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def published_digits():
    """MNIST test digits 0..999 (uint8 (1000, 28, 28)) and their labels, from tests/data/."""
    from core.io import load_idx

    return (load_idx(PUBLISHED / "t10k-1000-images-idx3-ubyte.gz"),
            load_idx(PUBLISHED / "t10k-1000-labels-idx1-ubyte.gz"))


@pytest.fixture(scope="session")
def published_metrics():
    """The authors' released t10k-morpho.csv rows of MNIST test digits 0..999 (tests/data/README.md): an
    independent reference, never a table this project computed."""
    import pandas as pd

    return pd.read_csv(PUBLISHED / "t10k-1000-morpho.csv", index_col="index")


@pytest.fixture(scope="session")
def sample_labels():
    from core.io import load_idx

    return load_idx(SAMPLE / "train-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _stop_panel_servers():
    """Stop Panel servers a test started (e.g. panel.tests.util.serve_component): their threads are not
    daemons, and a server left running keeps pytest from exiting."""
    yield
    import sys

    if "panel" in sys.modules:
        from panel.io.state import state

        state.kill_all_servers()


@pytest.fixture(scope="session")
def sample_dataset():
    """The bundled sample opened as the explorer opens it (``explorer.data.Dataset``)."""
    from explorer.data import load

    return load(SAMPLE)


def run_async(coro, timeout: float = 300.0):
    """Run a coroutine to completion on its own event loop in a fresh thread. Playwright's browser tests keep
    an event loop running in the main thread, where asyncio.run() refuses to start: tests of coroutines must
    not depend on whether a browser test ran before them.

    A coroutine still running after ``timeout`` seconds fails the test (its daemon thread is abandoned): a
    wait that never ends must fail one test, not hang the run until CI's limit."""
    import asyncio
    import threading

    outcome: dict = {}

    def run():
        try:
            outcome["result"] = asyncio.run(coro)
        except BaseException as e:  # handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=run, name="test-run-async", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"coroutine {getattr(coro, '__qualname__', coro)} still running after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture(autouse=True)
def fresh_document(request):
    """A browser test's server can leave its session's document current in this thread (Bokeh's patched
    curdoc); state and views built by a later test would send their updates to that session, whose server
    may be gone, and wait forever. Every test that runs no browser gets a fresh document, without a
    session, as the current one."""
    if request.node.get_closest_marker("browser"):
        yield
        return
    from bokeh.document import Document
    from bokeh.io.doc import patch_curdoc
    from panel.io.state import set_curdoc

    doc = Document()
    with patch_curdoc(doc), set_curdoc(doc):  # Bokeh's current document and Panel's (which Panel asks first)
        yield


#: Name prefixes of the threads the project starts (explorer.jobs' pool, measure_batch's and the CLI's pools).
PROJECT_THREADS = ("explorer-job", "measure_batch", "morpho")


def pytest_sessionfinish(session, exitstatus):
    """End of the run: stop the explorer's job pool, then fail the run if a thread the project started is
    still alive. A thread left inside a compiled kernel when the interpreter finalizes can abort the
    process (exit 134 after every test passed)."""
    import sys
    import threading
    import time

    jobs = sys.modules.get("explorer.jobs")
    if jobs is not None:
        jobs.shutdown(timeout=60)
    deadline = time.monotonic() + 30  # a pool shutting down may need a moment; a guard, not a speed limit
    while True:
        left = [t for t in threading.enumerate()
                if t is not threading.main_thread() and t.is_alive() and t.name.startswith(PROJECT_THREADS)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        print(f"\nthreads the project started are still running at the end of the run: "
              f"{', '.join(f'{t.name} (daemon={t.daemon})' for t in left)}", file=sys.stderr)
        session.exitstatus = 1
