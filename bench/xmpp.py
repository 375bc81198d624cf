"""A small, fast XMPP client for load generation (RFC 6120 c2s over plain TCP).

This is deliberately not a general-purpose client: it knows exactly what the
benchmark needs and nothing more.

- stream header, optional STARTTLS (RFC 6120 §5), SASL SCRAM-SHA-1 (RFC 5802),
  optional in-band registration (XEP-0077) used only to create accounts,
  resource binding (RFC 6120 §7), legacy ``<session/>`` when a server advertises
  it as required (RFC 3921 §3), initial presence;
- incoming bytes go through ``xml.parsers.expat`` incrementally; only
  top-level children of the stream are turned into tiny ``Element`` trees;
- once a connection is online, stanzas are handed to a plain callback (no
  futures, no queues per stanza), and writes are coalesced per event-loop turn
  by :class:`Flusher` so a burst of replies costs one ``send`` per socket.

PBKDF2 is the only expensive part of SCRAM for a client.  The salted password
(in fact the derived client/server keys) is cached per (user, salt,
iterations) in :data:`SCRAM_CACHE`, so a worker does PBKDF2 once per account;
the runner persists the cache between runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import ssl
import time
from typing import Callable
from xml.parsers import expat

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_REGISTER = "jabber:iq:register"
NS_MUC = "http://jabber.org/protocol/muc"
NS_COMPONENT = "jabber:component:accept"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_SM = "urn:xmpp:sm:3"

# (user, salt, iterations) -> (client_key, stored_key, server_key)
SCRAM_CACHE: dict[tuple[str, bytes, int], tuple[bytes, bytes, bytes]] = {}
# Counts how many PBKDF2 derivations this process actually did (for the report).
PBKDF2_COUNT = [0]


_NAME = re.compile(rb"[^\s/>]+")
_SM_STANZAS = frozenset((b"message", b"presence", b"iq"))  # what XEP-0198 counts
_ATTR_RE: dict[bytes, re.Pattern] = {}


def attr(tag: bytes, name: bytes) -> bytes | None:
    """Value of attribute ``name`` in a raw start tag (no entity decoding)."""
    r = _ATTR_RE.get(name)
    if r is None:
        r = _ATTR_RE[name] = re.compile(rb"\s" + re.escape(name) + rb"=(?:'([^']*)'|\"([^\"]*)\")")
    m = r.search(tag)
    if m is None:
        return None
    v = m.group(1)
    return v if v is not None else m.group(2)


class XMPPError(Exception):
    """The server refused something or the stream broke during negotiation."""


def xml_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


class Element:
    """A minimal element: local name (prefix stripped), attributes, children, text."""

    __slots__ = ("name", "attrs", "children", "text")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs
        self.children: list[Element] = []
        self.text = ""

    def find(self, name: str) -> "Element | None":
        for child in self.children:
            if child.name == name:
                return child
        return None

    def get(self, key: str, default: str = "") -> str:
        return self.attrs.get(key, default)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<{self.name} {self.attrs} children={[c.name for c in self.children]} text={self.text[:40]!r}>"


def _local(name: str) -> str:
    # No namespace processing (it costs time); servers use the usual prefixes,
    # and the benchmark only looks at local names.
    i = name.find(":")
    return name if i < 0 else name[i + 1:]


class Flusher:
    """Coalesces writes of many connections and flushes them once per loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[Connection] = []
        self.scheduled = False

    def mark(self, conn: "Connection") -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class Connection(asyncio.Protocol):
    """One client stream.  Negotiation is driven by :meth:`login`; afterwards
    every top-level stanza goes to ``on_stanza``."""

    def __init__(self, domain: str, flusher: Flusher | None = None) -> None:
        self.domain = domain
        self.transport: asyncio.Transport | None = None
        self.flusher = flusher
        self.outbuf: list[bytes] = []
        self.on_stanza: Callable[[Element], None] | None = None
        # Raw mode (see go_raw): (name, start_tag, whole_stanza) -> None
        self.on_raw: Callable[[bytes, bytes, bytes], None] | None = None
        self._raw = False
        self._buf = bytearray()
        # Stream management (XEP-0198), when enable_sm succeeded: stanzas received since, for the server's <r/>.
        self._sm = False
        self.sm_handled = 0
        self.jid = ""
        self.closed = asyncio.get_running_loop().create_future()
        self._queue: list[Element] = []
        self._waiter: asyncio.Future | None = None
        self._stream_header: dict[str, str] | None = None
        self._header_waiter: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._new_parser()

    # ---------------------------------------------------------------- parsing
    def _new_parser(self) -> None:
        p = expat.ParserCreate()
        p.buffer_text = True
        p.buffer_size = 65536
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        self._parser = p
        self._stack: list[Element] = []
        self._depth = 0

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        depth = self._depth
        self._depth = depth + 1
        if depth == 0:
            self._stream_header = attrs
            w = self._header_waiter
            if w is not None and not w.done():
                w.set_result(attrs)
            return
        el = Element(_local(name) if depth == 1 else name, attrs)
        if self._stack:
            self._stack[-1].children.append(el)
        self._stack.append(el)

    def _end(self, name: str) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._fail(XMPPError("stream closed by server"))
            return
        el = self._stack.pop()
        if not self._stack:
            cb = self.on_stanza
            if cb is not None:
                cb(el)
            else:
                self._queue.append(el)
                w = self._waiter
                if w is not None and not w.done():
                    w.set_result(None)

    def _text(self, data: str) -> None:
        if self._stack:
            self._stack[-1].text += data

    # --------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def go_raw(self) -> None:
        """From now on, split incoming bytes into top-level stanzas by scanning
        instead of running expat, and hand them to ``on_raw`` undecoded.

        Several times cheaper per stanza, which keeps the generator from being
        the bottleneck.  It relies on what the benchmark's traffic looks like:
        no top-level stanza contains a nested element of its own name (no
        carbons or forwarded messages are enabled) and attribute values contain
        no '>' (servers escape it).  Call it only between stanzas (right after
        a request/response exchange)."""
        self._raw = True
        if self._sm:  # what expat read after <enabled/> counts too, and an ack request must not go unanswered
            for el in self._queue:
                if el.name in ("message", "presence", "iq"):
                    self.sm_handled += 1
                elif el.name == "r":
                    self.send(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.sm_handled)

    def _scan(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        n = len(buf)
        pos = 0
        cb = self.on_raw
        sm = self._sm
        while pos < n:
            i = buf.find(b"<", pos)
            if i < 0:
                pos = n
                break
            if i + 1 < n and buf[i + 1] == 0x2F:  # "</": end of the stream
                self._fail(XMPPError("stream closed by server"))
                pos = n
                break
            gt = buf.find(b">", i)
            if gt < 0:
                pos = i
                break
            m = _NAME.match(buf, i + 1)
            name = bytes(m.group()) if m else b""
            if buf[gt - 1] == 0x2F:  # "/>": empty element
                end = gt + 1
            else:
                e = buf.find(b"</" + name + b">", gt)
                if e < 0:
                    pos = i
                    break
                end = e + len(name) + 3
            pos = end
            if sm:
                if name in _SM_STANZAS:
                    self.sm_handled += 1
                elif name == b"r":  # the count in order with the stanzas before it; `a` elements need nothing
                    self.send(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % (self.sm_handled & 0xFFFFFFFF))
                    continue
                else:
                    continue
            if cb is not None:
                cb(name, bytes(buf[i:gt + 1]), bytes(buf[i:end]))
        del buf[:pos]

    def data_received(self, data: bytes) -> None:
        if self._raw:
            self._scan(data)
            return
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as e:
            self._fail(XMPPError(f"XML error from server: {e}"))
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool:
        self._fail(XMPPError("server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(XMPPError(f"connection lost: {exc}" if exc else "connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for w in (self._waiter, self._header_waiter):
            if w is not None and not w.done():
                w.set_exception(exc)

    # ------------------------------------------------------------------ output
    def send(self, data: bytes) -> None:
        """Queue bytes; with a Flusher they go out at the end of this loop turn."""
        if self.flusher is None:
            if self.transport is not None:
                self.transport.write(data)
            return
        if not self.outbuf:
            self.flusher.mark(self)
        self.outbuf.append(data)

    def flush(self) -> None:
        if self.outbuf and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.outbuf))
        self.outbuf.clear()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.flush()
            try:
                self.transport.write(b"</stream:stream>")
            except Exception:
                pass
            self.transport.close()

    # ------------------------------------------------------------- negotiation
    async def next_element(self) -> Element:
        """Next top-level element.  No timeout of its own (asyncio.wait_for
        costs a task per call): callers bound whole exchanges with
        ``asyncio.timeout``."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.pop(0)

    async def _exchange_headers(self, header: str) -> dict[str, str]:
        """Send a stream header; return the attributes of the server's."""
        self._stream_header = None
        self.transport.write(header.encode())  # type: ignore[union-attr]
        if self._stream_header is None:
            if self._error is not None:
                raise self._error
            self._header_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._header_waiter
            finally:
                self._header_waiter = None
        return self._stream_header  # type: ignore[return-value]

    async def open_stream(self) -> Element:
        """Send a stream header, wait for the server's header and features."""
        await self._exchange_headers(
            f"<?xml version='1.0'?><stream:stream to='{self.domain}' version='1.0' "
            "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        features = await self.next_element()
        if features.name != "features":
            raise XMPPError(f"expected stream features, got {features.name}: {_describe(features)}")
        return features

    def restart(self) -> None:
        """The stream restarts (after STARTTLS or SASL success): fresh parser."""
        self._new_parser()
        self._queue.clear()

    async def starttls(self, features: Element, ssl_context: ssl.SSLContext) -> Element:
        if features.find("starttls") is None:
            raise XMPPError("server does not offer STARTTLS")
        self.transport.write(f"<starttls xmlns='{NS_TLS}'/>".encode())  # type: ignore[union-attr]
        el = await self.next_element()
        if el.name != "proceed":
            raise XMPPError(f"STARTTLS refused: {_describe(el)}")
        self.restart()
        loop = asyncio.get_running_loop()
        self.transport = await loop.start_tls(self.transport, self, ssl_context,  # type: ignore[arg-type]
                                              server_hostname=self.domain)
        return await self.open_stream()

    async def auth_scram_sha1(self, features: Element, user: str, password: str) -> None:
        mechs = features.find("mechanisms")
        names = [m.text for m in mechs.children] if mechs is not None else []
        if "SCRAM-SHA-1" not in names:
            raise XMPPError(f"SCRAM-SHA-1 not offered (offered: {names})")
        cnonce = base64.b64encode(os.urandom(18)).decode()
        user_esc = user.replace("=", "=3D").replace(",", "=2C")
        client_first_bare = f"n={user_esc},r={cnonce}"
        payload = base64.b64encode(("n,," + client_first_bare).encode()).decode()
        self.transport.write(  # type: ignore[union-attr]
            f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{payload}</auth>".encode())
        el = await self.next_element()
        if el.name != "challenge":
            raise XMPPError(f"SASL failed at client-first: {_describe(el)}")
        server_first = base64.b64decode(el.text).decode()
        fields = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        if not nonce.startswith(cnonce):
            raise XMPPError("server nonce does not extend the client nonce")
        key = (user, salt, iterations)
        keys = SCRAM_CACHE.get(key)
        if keys is None:
            salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
            PBKDF2_COUNT[0] += 1
            client_key = hmac.digest(salted, b"Client Key", "sha1")
            keys = (client_key, hashlib.sha1(client_key).digest(),
                    hmac.digest(salted, b"Server Key", "sha1"))
            SCRAM_CACHE[key] = keys
        client_key, stored_key, server_key = keys
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha1")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        self.transport.write(  # type: ignore[union-attr]
            f"<response xmlns='{NS_SASL}'>{base64.b64encode(final.encode()).decode()}</response>".encode())
        el = await self.next_element()
        if el.name == "challenge":  # RFC 6120 allows the server-final in a challenge
            server_final = base64.b64decode(el.text).decode()
            self.transport.write(f"<response xmlns='{NS_SASL}'/>".encode())  # type: ignore[union-attr]
            el = await self.next_element()
        elif el.name == "success":
            server_final = base64.b64decode(el.text).decode() if el.text.strip() else ""
        else:
            raise XMPPError(f"SASL failed: {_describe(el)}")
        if el.name != "success":
            raise XMPPError(f"SASL failed: {_describe(el)}")
        if server_final:
            expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha1")).decode()
            if server_final != f"v={expected}":
                raise XMPPError("server signature mismatch")
        self.restart()

    async def bind(self, features: Element, resource: str) -> None:
        if features.find("bind") is None:
            raise XMPPError("server does not offer resource binding")
        self.transport.write(  # type: ignore[union-attr]
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{xml_escape(resource)}"
            "</resource></bind></iq>".encode())
        el = await self.next_element()
        if el.name != "iq" or el.get("type") != "result":
            raise XMPPError(f"bind failed: {_describe(el)}")
        b = el.find("bind")
        j = b.find("jid") if b is not None else None
        self.jid = j.text if j is not None else ""
        session = features.find("session")
        if session is not None and session.find("optional") is None:
            self.transport.write(  # type: ignore[union-attr]
                f"<iq type='set' id='sess1'><session xmlns='{NS_SESSION}'/></iq>".encode())
            el = await self.next_element()
            if el.name != "iq" or el.get("type") != "result":
                raise XMPPError(f"session failed: {_describe(el)}")

    async def enable_carbons(self) -> None:
        """XEP-0280: carbons on for this resource (copies go only to an account's other online resources)."""
        self.transport.write(  # type: ignore[union-attr]
            f"<iq type='set' id='carbons1'><enable xmlns='{NS_CARBONS}'/></iq>".encode())
        el = await self.next_element()
        if el.name != "iq" or el.get("type") != "result":
            raise XMPPError(f"enabling carbons failed: {_describe(el)}")

    async def enable_sm(self, features: Element) -> None:
        """XEP-0198: stream management on (without resumption); acks are answered by the raw scanner."""
        if features.find("sm") is None:
            raise XMPPError("server does not offer stream management")
        self.transport.write(f"<enable xmlns='{NS_SM}'/>".encode())  # type: ignore[union-attr]
        el = await self.next_element()
        if el.name != "enabled":
            raise XMPPError(f"enabling stream management failed: {_describe(el)}")
        self._sm = True
        self.sm_handled = 0

    async def register(self, features: Element, user: str, password: str) -> None:
        """XEP-0077 in-band registration on an unauthenticated stream."""
        self.transport.write(  # type: ignore[union-attr]
            f"<iq type='set' id='reg1'><query xmlns='{NS_REGISTER}'><username>{xml_escape(user)}"
            f"</username><password>{xml_escape(password)}</password></query></iq>".encode())
        el = await self.next_element()
        if el.name != "iq" or el.get("type") != "result":
            err = el.find("error")
            if err is not None and any(c.name == "conflict" for c in err.children):
                return  # already exists: fine for our purposes
            raise XMPPError(f"registration of {user} failed: {_describe(el)}")


def _describe(el: Element) -> str:
    parts = [el.name]
    for c in el.children:
        parts.append(c.name + ("(" + ",".join(g.name for g in c.children) + ")" if c.children else ""))
    if el.text.strip():
        parts.append(repr(el.text.strip()[:80]))
    return " ".join(parts)


async def connect(host: str, port: int, domain: str, flusher: Flusher | None = None,
                  local_addr: tuple[str, int] | None = None) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Connection(domain, flusher), host, port,
                                           local_addr=local_addr)
    return conn


async def login(host: str, port: int, user: str, password: str, domain: str, resource: str,
                flusher: Flusher | None = None, tls: ssl.SSLContext | None = None,
                presence: bool = False, timeout: float = 60.0, raw: bool = False, carbons: bool = False,
                sm: bool = False) -> Connection:
    """Connect, (STARTTLS,) SCRAM-SHA-1, bind; optionally enable carbons and stream management (which needs raw
    mode: the raw scanner answers the acks), switch to raw mode (:meth:`Connection.go_raw`) and send initial
    presence."""
    if sm and not raw:
        raise ValueError("stream management needs raw mode: its scanner answers the server's ack requests")
    conn = await connect(host, port, domain, flusher)
    try:
        async with asyncio.timeout(timeout):
            features = await conn.open_stream()
            if tls is not None:
                features = await conn.starttls(features, tls)
            await conn.auth_scram_sha1(features, user, password)
            features = await conn.open_stream()
            await conn.bind(features, resource)
            if carbons:
                await conn.enable_carbons()
            if sm:
                await conn.enable_sm(features)  # last: from here on every stanza received is counted
            if raw:
                conn.go_raw()
            if presence:
                conn.transport.write(b"<presence/>")  # type: ignore[union-attr]
    except BaseException:
        if conn.transport is not None:
            conn.transport.abort()
        raise
    return conn


async def component_login(host: str, port: int, domain: str, secret: str, flusher: Flusher | None = None,
                          timeout: float = 60.0) -> Connection:
    """An external component's stream (XEP-0114): the server's stream id, the handshake (hex SHA-1 of the
    id followed by the shared secret), then raw mode (:meth:`Connection.go_raw`)."""
    conn = await connect(host, port, domain, flusher)
    try:
        async with asyncio.timeout(timeout):
            header = await conn._exchange_headers(
                f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='{NS_COMPONENT}' "
                "xmlns:stream='http://etherx.jabber.org/streams'>")
            digest = hashlib.sha1((header.get("id", "") + secret).encode()).hexdigest()
            conn.transport.write(f"<handshake>{digest}</handshake>".encode())  # type: ignore[union-attr]
            el = await conn.next_element()
            if el.name != "handshake":
                raise XMPPError(f"component handshake refused: {_describe(el)}")
            conn.jid = domain
            conn.go_raw()
    except BaseException:
        if conn.transport is not None:
            conn.transport.abort()
        raise
    return conn


async def register_account(host: str, port: int, user: str, password: str, domain: str,
                           tls: ssl.SSLContext | None = None) -> None:
    conn = await connect(host, port, domain)
    try:
        async with asyncio.timeout(60):
            features = await conn.open_stream()
            if tls is not None:
                features = await conn.starttls(features, tls)
            await conn.register(features, user, password)
    finally:
        conn.close()


def client_tls_context() -> ssl.SSLContext:
    """Benchmark servers use throwaway self-signed certificates on loopback."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def now_ns() -> int:
    """CLOCK_MONOTONIC is shared by all processes on the machine."""
    return time.monotonic_ns()
