"""The session a state belongs to: its Bokeh document, whether it is gone, and messages for its user.

The document is captured when the state is built (in the session that creates it): worker threads and
coroutines resumed outside the session have no ``pn.state.curdoc``, and looking it up later could find
another session's document.
"""
from __future__ import annotations

import asyncio

import param

__all__ = ["SessionState", "session_document"]


def session_document():
    """The Bokeh document of the current server session, or None (notebook, script)."""
    import panel as pn

    doc = pn.state.curdoc
    return doc if doc is not None and doc.session_context is not None else None


class SessionState(param.Parameterized):
    """The session's document, its end, and the one message shown to the user.

    Messages are plain text (:meth:`notify`); the app escapes them where it shows them
    (:func:`explorer.gate.escape_md`).
    """

    message = param.String(default="", doc="Last error or notice for the user (plain text).")
    message_kind = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def _init_session(self) -> None:
        self._closed = False
        self._connected = False  # set by the app once the browser connected (see ``closed``)
        # Captured now: worker threads and coroutines resumed outside the session have no curdoc.
        self._doc = session_document()

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
            if self.closed:  # the tab may have gone since: Panel would log a failed send
                return
            # One message for all of fn's changes: the browser lays the page out once, not once per change
            # (a traversal's six line plots changed one by one froze the tab for seconds).
            doc.hold("combine")
            try:
                fn()
            finally:
                doc.unhold()
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
        The document is the one captured when the state was built, never the current one: a coroutine
        may resume while another session's document is current.
        """
        doc = self._doc
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
        """Show a message to the user: plain text (the app escapes it; no markup is read from it)."""
        text = str(text)
        if text == self.message and kind == self.message_kind:
            self.param.trigger("message")  # the same message again: show it again
        else:
            self.param.update(message=text, message_kind=kind)
