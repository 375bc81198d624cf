"""The session manager: bind, resource conflicts, detach, resume and close, and each session's ordered inbox.

Transports (TCP today, WebSocket and BOSH later) hand it a connection at
bind; from then on the session, not the connection, is what the router and
modules see. When a connection goes away, a session whose stream
management asked for it (``detach_timeout``) waits detached until it is
resumed on another connection or its deadline passes; any other session
closes. Stanzas from the client are handled strictly in order, one session
at a time, through the session's inbound filters and then the router.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sakari.core import events as E
from sakari.core.events import Events, NonzaEvent, SessionEvent, UndeliverableEvent
from sakari.core.router import Router
from sakari.core.session import Connection, Filter, FilterChain, Session
from sakari.core.tasks import Tasks
from sakari.jid import JID
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError, error_reply

log = logging.getLogger("sakari.sessions")


class SessionManager:
    def __init__(self, router: Router, events: Events, tasks: Tasks) -> None:
        self.router = router
        self.events = events
        self.tasks = tasks
        self.outbound = FilterChain()  # filters every new session starts with (modules add them at setup)
        self.inbound = FilterChain()
        self._filter_seq = 0
        self._local: dict[JID, Session] = {}
        self._deadlines: dict[Session, asyncio.TimerHandle] = {}

    # --- filters --------------------------------------------------------------
    def add_filter(self, direction: str, fn: Filter, priority: int = 0) -> None:
        """A filter for every session bound from now on; ``direction`` is "in" or "out"."""
        if direction not in ("in", "out"):
            raise ValueError(f"a filter is 'in' or 'out', not {direction!r}")
        self._filter_seq += 1
        (self.inbound if direction == "in" else self.outbound).add(fn, priority, self._filter_seq)

    # --- the local sessions -----------------------------------------------------
    def get(self, full: JID) -> Session | None:
        return self._local.get(full)

    def sessions_of(self, bare: JID) -> list[Session]:
        return [r.session for r in self.router.resources(bare) if r.session is not None]

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._local.values()))

    def __len__(self) -> int:
        return len(self._local)

    # --- life cycle -------------------------------------------------------------
    def bind(self, user: str, host: str, resource: str | None, connection: Connection) -> Session:
        """Bind a resource (the server picks one for None); a session with the same full JID is replaced."""
        session = Session(JID(user, host, resource or secrets.token_urlsafe(9)), self, connection)
        replaced = self.router.bind(session)
        self._local[session.jid] = session
        if replaced is not None:
            log.info("event=resource-conflict jid=%s", session.jid)
            self.close(replaced, StreamError("conflict", "replaced by a new connection for the same resource"))
        # Modules see the session before its first stanza: both go through the same ordered inbox.
        session.receive(SessionEvent(session))
        return session

    def connection_lost(self, session: Session, connection: Connection) -> None:
        """The transport is gone: detach the session if it asked to wait, else close it."""
        if session.connection is not connection or session.closed:
            return  # an old connection of a session resumed elsewhere
        session.connection = None
        if session.detach_timeout > 0:
            self._deadlines[session] = asyncio.get_running_loop().call_later(
                session.detach_timeout, self._deadline_passed, session
            )
            log.debug("event=session-detached session=%s", session)
            self.tasks.spawn_eager(self.events.fire_all(E.SESSION_DETACHED, SessionEvent(session)))
        else:
            self.close(session)

    def resume(self, session: Session, connection: Connection) -> None:
        """Carry a live session on a new connection (XEP-0198 resumption); an old one still open is ended."""
        if session.closed:
            raise ValueError(f"{session} has closed")
        timer = self._deadlines.pop(session, None)
        if timer is not None:
            timer.cancel()
        old, session.connection = session.connection, connection
        if old is not None:
            old.close_stream(StreamError("conflict", "the session was resumed on another connection"))
        self.tasks.spawn_eager(self.events.fire_all(E.SESSION_RESUMED, SessionEvent(session)))

    def _deadline_passed(self, session: Session) -> None:
        self._deadlines.pop(session, None)
        log.debug("event=session-expired session=%s", session)
        self.close(session)

    def close(self, session: Session, error: StreamError | None = None) -> None:
        """End a session: its stream (with ``error``), then its place in the router."""
        if session.closed:
            return
        session.closed = True
        timer = self._deadlines.pop(session, None)
        if timer is not None:
            timer.cancel()
        conn, session.connection = session.connection, None
        if conn is not None:
            conn.close_stream(error)
        self.tasks.spawn_eager(self._closed(session))

    async def _closed(self, session: Session) -> None:
        event = SessionEvent(session)
        await self.events.fire_all(E.SESSION_CLOSING, event)
        self.router.unbind(session)
        if self._local.get(session.jid) is session:
            del self._local[session.jid]
        # Also for a session a newer one with the same resource replaced: its presence must end.
        await self.events.fire_all(E.SESSION_CLOSED, event)
        self.router.forget(session)

    def undeliverable(self, session: Session, stanza: Element) -> None:
        """A stanza for a session without a connection that no filter took: modules may keep it."""
        self.tasks.spawn_eager(self.events.fire(E.STANZA_UNDELIVERABLE, UndeliverableEvent(session, stanza)))

    # --- ordered processing of what the client sends ----------------------------
    def drain(self, session: Session) -> None:
        self.tasks.spawn_eager(self._drain(session))

    async def _drain(self, session: Session) -> None:
        router = self.router
        events = self.events
        try:
            while session._inbox:
                batch, session._inbox = session._inbox, []
                for item in batch:
                    if session.closed:
                        return
                    try:
                        if item.__class__ is Element:
                            fns = session.inbound.fns
                            if fns:
                                item = session.inbound.run(session, item)
                                if item is None:
                                    continue
                            await router.from_session(session, item)
                        elif item.__class__ is SessionEvent:
                            await events.fire_all(E.SESSION_BOUND, item)
                        elif await events.fire(E.STREAM_NONZA, item) is None:
                            assert isinstance(item, NonzaEvent)
                            self.close(session, StreamError("unsupported-stanza-type", f"<{item.element.name}/> is not supported"))
                    except StreamError as e:
                        self.close(session, e)
                    except Exception:
                        log.exception("event=handler-failed session=%s", session)
                        if item.__class__ is Element and item.attrs.get("type") in ("get", "set"):
                            # A request must be answered even when a module failed on it (RFC 6120 §8.2.3).
                            session.send(error_reply(item, StanzaError("internal-server-error")))
        finally:
            session._draining = False
            if session.closed:
                session._inbox.clear()


@dataclass(slots=True)
class PreBind:
    """An element a module registered for the stage between authentication and binding."""

    user: str
    host: str
    element: Element
    connection: Connection
    # Sent inside SASL2's <authenticate/>: the answer goes in <success/>, so the handler writes nothing itself
    # and leaves in ``then`` what follows <success/> (stanzas sent again on a resumed session).
    inline: bool = False
    then: list[bytes] = field(default_factory=list)


# Answers (reply to send, or None; the session to resume on this connection, or None to go on to bind).
PreBindHandler = Callable[[PreBind], Awaitable[tuple[Element | None, Session | None]]]


@dataclass(slots=True)
class PreAuth:
    """An iq a module registered for the stage before authentication (XEP-0077 in-band registration)."""

    host: str  # the domain the stream is for
    iq: Element
    state: dict[str, Any]  # the connection's own, kept from one such iq to the next (a XEP-0401 token)


# Answers with the iq's result or error.
PreAuthHandler = Callable[[PreAuth], Awaitable[Element]]
