"""The one shared state that every explorer view observes.

Besides the dataset, filters and selection, the state is where a view finds the session's services:
background work (:meth:`ExplorerState.track`, :meth:`ExplorerState.run_job`, all on the fair server-wide
pool of :mod:`explorer.jobs`), UI updates from worker threads (:meth:`ExplorerState.run_on_document`),
user-typed paths checked against the server's data folders (:meth:`ExplorerState.resolve_user_path`)
and share-link values checked against the widgets' ranges (:meth:`ExplorerState.apply_query`).
"""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import CancelledError
import math
from pathlib import Path

import numpy as np
import param

from explorer import jobs
from explorer.data import METRICS, DataError, Dataset, PendingDataset, load, load_sample
from explorer.gate import Gate, Upload

__all__ = ["ExplorerState", "URL_PARAMETERS"]

#: State parameters kept in the URL (parameter -> query name), so that a view can be shared.
URL_PARAMETERS = {
    "current": "digit", "labels": "labels", "perturbations": "perts", "ranges": "ranges",
    "sort_by": "sort", "descending": "desc", "page": "page", "perturbation": "pert",
    "perturbation_params": "pert_params", "seed": "seed", "scatter_x": "x", "scatter_y": "y",
    "scatter_selection": "sel",
}

#: Largest seed a share link may set (numpy generators take any int; this keeps URLs sane).
MAX_SEED = 2**32 - 1
#: Longest share-link value read (characters): a URL never makes the server parse megabytes.
MAX_QUERY_VALUE = 20_000


def _session_document():
    """The Bokeh document of the current server session, or None (notebook, script)."""
    import panel as pn

    doc = pn.state.curdoc
    return doc if doc is not None and doc.session_context is not None else None


def encode_indices(indices) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (sorted, unique): a compact selection for URLs."""
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist()))


def decode_indices(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`encode_indices`, keeping only indices in [0, n); raises ValueError."""
    out = []
    for item in filter(None, text.split(",")):
        a, _, b = item.partition("-")
        lo, hi = int(a), int(b) if b else int(a)
        lo, hi = max(lo, 0), min(hi, n - 1)
        if hi >= lo:
            out.append(np.arange(lo, hi + 1, dtype=np.int64))
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


class ExplorerState(param.Parameterized):
    """Dataset, filters, selection and current digit, shared by all views.

    Filters combine with AND: digit labels, perturbation labels, a [lo, hi] range per metric and the
    box/lasso selection made in the scatter plot. ``selection`` holds the indices passing all filters,
    in the order chosen by ``sort_by``; the browser pages through it.

    Parameters
    ----------
    dataset : Dataset, optional
        The bundled sample when omitted.
    data_roots : list of str, optional
        Folders the path boxes may read and write in (``--data-root``); empty: any path, unless
        ``paths_enabled`` is False.
    """

    dataset = param.ClassSelector(class_=Dataset, doc="The open dataset.")

    labels = param.List(default=[], item_type=int, doc="Digit labels to show; empty shows all.")
    perturbations = param.List(default=[], item_type=int, doc="Perturbation labels to show; empty: all.")
    ranges = param.Dict(default={}, doc="Metric name -> [lo, hi] range filter.")
    scatter_selection = param.Parameter(default=None, doc="Indices picked in the scatter (box/lasso), "
                                                        "or None for no scatter selection.")
    scatter_x = param.Selector(default="thickness", objects=list(METRICS), doc="Scatter plot's x metric.")
    scatter_y = param.Selector(default="slant", objects=list(METRICS), doc="Scatter plot's y metric.")
    sort_by = param.Selector(default="index", objects=["index", *METRICS], doc="Order of the selection.")
    descending = param.Boolean(default=False)

    selection = param.Array(default=np.zeros(0, np.int64), doc="Indices passing all filters, sorted.")
    current = param.Integer(default=0, bounds=(0, None), doc="Index of the current digit.")
    page = param.Integer(default=0, bounds=(0, None), doc="Browser page (0-based).")
    page_size = param.Integer(default=100, bounds=(1, None))

    # Perturbation studio settings (kept here so that the URL can share them).
    perturbation = param.String(default="thinning", doc="Perturbation name in core.perturb.PERTURBATIONS.")
    perturbation_params = param.Dict(default={}, doc="Its parameter values.")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed for random perturbations.")

    # A live model (explorer.model): its decoder and what it produced, for the Compare and traversal views.
    decoder = param.Parameter(default=None, doc="None or a core.decoders.Decoder.")
    model_samples = param.Parameter(default=None, doc="None or core.samples.Samples drawn from the decoder.")
    model_traversal = param.Parameter(default=None, doc="None or core.samples.Traversal of the decoder.")

    # Where path boxes may point (server policy, set by the app).
    data_roots = param.List(default=[], item_type=str, doc="Folders the path boxes are confined to.")
    paths_enabled = param.Boolean(default=True, doc="Whether path boxes may be used at all.")
    paths_note = param.String(default="", doc="Why path boxes are off, and how to turn them on.")

    busy = param.Boolean(default=False, doc="A background job is running.")
    progress = param.Integer(default=-1, doc="Progress of the job in percent; -1 when indeterminate.")
    status = param.String(default="", doc="What the background job is doing.")
    message = param.String(default="", doc="Last error or notice for the user.")
    message_kind = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(self, dataset: Dataset | None = None, **params):
        super().__init__(**params)
        self._progress_value = (-1, 0)
        self._closed = False
        self._connected = False  # set by the app once the browser connected (see ``closed``)
        self._job: jobs.Job | None = None
        #: Every file, path and upload of this session enters through here (see :mod:`explorer.gate`).
        self.gate = Gate(data_roots=self.data_roots, paths_enabled=self.paths_enabled, paths_note=self.paths_note)
        # Captured now: worker threads and coroutines resumed outside the session have no curdoc.
        self._doc = _session_document()
        self.owner = jobs.session_owner()
        self.dataset = dataset if dataset is not None else load_sample()

    @param.depends("data_roots", "paths_enabled", "paths_note", watch=True)
    def _on_path_policy(self):
        g = self.gate
        g.data_roots, g.paths_enabled, g.paths_note = list(self.data_roots), self.paths_enabled, self.paths_note

    # ---------------------------------------------------------------------------------------------------
    # filtering

    @param.depends("dataset", watch=True, on_init=False)
    def _on_dataset(self):
        # A new dataset: clear what referred to the old one, clamp ranges to the new metrics.
        ds = self.dataset
        with param.parameterized.batch_call_watchers(self):
            self.scatter_selection = None
            self.ranges = {k: v for k, v in self.ranges.items() if k in METRICS}
            if self.current >= len(ds):
                self.current = 0
        self._update_selection()

    @param.depends("labels", "perturbations", "ranges", "scatter_selection", "sort_by", "descending",
                   watch=True)
    def _update_selection(self):
        ds = self.dataset
        if ds is None:
            return
        mask = self.filter_mask(exclude_scatter=False)
        idx = np.flatnonzero(mask)
        if self.sort_by != "index":
            values = ds.metrics[self.sort_by].to_numpy()[idx]
            # NaNs (unmeasurable digits) always last, stable order among equal values
            key = -values if self.descending else values
            order = np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")
            idx = idx[order]
        elif self.descending:
            idx = idx[::-1]
        with param.parameterized.batch_call_watchers(self):
            self.selection = idx
            last_page = max(0, (len(idx) - 1) // self.page_size)
            if self.page > last_page:
                self.page = last_page

    def filter_mask(self, exclude_scatter: bool = False) -> np.ndarray:
        """Boolean mask of the digits passing the filters.

        Parameters
        ----------
        exclude_scatter : bool
            Leave out the scatter selection (the scatter shows the other filters and its own selection).
        """
        ds = self.dataset
        n = len(ds)
        mask = np.ones(n, bool)
        if self.labels and ds.labels is not None:
            mask &= np.isin(ds.labels, self.labels)
        if self.perturbations and ds.perturbations is not None:
            mask &= np.isin(ds.perturbations, self.perturbations)
        for metric, bounds in self.ranges.items():
            if metric not in METRICS or bounds is None:
                continue
            lo, hi = bounds
            values = ds.metrics[metric].to_numpy()
            with np.errstate(invalid="ignore"):
                mask &= (values >= lo) & (values <= hi)
        if not exclude_scatter and self.scatter_selection is not None:
            picked = np.zeros(n, bool)
            sel = np.asarray(self.scatter_selection, dtype=np.int64)
            picked[sel[(sel >= 0) & (sel < n)]] = True
            mask &= picked
        return mask

    def reset_filters(self):
        """Show every digit again."""
        self.param.update(labels=[], perturbations=[], ranges={}, scatter_selection=None)

    def metric_bounds(self, metric: str) -> tuple[float, float]:
        """Finite (min, max) of a metric over the dataset."""
        values = self.dataset.metrics[metric].to_numpy()
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return 0.0, 1.0
        return float(values.min()), float(values.max())

    # ---------------------------------------------------------------------------------------------------
    # the session's document

    def run_on_document(self, fn) -> None:
        """Run ``fn()`` where it may update the views: on the session's document (served apps, from any
        thread, at the next tick, holding the document lock), or at once (notebooks and scripts).

        A closed session's updates are dropped.
        """
        doc = self._doc
        if doc is None:
            fn()
            return
        if self.closed:
            return
        def update():
            if not self.closed:  # the tab may have gone since: Panel would log a failed send
                fn()
        try:
            doc.add_next_tick_callback(update)
        except Exception:  # the session was destroyed meanwhile: nobody to update
            pass

    @property
    def closed(self) -> bool:
        """Whether the session is gone: closed here, its tab closed (it had a connection and has none now),
        or Bokeh destroyed it. Nothing is shown any more."""
        doc = self._doc
        if self._closed:
            return True
        if doc is None:
            return False
        ctx = doc.session_context
        if ctx is None:
            return True
        session = getattr(ctx, "session", None)
        if session is None:
            return False
        return session.destroyed or (self._connected and session.connection_count == 0)

    async def in_document(self, fn):
        """Run ``fn()`` holding the Bokeh document lock (served apps) and return its result.

        Async callbacks resume without the lock; every state change after an ``await`` goes through here.
        """
        doc = self._doc or _session_document()
        if doc is None:
            return fn()
        if self.closed:  # nobody to show it to; the caller's coroutine just ends
            return None
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback():
            try:
                result = fn()
            except Exception as e:  # handed back to the awaiting coroutine
                if not done.done():
                    done.set_exception(e)
            else:
                if not done.done():
                    done.set_result(result)

        try:
            doc.add_next_tick_callback(callback)
        except Exception:  # destroyed meanwhile
            return None
        while not done.done():  # a session destroyed before the tick never runs it: stop waiting
            await asyncio.wait([done], timeout=1.0)
            if not done.done() and self.closed:
                done.cancel()
                return None
        return done.result()

    def notify(self, text: str, kind: str = "info") -> None:
        """Show a message to the user (the app renders it as an alert)."""
        if text == self.message and kind == self.message_kind:
            self.param.trigger("message")  # the same message again: show it again
        else:
            self.param.update(message=text, message_kind=kind)

    # ---------------------------------------------------------------------------------------------------
    # background jobs (explorer.jobs: fair, per session, cancelled when the session closes)

    def report(self, done: int, total: int) -> None:
        """Progress callback for worker threads; the event loop copies it into ``progress``."""
        self._progress_value = (done, total)

    async def track(self, status: str, job: jobs.Job):
        """Show ``status`` and the progress of ``job`` (``report`` or the job's own count) until it ends.

        Returns its result, or raises what it raised (``concurrent.futures.CancelledError`` when
        cancelled). The Cancel button of the app (:meth:`cancel`) cancels it.
        """
        self._job = job
        self._progress_value = (-1, 0)
        await self.in_document(lambda: self.param.update(busy=True, status=status, progress=-1))
        waiter = asyncio.wrap_future(job._future)
        try:
            while not job.done():
                if self.closed:  # the tab went away: its work stops
                    job.cancel()
                    break
                done, total = self._progress_value
                if total <= 0 and job.progress[1] > 1:
                    done, total = job.progress
                pct = int(100 * done / total) if total > 0 else -1
                if pct != self.progress:
                    await self.in_document(lambda: setattr(self, "progress", pct))
                await asyncio.wait([waiter], timeout=0.2)
            return job.result()
        finally:
            # Retrieved, now or when the wrapper catches up with the job (it completes a tick later):
            # no "Future exception was never retrieved" in the server log.
            waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._job = None
            await self.in_document(lambda: self.param.update(busy=False, status="", progress=-1))

    async def run_job(self, status: str, func, *args):
        """Run ``func(*args)`` on the server-wide pool while the app shows ``status`` and its progress.

        Returns the result, or raises what ``func`` raised. One job at a time per session.
        """
        if self.busy:
            raise RuntimeError("another job is running; wait for it to finish")
        return await self.track(status, jobs.submit(self.owner, func, *args))

    def cancel(self) -> None:
        """Cancel the job shown in the status line, if any."""
        job = self._job
        if job is not None:
            job.cancel()

    def close(self) -> None:
        """The session closed: cancel its jobs (their queued chunks and data go) and delete its uploads.

        Changes no parameter (watchers would update models of a document nobody shows); what the views
        hold goes with the session.
        """
        self._closed = True
        jobs.cancel_owner(self.owner)
        self._job = None
        self.gate.close()

    # ---------------------------------------------------------------------------------------------------
    # opening data

    async def open(self, source, *, upload_limit: int | None = None) -> bool:
        """Open data off the event loop (fair jobs: read, measure, keep) through the session's gate; on
        failure keep the current dataset and say why.

        Parameters
        ----------
        source : str, pathlib.Path or explorer.gate.Upload
            A path as typed (checked against the server's path policy) or a stored upload.

        Returns
        -------
        bool
            Whether the new dataset was opened.
        """
        if self.busy:
            await self.in_document(lambda: self.notify(
                "Still working on the previous job; try again when it finishes.", "warning"))
            return False
        kept = self.dataset.name
        if not isinstance(source, Upload):
            try:
                source = self.gate.path(str(source), "open")
            except ValueError as e:
                text = str(e)
                await self.in_document(lambda: self.notify(text, "warning"))
                return False
        upload = source if isinstance(source, Upload) else None
        name = upload.name if upload else str(source)

        def shown(text: str) -> str:
            # Paths the user typed are theirs to see; an upload's temporary copy never is.
            return self.gate.message(text, source)
        try:
            got = await self.track(f"Opening {name}", jobs.submit(self.owner, self.gate.dataset, source))
            if isinstance(got, PendingDataset):
                if upload:  # an upload: never shared, named as the user knows it
                    got.key = None
                    got.name = upload.name
                measured = None
                if got.missing:
                    images = got.images_to_measure()
                    measured = await self.track(f"Measuring {len(images):,} digits of {name}",
                                                jobs.measure(self.owner, images, progress=self.report))
                dataset = await self.track(f"Opening {name}", jobs.submit(self.owner, got.complete, measured))
            else:
                dataset = got
        except (asyncio.CancelledError, CancelledError):
            await self.in_document(lambda: self.notify(f"Opening {name} was cancelled. Kept {kept}.",
                                                       "warning"))
            return False
        except (DataError, ValueError) as e:
            text = shown(f"Could not open the data: {e}. Kept {kept}.")
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        except MemoryError:
            text = f"Could not open {name}: not enough memory on the server. Kept {kept}."
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        except Exception as e:  # never let a surprise in user data take the app down
            text = shown(f"Could not open {name}: {type(e).__name__}: {e}. Kept {kept}.")
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        finally:
            if upload:
                upload.discard()  # the dataset is in memory now
        notes = shown("; ".join(dataset.notes))

        def apply():
            self.dataset = dataset
            self.notify(f"Opened {dataset.name}: {len(dataset):,} digits" + (f" ({notes})" if notes else ""),
                        "success")
        await self.in_document(apply)
        return True

    async def open_upload(self, filename: str, content: bytes, *, limit: int | None = None) -> bool:
        """Open an uploaded file (bytes) as the dataset: stored by the gate (size checked first), read
        with the app's limits, messages naming the file as uploaded (never the server's temporary path)."""
        try:
            upload = await jobs.submit(self.owner, self.gate.upload, content, filename, limit=limit)
        except ValueError as e:
            text = f"Could not open the upload: {e}"  # bound now: `e` is unbound after the except block
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        except OSError as e:
            text = f"Could not store the upload: {type(e).__name__} (server disk)."
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        return await self.open(upload)

    def open_now(self, path) -> None:
        """Open data synchronously (scripts and notebooks); raises :class:`DataError`."""
        self.dataset = load(path)

    # ---------------------------------------------------------------------------------------------------
    # paths typed by users

    def resolve_user_path(self, text: str, purpose: str = "open") -> Path:
        """The path a user typed, checked against the server's policy (:meth:`explorer.gate.Gate.path`)."""
        return self.gate.path(text, purpose)

    # ---------------------------------------------------------------------------------------------------
    # share links

    def query(self) -> dict:
        """The URL query of the view state (only values that differ from the defaults)."""
        out = {}
        for name, key in URL_PARAMETERS.items():
            value = getattr(self, name)
            if name == "scatter_selection":
                if value is not None:
                    text = encode_indices(value)
                    out[key] = text if len(text) <= MAX_QUERY_VALUE else None
                continue
            if value == self.param[name].default and not isinstance(value, (list, dict)):
                continue
            if isinstance(value, (list, dict)):
                if not value:
                    continue
                out[key] = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            else:
                out[key] = str(value)
        return {k: v for k, v in out.items() if v is not None}

    def apply_query(self, query: dict) -> list[str]:
        """Set the view state from a share link, every value checked against its widget's range.

        Values out of range are clamped (the widgets then show what is used); values that cannot be
        read are ignored. Nothing heavy runs before the values are checked, so no link can stall the
        server.

        Parameters
        ----------
        query : dict
            Query name (see :data:`URL_PARAMETERS`) -> text (bytes and one-item lists accepted).

        Returns
        -------
        list of str
            One short phrase per changed or ignored value, for one notice.
        """
        from core.perturb import PERTURBATIONS

        notes: list[str] = []
        values: dict = {}
        ds = self.dataset
        n = len(ds)
        by_key = {v: k for k, v in URL_PARAMETERS.items()}

        def text_of(raw):
            if isinstance(raw, (list, tuple)):
                raw = raw[-1] if raw else ""
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "replace")
            return str(raw)

        def number(text, integer=False):
            v = float(text) if not integer else (int(text) if text.lstrip("+-").isdigit() else float(text))
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(text)
            if integer and isinstance(v, float):
                if v != int(v):
                    raise ValueError(text)
                v = int(v)
            return v

        def clamp(name, v, lo, hi, shown=None):
            if v < lo or v > hi:
                c = min(max(v, lo), hi)
                notes.append(f"{shown or name} {v:g} → {c:g} (allowed {lo:g} to {hi:g})")
                return c
            return v

        for key, raw in query.items():
            name = by_key.get(key)
            if name is None:
                continue
            text = text_of(raw).strip()
            if len(text) > MAX_QUERY_VALUE:
                notes.append(f"{key} ignored (too long)")
                continue
            try:
                if name == "current":
                    values[name] = int(clamp("digit", number(text, True), 0, n - 1))
                elif name == "page":
                    values[name] = int(clamp("page", number(text, True), 0, 10**9))
                elif name == "seed":
                    values[name] = int(clamp("seed", number(text, True), 0, MAX_SEED))
                elif name == "descending":
                    if text.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(text)
                    values[name] = text.lower() in ("true", "1")
                elif name in ("sort_by", "scatter_x", "scatter_y"):
                    objects = self.param[name].objects
                    if text not in objects:
                        raise ValueError(text)
                    values[name] = text
                elif name in ("labels", "perturbations"):
                    items = json.loads(text)
                    if not isinstance(items, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                              for i in items):
                        raise ValueError(text)
                    known = ds.labels if name == "labels" else ds.perturbations
                    allowed = set(np.unique(known).tolist()) if known is not None else set()
                    kept = sorted({i for i in items if i in allowed})
                    if len(kept) != len(set(items)):
                        notes.append(f"{key}: kept {kept} (others are not in this dataset)")
                    values[name] = kept
                elif name == "ranges":
                    items = json.loads(text)
                    if not isinstance(items, dict):
                        raise ValueError(text)
                    ranges = {}
                    for metric, bounds in items.items():
                        if metric not in METRICS or not isinstance(bounds, list) or len(bounds) != 2:
                            notes.append(f"range {metric!s:.20} ignored")
                            continue
                        lo, hi = (number(str(b)) for b in bounds)
                        ranges[metric] = [min(lo, hi), max(lo, hi)]
                    values[name] = ranges
                elif name == "perturbation":
                    if text not in PERTURBATIONS:
                        raise ValueError(text)
                    values[name] = text
                elif name == "perturbation_params":
                    items = json.loads(text)
                    if not isinstance(items, dict):
                        raise ValueError(text)
                    values[name] = items  # checked below, against the chosen perturbation's specs
                elif name == "scatter_selection":
                    values[name] = decode_indices(text, n) if text else None
            except (ValueError, TypeError, OverflowError, json.JSONDecodeError):
                notes.append(f"{key}={text[:40]!s} ignored (not a valid value)")

        if "perturbation_params" in values:
            pert = values.get("perturbation", self.perturbation)
            specs = {p.name: p for p in PERTURBATIONS.get(pert, (None, ()))[1]}
            clean = {}
            for pname, v in values["perturbation_params"].items():
                spec = specs.get(pname)
                if spec is None:
                    notes.append(f"{pname!s:.30} ignored (not a parameter of {pert})")
                    continue
                try:
                    v = number(str(v), integer=False)
                except (ValueError, TypeError):
                    notes.append(f"{pname}={str(v)[:20]} ignored (not a number)")
                    continue
                v = clamp(pname.replace("_", " "), v, spec.low, spec.high)
                clean[pname] = int(round(v)) if spec.integer else float(v)
            values["perturbation_params"] = clean
        if "page" in values:
            # The page is checked once the selection is known (below, by _update_selection).
            pass
        with param.parameterized.batch_call_watchers(self):
            self.param.update(**{k: v for k, v in values.items() if k != "page"})
        if "page" in values:
            last = max(0, (len(self.selection) - 1) // self.page_size)
            self.page = int(clamp("page", values["page"], 0, last))
        return notes

    def url_notice(self, notes: list[str]) -> str:
        """The one notice about a share link's changed values."""
        return ("Adjusted the link's settings to what this app allows: " + "; ".join(notes) + ".") if notes else ""
