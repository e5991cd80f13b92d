"""The Explorer: every view on one shared state, with data loading, messages and a shareable URL."""
from __future__ import annotations

import panel as pn
import param

from explorer.browser import Browser, Filters
from explorer.compare import CompareView
from explorer.data import DataError, load, load_sample
from explorer.distributions import Distributions
from explorer.inspector import Inspector
from explorer.state import ExplorerState
from explorer.studio import Studio
from explorer.traversals import TraversalView

__all__ = ["Explorer", "TABS", "URL_PARAMETERS"]


def _browse(state: ExplorerState):
    return pn.FlexBox(Browser(state=state, filters=False), Inspector(state=state), gap="16px",
                      flex_wrap="wrap", align_items="flex-start", sizing_mode="stretch_width")


#: The explorer's tabs, in order: (title, factory taking the shared state and returning a viewable).
TABS = [
    ("Browse & inspect", _browse),
    ("Perturbation studio", lambda state: Studio(state=state)),
    ("Distributions", lambda state: Distributions(state=state)),
    ("Compare samples", lambda state: CompareView(state=state)),
    ("Latent traversals", lambda state: TraversalView(state=state)),
]

#: State parameters kept in the URL (parameter -> query name), so that a view can be shared.
URL_PARAMETERS = {
    "current": "digit", "labels": "labels", "perturbations": "perts", "ranges": "ranges",
    "sort_by": "sort", "descending": "desc", "page": "page", "perturbation": "pert",
    "perturbation_params": "pert_params", "seed": "seed",
    "scatter_x": "scatter_x", "scatter_y": "scatter_y", "scatter_selection": "scatter_selection",
}

_CSS = """
.explorer-status {font-size: 12px; color: #555;}
"""


class Explorer(pn.viewable.Viewer):
    """Morpho-MNIST Explorer: browse, inspect, perturb and plot digits and their morphometrics.

    Parameters
    ----------
    data : str or os.PathLike, optional
        A folder of MNIST IDX files, a Morpho-MNIST dataset folder, or a .npy/.npz array; the bundled
        5,000-digit sample when omitted. If it cannot be opened, the sample is shown with the reason.
    state : ExplorerState, optional
        Share a state with other views.
    """

    state = param.ClassSelector(class_=ExplorerState)
    tab = param.Integer(default=0, bounds=(0, None))

    def __init__(self, data=None, state: ExplorerState | None = None, **params):
        first_error = None
        if state is None:
            dataset = None
            if data is not None:
                try:
                    dataset = load(data)
                except DataError as e:
                    first_error = f"Could not open the data: {e}. Showing the bundled sample instead."
            state = ExplorerState(dataset=dataset if dataset is not None else load_sample())
        super().__init__(state=state, **params)
        s = self.state
        self._path = pn.widgets.TextInput(name="Open data", placeholder="folder of IDX files, or .npy/.npz",
                                          value=str(data) if data else "", sizing_mode="stretch_width")
        self._open = pn.widgets.Button(name="Open", button_type="primary", width=80)
        self._sample = pn.widgets.Button(name="Sample", button_type="light", width=80)
        self._open.on_click(self._on_open)
        self._path.param.watch(self._on_open, "enter_pressed")
        self._sample.on_click(self._on_sample)
        self._progress = pn.indicators.Progress(name="progress", value=-1, active=False, visible=False,
                                                sizing_mode="stretch_width", bar_color="primary")
        self._status = pn.pane.Markdown("", css_classes=["explorer-status"], margin=(0, 10))
        self._dataset_info = pn.pane.Markdown("", margin=(0, 10))
        self._alert = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width",
                                    css_classes=["explorer-message"])
        self.filters = Filters(state=s)
        # Tabs are built when first shown: a lighter first page. (Panel's own dynamic=True would do the
        # same but then fetches some stylesheets from its CDN, which fails offline.)
        self._makers = [make for _, make in TABS]
        self._built = {0}
        self._slots = [pn.Column(make(s) if i in self._built else pn.Spacer(height=400),
                                 sizing_mode="stretch_width") for i, (_, make) in enumerate(TABS)]
        self.tabs = pn.Tabs(*[(title, slot) for (title, _), slot in zip(TABS, self._slots)], dynamic=False,
                            sizing_mode="stretch_width")
        self.tabs.param.watch(self._build_tab, "active")
        self.tabs.link(self, active="tab", bidirectional=True)
        s.param.watch(self._on_busy, ["busy", "progress", "status"])
        s.param.watch(self._on_message, ["message"])
        s.param.watch(self._on_dataset, ["dataset"])
        self._on_dataset()
        if first_error:
            s.notify(first_error, "danger")
        self._url_synced = False

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
        self._dataset_info.object = f"**{ds.name}** · {len(ds):,} digits, {labels}{perts}"

    def _on_busy(self, *_):
        s = self.state
        self._progress.visible = s.busy
        self._progress.active = s.busy and s.progress < 0
        self._progress.value = s.progress if s.progress >= 0 else -1
        pct = f" ({s.progress}%)" if s.busy and s.progress >= 0 else ""
        self._status.object = f"{s.status}{pct}…" if s.busy else ""
        self._open.disabled = self._sample.disabled = s.busy

    def _on_message(self, *_):
        s = self.state
        if not s.message:
            self._alert.visible = False
            return
        self._alert.param.update(object=s.message, alert_type=s.message_kind, visible=True)
        notifications = getattr(pn.state, "notifications", None)
        if notifications is not None:
            kind = {"danger": "error", "success": "success", "warning": "warning"}.get(s.message_kind, "info")
            try:
                getattr(notifications, kind)(s.message, duration=6000)
            except Exception:  # no notification area in this context (e.g. a plain notebook cell)
                pass

    async def _on_open(self, event=None):
        path = self._path.value.strip()
        if not path:
            await self.state.in_document(lambda: self.state.notify(
                "Type the path of a data folder or a .npy/.npz file, then press Open.", "warning"))
            return
        if self.state.busy:
            await self.state.in_document(lambda: self.state.notify(
                "Still working on the previous job; try again when it finishes.", "warning"))
            return
        await self.state.open(path)

    def _on_sample(self, event=None):
        self.state.dataset = load_sample()
        self.state.notify(f"Opened {self.state.dataset.name}", "success")

    # ---------------------------------------------------------------------------------------------------
    def sidebar(self) -> pn.Column:
        """Data loading, messages and the filters shared by every view."""
        return pn.Column(
            self._dataset_info,
            pn.Row(self._path, sizing_mode="stretch_width"),
            pn.Row(self._open, self._sample),
            self._progress, self._status, self._alert,
            pn.layout.Divider(),
            pn.pane.Markdown("#### Filters", margin=(0, 10)),
            self.filters,
            sizing_mode="stretch_width", stylesheets=[_CSS],
        )

    def sync_url(self) -> None:
        """Keep the view state in the page URL (served apps), so that a view can be shared."""
        if self._url_synced or pn.state.location is None:
            return
        self._url_synced = True
        pn.state.location.sync(self.state, URL_PARAMETERS, on_error=self._url_error)
        pn.state.location.sync(self, {"tab": "tab"})

    def _url_error(self, values):
        self.state.notify(f"Ignored view settings in the URL that do not fit this dataset: "
                          f"{', '.join(values)}", "warning")

    def template(self):
        """The full-page app (used by ``panel serve explorer``)."""
        template = pn.template.BootstrapTemplate(
            title="Morpho-MNIST Explorer", sidebar=[self.sidebar()], main=[self.tabs], sidebar_width=340,
            header_background="#1f3b5c")
        return template

    def servable(self, title: str | None = None, location: bool = True, area: str = "main",
                 target: str | None = None):
        """Serve the full-page template (under ``panel serve``), with the URL kept in sync."""
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # under panel serve
            self.sync_url()
            return self.template().servable(title=title or "Morpho-MNIST Explorer")
        return super().servable(title=title, location=location, area=area, target=target)

    def __panel__(self):
        return pn.Row(pn.Column(self.sidebar(), width=340), self.tabs, sizing_mode="stretch_width")
