"""The one shared state that every explorer view observes, one concern per module:

- :mod:`.session` -- the Bokeh document of the session that built the state, whether that session is
  gone, UI updates from worker threads (:meth:`ExplorerState.run_on_document`,
  :meth:`ExplorerState.in_document`) and the one message for the user (:meth:`ExplorerState.notify`);
- :mod:`.work` -- background jobs on the fair server-wide pool of :mod:`explorer.jobs`
  (:meth:`ExplorerState.track`, :meth:`ExplorerState.run_job`, :meth:`ExplorerState.cancel`);
- :mod:`.dataset` -- the dataset and opening another one, through the session's gate
  (:mod:`explorer.gate`), typed paths checked against the server's data folders;
- :mod:`.filters` -- labels, perturbation labels, metric ranges, sort order, page, current digit;
- :mod:`.scatter`, :mod:`.perturbation`, :mod:`.model` -- the scatter's axes and selection, the studio's
  settings, a live model's decoder and outputs.

Share links (URL <-> state) live in :mod:`explorer.url`, on top of the gate.
"""
from __future__ import annotations

from explorer.data import Dataset, load_sample
from explorer.state.filters import FilterState
from explorer.state.model import ModelState
from explorer.state.perturbation import PerturbationState
from explorer.state.session import SessionState, session_document
from explorer.state.work import WorkState
from explorer.url import URL_PARAMETERS, decode_indices, encode_indices

__all__ = ["ExplorerState", "URL_PARAMETERS", "encode_indices", "decode_indices", "session_document"]


class ExplorerState(FilterState, PerturbationState, ModelState, WorkState, SessionState):
    """Dataset, filters, selection and current digit, shared by all views, with the session's services.

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

    def __init__(self, dataset: Dataset | None = None, **params):
        super().__init__(**params)
        self._init_session()
        self._init_work()
        self._init_gate()
        self.dataset = dataset if dataset is not None else load_sample()
