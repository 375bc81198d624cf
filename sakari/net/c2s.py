"""The thin network side of a client connection: bytes in and out, TLS, timers, rate limits.

All XMPP logic lives in :class:`sakari.stream.c2s.C2SStream`; this adapter
feeds it bytes, carries out what its events ask for and hands stanzas to
the router in order, one connection at a time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from sakari.core import events as E
from sakari.credentials import check_password
from sakari.core.events import SessionEvent
from sakari.jid import JID
from sakari.core.session import Session
from sakari.stream.c2s import (
    Authenticated,
    BindRequest,
    C2SStream,
    CheckPassword,
    NeedCredentials,
    NonzaReceived,
    StanzaReceived,
    StartTLS,
    StreamEnded,
)
from sakari.xml.errors import StanzaError, StreamError, error_reply
from sakari.xml.element import Element

if TYPE_CHECKING:
    from sakari.server import Server

log = logging.getLogger("sakari.c2s")

NONZA = "stream/nonza"  # NonzaEvent: a top-level non-stanza element on a bound stream


class NonzaEvent:
    __slots__ = ("session", "element")

    def __init__(self, session: Session, element: Element) -> None:
        self.session = session
        self.element = element


class ClientSession(Session):
    def __init__(self, conn: C2SConnection, jid: JID) -> None:
        super().__init__(jid)
        self.conn = conn

    def send(self, stanza: Element) -> None:
        self.conn.write(stanza.serialize().encode())

    def send_serialized(self, data: bytes) -> None:
        self.conn.write(data)

    async def drained(self) -> bool:
        return await self.conn.writable()

    def close(self, error: StreamError | None = None) -> None:
        self.conn.close_stream(error)


class C2SConnection(asyncio.Protocol):
    def __init__(self, server: Server, direct_tls: bool) -> None:
        self.server = server
        self.direct_tls = direct_tls
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.stream = C2SStream(server.stream_settings, direct_tls, server.collect_stream_features, server.features_cache)
        self.session: ClientSession | None = None
        self.last_active = self.loop.time()
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_scheduled = False
        self._inbox: list[Any] = []  # a list, not a deque: a deque costs 760 bytes even when empty
        self._draining = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self._tokens = float(server.rate_burst)
        self._token_time = self.last_active
        self._rate_paused = False
        self._flow_paused = False  # paused until a congested recipient of ours drains
        self._reading_paused = False
        self._congested = False  # our send buffer is above the high-water mark
        self._blocked: list[C2SConnection] = []  # senders paused because of our queue
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._stall_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.pinging = False

    # --- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        high = self.server.send_high_water
        transport.set_write_buffer_limits(high, high // 4)  # type: ignore[attr-defined]
        self.server.connections.add(self)
        if self.direct_tls:
            self.stream.channel_bindings = self.server.channel_bindings
        self._auth_timer = self.loop.call_later(self.server.auth_timeout, self._auth_timed_out)

    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        self.last_active = now
        rate = self.server.rate_bytes
        if rate:
            tokens = min(self.server.rate_burst, self._tokens + (now - self._token_time) * rate) - len(data)
            self._tokens, self._token_time = tokens, now
            if tokens < 0 and not self._rate_paused:
                self._rate_paused = True
                self._update_reading()
                self.loop.call_later(-tokens / rate, self._rate_resume)
        self.server.current_origin = self
        try:
            self._handle(self.stream.receive(data))
        finally:
            self.server.current_origin = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connection_closed(self)
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        self._queue_drained()
        session = self.session
        if session is not None:
            self.session = None
            # Also for a session a newer one with the same resource replaced: its presence must end.
            self.server.router.unbind(session)
            self.server.spawn_eager(self.server.events.fire_all(E.SESSION_CLOSED, SessionEvent(session)))

    # --- flow control ---------------------------------------------------------
    # A client that reads slower than others write to it must not make the server buffer without end, nor be
    # cut off while it keeps reading: the senders filling its queue are read no further until it drains.
    # A client that stops reading altogether is disconnected after send_stall_timeout, which also frees
    # the senders; max_send_buffer bounds what other sources (presence, server pushes) can queue.
    def pause_writing(self) -> None:
        self._congested = True
        self._stall_timer = self.loop.call_later(self.server.send_stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._congested = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._queue_drained()

    def _stalled(self) -> None:
        self._stall_timer = None
        log.info("event=send-stalled session=%s", self.session)
        self.abort()

    def _queue_drained(self) -> None:
        blocked, self._blocked = self._blocked, []
        for conn in blocked:
            conn._flow_paused = False
            conn._update_reading()
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _behind(self) -> bool:
        return self._congested or self._wbuf_size > self.server.send_high_water

    async def writable(self) -> bool:
        """See Session.drained."""
        while self._behind() and not self._closed:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        return not self._closed

    def _rate_resume(self) -> None:
        self._rate_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        paused = self._rate_paused or self._flow_paused
        if paused != self._reading_paused and not self._closed and self.transport is not None:
            self._reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # --- output ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._wbuf.append(data)
        self._wbuf_size += len(data)
        # Also what this turn of the loop has queued so far: one read can bring megabytes (TLS delivers
        # all it buffered while we were paused), long before the transport reports congestion.
        if self._congested or self._wbuf_size > self.server.send_high_water:  # _behind(), inlined: per stanza
            origin = self.server.current_origin
            if origin is not None and not origin._flow_paused:
                origin._flow_paused = True
                origin._update_reading()
                self._blocked.append(origin)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_writes)

    def _flush_writes(self) -> None:
        self._flush_scheduled = False
        transport = self.transport
        if self._closed or transport is None or not self._wbuf:
            self._wbuf.clear()
            self._wbuf_size = 0
            return
        data = b"".join(self._wbuf) if len(self._wbuf) > 1 else self._wbuf[0]
        self._wbuf.clear()
        self._wbuf_size = 0
        transport.write(data)
        if (self._blocked or self._drain_waiters) and not self._congested:
            self._queue_drained()  # it all went out at once: the transport will not call resume_writing
        if transport.get_write_buffer_size() > self.server.max_send_buffer:
            log.info("event=send-buffer-full session=%s", self.session)
            self._closed = True
            transport.abort()

    def _flush_stream(self) -> None:
        out = self.stream.data_to_send()
        if out:
            self.write(out)

    def close_stream(self, error: StreamError | None = None) -> None:
        """Close from our side: send the error (if any) and </stream:stream>, then the socket."""
        if self._closed:
            return
        self.stream.close(error)
        self._flush_stream()
        self._finish()

    def abort(self) -> None:
        if self.transport is not None:
            self._closed = True
            self.transport.abort()

    def _finish(self) -> None:
        self._flush_writes()
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    # --- stream events --------------------------------------------------------
    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            cls = ev.__class__
            if cls is StanzaReceived:
                self._enqueue(ev.stanza)
            elif cls is NeedCredentials:
                self.server.spawn_eager(self._lookup(ev.user))
            elif cls is CheckPassword:
                self.server.spawn(self._check_password(ev))
            elif cls is BindRequest:
                self._bind(ev.resource)
            elif cls is StartTLS:
                # The TLS handshake bytes must reach the TLS layer, not the XML parser.
                if self.transport is not None:
                    self.transport.pause_reading()
                self._flush_stream()
                self.server.spawn(self._start_tls())
                return
            elif cls is NonzaReceived:
                self._enqueue(NonzaEvent(self.session, ev.element))  # type: ignore[arg-type]
            elif cls is StreamEnded:
                if ev.error is not None:
                    log.info("event=stream-error condition=%s text=%r session=%s", ev.error.condition, ev.error.text, self.session)
                self._flush_stream()
                self._finish()
                return
            elif cls is Authenticated:
                log.debug("event=authenticated user=%s", ev.user)
        self._flush_stream()

    async def _lookup(self, user: str) -> None:
        creds = await self.server.storage.accounts.get(f"{user}@{self.server.domain}")
        if not self._closed:
            self._handle(self.stream.provide_credentials(creds))

    async def _check_password(self, ev: CheckPassword) -> None:
        # PBKDF2 releases the GIL: in a thread it neither stalls other sessions nor serializes with them.
        ok = await self.loop.run_in_executor(None, check_password, ev.creds, ev.password)
        if not self._closed:
            self._handle(self.stream.password_checked(ok))

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.server.ssl_context is not None
        try:
            self._flush_writes()
            new = await self.loop.start_tls(
                self.transport, self, self.server.ssl_context, server_side=True,
                ssl_handshake_timeout=self.server.auth_timeout,
            )
        except (TimeoutError, OSError, ConnectionError, ValueError) as e:
            log.info("event=tls-failed reason=%s", e.__class__.__name__)
            if self.transport is not None:
                self.transport.abort()
            return
        if new is None:
            return
        self.transport = new  # type: ignore[assignment]
        high = self.server.send_high_water
        new.set_write_buffer_limits(high, high // 4)
        self.stream.tls_started(self.server.channel_bindings)

    def _bind(self, resource: str | None) -> None:
        assert self.stream.user is not None
        jid = JID(self.stream.user, self.server.domain, resource or secrets.token_urlsafe(9))
        session = ClientSession(self, jid)
        replaced = self.server.router.bind(session)
        if replaced is not None:
            log.info("event=resource-conflict jid=%s", jid)
            replaced.close(StreamError("conflict", "replaced by a new connection for the same resource"))
        self.session = session
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        # Modules see the session before its first stanza: both go through the same ordered queue.
        self._enqueue(SessionEvent(session))
        self._handle(self.stream.bound(jid))

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.session is None:
            self.close_stream(StreamError("connection-timeout", "authentication took too long"))

    # --- ordered processing of stanzas ----------------------------------------
    def _enqueue(self, item: Any) -> None:
        self._inbox.append(item)
        if not self._draining:
            self._draining = True
            self.server.spawn_eager(self._drain())

    async def _drain(self) -> None:
        router = self.server.router
        events = self.server.events
        try:
            while self._inbox:
                batch, self._inbox = self._inbox, []
                for item in batch:
                    session = self.session
                    if session is None:
                        break
                    try:
                        if item.__class__ is Element:
                            await router.from_session(session, item)
                        elif item.__class__ is SessionEvent:
                            await events.fire_all(E.SESSION_BOUND, item)
                        elif await events.fire(NONZA, item) is None:
                            assert isinstance(item, NonzaEvent)
                            self.close_stream(StreamError("unsupported-stanza-type", f"<{item.element.name}/> is not supported"))
                    except StreamError as e:
                        self.close_stream(e)
                    except Exception:
                        log.exception("event=handler-failed session=%s", session)
                        if item.__class__ is Element and item.attrs.get("type") in ("get", "set"):
                            # A request must be answered even when a module failed on it (RFC 6120 §8.2.3).
                            session.send(error_reply(item, StanzaError("internal-server-error")))
        finally:
            self._draining = False
