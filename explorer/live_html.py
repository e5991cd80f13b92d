"""Text the server rewrites on every key press (a page counter, the inspector's title and metrics table),
without the browser laying out the whole page again."""
from __future__ import annotations

import panel as pn
import param

__all__ = ["LiveHTML"]


class LiveHTML(pn.custom.JSComponent):
    """A block of HTML whose ``html`` the server changes often.

    A Markdown or HTML pane whose text changes makes Bokeh lay out the whole page again: about 60 ms of
    Chromium's time per changed pane on the explorer's page, three of them per PageDown (the page counter,
    the inspector's title and its table), for every student's tab on a shared machine. A change of this
    component's ``html`` replaces its element's content and nothing else.

    ``html`` is put into the page as HTML: build it from escaped text only
    (:func:`explorer.gate.escape_html`).
    """

    html = param.String(default="", doc="The HTML shown (escaped text and the app's own tags only).")

    _esm = """
    export function render({ model }) {
      const box = document.createElement('div');
      box.className = 'live-html';
      box.innerHTML = model.html;
      model.on('html', () => { box.innerHTML = model.html; });
      return box;
    }
    """
