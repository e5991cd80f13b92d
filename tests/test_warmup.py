"""The background warm-up of the measuring kernels (explorer.warmup): its states, its delay, its note.

Each check runs in a fresh interpreter (the warm-up is once per process). The compile itself is not run
here (tests/test_upstream.py and tests/test_fast_path.py compile every kernel): the child's program and
the in-process loads are replaced by no-ops, so what is tested is the order of things.
"""
import subprocess
import sys

_PRELUDE = """
import time
from core import measure, perturb
from explorer import warmup as w
measure.warm_up = perturb.warm_up = lambda: None
w._CHILD = "pass"
def until_ready(limit=60):
    t = time.perf_counter()
    while not w.ready() and time.perf_counter() - t < limit:
        time.sleep(0.01)
    return time.perf_counter() - t
"""


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PRELUDE + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split("\n")[:-1]


def test_without_a_warm_up_the_fast_engine_is_used():
    """Scripts and notebooks never start one: they measure with the kernels (compiled at first call)."""
    assert _run("print(w.status()['status'], w.engine(), w.ready())") == ["not started fast False"]


def test_the_first_page_waits_for_go_then_the_reference_engine_gives_way():
    out = _run("""
w.start(wait=60)
w.start(wait=0)  # a second start (another session) changes nothing
time.sleep(0.3)
print(w.status()['status'], w.engine(), w.ready())
w.go(delay=0.5)
w.go(delay=0.5)  # every session's first page calls it: still one timer
print(sum(1 for t in __import__('threading').enumerate() if isinstance(t, __import__('threading').Timer)))
waited = until_ready()
print(w.status()['status'], w.engine(), 0.4 < waited < 30)
""")
    assert out == ["waiting reference False", "1", "ready fast True"]


def test_the_note_shows_while_the_kernels_are_prepared_and_hides_when_ready():
    out = _run("""
note = w.WarmupNote()
print(note.__panel__().visible)  # no warm-up in this process: no note
w.start(wait=60)
note = w.WarmupNote()
pane = note.__panel__()
print(pane.visible, 'Preparing the measuring kernels' in pane.object)
w.go()
until_ready()
note._update()
print(pane.visible)
""")
    assert out == ["False", "True True", "False"]


def test_a_failed_compile_is_reported_and_measuring_falls_back_to_compiling_at_first_call():
    out = _run("""
w._CHILD = "raise SystemExit(3)"
w.start()
w.go()
until_ready()
s = w.status()
print(s['status'], w.engine(), 'exited with 3' in s['error'])
""")
    assert out == ["failed fast True"]


def test_a_stopped_server_leaves_no_compiler_behind(tmp_path):
    """The compile child is killed when the server process exits (panel serve exits on SIGTERM through its
    normal shutdown), not left compiling for a minute with nobody to use it."""
    import os
    import time

    pid_file = tmp_path / "child.pid"
    _run(f"""
w._CHILD = "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
w.start()
w.go()
t = time.perf_counter()
while not __import__('os').path.exists({str(pid_file)!r}) and time.perf_counter() - t < 60:
    time.sleep(0.02)
time.sleep(0.2)
print(w.status()['status'])
""")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError(f"the compile child {pid} still runs after its server exited")


def test_the_first_page_imports_no_scipy_and_the_measuring_modules_follow_in_a_thread():
    """What a served first page runs (the app's modules, the bundled sample, a share link) imports neither
    scipy nor the morphology: the inspector measures its digit once the page is on screen, and
    ``prefetch_measuring`` imports them meanwhile, in a thread."""
    code = """
import sys
from explorer import app, url, warmup
from explorer.state import ExplorerState
state = ExplorerState()
url.apply_query(state, {"digit": "7", "labels": "[1, 2]", "sort": "thickness"})
print(sorted(m for m in ("scipy.ndimage", "core.morpho", "core.perturb", "core.measure", "numba") if m in sys.modules))
warmup.prefetch_measuring().join(120)
assert warmup.prefetch_measuring() is warmup.prefetch("core.measure")  # once per process
print("core.measure" in sys.modules, "scipy.ndimage" in sys.modules)
url.apply_query(state, {"pert": "thinning"})  # a link naming a perturbation needs its table
print("core.perturb" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:-1] == ["[]", "True True", "True"]


def test_the_server_hook_imports_the_first_page_modules_in_a_thread():
    """Bokeh finds ``explorer/app_hooks.py`` beside ``main.py`` and runs its ``on_server_loaded`` when the server
    starts: a thread imports the app (pandas included) before the first visitor's page is built."""
    code = """
import importlib.util, sys, threading
from bokeh.application.handlers.directory import DirectoryHandler
folder = importlib.util.find_spec("explorer").submodule_search_locations[0]
handler = DirectoryHandler(filename=folder)  # what `panel serve explorer` builds; runs no app code
print("explorer.app" in sys.modules, "pandas" in sys.modules)
handler.on_server_loaded(None)
for t in threading.enumerate():
    if t.name == "morpho-prefetch-explorer.app":
        t.join(120)
print("explorer.app" in sys.modules, "pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:-1] == ["False False", "True True"]


def test_the_server_hook_settles_the_collector_and_a_notebook_keeps_pythons():
    """The server's start freezes the imported modules' objects out of the garbage collector's walks and
    collects its youngest generation less often (explorer.app_hooks.settle_heap; benchmarks/gc_pauses.py);
    importing and building the explorer, as a notebook does, leaves Python's collector as it was."""
    code = """
import gc, importlib.util, sys, threading
import panel as pn
from explorer import Explorer
from explorer.app_hooks import GC_THRESHOLD0
pn.extension(notifications=False)
Explorer()
print(gc.get_threshold()[0], gc.get_freeze_count())
from bokeh.application.handlers.directory import DirectoryHandler
folder = importlib.util.find_spec("explorer").submodule_search_locations[0]
DirectoryHandler(filename=folder).on_server_loaded(None)
for t in threading.enumerate():
    if t.name == "morpho-settle-heap":
        t.join(120)
print(gc.get_threshold()[0] == GC_THRESHOLD0 > 700, gc.get_freeze_count() > 100_000)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:-1] == ["700 0", "True True"]
