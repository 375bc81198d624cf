"""XMPP over WebSocket (RFC 7395) on the HTTP port: the ``xmpp`` subprotocol at ``/xmpp-websocket``.

Each text message is one element (``WebSocketFraming``); the negotiation is
the TCP stream's, carried out by :class:`sakari.net.driver.StreamDriver`.
There is no STARTTLS on a WebSocket: a connection is secure, and may
authenticate, when TLS ended on our port, at a trusted proxy, or the browser
is on this machine (:class:`sakari.net.web.WebOrigin`).

aiohttp writes a message with a coroutine, while a session's ``write`` must
not block: messages queue here and one writer task sends them in order.
The queue is bounded like a TCP client's send buffer.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from sakari.net.driver import StreamDriver
from sakari.net.port import ClientPort
from sakari.net.web import WebOrigin
from sakari.stream.c2s import C2SStream
from sakari.stream.framing import WebSocketFraming
from sakari.xml.errors import StreamError

log = logging.getLogger("sakari.websocket")

SUBPROTOCOL = "xmpp"
CLOSE_TIMEOUT = 5.0  # seconds for the browser to answer our close frame


class WebSocketConnection(StreamDriver):
    def __init__(
        self, port: ClientPort, stream: C2SStream, ws: web.WebSocketResponse, request: web.BaseRequest, address: str = ""
    ) -> None:
        super().__init__(port, stream)
        self._address = address
        self.ws = ws
        self._transport = request.transport
        self._queue: list[bytes] = []
        self._queued = 0
        self._finishing = False
        self._wakeup = asyncio.Event()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Read messages until the browser or we close; the session detaches or ends after."""
        self._opened(self._address)
        self._writer = self.loop.create_task(self._write_loop())
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    await self._message(msg.data.encode())
                elif msg.type is WSMsgType.BINARY:
                    self.close_stream(StreamError("not-well-formed", "XMPP over WebSocket uses text messages"))
                if self._closed:
                    break
        finally:
            self._gone()
            self._wakeup.set()
            self._release_waiters()
        await self._writer

    async def _message(self, data: bytes) -> None:
        now = self.loop.time()
        self._active(now)
        self._handle(self.stream.receive(data))
        delay = max(self._rate_delay(len(data), now), self._stanza_delay(now))
        if delay:
            await asyncio.sleep(delay)  # the rate limit: the next message waits its turn

    # --- output ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed or self._finishing:
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self.limits.max_send_buffer:
            log.info("event=send-buffer-full conn=%s session=%s", self.conn_id, self.session)
            self.abort()
            return
        self._wakeup.set()

    async def writable(self) -> bool:
        """See Session.drained."""
        while self._queued > self.limits.send_high_water and not self._closed:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        return not self._closed

    def _release_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _write_loop(self) -> None:
        try:
            while not self._closed:
                if not self._queue:
                    if self._finishing:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frames, self._queue = self._queue, []
                for frame in frames:
                    await self.ws.send_frame(frame, WSMsgType.TEXT)
                self._queued -= sum(map(len, frames))
                self._release_waiters()
            if self._finishing and not self.ws.closed:
                await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)
        except (ConnectionError, TimeoutError, RuntimeError) as e:
            log.debug("event=websocket-write-failed conn=%s reason=%s", self.conn_id, e.__class__.__name__)
            self.abort()

    def _flush_stream(self) -> None:
        for frame in self.stream.frames_to_send():
            self.write(frame)

    def _finish(self) -> None:
        self._finishing = True
        self._wakeup.set()

    def abort(self) -> None:
        self._closed = True
        self._wakeup.set()
        self._release_waiters()
        if self._transport is not None:
            self._transport.abort()


class WebSocketEndpoint:
    """The aiohttp handler of ``/xmpp-websocket``."""

    def __init__(self, port: ClientPort, origin: WebOrigin) -> None:
        self.port = port
        self.origin = origin
        # Stream features differ from TCP's (no STARTTLS, framed as messages): a cache of their own.
        self._features_cache: dict[tuple[bool, bool, tuple[str, ...]], bytes] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = self.port.settings
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=settings.max_stanza_size)
        ready = ws.can_prepare(request)
        if not ready.ok:
            raise web.HTTPBadRequest(text="XMPP over WebSocket: open a WebSocket with the 'xmpp' subprotocol (RFC 7395)\n")
        if ready.protocol != SUBPROTOCOL:
            raise web.HTTPBadRequest(text="XMPP over WebSocket needs the 'xmpp' subprotocol (RFC 7395 §3.1)\n")
        await ws.prepare(request)
        framing = WebSocketFraming(settings.max_stanza_size, settings.max_depth)
        stream = self.port.http_stream(
            framing, self._features_cache, self.origin.is_secure(request), self.origin.tls_here(request)
        )
        connection = WebSocketConnection(self.port, stream, ws, request, self.origin.client_address(request))
        connection.web_origin = self.origin.base_url(request)
        await connection.run()
        return ws
