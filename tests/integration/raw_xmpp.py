"""Hand-driven XML streams for what a well-behaved client library never sends:
garbage, DTDs, oversized stanzas, SASL exchanges with channel binding
(RFC 5802 SCRAM, RFC 5929 tls-server-end-point) that slixmpp lacks.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import secrets
import ssl
import xml.etree.ElementTree as ET
from typing import Iterable
from xml.sax.saxutils import escape

from sakari_process import DOMAIN, HOST, Account
from xmpp_harness import (
    NS_BIND,
    NS_CLIENT,
    NS_SASL,
    NS_STREAM,
    NS_TLS,
    STREAM_HEADER,
    WAIT,
    describe,
    insecure_tls_context,
    q,
    stream_error_condition,
)


class RawStream:
    """An XML stream read and written by hand over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.header: ET.Element | None = None
        self.stream_closed = False  # the peer sent </stream:stream>
        self.eof = False  # the peer closed the TCP connection
        self.unparseable: str | None = None
        self._ready: collections.deque[ET.Element] = collections.deque()
        self._reset_parser()

    @classmethod
    async def connect(cls, port: int, tls: bool = False, source: str | None = None) -> "RawStream":
        """``source``: the local address to connect from (another loopback address, 127.0.0.2, is another client
        address to the server's per-address limits)."""
        local_addr = (source, 0) if source is not None else None
        if tls:
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=insecure_tls_context(), server_hostname=DOMAIN, local_addr=local_addr
            )
        else:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=local_addr)
        return cls(reader, writer)

    def _reset_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self.header = None
        self.stream_closed = False

    def _feed(self, data: bytes) -> None:
        self.received += data
        if self.unparseable:
            return
        try:
            self._parser.feed(data)
            for event, el in self._parser.read_events():
                if event == "start":
                    if self._depth == 0:
                        self.header = el
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        self._ready.append(el)
                    elif self._depth == 0:
                        self.stream_closed = True
        except ET.ParseError as e:
            self.unparseable = f"{e}; bytes received: {bytes(self.received[-600:])!r}"

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass  # the peer may close on us mid-write; what it sent is what counts

    async def _read_more(self, deadline: float, size: int = 65536) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError
        try:
            data = await asyncio.wait_for(self.reader.read(size), remaining)
        except (TimeoutError, asyncio.TimeoutError):
            raise  # a TimeoutError is an OSError too, but it is no sign that the peer closed
        except (ConnectionError, OSError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
        else:
            self._feed(data)

    async def next_element(self, timeout: float = WAIT) -> ET.Element | None:
        """The next top-level element, or None once the peer has closed the stream."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._ready:
            if self.unparseable:
                raise AssertionError(f"server sent unparseable XML: {self.unparseable}")
            if self.stream_closed or self.eof:
                return None
            try:
                await self._read_more(deadline)
            except (TimeoutError, asyncio.TimeoutError):
                raise AssertionError(
                    f"no element from the server within {timeout}s; got so far: {bytes(self.received[-600:])!r}"
                ) from None
        return self._ready.popleft()

    async def read_some(self, size: int, timeout: float = WAIT) -> list[ET.Element]:
        """One read of at most ``size`` bytes (a client on a slow link); the top-level elements completed so far."""
        await self._read_more(asyncio.get_running_loop().time() + timeout, size)
        elements = list(self._ready)
        self._ready.clear()
        return elements

    async def expect(self, ns: str, name: str, timeout: float = WAIT) -> ET.Element:
        el = await self.next_element(timeout)
        assert el is not None, f"stream closed while waiting for {{{ns}}}{name}; got {bytes(self.received[-600:])!r}"
        assert el.tag == q(ns, name), f"expected {{{ns}}}{name}, got {describe(el)}"
        return el

    async def read_until_closed(self, timeout: float = WAIT) -> list[ET.Element]:
        """Everything the server sends until it closes the TCP connection."""
        deadline = asyncio.get_running_loop().time() + timeout
        elements = list(self._ready)
        self._ready.clear()
        while not self.eof:
            try:
                await self._read_more(deadline)
            except (TimeoutError, asyncio.TimeoutError):
                raise AssertionError(
                    f"server did not close the connection within {timeout}s; got: {bytes(self.received[-600:])!r}"
                ) from None
            elements.extend(self._ready)
            self._ready.clear()
        return elements

    async def open(self, prefix: str = "", xml_declaration: bool = True) -> ET.Element:
        """Send a stream header (after ``prefix``, e.g. a DOCTYPE); return the stream features."""
        self._reset_parser()
        decl = "<?xml version='1.0'?>" if xml_declaration else ""
        await self.send(decl + prefix + STREAM_HEADER)
        return await self.expect(NS_STREAM, "features")

    async def starttls(self) -> None:
        await self.send(f"<starttls xmlns='{NS_TLS}'/>")
        await self.expect(NS_TLS, "proceed")
        await self.writer.start_tls(insecure_tls_context(), server_hostname=DOMAIN)

    def peer_certificate(self) -> bytes:
        ssl_object = self.writer.get_extra_info("ssl_object")
        assert ssl_object is not None, "not a TLS stream"
        return ssl_object.getpeercert(binary_form=True)

    async def authenticate(self, mechanism: str, initial: bytes) -> ET.Element:
        """Send <auth/>; return the server's answer (challenge, success or failure)."""
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{base64.b64encode(initial).decode() or '='}</auth>")
        el = await self.next_element()
        assert el is not None, f"stream closed after <auth/>; got {bytes(self.received[-600:])!r}"
        return el

    async def respond(self, data: bytes) -> ET.Element:
        await self.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(data).decode()}</response>")
        el = await self.next_element()
        assert el is not None, f"stream closed after <response/>; got {bytes(self.received[-600:])!r}"
        return el

    async def bind(self, resource: str) -> str:
        await self.send(
            f"<iq type='set' id='bind-1'><bind xmlns='{NS_BIND}'><resource>{escape(resource)}</resource></bind></iq>"
        )
        el = await self.expect(NS_CLIENT, "iq")
        assert el.get("type") == "result", f"bind failed: {describe(el)}"
        jid = el.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}")
        assert jid is not None and jid.text, f"bind result without jid: {describe(el)}"
        return jid.text

    async def login_plain(self, account: Account, resource: str = "raw") -> str:
        """STARTTLS, SASL PLAIN, bind. Returns the bound full JID."""
        await self.open()
        await self.starttls()
        await self.open()
        answer = await self.authenticate("PLAIN", f"\0{account.localpart}\0{account.password}".encode())
        assert answer.tag == q(NS_SASL, "success"), f"PLAIN failed: {describe(answer)}"
        await self.open()
        return await self.bind(resource)

    def close(self) -> None:
        self.writer.transport.abort()


def mechanisms_offered(features: ET.Element) -> list[str]:
    mechs = features.find(q(NS_SASL, "mechanisms"))
    if mechs is None:
        return []
    return [m.text or "" for m in mechs.findall(q(NS_SASL, "mechanism"))]


def stream_error_in(elements: Iterable[ET.Element]) -> str | None:
    for el in elements:
        if el.tag == q(NS_STREAM, "error"):
            return stream_error_condition(el)
    return None


# --------------------------------------------------------------------------
# SCRAM (RFC 5802) with tls-server-end-point channel binding (RFC 5929)


def tls_server_end_point(der_certificate: bytes) -> bytes:
    """RFC 5929 §4.1: hash of the server certificate with its signature hash,
    SHA-256 when that is MD5 or SHA-1 (or when the signature has no separate hash)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der_certificate)
    algorithm = cert.signature_hash_algorithm
    name = algorithm.name if algorithm is not None else "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, der_certificate).digest()


class ScramClient:
    def __init__(self, mechanism: str, username: str, password: str, *,
                 cb_type: str | None = None, cb_data: bytes = b"", gs2_flag: str | None = None,
                 authzid: str = ""):
        base = mechanism.removesuffix("-PLUS")
        self.hash_name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[base]
        self.username = username.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.cb_data = cb_data
        if gs2_flag is None:
            gs2_flag = f"p={cb_type}" if cb_type else "n"
        authz = f"a={authzid.replace('=', '=3D').replace(',', '=2C')}" if authzid else ""
        self.gs2_header = f"{gs2_flag},{authz},".encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.server_signature = b""

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()

    def first(self) -> bytes:
        self.first_bare = f"n={self.username},r={self.nonce}".encode()
        return self.gs2_header + self.first_bare

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
        nonce = attrs[b"r"]
        assert nonce.startswith(self.nonce.encode()), "server nonce does not extend ours"
        salt = base64.b64decode(attrs[b"s"])
        iterations = int(attrs[b"i"])
        channel = b"c=" + base64.b64encode(self.gs2_header + self.cb_data)
        without_proof = channel + b",r=" + nonce
        salted = hashlib.pbkdf2_hmac(self.hash_name, self.password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        auth_message = self.first_bare + b"," + server_first + b"," + without_proof
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(x ^ y for x, y in zip(client_key, signature))
        self.server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify(self, server_final: bytes) -> bool:
        attrs = dict(part.split(b"=", 1) for part in server_final.split(b","))
        return base64.b64decode(attrs.get(b"v", b"")) == self.server_signature


async def scram_exchange(stream: RawStream, scram: ScramClient, mechanism: str) -> tuple[ET.Element, ScramClient]:
    """Run a SCRAM exchange; return the final <success/> or <failure/> element."""
    answer = await stream.authenticate(mechanism, scram.first())
    if answer.tag != q(NS_SASL, "challenge"):
        return answer, scram
    server_first = base64.b64decode(answer.text or "")
    answer = await stream.respond(scram.final(server_first))
    if answer.tag == q(NS_SASL, "challenge"):  # server-final sent as a challenge (allowed by RFC 6120 §6.3.10)
        scram.server_final = base64.b64decode(answer.text or "")
        answer = await stream.respond(b"")
    return answer, scram
