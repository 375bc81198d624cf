"""Hand-written web clients for the integration tests: XMPP over WebSocket (RFC 7395) and BOSH (XEP-0206).

Written from the specifications rather than taken from a library, so a test
shows exactly what a browser would send and what it gets back.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import aiohttp

from sakari_process import DOMAIN, HOST, Account, SakariServer
from xmpp_harness import NS_BIND, NS_CLIENT, NS_SASL, WAIT, Inbox, insecure_tls_context, q

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
OPEN = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>"


def plain(account: Account) -> str:
    return base64.b64encode(f"\0{account.localpart}\0{account.password}".encode()).decode()


def mechanisms(features: ET.Element) -> list[str]:
    return [m.text or "" for m in features.iter(q(NS_SASL, "mechanism"))]


class WebSocketClient:
    """One RFC 7395 connection; every message received is parsed and kept in ``inbox`` (and ``frames``)."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.inbox = Inbox()
        self.jid = ""
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, server: SakariServer, headers: dict[str, str] | None = None, tls: bool = False) -> WebSocketClient:
        http = aiohttp.ClientSession()
        url = f"{'https' if tls else 'http'}://{HOST}:{server.http_port}/xmpp-websocket"
        ws = await http.ws_connect(url, protocols=("xmpp",), headers=headers, ssl=insecure_tls_context() if tls else True)
        assert ws.protocol == "xmpp", "the server must agree on the xmpp subprotocol (RFC 7395 §3.1)"
        return cls(http, ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.inbox.put(ET.fromstring(msg.data))
        if not self.closed.done():
            self.closed.set_result(self.ws.close_code)

    async def send(self, xml: str) -> None:
        await self.ws.send_str(xml)

    async def expect(self, ns: str, name: str) -> ET.Element:
        return await self.inbox.wait_for(lambda el: el.tag == q(ns, name), f"<{name} xmlns='{ns}'/>")

    async def open(self) -> ET.Element:
        """Open (or restart) the stream; returns the stream features."""
        await self.send(OPEN)
        await self.expect(NS_FRAMING, "open")
        return await self.expect("http://etherx.jabber.org/streams", "features")

    async def login(self, account: Account, resource: str = "web") -> None:
        features = await self.open()
        assert "PLAIN" in mechanisms(features), f"no PLAIN offered: {ET.tostring(features)}"
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain(account)}</auth>")
        await self.expect(NS_SASL, "success")
        await self.open()
        await self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        result = await self.inbox.wait_for(lambda el: el.get("id") == "bind", "the bind result")
        self.jid = result.findtext(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}") or ""
        assert self.jid.startswith(account.jid), ET.tostring(result)
        await self.send(f"<presence xmlns='{NS_CLIENT}'/>")

    async def message(self, to: str, body: str) -> None:
        await self.send(f"<message xmlns='{NS_CLIENT}' to={quoteattr(to)} type='chat'><body>{body}</body></message>")

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
        self._reader.cancel()


async def wait_closed(client: WebSocketClient) -> int | None:
    return await asyncio.wait_for(client.closed, WAIT)


class BoshClient:
    """A BOSH session (XEP-0124/0206) written by hand: every body the server answers is kept; the children
    go to ``inbox``. ``poll()`` keeps one request open, as a browser does, so the server can push."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.rid = 4242
        self.sid = ""
        self.inbox = Inbox()
        self.bodies: list[ET.Element] = []
        self.jid = ""
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    def to(cls, server: SakariServer) -> BoshClient:
        return cls(aiohttp.ClientSession(), f"http://{HOST}:{server.http_port}/http-bind")

    async def post(self, content: str = "", **attrs: str) -> ET.Element:
        self.rid += 1
        attrs = {"rid": str(self.rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        attr_text = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
        data = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'{attr_text}>{content}</body>"
        async with self.http.post(self.url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"}) as resp:
            assert resp.status == 200, await resp.text()
            body = ET.fromstring(await resp.read())
        self.bodies.append(body)
        for child in body:
            self.inbox.put(child)
        return body

    async def create(self) -> ET.Element:
        body = await self.post(to=DOMAIN, wait="10", hold="1", ver="1.11", **{"xmpp:version": "1.0", "xml:lang": "en"})
        self.sid = body.get("sid", "")
        return body

    async def login(self, account: Account, resource: str = "bosh") -> None:
        await self.create()
        await self.inbox.wait_for(lambda el: el.tag == q("http://etherx.jabber.org/streams", "features"), "features")
        await self.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain(account)}</auth>")
        await self.inbox.wait_for(lambda el: el.tag == q(NS_SASL, "success"), "SASL success")
        await self.post(to=DOMAIN, **{"xmpp:restart": "true"})
        await self.post(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        result = await self.inbox.wait_for(lambda el: el.get("id") == "bind", "the bind result")
        self.jid = result.findtext(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}") or ""
        await self.post(f"<presence xmlns='{NS_CLIENT}'/>")
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            body = await self.post()
            if body.get("type") == "terminate":
                return

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        await self.http.close()
