"""The open dataset and where data may come from: uploads and typed paths, both through the session's
gate (:mod:`explorer.gate`), with the server's path policy (``--data-root``)."""
from __future__ import annotations

import asyncio
from concurrent.futures import CancelledError
from pathlib import Path

import param

from explorer import jobs
from explorer.data import DataError, Dataset, PendingDataset, load
from explorer.gate import Gate, Upload

__all__ = ["DatasetState"]


class DatasetState(param.Parameterized):
    """The dataset every view shows, and opening another one (path, upload, or at once in scripts)."""

    dataset = param.ClassSelector(class_=Dataset, doc="The open dataset.")

    # Where path boxes may point (server policy, set by the app).
    data_roots = param.List(default=[], item_type=str, doc="Folders the path boxes are confined to.")
    paths_enabled = param.Boolean(default=True, doc="Whether path boxes may be used at all.")
    paths_note = param.String(default="", doc="Why path boxes are off, and how to turn them on (plain text).")

    def _init_gate(self) -> None:
        #: Every file, path and upload of this session enters through here (see :mod:`explorer.gate`).
        self.gate = Gate(data_roots=self.data_roots, paths_enabled=self.paths_enabled, paths_note=self.paths_note)

    @param.depends("data_roots", "paths_enabled", "paths_note", watch=True)
    def _on_path_policy(self):
        g = self.gate
        g.data_roots, g.paths_enabled, g.paths_note = list(self.data_roots), self.paths_enabled, self.paths_note

    async def open(self, source) -> bool:
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
