"""A class on one server: 20 Chromium sessions on one ``morpho serve``, measured side by side with an idle server.

Five sessions measure what a student feels, in the same run, first with nobody else working (idle) and then
while 15 others work in loops (busy):

- the studio slider (set slant, overlays on): from the slider's input event to changed canvas pixels;
- browse paging: from a PageDown key event to changed pixels of the browse grid.

The 15 busy sessions, in bounded loops until the busy measurements are done: compare 5,000 samples
(measured on the server), apply a perturbation to a 1,000-digit selection (the studio's export), page
through the 70,000 digits, traverse the live model (8 latents) and analyse the traversal.

The 15 working sessions run in a child process of their own (its own Playwright driver and Chromium): it
stands in for the students' own laptops, so on one machine their page rendering and their driver's traffic
must not take the CPU the server needs. Linux shares the CPU between sessions first (autogroup scheduling,
``/proc/sys/kernel/sched_autogroup_enabled``, on in most distributions' kernels; Playwright starts each
Chromium in a session of its own, ``morpho serve`` its server too), then between the threads of each: a
nice value or the ``SCHED_IDLE`` class weighs only inside its session. So the child and its Chromium get
autogroup nice 19 (:func:`autogroup_nice`), and ``SCHED_IDLE`` at nice 19 for kernels without autogroups
(``chrt --idle``). Until 2026-12-08 only the working Chromium was put in ``SCHED_IDLE``, which the
autogroups made void: it took a third of the two cores in the busy phase, and the server's event loop
waited for a CPU 15 s of 20 (``/proc/PID/task/TID/schedstat``) while it ran 4.8 s. ``--clients-nice 0``
lets everyone share the CPU equally (no ``chrt``, no nice, no autogroup nice).

With the working students at nice 19 the server's worker processes (comparisons, perturbations, traversal
analysis, at nice 19 inside the server's session) take what the server's event loop leaves (1.2 of the two
cores over one 20 s window of a busy phase), and the working browsers get little: they turn a few pages
while the five measure, where students on their own laptops would turn about three a second each. The bench
prints the work done.

A measuring tab notices a change by a signature of the canvas's pixels, computed at an animation frame only
if some canvas of the page was drawn on since the last check (the page's 2D drawing calls are counted): a
browser that hashed the canvas at every frame while it waited spent more of the CPU the longer the server
took (five tabs waiting at once took about half a core in the busy phase), and that CPU was the server's.

Data: the 70,000 digits are the MNIST test set (``../shared/data/mnist`` or ``--mnist DIR``) tiled 7x with
the authors' metrics; the samples are 5,000 other real test digits. Loopback only.

    python benchmarks/bench_class.py [--processes 1] [--moves 20] [--warmup 2] [--busy 15] [--clients-nice 19]

Prints median / p95 / max per measurement, idle and busy, their ratios, and the server's resident memory
(every process of its group). Goal (issue 17): busy median <= 2x idle, p95 <= 4x, nothing over 2 s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_explorer import ARGS, CHROMIUM, arm_js, free_port, sig_js, tiled_70k, wait_listening  # noqa: E402

# The canvas signature each measuring tab computes when it looks for a change. bench_explorer.py's hashes
# every pixel: 6 ms on the browse grid (420x420). This one hashes every 13th pixel (13 divides no row length
# used here, 420 or 330, so the sampled columns shift from row to row): 1.7 ms on the grid, 1.0 ms on the
# studio's digit. A page turn or a slider step changes hundreds of pixels: checked against the full hash over
# 30 moves, it missed none. The page's 2D drawing calls are counted, so a waiting tab hashes only after
# something was drawn (see the module docstring).
_SIG_JS = sig_js(every=13, count_draws=True)
_ARM_JS = arm_js(after_draws=True)

VIEWPORT = {"width": 1440, "height": 900}

#: The live model of the traversing students: PCA of the bundled sample (a real decoder, plain numpy).
DECODER_MODULE = '''
import numpy as np
from core.io import load_idx
from pathlib import Path
D = 8
_x = load_idx(str(Path({root!r}) / "assets/mnist-5k/train-images-idx3-ubyte.gz")).reshape(-1, 784) / 255.0
_mean = _x.mean(0)
_, _s, _vt = np.linalg.svd(_x - _mean, full_matrices=False)
_comps, _sd = _vt[:D], _s[:D] / np.sqrt(len(_x) - 1)
def decode(codes):
    codes = np.asarray(codes, np.float64)
    return np.clip(_mean + (codes * _sd) @ _comps, 0, 1).reshape(-1, 28, 28)
'''


def group_pids(pgid: int) -> list[int]:
    """The live processes of the group ``pgid`` (the server, its forkserver and workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getpgid(int(entry)) == pgid:
                pids.append(int(entry))
        except (OSError, ProcessLookupError):
            continue
    return pids


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in the group ``pgid``."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of the group ``pgid``."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def main_thread_times(pid: int) -> tuple[float, float]:
    """Seconds the main thread of ``pid`` has run on a CPU and waited in the run queue for one (the kernel's
    ``schedstat``)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        on_cpu, waited = f.read().split()[:2]
    return int(on_cpu) / 1e9, int(waited) / 1e9


async def text(page, selector: str) -> str:
    loc = page.locator(selector)
    if not await loc.count():
        return ""
    return await loc.first.evaluate("e => (e.shadowRoot || e).textContent")


async def wait_text(page, selector: str, needle: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while needle not in await text(page, selector):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} not in {selector}")
        await page.wait_for_timeout(250)


async def new_page(browser, url: str, ready: str):
    context = await browser.new_context(viewport=VIEWPORT)
    # The working browser runs at idle priority: with the cores full its pages may not run a script for
    # tens of seconds, and a session that timed out would drop its load from the busy phase.
    context.set_default_timeout(300_000)
    page = await context.new_page()
    await page.add_init_script(_SIG_JS)
    await page.goto(url, timeout=300_000)
    await page.locator(ready).first.wait_for(timeout=300_000)
    return page


# ------------------------------------------------------------------------------------------------------
# measuring sessions

async def slider_session(browser, base: str):
    page = await new_page(browser, f"{base}?tab=1&pert=set_slant", ".explorer-studio .bk-Canvas >> nth=1")
    await page.wait_for_timeout(1000)
    handle = await page.locator(".explorer-studio .noUi-handle").first.element_handle()
    canvas = await page.locator(".explorer-studio .bk-Canvas").nth(1).locator("canvas").first.element_handle()
    keys = ("ArrowLeft", "ArrowRight")
    return page, handle, canvas, keys


async def paging_session(browser, base: str):
    page = await new_page(browser, base, ".explorer-browser .bk-Canvas")
    await page.wait_for_timeout(1000)
    handle = await page.locator("body").element_handle()
    canvas = await page.locator(".explorer-browser canvas").first.element_handle()
    return page, handle, canvas, ("PageDown", "PageUp")


async def measure(session, moves: int, out: list, warmup: int = 0, warm_out: list | None = None) -> None:
    """``moves`` measured moves into ``out``, after ``warmup`` moves into ``warm_out`` (each tab's first
    moves fill its caches, as in bench_explorer.py: printed, not counted)."""
    page, handle, canvas, keys = session
    for k in range(warmup + moves):
        await page.evaluate(_ARM_JS, [handle, canvas])
        if keys[0] == "PageDown":
            await page.keyboard.press(keys[k % 2])
        else:
            await handle.press(keys[k % 2])
        ms = await page.evaluate("() => window.__latency")
        (out if k >= warmup else warm_out).append(ms if ms >= 0 else 5000.0)  # -1: no change within 5 s
        await page.wait_for_timeout(300)  # a student's pace between moves


# ------------------------------------------------------------------------------------------------------
# busy sessions: bounded loops until `stop` is set

async def busy_compare(browser, base, files, stop, counts):
    page = await new_page(browser, f"{base}?tab=3", ".compare-load")
    counts["sessions"] += 1
    await page.locator(".compare-path input").fill(str(files / "samples-idx3-ubyte"))
    for _ in range(50):
        if stop.is_set():
            break
        await page.locator(".compare-load button").click()
        await wait_text(page, ".compare-mmd", "5,000 samples")
        counts["compare"] += 1
        await page.locator(".compare-mmd").first.evaluate("e => { (e.shadowRoot || e).textContent = ''; }")


async def busy_perturb(browser, base, selection, stop, counts):
    page = await new_page(browser, f"{base}?tab=1&pert=thinning&sel={selection}", ".explorer-studio .bk-Canvas")
    counts["sessions"] += 1
    for _ in range(50):
        if stop.is_set():
            break
        await page.get_by_text("Prepare download").first.click()
        download = page.locator(".explorer-studio .bk-btn-success")
        deadline = time.monotonic() + 600
        while not await download.count() or not await download.first.is_visible():
            if time.monotonic() > deadline:
                raise TimeoutError("the perturbed selection never became a download")
            await page.wait_for_timeout(250)
        counts["perturb"] += 1
        await page.wait_for_timeout(500)


async def busy_paging(browser, base, stop, counts):
    page = await new_page(browser, base, ".explorer-browser .bk-Canvas")
    counts["sessions"] += 1
    for _ in range(2000):
        if stop.is_set():
            break
        await page.keyboard.press("PageDown")
        counts["pages"] += 1
        await page.wait_for_timeout(300)


async def busy_traverse(browser, base, model_tab, stop, counts):
    page = await new_page(browser, f"{base}?tab={model_tab}", ".model-traverse")
    counts["sessions"] += 1
    for k in range(50):
        if stop.is_set():
            break
        await page.locator(".model-traverse button").click()
        await wait_text(page, ".model-status", "Sent a traversal")
        counts["traversals"] += 1
        await page.locator(".model-status").first.evaluate("e => { (e.shadowRoot || e).textContent = ''; }")
        await page.locator(".model-random button").click()  # a new base code next time


# ------------------------------------------------------------------------------------------------------

def stats(values) -> tuple[float, float, float]:
    v = np.asarray(values, float)
    return float(np.median(v)), float(np.percentile(v, 95)), float(v.max())


def working_command(args, base: str, files: Path, selection: str) -> list[str]:
    """The command line of the working students' process (this script, ``--working``): in ``SCHED_IDLE`` at
    nice ``args.clients_nice`` (see the module docstring); with 0, plain."""
    cmd = [sys.executable, __file__, "--working", base, str(files), selection, "--busy", str(args.busy),
           "--model-tab", str(args.model_tab), "--clients-nice", str(args.clients_nice)]
    if args.clients_nice <= 0:
        return cmd
    if shutil.which("chrt") is None:
        raise SystemExit("bench_class.py needs chrt (util-linux) to run the working students' browsers at idle "
                         "priority; or pass --clients-nice 0")
    return ["chrt", "--idle", "0", "nice", "-n", str(int(args.clients_nice)), *cmd]


def autogroup_nice(pid: int, nice: int) -> bool:
    """Set the nice value of the autogroup of ``pid`` (False where the kernel has none).

    With autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``, the default of most
    distributions' kernels) the CPU is shared between sessions first (``setsid``: Playwright starts each
    Chromium in one of its own), then between the threads of each: a thread's nice value or ``SCHED_IDLE``
    class weighs only inside its session, and only the session's autogroup nice weighs against the others.
    """
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(int(nice)))
        return True
    except OSError:
        return False


def descendants(root: int) -> list[int]:
    """The processes started by ``root`` (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


async def working(base: str, files: Path, selection: str, n: int, model_tab: int, nice: int) -> None:
    """The working students (the child process): ``n`` sessions in loops until a line arrives on stdin.

    Prints their work done as one JSON line a second (``{"counts": ...}``) and, once stopped, a last line
    with ``"errors"`` too."""
    from playwright.async_api import async_playwright

    stop = asyncio.Event()
    # "sessions": pages open and working; the rest: work done
    counts = {"sessions": 0, "compare": 0, "perturb": 0, "pages": 0, "traversals": 0}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        if nice > 0:  # this process's session, and the one Playwright started its Chromium in
            for pid in [os.getpid(), *descendants(os.getpid())]:
                autogroup_nice(pid, nice)
        kinds = [lambda: busy_compare(browser, base, files, stop, counts),
                 lambda: busy_perturb(browser, base, selection, stop, counts),
                 lambda: busy_paging(browser, base, stop, counts),
                 lambda: busy_traverse(browser, base, model_tab, stop, counts)]
        workers = [asyncio.create_task(kinds[i % 4]()) for i in range(n)]
        told = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
        while not told.done():
            print(json.dumps({"counts": counts}), flush=True)
            await asyncio.wait([told], timeout=1.0)
        stop.set()
        done, pending = await asyncio.wait(workers, timeout=120)
        for t in pending:
            t.cancel()
        errors = [repr(t.exception()) for t in done if not t.cancelled() and t.exception() is not None]
        await browser.close()
    print(json.dumps({"counts": counts, "errors": errors}), flush=True)


async def run(args, base: str, files: Path, selection: str, server_pid: int) -> None:
    from playwright.async_api import async_playwright

    pgid = os.getpgid(server_pid)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        sessions = ([("slider", await slider_session(browser, base)) for _ in range(3)]
                    + [("paging", await paging_session(browser, base)) for _ in range(2)])
        times = {(kind, phase): [] for kind in ("slider", "paging") for phase in ("idle", "busy")}
        rss = {"idle": group_rss(pgid)}
        # idle: the five measure, nobody else works
        first = {"slider": [], "paging": []}  # each tab's first moves (not counted)
        await asyncio.gather(*[measure(s, args.moves, times[(kind, "idle")], args.warmup, first[kind])
                               for kind, s in sessions])
        # busy: 15 students work in loops, in a process of their own
        n = args.busy
        report = {"counts": {"sessions": 0, "compare": 0, "perturb": 0, "pages": 0, "traversals": 0}, "errors": []}
        child = await asyncio.create_subprocess_exec(*working_command(args, base, files, selection),
                                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                     start_new_session=True)  # an autogroup of its own

        async def follow():
            async for line in child.stdout:
                report.update(json.loads(line))

        following = asyncio.create_task(follow())
        print(f"idle measured; {n} working sessions starting", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        while report["counts"]["sessions"] < n and time.monotonic() - t0 < 300:  # every page open and working
            if child.returncode is not None:
                raise RuntimeError(f"the working students' process stopped (exit {child.returncode})")
            await asyncio.sleep(1)
        started = dict(report["counts"])
        print(f"all working ({started}); measuring busy", file=sys.stderr, flush=True)
        cpu0, loop0, wall0 = group_cpu(pgid), main_thread_times(server_pid), time.monotonic()
        await asyncio.gather(*[measure(s, args.moves, times[(kind, "busy")]) for kind, s in sessions])
        busy_wall = time.monotonic() - wall0
        server_cpu = group_cpu(pgid) - cpu0
        loop_cpu, loop_wait = (b - a for a, b in zip(loop0, main_thread_times(server_pid)))
        rss["busy"] = group_rss(pgid)
        counts = {k: v - started[k] for k, v in report["counts"].items() if k != "sessions"}  # while measuring
        classes = subprocess.run(["ps", "-eLo", "cls=,comm="], capture_output=True, text=True).stdout.split("\n")
        idle_threads = sum(1 for c in classes if c.split()[:1] == ["IDL"] and "chrom" in c)
        groups = set()
        for pid in [child.pid, *descendants(child.pid)]:
            try:
                with open(f"/proc/{pid}/autogroup") as f:
                    groups.add(f.read().strip())
            except OSError:
                pass
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        try:
            await asyncio.wait_for(asyncio.gather(following, child.wait()), timeout=180)
        except asyncio.TimeoutError:
            child.kill()
        errors = report["errors"]
        await browser.close()

    load = os.getloadavg()
    print(f"class of {5 + n} sessions on one `morpho serve --processes {args.processes}` "
          f"({os.cpu_count()} cores, load average now {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    print(f"busy work done while measuring: {counts}")
    print(f"the busy measurements took {busy_wall:.0f} s: the server's processes used {server_cpu:.0f} CPU s "
          f"({server_cpu / busy_wall:.2f} cores), its event loop ran {loop_cpu:.1f} s and waited for a CPU "
          f"{loop_wait:.1f} s")
    print(f"Chromium threads in SCHED_IDLE (the working students' browser) at the end: {idle_threads}; the "
          f"working students' autogroups: {', '.join(sorted(groups)) or 'none (no autogroup scheduling)'}")
    if errors:
        print(f"busy sessions that failed: {len(errors)}: {errors[0]:.300}")
    print(f"{'measurement':<26} {'idle med/p95/max ms':>22} {'busy med/p95/max ms':>22} {'ratio med/p95':>14}")
    worst = 0.0
    for kind, label in (("slider", "studio slider -> pixels"), ("paging", "browse PageDown -> pixels")):
        i, b = stats(times[(kind, "idle")]), stats(times[(kind, "busy")])
        worst = max(worst, b[2])
        print(f"{label:<26} {i[0]:6.0f} {i[1]:6.0f} {i[2]:6.0f}    {b[0]:6.0f} {b[1]:6.0f} {b[2]:6.0f}    "
              f"{b[0] / i[0]:5.2f} {b[1] / i[1]:5.2f}")
    if args.warmup:
        print(f"each measuring tab's first {args.warmup} moves, idle, not counted above (ms): "
              + "; ".join(f"{k} {' '.join(f'{v:.0f}' for v in first[k])}" for k in first))
    print(f"server resident memory (all processes): idle {rss['idle'] / 2**20:,.0f} MiB with 5 sessions, "
          f"busy {rss['busy'] / 2**20:,.0f} MiB with {5 + n}")
    print(f"goal: busy median <= 2x idle, p95 <= 4x, max <= 2000 ms (max now {worst:.0f} ms)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=1, help="server processes (morpho serve --processes)")
    ap.add_argument("--moves", type=int, default=20, help="measured moves per measuring session and phase")
    ap.add_argument("--warmup", type=int, default=2,
                    help="first moves of each measuring tab, before the idle phase, printed but not counted")
    ap.add_argument("--clients-nice", type=int, default=19,
                    help="nice value of the 15 working students' process (0: they share the CPU equally)")
    ap.add_argument("--busy", type=int, default=15, help="busy sessions")
    ap.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                    help="MNIST folder with the test set and t10k-morpho.csv")
    # the working students' process (see working_command)
    ap.add_argument("--working", nargs=3, metavar=("BASE", "FILES", "SELECTION"), help=argparse.SUPPRESS)
    ap.add_argument("--model-tab", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.working:
        base, files, selection = args.working
        asyncio.run(working(base, Path(files), selection, args.busy, args.model_tab, args.clients_nice))
        return 0
    from core.io import load_idx, save_idx
    from explorer.app import TABS
    from explorer.state import encode_indices

    args.model_tab = len(TABS)  # the Model tab comes after the others (it was 5 until the sixth tab came)

    with tempfile.TemporaryDirectory(prefix="morpho-class-") as tmp:
        tmp = Path(tmp)
        data = tiled_70k(args.mnist, tmp / "mnist-70k")
        test = load_idx(str(Path(args.mnist) / "t10k-images-idx3-ubyte.gz"))
        save_idx(test[5000:10000], tmp / "samples-idx3-ubyte")
        (tmp / "benchmod").mkdir()
        (tmp / "benchmod" / "class_decoder.py").write_text(DECODER_MODULE.format(root=str(ROOT)))
        selection = encode_indices(list(range(20000, 21000)))  # 1,000 digits
        port = free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp / "benchmod")]))
        log = open(tmp / "serve.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", str(data), "--port", str(port),
                                 "--data-root", str(tmp), "--decoder", "class_decoder:decode", "--latent-dim", "8",
                                 "--processes", str(args.processes)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc, timeout=300)
            server_pid = int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
                             .stdout.split()[0])  # panel serve, which morpho serve started
            asyncio.run(run(args, f"http://127.0.0.1:{port}/explorer", tmp, selection, server_pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
