"""A hand-driven client stream with XEP-0198 stream management, for exact acks and resumption."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from raw_xmpp import RawStream
from sakari_process import Account, SakariServer
from xmpp_harness import NS_CLIENT, NS_SASL, describe, q

NS_SM = "urn:xmpp:sm:3"
STANZAS = {q(NS_CLIENT, n) for n in ("message", "presence", "iq")}


class SmClient:
    """Counts every stanza it receives once stream management is on, as a client must for its h."""

    def __init__(self, stream: RawStream, jid: str) -> None:
        self.stream = stream
        self.jid = jid
        self.handled = 0
        self.counting = False
        self.stanzas: list[ET.Element] = []  # every stanza received, in order
        self.nonzas: list[ET.Element] = []  # stream management elements received, in order

    @classmethod
    async def login(cls, server: SakariServer, account: Account, resource: str = "sm") -> SmClient:
        stream = await RawStream.connect(server.c2s_port)
        return cls(stream, await stream.login_plain(account, resource))

    @classmethod
    async def authenticated(cls, server: SakariServer, account: Account) -> tuple[RawStream, ET.Element]:
        """A new stream, authenticated and not bound; returns it with its stream features."""
        stream = await RawStream.connect(server.c2s_port)
        await stream.open()
        await stream.starttls()
        await stream.open()
        answer = await stream.authenticate("PLAIN", f"\0{account.localpart}\0{account.password}".encode())
        assert answer.tag == q(NS_SASL, "success"), describe(answer)
        return stream, await stream.open()

    async def send(self, xml: str) -> None:
        await self.stream.send(xml)

    async def next(self) -> ET.Element:
        el = await self.stream.next_element()
        assert el is not None, f"stream closed; got {bytes(self.stream.received[-600:])!r}"
        if el.tag in STANZAS:
            self.stanzas.append(el)
            if self.counting:
                self.handled += 1
        elif el.tag.startswith(f"{{{NS_SM}}}"):
            self.nonzas.append(el)
        return el

    async def next_nonza(self, name: str) -> ET.Element:
        """Read on (counting stanzas) until this stream management element arrives."""
        while True:
            el = await self.next()
            if el.tag == q(NS_SM, name):
                return el

    async def enable(self, resume: bool = True) -> ET.Element:
        await self.send(f"<enable xmlns='{NS_SM}'" + (" resume='true'" if resume else "") + "/>")
        enabled = await self.next_nonza("enabled")
        self.counting = True
        return enabled

    async def message_bodies(self, count: int) -> list[str]:
        """Read on until ``count`` messages with a body have arrived; their bodies."""
        bodies = []
        while len(bodies) < count:
            el = await self.next()
            body = el.find(q(NS_CLIENT, "body")) if el.tag == q(NS_CLIENT, "message") else None
            if body is not None:
                bodies.append(body.text or "")
        return bodies

    async def ack(self, h: int | None = None) -> None:
        await self.send(f"<a xmlns='{NS_SM}' h='{self.handled if h is None else h}'/>")

    async def resume(self, server: SakariServer, account: Account, previd: str, h: int) -> ET.Element:
        """On a new connection: authenticate and ask to resume; returns <resumed/> or <failed/>."""
        self.stream, _ = await self.authenticated(server, account)
        await self.send(f"<resume xmlns='{NS_SM}' previd={quoteattr(previd)} h='{h}'/>")
        el = await self.stream.next_element()
        assert el is not None, f"stream closed after <resume/>; got {bytes(self.stream.received[-600:])!r}"
        return el

    def message(self, to: str, body: str, type: str = "chat") -> str:
        return f"<message to={quoteattr(to)} type='{type}'><body>{body}</body></message>"

    def close(self) -> None:
        """Cut the TCP connection (no closing of the stream)."""
        self.stream.close()
