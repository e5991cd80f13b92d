"""The Explorer: every view on one shared state, with data loading, messages and a shareable URL.

Served (``panel serve explorer --args ...``), one process serves many sessions:

- all background work runs on the fair server-wide pool of :mod:`explorer.jobs`, per session, and a
  closing session cancels its jobs;
- ``--data`` is opened once per process (a progress page shows while it is read and measured the
  first time) and shared by every session;
- every share-link value is checked against its widget's range before anything uses it;
- path boxes are served only inside the ``--data-root`` folders: a served app without one has its path
  boxes off (uploads still work), whatever address it listens on; notebooks keep them on;
- uploads larger than :func:`explorer.limits.max_upload_bytes` (or than the server's websocket message
  limit allows) are refused in the browser, before they are sent, with a message: :class:`UploadGuard`
  sits in the sidebar of every page and watches every file input of it (every tab, built now or later,
  inside shadow DOMs too);
- everything a visitor supplied (messages, file names, the dataset's description, the status line) is
  shown through :func:`explorer.gate.escape_md`; share links are read by :mod:`explorer.url`.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import weakref
from pathlib import Path

import panel as pn
import param

from explorer import jobs, url
from explorer.browser import Browser, Filters
from explorer.data import DataError, Dataset, PendingDataset, load, load_sample, read
from explorer.gate import escape_html, escape_md, safe_name, shown
from explorer.inspector import Inspector
from explorer.limits import (DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE, effective_upload_bytes, format_bytes,
                             refusal_message, websocket_max_message_size)
from explorer.live_html import LiveHTML
from explorer.state import ExplorerState
from explorer.url import URL_PARAMETERS
from explorer.warmup import WarmupNote

__all__ = ["Explorer", "TABS", "URL_PARAMETERS"]


# Each tab's module is imported when the tab is first built: the first page (Browse) then needs neither
# the analysis stack (scipy.stats) nor the other views, and appears in seconds on a fresh server.

def _browse(state: ExplorerState):
    return pn.FlexBox(Browser(state=state, filters=False), Inspector(state=state), gap="16px",
                      flex_wrap="wrap", align_items="flex-start", sizing_mode="stretch_width")


def _studio(state: ExplorerState):
    from explorer.studio import Studio

    return Studio(state=state)


def _distributions(state: ExplorerState):
    from explorer.distributions import Distributions

    return Distributions(state=state)


def _compare(state: ExplorerState):
    from explorer.compare import CompareView

    return CompareView(state=state)


def _traversals(state: ExplorerState):
    from explorer.traversals import TraversalView

    return TraversalView(state=state)


def _counterfactuals(state: ExplorerState):
    from explorer.counterfactuals import Counterfactuals

    return Counterfactuals(state=state)


def _model(state: ExplorerState):
    from explorer.model import ModelView

    return ModelView(state=state)


#: The explorer's tabs, in order: (title, factory taking the shared state and returning a viewable).
TABS = [
    ("Browse & inspect", _browse),
    ("Perturbation studio", _studio),
    ("Distributions", _distributions),
    ("Compare samples", _compare),
    ("Latent traversals", _traversals),
    ("Counterfactuals", _counterfactuals),
]
MODEL_TAB = ("Model", _model)

_CSS = """
.explorer-status {font-size: 12px; color: var(--panel-secondary-color, #555);}
.explorer-dataset {font-size: 13px;}
"""

#: What a served app without ``--data-root`` says about its path boxes (plain text).
PATHS_OFF_NOTE = ("Paths on the server are off: this server has no data folder. Upload files instead, or "
                  "restart it with a data folder to let users open and export files inside it: "
                  "panel serve explorer --args --data-root DIR, or morpho serve --data-root DIR "
                  "(repeatable).")

ACCEPT = ".npy,.npz,.gz,.idx,.ubyte,.idx3-ubyte"


# -------------------------------------------------------------------------------------------------------
# the server this process runs (found once: main.py cannot see panel serve's options)

_SERVER_WS: tuple | None = None  # (limit,) once looked up
_SERVER_LOCK = threading.Lock()


def server_websocket_limit() -> int | None:
    """The ``websocket_max_message_size`` (bytes) of the Bokeh server in this process, None outside one.

    Looked up once among the live objects (``panel serve`` does not hand its options to the app). Left at
    Tornado's default, it is raised to what the upload cap needs (read per connection, so every session's
    websocket gets it); an explicit ``--websocket-max-message-size`` stays.
    """
    global _SERVER_WS
    with _SERVER_LOCK:
        if _SERVER_WS is None:
            ws = None
            try:
                from bokeh.server.tornado import BokehTornado

                for obj in gc.get_objects():
                    if isinstance(obj, BokehTornado):
                        ws = obj.settings.get("websocket_max_message_size", ws)
                        if ws in (None, DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE):
                            ws = obj.settings["websocket_max_message_size"] = websocket_max_message_size()
            except Exception:  # never let the lookup break the app: the default limit is the safe answer
                ws = DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE
            _SERVER_WS = (ws,)
        return _SERVER_WS[0]


# -------------------------------------------------------------------------------------------------------
# --data: opened once per process, shared by every session

class _ServerData:
    """The ``--data`` dataset of a served app: read and measured once, on the pool, for all sessions."""

    def __init__(self, path: str):
        self.path = path
        self.dataset: Dataset | None = None
        self.error: str | None = None
        self.status = f"Opening {Path(path).name or path}"
        self.done_items, self.total_items = 0, 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def _progress(self, done: int, total: int) -> None:
        self.done_items, self.total_items = done, total

    async def _run(self) -> None:
        try:
            got = await jobs.submit("server", read, self.path)
            if isinstance(got, PendingDataset):
                measured = None
                if got.missing:
                    images = got.images_to_measure()
                    self.status = (f"Measuring the {len(images):,} digits of {got.name} (first opening only: "
                                   f"the metrics are kept for next time)")
                    measured = await jobs.measure("server", images, progress=self._progress)
                got = await jobs.submit("server", got.complete, measured)
            self.dataset = got
        except (DataError, ValueError, OSError) as e:
            self.error = f"Could not open the data: {e}. Showing the bundled sample instead."
        except Exception as e:  # the server keeps serving the sample, with the reason
            self.error = f"Could not open the data: {type(e).__name__}: {e}. Showing the bundled sample instead."


_SERVER_DATA: dict[str, _ServerData] = {}

# -------------------------------------------------------------------------------------------------------
# closed browser tabs: their work stops at once

#: Sessions' states whose jobs stop when their browser tab goes away.
_LIVE: "weakref.WeakSet[ExplorerState]" = weakref.WeakSet()
_WATCHDOG: asyncio.Task | None = None


def _watch_session(state: ExplorerState) -> None:
    """Cancel ``state``'s jobs as soon as its browser disconnects.

    Bokeh destroys a session (``on_session_destroyed``) only when its unused-session check runs, up to
    ``--check-unused-sessions`` + ``--unused-session-lifetime`` (~30 s) after the tab closed; a closed
    tab's measuring must not hold the pool that long.
    """
    global _WATCHDOG
    _LIVE.add(state)
    if _WATCHDOG is None or _WATCHDOG.done():
        try:
            _WATCHDOG = asyncio.get_running_loop().create_task(_watchdog())
        except RuntimeError:  # no running loop (not served): on_session_destroyed still closes it
            _WATCHDOG = None


async def _watchdog(period: float = 1.0) -> None:
    while _LIVE:
        for state in list(_LIVE):
            try:
                session = getattr(getattr(state._doc, "session_context", None), "session", None)
                if session is not None and session.connection_count > 0:
                    state._connected = True  # from now on, no connection means the tab closed
                elif state.closed:
                    _LIVE.discard(state)
                    state.close()
            except Exception:  # one odd session must not stop the watch over the others
                _LIVE.discard(state)
        await asyncio.sleep(period)


def _server_data(path: str) -> _ServerData:
    key = os.path.realpath(os.path.expanduser(str(path)))
    if key not in _SERVER_DATA:
        _SERVER_DATA[key] = _ServerData(str(path))
    return _SERVER_DATA[key]


class UploadGuard(pn.custom.JSComponent):
    """Browser-side: refuse files over ``limit`` bytes in any file input of the page, before they are sent.

    A FileInput sends a file in one websocket message; one larger than the server's
    ``--websocket-max-message-size`` closes the connection (1006) with no word. This invisible component
    sits in the sidebar, which every page shows whatever its entry URL (``?tab=3`` included), so its
    render installs the guard on every page. The guard listens on ``window`` in the capture phase for
    ``input`` (composed: it leaves shadow roots, so file inputs of tabs built later and inside Panel's
    shadow DOMs are covered) and puts a capture ``change`` listener on the file input itself, which runs
    before the widget's own one and stops it from reading the file. A refused file's names and size
    come back in ``refused`` (JSON) for the app's message.
    """

    limit = param.Integer(default=0, doc="Largest total size of the files of one input (bytes).")
    refused = param.String(default="", doc='JSON {"names": [...], "bytes": n, "at": ms} of the last refusal.')

    _esm = """
    export function render({ model }) {
      const g = window.__morphoUploadGuard || (window.__morphoUploadGuard = {limit: 0, model: null});
      g.limit = model.limit;
      g.model = model;
      model.on('limit', () => { g.limit = model.limit; });
      if (!g.installed) {
        g.installed = true;
        const watched = new WeakSet();
        const over = (el) => {
          if (!el.files || !el.files.length) return null;
          let total = 0; const names = [];
          for (const f of el.files) { total += f.size; names.push(f.name); }
          return total > g.limit ? {names: names, bytes: total} : null;
        };
        const refuse = (el, note) => {
          el.value = '';
          if (g.model) { g.model.refused = JSON.stringify({...note, at: Date.now()}); }
        };
        const guard = (el) => {
          if (watched.has(el)) return;
          watched.add(el);
          // At the input itself, capture listeners run before the widget's own 'change' listener.
          el.addEventListener('change', (ev) => {
            const note = over(el);
            if (note) { ev.stopImmediatePropagation(); refuse(el, note); }
            else if (!el.files || !el.files.length) { ev.stopImmediatePropagation(); }
          }, true);
        };
        const check = (e) => {
          const el = e.composedPath()[0];
          if (!el || el.tagName !== 'INPUT' || el.type !== 'file') return;
          guard(el);
          const note = over(el);
          if (note) { e.stopImmediatePropagation(); refuse(el, note); }
        };
        // 'input' comes before 'change' and crosses shadow roots; 'change' reaches window only from
        // the light DOM, where it is checked too. A click on a file input arms it before any file is
        // chosen.
        window.addEventListener('input', check, true);
        window.addEventListener('change', check, true);
        window.addEventListener('click', check, true);
      }
      const el = document.createElement('span');
      el.style.display = 'none';
      return el;
    }
    """


class Explorer(pn.viewable.Viewer):
    """Morpho-MNIST Explorer: browse, inspect, perturb and plot digits and their morphometrics.

    Parameters
    ----------
    data : str or os.PathLike, optional
        A folder of MNIST IDX files, a Morpho-MNIST dataset folder, or a .npy/.npz array; the bundled
        5,000-digit sample when omitted. If it cannot be opened, the sample is shown with the reason.
        Served, it is opened once per process (with a progress page the first time) and shared.
    decoder : callable, torch.nn.Module, str or core.decoders.Decoder, optional
        A generative model's decoder (codes (N, D) -> images), an ONNX file or ``"package.module:function"``;
        adds the "Model" tab (see :func:`core.decoders.as_decoder`).
    latent_dim : int, optional
        The decoder's number of latents D, when it cannot tell.
    data_roots : list of str, optional
        Folders the path boxes (open data, samples path, export folder) are confined to. Without them a
        served app has its path boxes off (notebooks keep them on).
    state : ExplorerState, optional
        Share a state with other views.
    """

    state = param.ClassSelector(class_=ExplorerState)
    tab = param.Integer(default=0, bounds=(0, None))

    def __init__(self, data=None, *, decoder=None, latent_dim: int | None = None, data_roots=None,
                 state: ExplorerState | None = None, **params):
        doc = pn.state.curdoc
        self._served = doc is not None and doc.session_context is not None
        first_error = None
        self._pending: _ServerData | None = None
        if state is None:
            dataset = None
            if data is not None and self._served:
                loading = _server_data(str(data))
                if loading.dataset is not None:
                    dataset = loading.dataset
                elif loading.error:
                    first_error = loading.error
                else:
                    self._pending = loading
            elif data is not None:
                try:
                    dataset = load(data)
                except DataError as e:
                    first_error = f"Could not open the data: {e}. Showing the bundled sample instead."
            state = ExplorerState(dataset=dataset if dataset is not None else load_sample())
        super().__init__(state=state, **params)
        s = self.state
        self._configure_paths(data_roots)
        if decoder is not None:
            try:
                self._set_decoder(decoder, latent_dim)
            except Exception as e:  # a wrong --decoder: the app still serves the data, says why
                first_error = (first_error + " " if first_error else "") + \
                    f"Could not load the decoder {decoder!s:.200}: {type(e).__name__}: {e}"

        # --- sidebar: data, progress, messages, filters
        self._dataset_info = pn.pane.Markdown("", margin=(0, 10), css_classes=["explorer-dataset"])
        self._path = pn.widgets.TextInput(label="Open data on the server",
                                          placeholder="folder of IDX files, or .npy/.npz",
                                          value=str(data) if data else "", sizing_mode="stretch_width")
        self._open = pn.widgets.Button(label="Open", color="primary", width=80)
        self._sample = pn.widgets.Button(label="Sample", color="light", width=80)
        self._paths_note = pn.pane.Markdown("", margin=(0, 10), css_classes=["explorer-paths-note"],
                                            visible=False)
        self._upload = pn.widgets.FileInput(accept=ACCEPT, multiple=False, sizing_mode="stretch_width",
                                            css_classes=["explorer-upload"])
        self._guard = UploadGuard(limit=self.upload_limit(), width=0, height=0, margin=0,
                                  css_classes=["explorer-upload-guard"])
        self._open.on_click(self._on_open)
        self._path.param.watch(self._on_open, "enter_pressed")
        self._sample.on_click(self._on_sample)
        self._upload.param.watch(self._on_upload, "value")
        self._guard.param.watch(self._on_refused, "refused")
        self._progress = pn.indicators.Progress(name="progress", value=-1, active=False, visible=False,
                                                sizing_mode="stretch_width", bar_color="primary")
        # rewritten at every progress tick: LiveHTML (a Markdown pane's change re-lays out the whole page)
        self._status = LiveHTML(css_classes=["explorer-status"], margin=(0, 10))
        self._cancel = pn.widgets.Button(label="Cancel", color="light", width=80, visible=False,
                                         css_classes=["explorer-cancel"])
        self._cancel.on_click(lambda e: s.cancel())
        self._alert = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width",
                                    css_classes=["explorer-message"])
        self.filters = Filters(state=s)

        # --- main area: tabs built when first shown (Panel's dynamic=True would fetch CDN stylesheets)
        tabs = list(TABS) + ([MODEL_TAB] if s.decoder is not None else [])
        self._makers = [make for _, make in tabs]
        self._built: set = set()
        self._slots = [pn.Column(pn.Spacer(height=400), sizing_mode="stretch_width") for _ in tabs]
        self.tabs = pn.Tabs(*[(title, slot) for (title, _), slot in zip(tabs, self._slots)], dynamic=False,
                            sizing_mode="stretch_width")
        self._loading_page = pn.Column(
            pn.pane.Markdown("", css_classes=["explorer-loading"]),
            pn.indicators.Progress(name="data progress", value=-1, active=True, width=420,
                                   bar_color="primary"),
            sizing_mode="stretch_width", margin=(20, 20))
        self._main = pn.Column(self._loading_page if self._pending else self.tabs, sizing_mode="stretch_width")
        self._url_synced = False
        self._url_applied = False
        s.param.watch(self._on_busy, ["busy", "progress", "status"])
        s.param.watch(self._on_message, ["message"])
        s.param.watch(self._on_dataset, ["dataset"])
        s.param.watch(self._on_paths, ["paths_enabled", "paths_note"])
        self._on_dataset()
        self._on_paths()
        if self._pending is None:
            self._start()
        else:
            self._dataset_info.object = f"Opening **{escape_md(Path(str(data)).name or data)}**…"
            self._open.disabled = self._sample.disabled = True
        if first_error:
            s.notify(first_error, "danger")
        if self._served:
            owner_state = s
            pn.state.on_session_destroyed(lambda ctx: owner_state.close())
            _watch_session(s)

    # ---------------------------------------------------------------------------------------------------
    def _start(self) -> None:
        """Data is there: apply the share link, then build the first tab."""
        if self._served and not self._url_applied:
            self._apply_url()
        self.tabs.param.watch(self._build_tab, "active")
        self.tabs.link(self, active="tab", bidirectional=True)
        self.tabs.active = min(self.tab, len(self._makers) - 1)
        self.view(self.tabs.active)

    async def _wait_for_data(self) -> None:
        loading = self._pending
        loading.start()
        text, bar = self._loading_page[0], self._loading_page[1]
        while not loading.task.done():
            done, total = loading.done_items, loading.total_items
            msg = f"### {escape_md(loading.status)}…\n\n" + (f"{done:,} of {total:,} digits" if total else "")
            pct = int(100 * done / total) if total else -1

            def show(msg=msg, pct=pct):
                text.object = msg
                bar.param.update(value=pct, active=pct < 0)
            await self.state.in_document(show)
            await asyncio.wait([loading.task], timeout=0.3)

        def ready():
            s = self.state
            s.param.update(paths_enabled=s.paths_enabled)
            if loading.dataset is not None:
                s.dataset = loading.dataset
            self._pending = None
            self._open.disabled = self._sample.disabled = False
            self._on_dataset()
            self._main.objects = [self.tabs]
            self._start()
            self._write_url()
            if loading.error:
                s.notify(loading.error, "danger")
        await self.state.in_document(ready)

    def _configure_paths(self, data_roots) -> None:
        """Path boxes are served only inside the ``--data-root`` folders: a served app without one has
        them off, whatever address it listens on (a tunnel or proxy makes a loopback server public);
        notebooks and scripts (not served) keep them on."""
        s = self.state
        roots = [str(Path(os.path.expanduser(str(r))).resolve()) for r in (data_roots or [])]
        missing = [r for r in roots if not Path(r).is_dir()]
        if missing:
            raise ValueError(f"--data-root {missing[0]}: not a folder")
        if roots:
            s.param.update(data_roots=roots, paths_enabled=True, paths_note="")
        elif self._served:
            s.param.update(paths_enabled=False, paths_note=PATHS_OFF_NOTE)

    def _set_decoder(self, decoder, latent_dim) -> None:
        """``state.decoder`` from what the user gave (see :func:`core.decoders.as_decoder`)."""
        from core.decoders import as_decoder

        self.state.decoder = as_decoder(decoder, latent_dim=latent_dim)

    # ---------------------------------------------------------------------------------------------------
    def add_tab(self, title: str, make) -> None:
        """Add a tab built by ``make(state)`` when first shown (for views defined elsewhere)."""
        self._makers.append(make)
        self._slots.append(pn.Column(pn.Spacer(height=400), sizing_mode="stretch_width"))
        self.tabs.append((title, self._slots[-1]))

    def view(self, index: int):
        """The view of tab ``index``, building it if needed."""
        if index not in self._built:
            self._built.add(index)
            self._slots[index].objects = [self._makers[index](self.state)]
        return self._slots[index][0]

    def _build_tab(self, event):
        if 0 <= event.new < len(self._makers):
            self.view(event.new)

    def _on_dataset(self, *_):
        ds = self.state.dataset
        labels = "labelled" if ds.labels is not None else "no labels"
        perts = ", with perturbation labels" if ds.perturbations is not None else ""
        self._dataset_info.object = f"**{escape_md(ds.description)}** ({labels}{perts})"

    def _on_paths(self, *_):
        s = self.state
        off = not s.paths_enabled
        self._path.disabled = self._open.disabled = off
        self._path.visible = self._open.visible = not off
        self._paths_note.object = escape_md(s.paths_note)
        self._paths_note.visible = off
        if s.data_roots and not off:
            shown = ", ".join(s.data_roots)
            self._path.placeholder = f"inside {shown}"

    def _on_busy(self, *_):
        s = self.state
        self._progress.visible = s.busy
        self._progress.active = s.busy and s.progress < 0
        self._progress.value = s.progress if s.progress >= 0 else -1
        pct = f" ({s.progress}%)" if s.busy and s.progress >= 0 else ""
        self._status.html = f"<p>{escape_html(f'{s.status}{pct}…')}</p>" if s.busy else ""
        self._cancel.visible = s.busy
        self._open.disabled = self._sample.disabled = s.busy or not s.paths_enabled
        self._sample.disabled = s.busy
        self._upload.disabled = s.busy

    def _on_message(self, *_):
        s = self.state
        if not s.message:
            self._alert.visible = False
            return
        self._alert.param.update(object=escape_md(s.message), alert_type=s.message_kind, visible=True)

    async def _on_open(self, event=None):
        s = self.state
        try:
            path = s.resolve_user_path(self._path.value, "open")
        except ValueError as e:
            text = str(e)
            await s.in_document(lambda: s.notify(text, "warning"))
            return
        await s.open(path)

    async def _on_upload(self, event):
        if not event.new:
            return
        name = self._upload.filename or "upload"
        await self.state.open_upload(name, event.new)

        def clear():  # forget the bytes: the dataset is in memory now
            self._upload.param.update(value=None, filename=None)
        await self.state.in_document(clear)

    def _on_refused(self, event):
        if not event.new:
            return
        try:
            note = json.loads(event.new)
            names = [safe_name(n) for n in list(note.get("names", []))[:20]]
            nbytes = int(note.get("bytes", 0))
        except (ValueError, TypeError, AttributeError):
            return
        names = shown(", ".join(names), 200) if names else "the file"
        self.state.notify(f"Upload refused: {refusal_message(names, nbytes, self.upload_limit())}", "danger")

    def _on_sample(self, event=None):
        self.state.dataset = load_sample()
        self.state.notify(f"Opened {self.state.dataset.name}", "success")

    @staticmethod
    def upload_limit() -> int:
        """Largest upload this server lets through (bytes): the app's limit, or less when the websocket
        message limit (``--websocket-max-message-size``) is smaller than it needs."""
        ws = server_websocket_limit() if pn.state.curdoc is not None and \
            pn.state.curdoc.session_context is not None else None
        return effective_upload_bytes(ws)

    # ---------------------------------------------------------------------------------------------------
    def sidebar(self) -> pn.Column:
        """Data loading, messages and the filters shared by every view."""
        limit = self.upload_limit()
        return pn.Column(
            self._dataset_info,
            pn.Row(self._path, sizing_mode="stretch_width"),
            pn.Row(self._open, self._sample),
            self._paths_note,
            pn.pane.Markdown(f"…or upload digits (.npy, .npz or an IDX file, up to {format_bytes(limit)}):",
                             margin=(0, 10), css_classes=["explorer-upload-label"]),
            self._upload, self._guard,
            self._progress, pn.Row(self._status, self._cancel), self._alert, WarmupNote(),
            pn.layout.Divider(),
            pn.pane.Markdown("#### Filters", margin=(0, 10)),
            self.filters,
            sizing_mode="stretch_width", stylesheets=[_CSS],
        )

    # ---------------------------------------------------------------------------------------------------
    # the URL: read once (checked), then kept up to date

    def _apply_url(self) -> None:
        """Read the share link once (:mod:`explorer.url`): every value checked, one notice at most."""
        self._url_applied = True
        args = pn.state.session_args or {}
        notes = url.apply_query(self.state, args)
        if "tab" in args:
            tab, more = url.read_tab(args["tab"], len(self._makers))
            notes += more
            if tab is not None:
                self.tab = tab
        if notes:
            self.state.notify(url.url_notice(notes), "warning")

    def sync_url(self) -> None:
        """Keep the view state in the page URL (served apps), so that a view can be shared."""
        if self._url_synced or pn.state.location is None:
            return
        self._url_synced = True
        self.state.param.watch(self._write_url, list(URL_PARAMETERS))
        self.param.watch(self._write_url, ["tab"])

    def _write_url(self, *_):
        if self._pending is not None or pn.state.location is None:
            return
        search = url.page_search(self.state, self.tab, theme=(pn.state.session_args or {}).get("theme"))
        if pn.state.location.search != search:
            pn.state.location.search = search

    def _theme_switch(self):
        dark = str(pn.config.theme) == "dark"
        button = pn.widgets.Button(label="Light theme" if dark else "Dark theme", color="light",
                                   width=110, css_classes=["explorer-theme"], align="center")
        # The template's theme is chosen when the page loads (?theme=dark): reload with the other one.
        button.js_on_click(code="""
            const u = new URL(window.location.href);
            if (u.searchParams.get('theme') === 'dark') { u.searchParams.delete('theme'); }
            else { u.searchParams.set('theme', 'dark'); }
            window.location.href = u.toString();
        """)
        return button

    def template(self):
        """The full-page app (used by ``panel serve explorer``)."""
        # No template busy indicator: Panel syncs it with the server-wide `pn.state.busy`, so every event in
        # any session would redraw the spinner of every session (for a class of 20, twenty document updates
        # and websocket writes per slider move, all on the event loop). Each session shows its own work in
        # the sidebar's progress bar instead.
        template = pn.template.BootstrapTemplate(
            title="Morpho-MNIST Explorer", sidebar=[self.sidebar()], main=[self._main], sidebar_width=300,
            header=[pn.Row(pn.HSpacer(), self._theme_switch(), sizing_mode="stretch_width")],
            header_background="#1f3b5c", busy_indicator=None)
        return template

    def servable(self, title: str | None = None, location: bool = True, area: str = "main",
                 target: str | None = None):
        """Serve the full-page template (under ``panel serve``), with the URL kept in sync."""
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # under panel serve
            url.install_location(doc)  # before anything reads pn.state.location (see explorer.url)
            self.sync_url()
            if self._pending is not None:
                pn.state.onload(self._wait_for_data)
            else:
                pn.state.onload(self._write_url)  # the link now shows the values used (clamped)
            # one recomputation of the document's models at the end, not one per root the template adds
            with doc.models.freeze():
                return self.template().servable(title=title or "Morpho-MNIST Explorer")
        return super().servable(title=title, location=location, area=area, target=target)

    def __panel__(self):
        return pn.Row(pn.Column(self.sidebar(), width=300), self._main, sizing_mode="stretch_width")


def serve_hint() -> str:
    """How to start a server whose uploads can reach :func:`explorer.limits.max_upload_bytes`."""
    size = websocket_max_message_size()
    if size <= DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE:
        return "panel serve explorer"
    return f"panel serve explorer --websocket-max-message-size {size}"
