"""A client session, apart from the connection that carries it.

A session is what a bound resource is to the core: an address, the state
its own modules keep (``props``), filter chains for stanzas in both
directions and, while one is attached, a connection. The connection can go
away and another take its place (XEP-0198 resumption, BOSH requests) while
the session lives on; :class:`sakari.core.sessions.SessionManager` decides.

Every stanza to the client goes through the outbound filters (where stream
management counts, CSI holds and carbons copy) and then to the
connection's serializer. A filter returns the stanza to pass on (the same
one or another) or None to take it out of the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sakari.jid import JID
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.ns import CLIENT

if TYPE_CHECKING:
    from sakari.core.sessions import SessionManager

Filter = Callable[["Session", Element], "Element | None"]


class Connection(Protocol):
    """What a transport offers the session it carries (TCP today; WebSocket and BOSH later)."""

    # The namespace its stanzas are serialized against: "jabber:client" in a stream that declared it
    # (bytes shared with other such sessions fit), "" where each stanza declares its own (WebSocket).
    stanza_ns: str
    # For WebSocket and BOSH, the address ("http://localhost:5280") the client's web page reached the server at;
    # "" for other transports. Links made for a browser (uploads) must work from that page's origin.
    web_origin: str

    def write(self, data: bytes) -> None:
        """Queue bytes of the client's stream namespace (non-blocking)."""

    async def writable(self) -> bool:
        """See :meth:`Session.drained`."""

    def close_stream(self, error: StreamError | None = None) -> None:
        """End the stream from our side, with a stream error if given."""


class FilterChain:
    """Filters by descending priority, then in the order added; ``fns`` is the plain list the hot path walks."""

    __slots__ = ("_entries", "fns")

    def __init__(self, entries: list[tuple[int, int, Filter]] | None = None) -> None:
        self._entries = list(entries or ())
        self.fns: list[Filter] = [e[2] for e in self._entries]

    def add(self, fn: Filter, priority: int = 0, seq: int = 0) -> None:
        self._entries.append((-priority, seq, fn))
        self._entries.sort(key=lambda e: (e[0], e[1]))
        self.fns = [e[2] for e in self._entries]

    def remove(self, fn: Filter) -> None:
        self._entries = [e for e in self._entries if e[2] is not fn]
        self.fns = [e[2] for e in self._entries]

    def copy(self) -> FilterChain:
        return FilterChain(self._entries)

    def run(self, session: Session, stanza: Element) -> Element | None:
        for fn in self.fns:
            out = fn(session, stanza)
            if out is None:
                return None
            stanza = out
        return stanza


class Session:
    def __init__(self, jid: JID, manager: SessionManager, connection: Connection | None) -> None:
        self.jid = jid
        self.jid_text = str(jid)  # stamped on every stanza this session sends
        self.bare = jid.bare
        self.user = jid.local
        self.host = jid.domain
        self.manager = manager
        self.connection = connection
        self.outbound = manager.outbound.copy()
        self.inbound = manager.inbound.copy()
        self.props: dict[str, Any] = {}  # this session's own state, kept by modules, keyed by module name
        self.last_active = 0.0  # loop time of the client's last bytes, kept by the transport
        self.detach_timeout = 0.0  # >0: the session outlives its connection this long (set by stream management)
        self.closed = False
        self._inbox: list[Any] = []  # a list, not a deque: a deque costs 760 bytes even when empty
        self._draining = False

    # --- output ---------------------------------------------------------------
    def send(self, stanza: Element, data: bytes | None = None) -> None:
        """Queue a stanza for this client (non-blocking). ``data``: its serialization against
        jabber:client, when the caller already has it (the same stanza fanned out to several sessions)."""
        fns = self.outbound.fns
        if fns:
            for fn in fns:
                out = fn(self, stanza)
                if out is None:
                    return
                if out is not stanza:
                    stanza, data = out, None
        conn = self.connection
        if conn is None:
            self.manager.undeliverable(self, stanza)
            return
        if data is None or conn.stanza_ns != CLIENT:
            data = stanza.serialize(conn.stanza_ns).encode()
        conn.write(data)

    def send_after(self, held_by: Filter, stanza: Element) -> None:
        """Pass on a stanza that the outbound filter ``held_by`` took out of the stream earlier: through
        the filters after that one (stream management counts it) to the connection. For filters that
        hold stanzas back and release them later (CSI)."""
        fns = self.outbound.fns
        for fn in fns[fns.index(held_by) + 1:]:
            out = fn(self, stanza)
            if out is None:
                return
            stanza = out
        conn = self.connection
        if conn is None:
            self.manager.undeliverable(self, stanza)
            return
        conn.write(stanza.serialize(conn.stanza_ns).encode())

    def send_unfiltered(self, data: bytes) -> None:
        """Bytes that are not a stanza of the session (nonzas such as stream management's own)."""
        if self.connection is not None:
            self.connection.write(data)

    async def drained(self) -> bool:
        """Wait until the client has taken in what was queued for it, if it is behind.

        For bulk sends (a backlog of stored messages): awaiting this between stanzas keeps
        the queue short instead of cutting a slow client off. False once the session is gone.
        """
        conn = self.connection
        if conn is None:
            return not self.closed
        return await conn.writable() and not self.closed

    def close(self, error: StreamError | None = None) -> None:
        """End the session (and its stream, with a stream error if given)."""
        self.manager.close(self, error)

    def end_connection(self, error: StreamError | None = None) -> None:
        """End only the connection (a client that stopped answering): a session that waits to be resumed
        (stream management) survives it, any other ends with it."""
        if self.connection is not None:
            self.connection.close_stream(error)

    # --- input ----------------------------------------------------------------
    def receive(self, item: Any) -> None:
        """A stanza or event from the client, handled in order (see SessionManager.receive)."""
        self._inbox.append(item)
        if not self._draining:
            self._draining = True
            self.manager.drain(self)

    def __repr__(self) -> str:
        return f"<Session {self.jid}>"
