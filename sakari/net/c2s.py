"""The thin network side of a client connection: bytes in and out, TLS, timers, rate limits.

All XMPP logic lives in :class:`sakari.stream.c2s.C2SStream`; this adapter
feeds it bytes, carries out what its events ask for and hands what the
client sends to its session (the session manager handles it in order).
It is the session's :class:`sakari.core.session.Connection` while attached.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sakari.core.events import NonzaEvent
from sakari.core.sessions import PreBind
from sakari.core.session import Session
from sakari.credentials import check_password
from sakari.net.port import ClientPort
from sakari.stream.c2s import (
    Authenticated,
    BindRequest,
    C2SStream,
    CheckPassword,
    NeedCredentials,
    NonzaReceived,
    PreBindReceived,
    StanzaReceived,
    StartTLS,
    StreamEnded,
)
from sakari.xml.element import Element
from sakari.xml.errors import StreamError

log = logging.getLogger("sakari.c2s")


class C2SConnection(asyncio.Protocol):
    def __init__(self, port: ClientPort, direct_tls: bool) -> None:
        self.port = port
        self.limits = port.limits
        self.flow = port.flow
        self.direct_tls = direct_tls
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.stream = C2SStream(port.settings, direct_tls, port.features, port.features_cache)
        self.stanza_ns = self.stream.framing.stanza_ns  # see Connection
        self.session: Session | None = None
        self.last_active = self.loop.time()
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_scheduled = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self._tokens = float(port.limits.rate_burst)
        self._token_time = self.last_active
        self._rate_paused = False
        self._flow_paused = False  # paused until a congested recipient of ours drains
        self._reading_paused = False
        self._congested = False  # our send buffer is above the high-water mark
        self._blocked: list[C2SConnection] = []  # senders paused because of our queue
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._stall_timer: asyncio.TimerHandle | None = None
        self._closed = False

    # --- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        high = self.limits.send_high_water
        transport.set_write_buffer_limits(high, high // 4)  # type: ignore[attr-defined]
        self.port.connections.add(self)
        if self.direct_tls:
            self.stream.channel_bindings = self.port.channel_bindings
        self._auth_timer = self.loop.call_later(self.limits.auth_timeout, self._auth_timed_out)

    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        self.last_active = now
        if self.session is not None:
            self.session.last_active = now
        rate = self.limits.rate_bytes
        if rate:
            tokens = min(self.limits.rate_burst, self._tokens + (now - self._token_time) * rate) - len(data)
            self._tokens, self._token_time = tokens, now
            if tokens < 0 and not self._rate_paused:
                self._rate_paused = True
                self._update_reading()
                self.loop.call_later(-tokens / rate, self._rate_resume)
        self.flow.current_origin = self
        try:
            self._handle(self.stream.receive(data))
        finally:
            self.flow.current_origin = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.port.connections.discard(self)
        if not self.port.connections and self.port.all_closed is not None:
            self.port.all_closed.set()
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        self._queue_drained()
        session = self.session
        if session is not None:
            self.session = None
            self.port.sessions.connection_lost(session, self)

    # --- flow control ---------------------------------------------------------
    # A client that reads slower than others write to it must not make the server buffer without end, nor be
    # cut off while it keeps reading: the senders filling its queue are read no further until it drains.
    # A client that stops reading altogether is disconnected after send_stall_timeout, which also frees
    # the senders; max_send_buffer bounds what other sources (presence, server pushes) can queue.
    def pause_writing(self) -> None:
        self._congested = True
        self._stall_timer = self.loop.call_later(self.limits.send_stall_timeout, self._stalled)

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
        return self._congested or self._wbuf_size > self.limits.send_high_water

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
        if self._congested or self._wbuf_size > self.limits.send_high_water:  # _behind(), inlined: per stanza
            origin = self.flow.current_origin
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
        if transport.get_write_buffer_size() > self.limits.max_send_buffer:
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
                self.session.receive(ev.stanza)  # type: ignore[union-attr]
            elif cls is NeedCredentials:
                self.port.tasks.spawn_eager(self._lookup(ev.user))
            elif cls is CheckPassword:
                self.port.tasks.spawn(self._check_password(ev))
            elif cls is BindRequest:
                self._bind(ev.resource)
            elif cls is StartTLS:
                # The TLS handshake bytes must reach the TLS layer, not the XML parser.
                if self.transport is not None:
                    self.transport.pause_reading()
                self._flush_stream()
                self.port.tasks.spawn(self._start_tls())
                return
            elif cls is NonzaReceived:
                assert self.session is not None
                self.session.receive(NonzaEvent(self.session, ev.element))
            elif cls is PreBindReceived:
                self.port.tasks.spawn_eager(self._pre_bind(ev.element))
            elif cls is StreamEnded:
                if ev.error is not None:
                    log.info("event=stream-error condition=%s text=%r session=%s", ev.error.condition, ev.error.text, self.session)
                self._flush_stream()
                self._finish()
                session, self.session = self.session, None
                if session is not None:
                    self.port.sessions.close(session)  # a closed stream ends its session: nothing to resume
                return
            elif cls is Authenticated:
                log.debug("event=authenticated user=%s", ev.user)
        self._flush_stream()

    async def _lookup(self, user: str) -> None:
        creds = await self.port.credentials(f"{user}@{self.stream.domain}")
        if not self._closed:
            self._handle(self.stream.provide_credentials(creds))

    async def _check_password(self, ev: CheckPassword) -> None:
        # PBKDF2 releases the GIL: in a thread it neither stalls other sessions nor serializes with them.
        ok = await self.loop.run_in_executor(None, check_password, ev.creds, ev.password)
        if not self._closed:
            self._handle(self.stream.password_checked(ok))

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.port.ssl_context is not None
        try:
            self._flush_writes()
            new = await self.loop.start_tls(
                self.transport, self, self.port.ssl_context, server_side=True,
                ssl_handshake_timeout=self.limits.auth_timeout,
            )
        except (TimeoutError, OSError, ConnectionError, ValueError) as e:
            log.info("event=tls-failed reason=%s", e.__class__.__name__)
            if self.transport is not None:
                self.transport.abort()
            return
        if new is None:
            return
        self.transport = new  # type: ignore[assignment]
        high = self.limits.send_high_water
        new.set_write_buffer_limits(high, high // 4)
        self.stream.tls_started(self.port.channel_bindings)

    def _bind(self, resource: str | None) -> None:
        assert self.stream.user is not None
        self.session = self.port.sessions.bind(self.stream.user, self.stream.domain, resource, self)
        self.session.last_active = self.last_active
        self._authorized()
        self._handle(self.stream.bound(self.session.jid))

    async def _pre_bind(self, element: Element) -> None:
        assert self.stream.user is not None
        handler = self.port.pre_bind[element.ns, element.name]  # type: ignore[index]
        reply, session = await handler(PreBind(self.stream.user, self.stream.domain, element, self))
        if self._closed:
            return
        if session is not None:
            self.session = session
            self.port.sessions.resume(session, self)
            session.last_active = self.last_active
            self._authorized()
        self._handle(self.stream.pre_bind_done(reply, session.jid if session is not None else None))

    def _authorized(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.session is None:
            self.close_stream(StreamError("connection-timeout", "authentication took too long"))


PARSER_IDLE_RELEASE = 1.0  # seconds of silence after which a connection's parser is freed


async def release_idle_parsers(port: ClientPort) -> None:
    """Most connections are idle most of the time: their XML parser (about half of what an idle
    connection costs in memory) is freed after a second of silence and made again on the next bytes."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(PARSER_IDLE_RELEASE)
        now = loop.time()
        for conn in list(port.connections):
            assert isinstance(conn, C2SConnection)
            if now - conn.last_active >= PARSER_IDLE_RELEASE:
                conn.stream.release_parser()
