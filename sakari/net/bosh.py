"""BOSH (XEP-0124, XEP-0206) at ``/http-bind``: an XMPP session over a series of HTTP requests.

Each request is a ``<body/>`` wrapper carrying stream elements; taken off,
they go through the same stream machine and driver as TCP and WebSocket
(framed like WebSocket, one self-contained element each). What BOSH adds is
here: the session id, requests processed strictly in ``rid`` order within
the window the client may have open (out-of-order ones wait for the gap,
repeats get the same answer again, XEP-0124 §14), held requests that answer
when output arrives or after ``wait`` seconds, at most ``hold`` of them, and
the session that outlives its requests until ``inactivity`` seconds pass
without one. ``xmpp:restart`` restarts the stream after SASL; a ``terminate``
body, or our closing of the stream, ends the session.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from aiohttp import web

from sakari.net.driver import StreamDriver
from sakari.net.port import ClientPort
from sakari.net.web import CORS_ANY, WebOrigin
from sakari.stream.c2s import C2SStream
from sakari.stream.framing import WebSocketFraming
from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_attr
from sakari.xml.errors import StreamError
from sakari.xml.parser import Event, StreamClosed, StreamOpened, StreamParser

log = logging.getLogger("sakari.bosh")

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
RESTART = f"{{{NS_XBOSH}}}restart"
XMPP_VERSION = f"{{{NS_XBOSH}}}version"
MAX_WAIT = 60  # seconds a request may be held
MAX_HOLD = 2  # requests held at once (Strophe and Converse ask for 1)
INACTIVITY = 60  # seconds without a request before the session ends
PREFLIGHT = {
    **CORS_ANY,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


class BoshError(Exception):
    """A request the session cannot take: answered with a terminate body of this condition (XEP-0124 §17)."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


def terminate_body(condition: str | None = None, content: bytes = b"") -> bytes:
    cond = f" condition='{condition}'" if condition else ""
    return f"<body xmlns='{NS_HTTPBIND}' type='terminate'{cond}>".encode() + content + b"</body>"


def parse_body(data: bytes, max_size: int, max_depth: int) -> tuple[dict[str, str], list[Element]]:
    """A request's ``<body/>``: its attributes and the stream elements it carries; BoshError if it is not one."""
    parser = StreamParser(max_size, max_depth)
    try:
        events = parser.feed(data)
    except StreamError:
        raise BoshError("bad-request") from None
    if not events or not isinstance(events[0], StreamOpened) or not isinstance(events[-1], StreamClosed):
        raise BoshError("bad-request")
    opened = events[0]
    if (opened.name, opened.ns) != ("body", NS_HTTPBIND):
        raise BoshError("bad-request")
    return opened.attrs, [e for e in events[1:-1] if isinstance(e, Element)]


def _int(attrs: dict[str, str], name: str, default: int | None = None) -> int:
    try:
        return int(attrs[name])
    except (KeyError, ValueError):
        if default is None:
            raise BoshError("bad-request") from None
        return default


class BoshFraming(WebSocketFraming):
    """The stream inside ``<body/>`` wrappers: elements as WebSocket frames them; what the stream header
    says goes on the session creation response instead (BoshSession.creation_attrs), and the close is a
    terminate body."""

    def __init__(self, max_stanza_size: int, max_depth: int) -> None:
        super().__init__(max_stanza_size, max_depth)
        self._pending: list[Event] = []

    def push(self, events: list[Event]) -> None:
        """What a body carried, already parsed by the HTTP side with the same limits."""
        self._pending.extend(events)

    def feed(self, data: bytes) -> list[Event]:
        out, self._pending = self._pending, []
        return out

    def header(self, attrs: dict[str, str]) -> bytes:
        return b""

    def footer(self) -> bytes:
        return b""


class BoshSession(StreamDriver):
    """One BOSH session: the session's Connection for as long as it lives, across its requests."""

    def __init__(
        self, port: ClientPort, stream: C2SStream, first_rid: int, wait: int, hold: int, on_end: Callable[[str], None],
        address: str = "",
    ) -> None:
        super().__init__(port, stream)
        assert isinstance(stream.framing, BoshFraming)
        self.framing: BoshFraming = stream.framing
        self.sid = secrets.token_urlsafe(18)
        self.wait = wait
        self.hold = hold
        self.window = hold + 1  # requests the client may have open at once
        self.first_rid = first_rid  # the session creation request, whose answer carries the session's attributes
        self.last_rid = first_rid - 1  # the last rid taken in order
        self._on_end = on_end
        self._arrived: dict[int, tuple[dict[str, str], list[Element], asyncio.Future[bytes]]] = {}
        self._held: list[tuple[int, asyncio.Future[bytes]]] = []  # oldest first
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._answers: dict[int, bytes] = {}  # the last answers, for a client that repeats a request
        self._out: list[bytes] = []
        self._out_size = 0
        self._ended = False
        self._dispatch_scheduled = False
        self._terminate_condition: str | None = None
        self._inactivity: asyncio.TimerHandle | None = None
        self._opened(address)

    # --- requests ---------------------------------------------------------------------
    async def request(self, rid: int, attrs: dict[str, str], children: list[Element]) -> bytes:
        """Take one request; its answer comes when there is output, or after ``wait`` seconds."""
        if rid in self._answers:
            return self._answers[rid]  # a repeat: the client lost our answer (§14.3)
        if self._ended:
            raise BoshError("item-not-found")
        future: asyncio.Future[bytes] = self.loop.create_future()
        if self.last_rid - self.window < rid <= self.last_rid:
            # Taken but not answered yet, and sent again (its connection broke): it waits again, in place of the old.
            for held_rid, old in self._held:
                if held_rid == rid and not old.done():
                    old.set_result(self._body(rid, b"", False))
            self._forget(rid)
            self._hold(rid, future)
        elif self.last_rid < rid <= self.last_rid + self.window and rid not in self._arrived:
            self._stop_inactivity()
            self._arrived[rid] = (attrs, children, future)
            while self.last_rid + 1 in self._arrived:  # in order: a later request waits for the gap to fill
                self.last_rid += 1
                self._take(self.last_rid, *self._arrived.pop(self.last_rid))
        else:
            self.end("item-not-found")
            raise BoshError("item-not-found")
        self._dispatch()
        try:
            return await future
        finally:
            if not future.done():  # the client went away: the request no longer waits
                self._forget(rid)
                self._dispatch()

    def _hold(self, rid: int, future: asyncio.Future[bytes]) -> None:
        self._held.append((rid, future))
        self._held.sort(key=lambda held: held[0])
        self._timers[rid] = self.loop.call_later(self.wait, self._answer_empty, rid)

    def _take(self, rid: int, attrs: dict[str, str], children: list[Element], future: asyncio.Future[bytes]) -> None:
        self._active(self.loop.time())
        self._hold(rid, future)
        events: list[Event] = []
        if rid == self.first_rid or attrs.get(RESTART) == "true":
            opened = {"to": attrs.get("to", self.stream.domain), "version": attrs.get(XMPP_VERSION, "1.0")}
            events.append(StreamOpened("stream", NS.STREAMS, NS.CLIENT, opened))
        events.extend(children)
        if attrs.get("type") == "terminate":
            events.append(StreamClosed())
        if events:
            self.framing.push(events)
            self._handle(self.stream.receive(b""))

    # --- answers ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Answer what can be answered now: output to the oldest request, and requests beyond ``hold``."""
        if self._ended:
            content, self._out = b"".join(self._out), []
            for rid, future in list(self._held):
                self._answer(rid, future, content, terminate=True)
                content = b""
            return
        if self._out and self._held:
            content = b"".join(self._out)
            self._out, self._out_size = [], 0
            self._answer(*self._held[0], content)
        while len(self._held) > self.hold:
            self._answer(*self._held[0], b"")
        if not self._held and self._inactivity is None:
            self._inactivity = self.loop.call_later(INACTIVITY, self._inactive)

    def _body(self, rid: int, content: bytes, terminate: bool) -> bytes:
        attrs = {"xmlns": NS_HTTPBIND, "xmlns:stream": NS.STREAMS}
        if rid == self.first_rid:
            attrs |= self.creation_attrs()
        if terminate:
            attrs["type"] = "terminate"
            if self._terminate_condition:
                attrs["condition"] = self._terminate_condition
        text = "".join(f' {k}="{escape_attr(v)}"' for k, v in attrs.items())
        return f"<body{text}>".encode() + content + b"</body>"

    def creation_attrs(self) -> dict[str, str]:
        """XEP-0124 §7.1 and XEP-0206 §4: what the session creation response says of the session and stream."""
        return {
            "sid": self.sid, "wait": str(self.wait), "hold": str(self.hold), "requests": str(self.window),
            "inactivity": str(INACTIVITY), "polling": "1", "ver": "1.11", "from": self.stream.domain,
            "authid": self.stream.stream_id, "secure": "true", "xmlns:xmpp": NS_XBOSH, "xmpp:version": "1.0",
            "xmpp:restartlogic": "true",
        }

    def _answer(self, rid: int, future: asyncio.Future[bytes], content: bytes, terminate: bool = False) -> None:
        body = self._body(rid, content, terminate)
        self._forget(rid)
        self._answers[rid] = body
        self._answers.pop(rid - self.window, None)
        if not future.done():
            future.set_result(body)

    def _answer_empty(self, rid: int) -> None:
        for held_rid, future in self._held:
            if held_rid == rid:
                self._answer(rid, future, b"")
                self._dispatch()
                return

    def _forget(self, rid: int) -> None:
        self._held = [(r, f) for r, f in self._held if r != rid]
        timer = self._timers.pop(rid, None)
        if timer is not None:
            timer.cancel()

    # --- the Connection -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._ended:
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size > self.limits.max_send_buffer:
            log.info("event=send-buffer-full conn=%s session=%s", self.conn_id, self.session)
            self.abort()
            return
        # Once per turn of the loop: what one event produces travels in one body, and a stream that is
        # closing has its end (a terminate body) decided before its last elements are sent.
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            self.loop.call_soon(self._scheduled_dispatch)

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self._dispatch()

    async def writable(self) -> bool:
        return not self._ended

    def _flush_stream(self) -> None:
        for frame in self.stream.frames_to_send():
            if frame:  # the header is on the creation response's attributes, not in a frame
                self.write(frame)

    def _finish(self) -> None:
        errors = any(frame.startswith(b"<stream:error") for frame in self._out)
        self.end("remote-stream-error" if errors else None)

    def abort(self) -> None:
        self._out.clear()
        self.end("remote-connection-failed")

    def end(self, condition: str | None) -> None:
        """The session is over: held requests get a terminate body, and later ones item-not-found."""
        if self._ended:
            return
        self._ended = True
        self._terminate_condition = condition
        self._stop_inactivity()
        self._dispatch()
        self._on_end(self.sid)
        self._gone()

    def _stop_inactivity(self) -> None:
        if self._inactivity is not None:
            self._inactivity.cancel()
            self._inactivity = None

    def _inactive(self) -> None:
        self._inactivity = None
        log.debug("event=bosh-inactive conn=%s session=%s", self.conn_id, self.session)
        self.end(None)


class BoshEndpoint:
    """The aiohttp handler of ``/http-bind``: creates sessions and hands each request to its own."""

    def __init__(self, port: ClientPort, origin: WebOrigin) -> None:
        self.port = port
        self.origin = origin
        self.sessions: dict[str, BoshSession] = {}
        self._features_cache: dict[tuple[bool, bool, tuple[str, ...]], bytes] = {}

    async def handle(self, request: web.Request) -> web.Response:
        settings = self.port.settings
        if request.content_length is not None and request.content_length > settings.max_stanza_size:
            return self._reply(terminate_body("policy-violation"))
        try:
            attrs, children = parse_body(await request.read(), settings.max_stanza_size, settings.max_depth)
            rid = _int(attrs, "rid")
            sid = attrs.get("sid")
            if sid is None:
                session = self._create(request, rid, attrs)
            elif (found := self.sessions.get(sid)) is not None:
                session = found
            else:
                raise BoshError("item-not-found")
            return self._reply(await session.request(rid, attrs, children))
        except BoshError as e:
            return self._reply(terminate_body(e.condition))

    def _create(self, request: web.Request, rid: int, attrs: dict[str, str]) -> BoshSession:
        settings = self.port.settings
        framing = BoshFraming(settings.max_stanza_size, settings.max_depth)
        stream = self.port.http_stream(
            framing, self._features_cache, self.origin.is_secure(request), self.origin.tls_here(request)
        )
        wait = min(max(_int(attrs, "wait", MAX_WAIT), 1), MAX_WAIT)
        hold = min(max(_int(attrs, "hold", 1), 1), MAX_HOLD)
        session = BoshSession(self.port, stream, rid, wait, hold, self._ended, self.origin.client_address(request))
        if session._ended:  # refused at once by the per-address connection limits (sakari.net.throttle)
            raise BoshError("policy-violation")
        session.web_origin = self.origin.base_url(request)
        self.sessions[session.sid] = session
        return session

    def _ended(self, sid: str) -> None:
        self.sessions.pop(sid, None)

    @staticmethod
    def _reply(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="text/xml", charset="utf-8", headers=CORS_ANY)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=PREFLIGHT)
