"""The one shared state that every explorer view observes."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import param

from explorer.data import METRICS, DataError, Dataset, load, load_sample

__all__ = ["ExplorerState"]

# One worker: loads and batch perturbations run one at a time, never on the event loop.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-worker")


def _session_document():
    """The Bokeh document of the current server session, or None (notebook, script)."""
    try:
        import panel as pn
    except ImportError:
        return None
    doc = pn.state.curdoc
    return doc if doc is not None and doc.session_context is not None else None


class ExplorerState(param.Parameterized):
    """Dataset, filters, selection and current digit, shared by all views.

    Filters combine with AND: digit labels, perturbation labels, a [lo, hi] range per metric and the
    box/lasso selection made in the scatter plot. ``selection`` holds the indices passing all filters,
    in the order chosen by ``sort_by``; the browser pages through it.
    """

    dataset = param.ClassSelector(class_=Dataset, doc="The open dataset.")

    labels = param.List(default=[], item_type=int, doc="Digit labels to show; empty shows all.")
    perturbations = param.List(default=[], item_type=int, doc="Perturbation labels to show; empty: all.")
    ranges = param.Dict(default={}, doc="Metric name -> [lo, hi] range filter.")
    scatter_selection = param.Parameter(default=None, doc="Indices picked in the scatter (box/lasso), "
                                                        "or None for no scatter selection.")
    scatter_x = param.Selector(default="thickness", objects=list(METRICS), doc="Metric on the scatter's x axis.")
    scatter_y = param.Selector(default="slant", objects=list(METRICS), doc="Metric on the scatter's y axis.")
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

    busy = param.Boolean(default=False, doc="A background job is running.")
    progress = param.Integer(default=-1, doc="Progress of the job in percent; -1 when indeterminate.")
    status = param.String(default="", doc="What the background job is doing.")
    message = param.String(default="", doc="Last error or notice for the user.")
    message_kind = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(self, dataset: Dataset | None = None, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._progress_value = (-1, 0)
        self.dataset = dataset if dataset is not None else load_sample()

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
    # background jobs

    def report(self, done: int, total: int) -> None:
        """Progress callback for worker threads; the event loop copies it into ``progress``."""
        self._progress_value = (done, total)

    async def run_job(self, status: str, func, *args):
        """Run ``func(*args)`` in the worker thread while the event loop shows its progress.

        Returns the result, or raises what ``func`` raised. Only one job runs at a time.
        """
        if self.busy:
            raise RuntimeError("another job is running; wait for it to finish")
        self._doc = _session_document()
        self._progress_value = (-1, 0)
        await self.in_document(lambda: self.param.update(busy=True, status=status, progress=-1))
        future = asyncio.get_running_loop().run_in_executor(_EXECUTOR, func, *args)
        try:
            while not future.done():
                done, total = self._progress_value
                pct = int(100 * done / total) if total else -1
                if pct != self.progress:
                    await self.in_document(lambda: setattr(self, "progress", pct))
                await asyncio.wait([future], timeout=0.15)
            return future.result()
        finally:
            await self.in_document(lambda: self.param.update(busy=False, status="", progress=-1))

    async def in_document(self, fn):
        """Run ``fn()`` holding the Bokeh document lock (served apps), so views may update their models.

        Async callbacks resume without the lock; every state change after an ``await`` goes through here.
        """
        doc = getattr(self, "_doc", None) or _session_document()
        if doc is None:
            return fn()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback():
            try:
                done.set_result(fn())
            except Exception as e:  # handed back to the awaiting coroutine
                done.set_exception(e)

        doc.add_next_tick_callback(callback)
        return await done

    def notify(self, text: str, kind: str = "info") -> None:
        """Show a message to the user (the app renders it as an alert and a notification)."""
        if text == self.message and kind == self.message_kind:
            self.param.trigger("message")  # the same message again: show it again
        else:
            self.param.update(message=text, message_kind=kind)

    async def open(self, path) -> bool:
        """Open data at ``path`` off the event loop; on failure keep the current dataset.

        Returns
        -------
        bool
            Whether the new dataset was opened.
        """
        try:
            dataset = await self.run_job(f"Opening {path}", lambda: load(path, progress=self.report))
        except DataError as e:
            text = f"Could not open the data: {e}. Kept {self.dataset.name}."
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        except Exception as e:  # never let a surprise in user data take the app down
            text = f"Could not open {path}: {type(e).__name__}: {e}. Kept {self.dataset.name}."
            await self.in_document(lambda: self.notify(text, "danger"))
            return False
        notes = "; ".join(dataset.notes)

        def apply():
            self.dataset = dataset
            self.notify(f"Opened {dataset.name}: {len(dataset):,} digits" + (f" ({notes})" if notes else ""),
                        "success")
        await self.in_document(apply)
        return True

    def open_now(self, path) -> None:
        """Open data synchronously (scripts and notebooks); raises :class:`DataError`."""
        self.dataset = load(path)
