"""The thin network side of a client connection: bytes in and out, TLS, timers, rate limits.

All XMPP logic lives in :class:`sakari.stream.c2s.C2SStream`; this adapter
feeds it bytes, carries out what its events ask for and hands what the
client sends to its session (the session manager handles it in order).
It is the session's :class:`sakari.core.session.Connection` while attached;
what it does with the stream's events is :class:`sakari.net.driver.StreamDriver`'s.
"""

from __future__ import annotations

import asyncio
import logging

from sakari.net.driver import StreamDriver
from sakari.net.port import ClientPort
from sakari.net.throttle import address_key
from sakari.stream.c2s import C2SStream

log = logging.getLogger("sakari.c2s")

LINGER = 2.0  # seconds a closed stream's socket still reads (and drops) what the client sends, see _finish


class C2SConnection(StreamDriver, asyncio.Protocol):
    def __init__(self, port: ClientPort, direct_tls: bool) -> None:
        super().__init__(port, C2SStream(port.settings, direct_tls, port.features, port.features_cache))
        self.flow = port.flow
        self.direct_tls = direct_tls
        self.transport: asyncio.Transport | None = None
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_scheduled = False
        self._rate_paused = False
        self._rate_timer: asyncio.TimerHandle | None = None  # ends the rate pause under way
        self._flow_paused = False  # paused until a congested recipient of ours drains
        self._reading_paused = False
        self._congested = False  # our send buffer is above the high-water mark
        self._blocked: list[C2SConnection] = []  # senders paused because of our queue
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._stall_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        high = self.limits.send_high_water
        transport.set_write_buffer_limits(high, high // 4)  # type: ignore[attr-defined]
        if self.direct_tls:
            self.stream.channel_bindings = self.port.channel_bindings
        peer = transport.get_extra_info("peername")
        self._opened(address_key(peer[0] if isinstance(peer, tuple) else None))

    def data_received(self, data: bytes) -> None:
        if self._closed:  # what a client still sends after our stream's end (see _finish): dropped
            return
        now = self.loop.time()
        self._active(now)
        self._pause_for(self._rate_delay(len(data), now))
        self.flow.current_origin = self
        try:
            self._handle(self.stream.receive(data))
        finally:
            self.flow.current_origin = None
        if self._stanzas:
            self._pause_for(self._stanza_delay(now))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        self._closed = True
        self._queue_drained()
        self._gone()

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
        log.info("event=send-stalled conn=%s session=%s", self.conn_id, self.session)
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

    def _pause_for(self, delay: float) -> None:
        """Stop reading for ``delay`` seconds (a rate limit). A pause under way is lengthened when this one ends
        later: the byte rate's pause, taken first on each read, would otherwise cut short the account's stanza
        rate pause, and a flood of small stanzas would be held only to the byte rate."""
        if not delay:
            return
        end = self.loop.time() + delay
        if self._rate_timer is not None:
            if self._rate_timer.when() >= end:
                return
            self._rate_timer.cancel()
        self._rate_paused = True
        self._update_reading()
        self._rate_timer = self.loop.call_at(end, self._rate_resume)

    def _rate_resume(self) -> None:
        self._rate_timer = None
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
            log.info("event=send-buffer-full conn=%s session=%s", self.conn_id, self.session)
            self._closed = True
            transport.abort()

    def _flush_stream(self) -> None:
        out = self.stream.data_to_send()
        if out:
            self.write(out)

    def abort(self) -> None:
        if self.transport is not None:
            self._closed = True
            self.transport.abort()

    def _finish(self) -> None:
        self._flush_writes()
        transport = self.transport
        if transport is None or self._closed:
            return
        self._closed = True
        try:
            half_close = transport.can_write_eof()  # not over TLS
        except NotImplementedError:  # a transport that does not say (the base class's answer)
            half_close = False
        if not half_close:
            transport.close()
            return
        # Closing a socket with the client's bytes still unread makes the kernel send a reset, which can
        # destroy our stream error before the client reads it (a client in the middle of a large stanza gets
        # "connection reset" and never learns why). So half-close, drop what still arrives, and let go when
        # the client closes its side, or after LINGER seconds.
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self.loop.call_later(LINGER, lambda: transport.is_closing() or transport.abort())

    # --- TLS ----------------------------------------------------------------------
    def _upgrade_tls(self) -> None:
        # The TLS handshake bytes must reach the TLS layer, not the XML parser.
        if self.transport is not None:
            self.transport.pause_reading()
        self._flush_stream()
        self.port.tasks.spawn(self._start_tls())

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.port.ssl_context is not None
        try:
            self._flush_writes()
            new = await self.loop.start_tls(
                self.transport, self, self.port.ssl_context, server_side=True,
                ssl_handshake_timeout=self.limits.auth_timeout,
            )
        except (TimeoutError, OSError, ConnectionError, ValueError) as e:
            log.info("event=tls-failed conn=%s reason=%s", self.conn_id, e.__class__.__name__)
            if self.transport is not None:
                self.transport.abort()
            # The transport went to the TLS layer, which failed: nobody calls connection_lost on us.
            self.connection_lost(e)
            return
        if new is None:
            return
        self.transport = new  # type: ignore[assignment]
        high = self.limits.send_high_water
        new.set_write_buffer_limits(high, high // 4)
        self.stream.tls_started(self.port.channel_bindings)


PARSER_IDLE_RELEASE = 1.0  # seconds of silence after which a connection's parser is freed


async def release_idle_parsers(port: ClientPort) -> None:
    """Most connections are idle most of the time: their XML parser (about half of what an idle
    connection costs in memory) is freed after a second of silence and made again on the next bytes."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(PARSER_IDLE_RELEASE)
        now = loop.time()
        for conn in list(port.connections):
            assert isinstance(conn, StreamDriver)
            if now - conn.last_active >= PARSER_IDLE_RELEASE:
                conn.stream.release_parser()
