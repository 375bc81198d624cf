"""The network side of an external component's connection (XEP-0114): bytes in and out, the handshake's
deadline, and the component's outlet in the host table while it is connected.

The protocol is :class:`sakari.stream.component.ComponentStream`'s. Once the
handshake succeeds, the component's entry in the host table gets this
connection as its outlet, so the router hands it every stanza for its domain
and subdomains; a second connection for the same domain replaces the first,
which ends with ``conflict``. What the component sends enters the router in
order, one stanza after the other, checked against its domain.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

from sakari.core import events as E
from sakari.core.events import ComponentEvent, Events
from sakari.core.hosts import Hosts
from sakari.core.router import Router
from sakari.core.tasks import Tasks
from sakari.stream.component import Authenticated, ComponentStream, StanzaReceived, StreamEnded
from sakari.xml.element import Element
from sakari.xml.errors import StreamError

log = logging.getLogger("sakari.component")

MAX_INBOX = 1000  # stanzas read but not yet routed; past it, reading pauses until the router catches up


@dataclass(slots=True)
class ComponentPort:
    """What component connections need from the server, filled in by the composition root."""

    router: Router
    hosts: Hosts
    events: Events
    tasks: Tasks
    secrets: dict[str, str]  # domain → shared secret
    max_stanza_size: int = 262144
    max_depth: int = 64
    auth_timeout: float = 30.0
    max_send_buffer: int = 4194304
    connected: dict[str, ComponentConnection] = field(default_factory=dict)  # domain → its live connection
    connections: set[object] = field(default_factory=set)  # every open one, for shutdown


class ComponentConnection(asyncio.Protocol):
    def __init__(self, port: ComponentPort) -> None:
        self.port = port
        self.loop = asyncio.get_running_loop()
        self.stream = ComponentStream(port.secrets, port.max_stanza_size, port.max_depth)
        self.transport: asyncio.Transport | None = None
        self.domain = ""  # set once authenticated
        self._inbox: deque[Element] = deque()
        self._draining = False
        self._reading_paused = False
        self._flush_scheduled = False
        self._closed = False
        self._auth_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port.connections.add(self)
        self._auth_timer = self.loop.call_later(self.port.auth_timeout, self._auth_timed_out)

    def data_received(self, data: bytes) -> None:
        self._handle(self.stream.receive(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.port.connections.discard(self)
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self._detach()

    # --- stream events ----------------------------------------------------------
    def _handle(self, events: list[object]) -> None:
        for ev in events:
            if isinstance(ev, StanzaReceived):
                self._inbox.append(ev.stanza)
            elif isinstance(ev, Authenticated):
                self._attach(ev.domain)
            elif isinstance(ev, StreamEnded):
                if ev.error is not None:
                    log.info("event=stream-error condition=%s text=%r domain=%s", ev.error.condition, ev.error.text, self.domain)
                self._flush()
                self._finish()
                return
        self._flush()
        if self._inbox and not self._draining:
            self._draining = True
            self.port.tasks.spawn(self._drain())
        if len(self._inbox) > MAX_INBOX and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    async def _drain(self) -> None:
        """Route what the component sent, in order; a foreign 'from' ends its stream (RFC 6120 invalid-from)."""
        router = self.port.router
        try:
            while self._inbox and not self._closed:
                stanza = self._inbox.popleft()
                try:
                    await router.from_external(stanza, self.domain, subdomains=True, outbound=True)
                except StreamError as e:
                    self.close_stream(e)
                    return
                if self._reading_paused and len(self._inbox) < MAX_INBOX // 2 and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
        finally:
            self._draining = False

    def _attach(self, domain: str) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.domain = domain
        old = self.port.connected.get(domain)
        if old is not None:
            old.close_stream(StreamError("conflict", "the component connected again"))
        host = self.port.hosts.by_domain[domain]
        self.port.connected[domain] = self
        host.outlet = self.deliver
        log.info("event=component-connected domain=%s", domain)
        self.port.tasks.spawn(self.port.events.fire_all(E.COMPONENT_CONNECTED, ComponentEvent(domain)))

    def _detach(self) -> None:
        if self.domain and self.port.connected.get(self.domain) is self:
            del self.port.connected[self.domain]
            self.port.hosts.by_domain[self.domain].outlet = None
            log.info("event=component-disconnected domain=%s", self.domain)

    # --- output -----------------------------------------------------------------
    def deliver(self, stanza: Element) -> None:
        """The host table's outlet: a stanza for the component's domain, written at the end of this turn."""
        if self._closed:
            return
        self.stream.send(stanza)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.stream.data_to_send()
        transport = self.transport
        if not data or transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.port.max_send_buffer:
            # A component that stops reading must not make the server buffer without end.
            log.info("event=send-buffer-full domain=%s", self.domain)
            self.abort()

    def close_stream(self, error: StreamError | None = None) -> None:
        """Close from our side: the error (if any) and the stream's end, then the transport."""
        if self._closed:
            return
        self.stream.close(error)
        self._flush()
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._detach()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._closed = True
        self._detach()
        if self.transport is not None:
            self.transport.abort()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if not self.domain:
            self.close_stream(StreamError("connection-timeout", "the handshake took too long"))
