"""Background work of every explorer session on one bounded, fair, server-wide worker pool.

A served explorer is used by many people at once. Loading, measuring, perturbing, comparing and
traversal analysis must never run on the event loop (every client would freeze) and one user's
500,000-digit measurement must not make everyone else wait. So:

- one pool of worker threads serves the whole process (``MORPHO_JOB_THREADS``, default: the number of
  cores, at most 4) and schedules every task;
- the digit chunks (measuring, perturbing: :func:`measure`, :func:`map_digits`) and long numerical calls
  (the compare view's two-sample tests, the Codes panel's partial correlations and MIG:
  :func:`submit_to_worker`) run in *worker processes*
  once the served explorer has its kernels compiled (:func:`use_worker_processes`; ``MORPHO_JOB_PROCESSES``,
  default as many as threads, 0: threads only). A pool thread hands its chunk to a process and waits
  without the GIL. Why: a chunk's Python code holds the server's GIL, and a low-priority thread holding it
  while the CPU is busy elsewhere stalls the event loop until the scheduler runs that thread again
  (priority inversion). ``python benchmarks/event_loop_lag.py`` (an event loop ticking every 10 ms, two
  nice-0 busy processes, the pool perturbing and measuring; 2 cores, 2026-12-07): threads delayed the ticks
  by p99 / max 281 / 927 ms, processes by 4.9 / 23 ms, no background work by 5.0 / 6 ms;
- work is split into tasks (a chunk of ~256 digits, or one call) and the pool hands tasks out
  round-robin per *owner* (a browser session), and round-robin among an owner's jobs: a session with
  one small job waits for at most one chunk of each other session's work;
- a task that cannot be split (:func:`submit`) may hold at most ``threads - 1`` workers per owner, so a
  long load never takes the whole pool;
- the pool's threads run at a lower OS priority than the server's event loop (``MORPHO_JOB_NICE``,
  default 19, the lowest, on Linux, where each thread has its own nice value): with every core busy measuring,
  the thread that answers sliders and page keys still gets the CPU first, so a student's move waits for
  no one's background work;
- a :class:`Job` can be cancelled (its queued tasks are dropped, a running task finishes its chunk and is
  discarded); the server cancels every job of a session that closes (``cancel_owner``).

In a Panel coroutine callback, ``await job`` waits without blocking the event loop::

    job = jobs.measure(jobs.session_owner(), images, progress=report)
    metrics = await job

``progress(done, total)`` is called from a worker thread: hand UI updates to the session's document
(``ExplorerState.run_on_document`` or ``doc.add_next_tick_callback``).
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import functools
import os
import sys
import threading
import warnings
from collections import OrderedDict, deque
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from explorer.settings import env_number

__all__ = ["Job", "Cancelled", "session_owner", "submit", "submit_to_worker", "measure", "map_chunks", "map_digits",
           "cancel_owner", "checkpoint", "current_job", "pool_size", "job_nice", "worker_processes",
           "use_worker_processes", "owner_jobs", "DEFAULT_CHUNKSIZE"]

#: Digits per measuring task: ~0.1-0.5 s of work, so other sessions' tasks interleave quickly.
DEFAULT_CHUNKSIZE = 256

Progress = Callable[[int, int], None]

_quiet_lock = threading.Lock()
_quiet = False


def _quiet_chunk_warnings() -> None:
    """measure_batch warns about unmeasurable digits per chunk (with chunk-relative indices); the job
    reports them once instead (Job.notes). Each chunk installs it in the process that measures it (a worker
    or this one), once (not at import, which would import the measuring kernels); the filter only matches
    warnings attributed to this module, and a process-wide filter is the only kind worker threads share
    (``catch_warnings`` is not thread-safe)."""
    global _quiet
    with _quiet_lock:
        if not _quiet:
            from core.measure import MeasurementWarning

            warnings.filterwarnings("ignore", category=MeasurementWarning, module=__name__.replace(".", r"\."))
            _quiet = True


class Cancelled(cf.CancelledError):
    """The job was cancelled (by its user, or because its session closed)."""


def pool_size() -> int:
    """Number of worker threads of the server-wide pool (``MORPHO_JOB_THREADS``, default: cores, at most 4)."""
    return int(env_number("MORPHO_JOB_THREADS", max(1, min(4, os.cpu_count() or 1)), integer=True))


def job_nice() -> int:
    """How many nice levels below the event loop the pool's threads run (``MORPHO_JOB_NICE``, 0..19).

    Default 19: on a contended machine Linux gives a nice-0 thread about 70 times the CPU of a nice-19 one,
    so a slider waits for no one's measurement; on an idle machine the work runs at full speed anyway.
    Measured with ``benchmarks/bench_class.py`` (20 sessions, 2 cores): the busy studio slider's p95 was
    5.0 s (every move timed out) with 0, 3.4 s with 10 and 1.9 s with 19."""
    return int(env_number("MORPHO_JOB_NICE", 19, integer=True, minimum=0, maximum=19))


def worker_processes() -> int:
    """How many worker processes run the digit chunks once they are on (``MORPHO_JOB_PROCESSES``, default:
    :func:`pool_size`, one per pool thread; 0: the chunks run in the pool's threads)."""
    return int(env_number("MORPHO_JOB_PROCESSES", pool_size(), integer=True, minimum=0, maximum=64))


_WORKERS: "cf.ProcessPoolExecutor | None" = None
_WORKERS_ON = False
_WORKERS_LOCK = threading.Lock()
#: What the forkserver imports once, so that every worker forked from it starts with the kernels loaded.
_WORKER_PRELOAD = ("core._worker", "core.perturb", "explorer.perturbing")


def use_worker_processes(on: bool = True) -> None:
    """From now on run the digit chunks of :func:`measure` and :func:`map_digits`, and the calls of
    :func:`submit_to_worker`, in worker processes (``on``) or in the pool's threads.

    The served explorer turns them on when its kernels are compiled and in numba's on-disk cache
    (:mod:`explorer.warmup`): a worker started sooner would compile them again. Workers start at their first
    chunk, run :func:`job_nice` levels below the server and end with it.
    """
    global _WORKERS_ON
    _WORKERS_ON = bool(on)


def _worker_pool() -> "cf.ProcessPoolExecutor | None":
    global _WORKERS
    if not _WORKERS_ON or worker_processes() == 0:
        return None
    with _WORKERS_LOCK:
        if _WORKERS is None:
            from core.processes import process_pool

            _WORKERS = process_pool(worker_processes(), nice=job_nice(), preload=_WORKER_PRELOAD)
        return _WORKERS


def _in_worker(fn: Callable, *args):
    """``fn(*args)`` in a worker process when they are on, else in this thread."""
    pool = _worker_pool()
    if pool is None:
        return fn(*args)
    try:
        return pool.submit(fn, *args).result()
    except cf.process.BrokenProcessPool:
        # a worker died (killed, out of memory): this chunk runs here, the next ones in a new pool
        global _WORKERS
        with _WORKERS_LOCK:
            if _WORKERS is pool:
                _WORKERS = None
        pool.shutdown(wait=False, cancel_futures=True)
        return fn(*args)


def _lower_this_threads_priority(increment: int) -> None:
    # Only on Linux: there setpriority on a thread id renices that one thread. Elsewhere the same call would
    # renice the whole server (event loop included), which is the opposite of the point.
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError:  # not permitted here: the pool still works, only without the priority
        pass


def session_owner() -> str:
    """The id of the current Bokeh server session, or ``"notebook"`` outside a served app."""
    import panel as pn

    doc = pn.state.curdoc
    ctx = getattr(doc, "session_context", None) if doc is not None else None
    return str(ctx.id) if ctx is not None else "notebook"


_local = threading.local()


def current_job() -> "Job | None":
    """The job whose task runs in this thread (None outside the pool)."""
    return getattr(_local, "job", None)


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the job running in this thread was cancelled.

    Long functions given to :func:`submit` call it now and then, so that cancelling stops them early.
    """
    job = current_job()
    if job is not None and job._cancel_event.is_set():
        raise Cancelled(f"{job.name} was cancelled")


class Job:
    """Work handed to the pool: one call, or one call per chunk of an array.

    Awaitable (``result = await job`` in a coroutine, never blocking the event loop); ``result()`` waits in
    a thread. A cancelled job raises :class:`concurrent.futures.CancelledError` from both.

    Attributes
    ----------
    owner : str
        Whose job it is (a session id).
    name : str
        What it does, for logs and status lines.
    notes : list of str
        What happened that the user may want to know (e.g. digits that could not be measured).
    """

    def __init__(self, owner: str, name: str, tasks: Iterator, n_tasks: int, combine: Callable,
                 progress: Progress | None = None, sizes: list | None = None, splittable: bool = True):
        self.owner = str(owner)
        self.name = name
        self.notes: list[str] = []
        self.splittable = splittable
        self._future: cf.Future = cf.Future()
        self._lock = threading.Lock()
        self._cancel_event = threading.Event()
        self._tasks = tasks
        self._n_tasks = n_tasks
        self._taken = 0
        self._finished = 0
        self._results: dict = {}
        self._combine = combine
        self._progress = progress
        self._sizes = sizes
        self._total = sum(sizes) if sizes is not None else n_tasks
        self._done_items = 0
        self._future.add_done_callback(self._on_future_done)

    # --- public API ------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel: drop queued tasks; a running task finishes its chunk and its result is discarded."""
        self._cancel_event.set()
        cancelled = self._future.cancel()
        _scheduler().forget(self)
        return cancelled or self._future.cancelled()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None):
        """The result, waiting up to ``timeout`` seconds (``concurrent.futures.TimeoutError`` after)."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None):
        return self._future.exception(timeout)

    def add_done_callback(self, fn: Callable[["Job"], Any]) -> None:
        """Call ``fn(job)`` when the job finishes, fails or is cancelled (in the thread that ends it)."""
        self._future.add_done_callback(lambda _: fn(self))

    def __await__(self):
        return asyncio.wrap_future(self._future).__await__()

    @property
    def progress(self) -> tuple[int, int]:
        """(done, total) in items (digits for :func:`measure`, tasks otherwise)."""
        return self._done_items, self._total

    def __repr__(self):
        state = "cancelled" if self.cancelled() else "done" if self.done() else "pending"
        return f"<Job {self.name!r} of {self.owner} {state} {self._done_items}/{self._total}>"

    # --- used by the scheduler -------------------------------------------------------------------
    def _on_future_done(self, fut):
        if fut.cancelled():  # e.g. an awaiting coroutine was cancelled: stop the work too
            self._cancel_event.set()
        self._release()

    def _release(self):
        # Free what the job holds (input chunks, partial results): a closed session's memory goes.
        with self._lock:
            self._tasks = iter(())
            self._results = {}

    def _take(self):
        """The next (index, callable), or None when every task was handed out."""
        with self._lock:
            if self._cancel_event.is_set() or self._taken >= self._n_tasks:
                return None
            item = next(self._tasks, None)
            if item is None:
                return None
            self._taken += 1
            return item

    def _exhausted(self) -> bool:
        return self._cancel_event.is_set() or self._future.done() or self._taken >= self._n_tasks

    def _run(self, index: int, fn: Callable) -> None:
        if self._cancel_event.is_set():
            return
        _local.job = self
        try:
            value = fn()
        except BaseException as e:  # handed to whoever awaits the job
            self._cancel_event.set()
            if not self._future.done():
                try:
                    if isinstance(e, cf.CancelledError):
                        self._future.cancel()
                    else:
                        self._future.set_exception(e)
                except cf.InvalidStateError:
                    pass
            _scheduler().forget(self)
            return
        finally:
            _local.job = None
        if self._cancel_event.is_set():
            return
        with self._lock:
            self._results[index] = value
            self._finished += 1
            self._done_items += self._sizes[index] if self._sizes is not None else 1
            complete = self._finished >= self._n_tasks
            done_items = self._done_items
        if self._progress is not None:
            try:
                self._progress(done_items, self._total)
            except Exception:  # a broken progress display must not lose the work
                pass
        if complete:
            self._complete()

    def _complete(self):
        with self._lock:
            parts = [self._results[i] for i in range(self._n_tasks)]
            self._results = {}
        try:
            value = self._combine(parts)
        except BaseException as e:
            if not self._future.done():
                self._future.set_exception(e)
            return
        try:
            self._future.set_result(value)
        except cf.InvalidStateError:  # cancelled meanwhile
            pass


class _Scheduler:
    """Worker threads taking tasks round-robin over owners, and over each owner's jobs."""

    def __init__(self, n_threads: int, nice: int = 0):
        self.n_threads = n_threads
        self.nice = nice
        self._cv = threading.Condition()
        self._queues: "OrderedDict[str, deque]" = OrderedDict()  # owner -> jobs with tasks left
        self._jobs: dict[str, set] = {}  # owner -> every unfinished job (queued or running)
        self._whole_running: dict[str, int] = {}  # owner -> running unsplittable tasks
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def add(self, job: Job) -> Job:
        with self._cv:
            self._jobs.setdefault(job.owner, set()).add(job)
            self._queues.setdefault(job.owner, deque()).append(job)
            while len(self._threads) < self.n_threads:
                t = threading.Thread(target=self._work, name=f"explorer-job-{len(self._threads)}",
                                     daemon=True)  # never keeps the server process alive
                self._threads.append(t)
                t.start()
            self._cv.notify()
        job.add_done_callback(self._finished)
        return job

    def _finished(self, job: Job):
        with self._cv:
            owned = self._jobs.get(job.owner)
            if owned is not None:
                owned.discard(job)
                if not owned:
                    del self._jobs[job.owner]

    def forget(self, job: Job):
        with self._cv:
            q = self._queues.get(job.owner)
            if q is not None and job in q:
                q.remove(job)
                if not q:
                    del self._queues[job.owner]
            self._cv.notify_all()

    def jobs_of(self, owner: str) -> list[Job]:
        with self._cv:
            return list(self._jobs.get(owner, ()))

    def _next(self):
        # The least recently served owner with a task it may run now goes first.
        cap = max(1, self.n_threads - 1)
        for owner in list(self._queues):
            q = self._queues[owner]
            for _ in range(len(q)):
                job = q[0]
                if job._exhausted():
                    q.popleft()
                    continue
                q.rotate(-1)  # the owner's next job goes first next time
                if not job.splittable and self._whole_running.get(owner, 0) >= cap:
                    continue
                item = job._take()
                if item is None:
                    q.remove(job)
                    continue
                if job._exhausted():
                    q.remove(job)
                if not q:
                    del self._queues[owner]
                else:
                    self._queues.move_to_end(owner)
                if not job.splittable:
                    self._whole_running[owner] = self._whole_running.get(owner, 0) + 1
                return job, item
            if not q:
                del self._queues[owner]
        return None

    def _work(self):
        _lower_this_threads_priority(self.nice)
        while True:
            with self._cv:
                while (picked := self._next()) is None:
                    if self._stopping:
                        return
                    self._cv.wait()
            job, (index, fn) = picked
            try:
                job._run(index, fn)
            finally:
                if not job.splittable:
                    with self._cv:
                        left = self._whole_running.get(job.owner, 1) - 1
                        if left > 0:
                            self._whole_running[job.owner] = left
                        else:
                            self._whole_running.pop(job.owner, None)
                        self._cv.notify_all()
                del job, fn, picked  # drop references to the chunk before waiting

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every job and join the threads."""
        with self._cv:
            self._stopping = True
            jobs = [job for owned in self._jobs.values() for job in owned]
        for job in jobs:
            job.cancel()
        with self._cv:
            self._cv.notify_all()
        for t in list(self._threads):
            t.join(timeout)


_SCHEDULER: _Scheduler | None = None
_SCHEDULER_LOCK = threading.Lock()


def shutdown(timeout: float = 30.0) -> None:
    """Cancel every job and join the pool's threads (at interpreter exit: a daemon thread still inside a
    compiled kernel when the interpreter finalizes is killed by pthread_exit, which can abort the process)."""
    if _SCHEDULER is not None:
        _SCHEDULER.shutdown(timeout)
    if _WORKERS is not None:
        _WORKERS.shutdown(wait=False, cancel_futures=True)


def _scheduler() -> _Scheduler:
    global _SCHEDULER
    if _SCHEDULER is None:
        with _SCHEDULER_LOCK:
            if _SCHEDULER is None:
                _SCHEDULER = _Scheduler(pool_size(), job_nice())
                atexit.register(shutdown)
    return _SCHEDULER


# -------------------------------------------------------------------------------------------------------
# the public entry points

def submit(owner: str, fn: Callable, *args, **kwargs) -> Job:
    """Run ``fn(*args, **kwargs)`` in the pool as one task of ``owner``.

    Use for work that cannot be split (opening a file, one export). ``fn`` may call :func:`checkpoint`
    to stop early when the job is cancelled.

    Returns
    -------
    Job
        Its result is what ``fn`` returns.
    """
    return _one_task(owner, fn, lambda: fn(*args, **kwargs))


def submit_to_worker(owner: str, fn: Callable, *args, **kwargs) -> Job:
    """Run ``fn(*args, **kwargs)`` as one task of ``owner`` (as :func:`submit`), in a worker process once
    they are on (:func:`use_worker_processes`).

    For long numerical work that cannot be split (a comparison's two-sample tests): in a pool thread it
    would hold the GIL the event loop needs, for seconds, in many short stretches
    (``python benchmarks/event_loop_lag.py --work compare``). ``fn`` must be an importable module-level
    function and the arguments picklable (they are copied to the worker); until workers are on, and with
    ``MORPHO_JOB_PROCESSES=0``, it runs in a pool thread. A worker that dies costs nothing but time: the task
    reruns in the thread.
    """
    return _one_task(owner, fn, lambda: _in_worker(functools.partial(fn, **kwargs), *args))


def _one_task(owner: str, fn: Callable, call: Callable[[], object]) -> Job:
    """A job of one unsplittable task, ``call()`` (which runs ``fn``), queued under ``fn``'s name."""
    name = getattr(fn, "__name__", "task")
    return _scheduler().add(Job(owner, name, iter([(0, call)]), 1, lambda parts: parts[0], splittable=False))


def _combine(parts: list):
    if not parts:
        return parts
    first = parts[0]
    if isinstance(first, (pd.DataFrame, pd.Series)):
        return pd.concat(parts, ignore_index=True)
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, tuple) and all(isinstance(p, tuple) and len(p) == len(first) for p in parts):
        return tuple(_combine([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, list):
        return [x for p in parts for x in p]
    return parts


def map_chunks(owner: str, fn: Callable, array, *, chunksize: int = DEFAULT_CHUNKSIZE,
               progress: Progress | None = None) -> Job:
    """Run ``fn(chunk)`` on consecutive chunks of ``array`` (along axis 0) and join the results.

    Chunks of one job may run in parallel; every chunk of every owner is scheduled fairly.

    Parameters
    ----------
    owner : str
        The session the work belongs to (:func:`session_owner`).
    fn : callable
        ``fn(chunk)`` with ``chunk = array[i:i + chunksize]`` (a view, do not modify it).
    array : numpy.ndarray or sequence
        Anything with ``len`` and slicing.
    chunksize : int
        Items per task.
    progress : callable, optional
        ``progress(done_items, total_items)`` after each chunk, from a worker thread.

    Returns
    -------
    Job
        Its result joins the chunks' results: ``pd.concat`` for DataFrames (index 0..N-1),
        ``np.concatenate`` for arrays, tuples element-wise, lists concatenated; otherwise the list of
        per-chunk results.
    """
    job = _chunk_job(owner, fn, array, chunksize, progress, _combine)
    return job if job.done() else _scheduler().add(job)


def _chunk_job(owner, fn, array, chunksize, progress, combine) -> Job:
    n = len(array)
    chunksize = max(1, int(chunksize))
    starts = range(0, n, chunksize)
    sizes = [min(chunksize, n - s) for s in starts]
    tasks = ((i, (lambda s=s: fn(array[s:s + chunksize]))) for i, s in enumerate(starts))
    job = Job(owner, getattr(fn, "__name__", "chunks"), tasks, len(sizes), combine, progress=progress,
              sizes=sizes)
    if not sizes:  # nothing to do: finish at once with an empty result
        job._future.set_result(combine([]) if combine is not _combine else
                               (array[:0] if isinstance(array, np.ndarray) else []))
    return job


def measure(owner: str, images, *, progress: Progress | None = None, chunksize: int = DEFAULT_CHUNKSIZE,
            **measure_kwargs) -> Job:
    """Measure the six morphometrics of ``images`` in fair chunks (:func:`core.measure.measure_batch`).

    Parameters
    ----------
    owner : str
        The session the work belongs to.
    images : numpy.ndarray
        (N, 28, 28) digits, uint8 or float in [0, 1].
    progress : callable, optional
        ``progress(done_digits, total_digits)`` from a worker thread.
    chunksize : int
        Digits per task.
    **measure_kwargs
        Passed to ``measure_batch`` (``mode``, ``threshold``, ``scale``, ...).

    Returns
    -------
    Job
        Result: a DataFrame with N rows (index 0..N-1) and the columns area, length, thickness,
        slant, width, height; NaN rows for digits that could not be measured (counted in ``job.notes``).
    """
    from core.measure import METRICS

    kwargs = {k: v for k, v in measure_kwargs.items() if k not in ("workers", "executor", "progress")}
    if len(images) == 0:
        job = Job(owner, "measuring 0 digits", iter(()), 0, _combine)
        job._future.set_result(pd.DataFrame(columns=list(METRICS), dtype=float))
        return job

    def combine(parts):
        # Runs before anyone awaiting the job resumes, so the note is there when they look.
        df = _combine(parts)
        bad = int(df.isna().any(axis=1).sum())
        if bad:
            job.notes.append(f"{bad:,} of {len(df):,} digits could not be measured (NaN rows)")
        return df

    job = _digit_job(owner, _measure_digits, images, (kwargs,), None, chunksize, progress, combine)
    job.name = f"measuring {len(images):,} digits"
    return _scheduler().add(job)


def _measure_digits(images, indices, kwargs: dict) -> pd.DataFrame:
    """A chunk of :func:`measure` (in a worker process or a pool thread)."""
    from core.measure import measure_batch

    _quiet_chunk_warnings()
    return measure_batch(images, progress=False, **kwargs).reset_index(drop=True)


def map_digits(owner: str, fn: Callable, images, *args, indices=None, chunksize: int = DEFAULT_CHUNKSIZE,
               progress: Progress | None = None) -> Job:
    """Run ``fn(images_chunk, indices_chunk, *args)`` on chunks of digits and join the results (as
    :func:`map_chunks`).

    Once worker processes are on (:func:`use_worker_processes`) each chunk runs in one, so ``fn`` must be an
    importable module-level function and ``args`` picklable; until then, and with ``MORPHO_JOB_PROCESSES=0``,
    in the pool's threads.

    Parameters
    ----------
    owner : str
        The session the work belongs to.
    fn : callable
        ``fn(images_chunk, indices_chunk, *args)``: the chunk's digits (K, 28, 28) and their indices (K,) in
        ``images``.
    images : numpy.ndarray
        (N, 28, 28) digits.
    *args
        Passed on to ``fn``.
    indices : numpy.ndarray, optional
        int (M,): work on these digits of ``images`` only (a selection), in this order; all when omitted.
    chunksize : int
        Digits per task.
    progress : callable, optional
        ``progress(done_digits, total_digits)`` after each chunk, from a pool thread.
    """
    job = _digit_job(owner, fn, images, args, indices, chunksize, progress, _combine)
    return job if job.done() else _scheduler().add(job)


def _digit_job(owner, fn, images, args, indices, chunksize, progress, combine) -> Job:
    whole = indices is None
    positions = np.arange(len(images)) if whole else np.asarray(indices, dtype=np.int64)

    def chunk(pos):  # in a pool thread: cut the chunk here, compute it in a worker process when they are on
        part = images[pos[0]:pos[-1] + 1] if whole else images[pos]
        return _in_worker(fn, part, pos, *args)

    name = getattr(fn, "__name__", "chunks")
    if not len(positions):  # nothing to do: an empty result of the images' kind
        job = Job(owner, name, iter(()), 0, combine)
        job._future.set_result(combine([]) if combine is not _combine else np.asarray(images)[:0])
        return job
    job = _chunk_job(owner, chunk, positions, chunksize, progress, combine)
    job.name = name
    return job


def cancel_owner(owner: str) -> int:
    """Cancel every job of ``owner`` (a closing session); returns how many were cancelled."""
    jobs = _scheduler().jobs_of(str(owner))
    for job in jobs:
        job.cancel()
    return len(jobs)


def owner_jobs(owner: str) -> list[Job]:
    """The unfinished jobs of ``owner``."""
    return _scheduler().jobs_of(str(owner))
