"""The session's background work: fair jobs on the server-wide pool (:mod:`explorer.jobs`), one shown at
a time with its status and progress, cancelled when the session closes."""
from __future__ import annotations

import asyncio

import param

from explorer import jobs

__all__ = ["WorkState"]


class WorkState(param.Parameterized):
    """Background jobs of one session, shown in the app's status line."""

    busy = param.Boolean(default=False, doc="A background job is running.")
    progress = param.Integer(default=-1, doc="Progress of the job in percent; -1 when indeterminate.")
    status = param.String(default="", doc="What the background job is doing (plain text).")

    def _init_work(self) -> None:
        self._progress_value = (-1, 0)
        self._job: jobs.Job | None = None
        self.owner = jobs.session_owner()

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
