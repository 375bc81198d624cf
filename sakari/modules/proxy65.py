"""XEP-0065 SOCKS5 Bytestreams proxy (``proxy.<domain>``): file transfers between clients that cannot reach each other.

Jingle file transfer (and plain XEP-0065) first tries direct connections;
when both clients are behind NAT, they meet here. Each side opens a TCP
connection to ``proxy65.port`` and names the stream by SOCKS5 CONNECT to
the host SHA1(SID + initiator's JID + target's JID); the target connects
first, the initiator second. Once both are in, the initiator activates the
stream with an iq to the service, and from then on the bytes one sends reach
the other. Only accounts of this server may activate; a stream not
activated within a minute is dropped; a transfer is held to a size and a
rate. The proxy keeps nothing: no addresses, no contents, nothing on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct

from sakari.config import declare, non_negative, port, positive
from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JIDError, parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS = "http://jabber.org/protocol/bytestreams"
NS_INFO = "http://jabber.org/protocol/disco#info"
ACTIVATION_TIMEOUT = 60.0  # seconds a connection may wait for its peer and the activation
MAX_HANDSHAKE = 512  # bytes of SOCKS5 greeting and request; real ones are under 60

PORT = declare("proxy65.port", 5000, "TCP port of the file transfer proxy (XEP-0065). 0 disables the listener.", port)
ADDRESS = declare(
    "proxy65.address", "", "The name or address clients connect to for the proxy. Empty: the server's domain.",
)
DOMAIN = declare("proxy65.domain", "", "The proxy's service address. Empty: proxy.<domain>.")
MAX_SIZE = declare(
    "proxy65.max_size", 1073741824, "Most bytes one transfer may carry, both ways together (1 GiB). 0: no limit.",
    non_negative,
)
RATE = declare(
    "proxy65.rate", 10485760, "Bytes per second one transfer may carry, each way (10 MiB/s). 0: no limit.", non_negative,
)
MAX_STREAMS = declare("proxy65.max_streams", 100, "Transfers (activated or waiting) at once, for the whole server.", positive)

# SOCKS5 (RFC 1928) as XEP-0065 uses it: no authentication, CONNECT to a domain name (the hash), port 0.
VERSION, NO_AUTH, NO_METHOD, CONNECT, DOMAIN_NAME = 5, 0, 0xFF, 1, 3
SUCCEEDED, FAILURE, NOT_ALLOWED = 0, 1, 2


def stream_hash(sid: str, initiator: str, target: str) -> str:
    """XEP-0065 §5.3.2: the name both sides connect to."""
    return hashlib.sha1(f"{sid}{initiator}{target}".encode()).hexdigest()


class Proxy:
    def __init__(self, mod: ModuleAPI, domain: str) -> None:
        self.mod = mod
        self.domain = domain
        self.waiting: dict[str, list[ProxyConnection]] = {}  # by stream hash: the target's, then the initiator's
        self.streams = 0  # activated transfers

    # --- XMPP -----------------------------------------------------------------------------
    async def handle(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        query = stanza.first_child()
        kind = stanza.attrs.get("type")
        if stanza.name != "iq" or query is None or event.to_jid.local or kind not in ("get", "set"):
            return None
        if (query.ns, query.name, kind) == (NS_INFO, "query", "get") and not query.attrs.get("node"):
            self.mod.router.reply_result(event, self.info())
        elif (query.ns, query.name, kind) == (NS, "query", "get"):
            self.mod.router.reply_result(event, self.streamhost())
        elif (query.ns, query.name, kind) == (NS, "query", "set"):
            self.activate(event, query)
            self.mod.router.reply_result(event)
        else:
            return None  # disco#items, ping…: answered for every service alike
        return True

    def info(self) -> Element:
        query = Element("query", NS_INFO)
        query.add("identity", attrs={"category": "proxy", "type": "bytestreams", "name": "File transfer proxy"})
        for var in (NS, NS_INFO):
            query.add("feature", attrs={"var": var})
        return query

    def streamhost(self) -> Element:
        query = Element("query", NS)
        host = self.mod.option(ADDRESS) or self.mod.domain
        query.add("streamhost", attrs={"jid": self.domain, "host": host, "port": str(self.mod.option(PORT))})
        return query

    def activate(self, event: StanzaEvent, query: Element) -> None:
        initiator = event.from_jid
        if not initiator.local or not self.mod.hosts.has_accounts(initiator.domain):
            raise StanzaError("forbidden", "only accounts of this server may use the proxy")
        sid, target_text = query.attrs.get("sid", ""), query.child_text("activate", NS) or ""
        try:
            target = parse_jid(target_text)
        except JIDError:
            raise StanzaError("jid-malformed", "activate names the target's full address") from None
        if not sid:
            raise StanzaError("bad-request", "the stream's sid is missing")
        key = stream_hash(sid, str(initiator), str(target))
        pair = self.waiting.get(key, [])
        if not pair:
            raise StanzaError("item-not-found", "no such stream: both sides connect before it is activated")
        if len(pair) < 2:
            raise StanzaError("not-allowed", "the initiator has not connected to the proxy yet")
        del self.waiting[key]
        self.streams += 1
        Relay(self, *pair).start()
        self.mod.log.info("event=bytestream-activated")

    # --- TCP --------------------------------------------------------------------------------
    def connection(self) -> ProxyConnection:
        return ProxyConnection(self)

    def join(self, key: str, conn: ProxyConnection) -> bool:
        """A side connected with this hash; False when it cannot wait here (a third side, too many streams)."""
        pair = self.waiting.setdefault(key, [])
        if len(pair) >= 2 or (not pair and len(self.waiting) + self.streams > self.mod.option(MAX_STREAMS)):
            if not pair:
                del self.waiting[key]
            return False
        pair.append(conn)
        return True

    def leave(self, key: str, conn: ProxyConnection) -> None:
        pair = self.waiting.get(key)
        if pair is not None and conn in pair:
            pair.remove(conn)
            if not pair:
                del self.waiting[key]


class ProxyConnection(asyncio.Protocol):
    """One side: the SOCKS5 handshake, the wait for activation, then its half of the relay."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.key: str | None = None
        self.relay: Relay | None = None
        self.greeted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(ACTIVATION_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.forward(self, data)
            return
        if self.key is not None:
            self.close()  # XEP-0065 §6.3.3: nothing may be sent before activation
            return
        self.buffer += data
        if len(self.buffer) > MAX_HANDSHAKE:
            self.close()
        elif not self.greeted:
            self._greeting()
        else:
            self._request()

    def _greeting(self) -> None:
        if len(self.buffer) < 2 or len(self.buffer) < 2 + self.buffer[1]:
            return
        version, count = self.buffer[0], self.buffer[1]
        methods, self.buffer = self.buffer[2:2 + count], self.buffer[2 + count:]
        if version != VERSION or NO_AUTH not in methods:
            self._write(bytes([VERSION, NO_METHOD]))
            self.close()
            return
        self.greeted = True
        self._write(bytes([VERSION, NO_AUTH]))
        if self.buffer:
            self._request()

    def _request(self) -> None:
        if len(self.buffer) < 5:
            return
        version, command, _, address_type, length = self.buffer[:5]
        if len(self.buffer) < 5 + length + 2:
            return
        name = self.buffer[5:5 + length]
        (dest_port,) = struct.unpack(">H", self.buffer[5 + length:7 + length])
        self.buffer = b""
        reply = bytes([VERSION, SUCCEEDED, 0, DOMAIN_NAME, length]) + name + b"\0\0"
        if version != VERSION or command != CONNECT or address_type != DOMAIN_NAME or dest_port != 0:
            self._write(bytes([VERSION, NOT_ALLOWED]) + reply[2:])
            self.close()
            return
        key = name.decode("ascii", "replace").lower()
        if not self.proxy.join(key, self):
            self._write(bytes([VERSION, FAILURE]) + reply[2:])
            self.close()
            return
        self.key = key
        self._write(reply)

    def activated(self, relay: Relay) -> None:
        self.relay = relay
        if self._timer is not None:
            self._timer.cancel()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.pause(self.relay.peer_of(self))  # our client reads slower than the other sends

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.resume(self.relay.peer_of(self))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.relay is not None:
            self.relay.end()
        elif self.key is not None:
            self.proxy.leave(self.key, self)


class Relay:
    """An activated stream: bytes from one side to the other, within the size and rate limits."""

    def __init__(self, proxy: Proxy, target: ProxyConnection, initiator: ProxyConnection) -> None:
        self.proxy = proxy
        self.sides = (target, initiator)
        self.max_size = proxy.mod.option(MAX_SIZE)
        self.rate = proxy.mod.option(RATE)
        self.carried = 0
        self.ended = False
        # Per side: the token bucket of what it sends, and how many reasons (rate, the peer's buffer) hold its reading.
        self._allowance = {target: float(self.rate), initiator: float(self.rate)}
        self._refilled = {target: 0.0, initiator: 0.0}
        self._paused = {target: 0, initiator: 0}

    def start(self) -> None:
        now = asyncio.get_running_loop().time()
        for side in self.sides:
            self._refilled[side] = now
            side.activated(self)

    def peer_of(self, side: ProxyConnection) -> ProxyConnection:
        return self.sides[1] if side is self.sides[0] else self.sides[0]

    def forward(self, source: ProxyConnection, data: bytes) -> None:
        self.carried += len(data)
        if self.max_size and self.carried > self.max_size:
            self.end()
            return
        delay = self._charge(source, len(data)) if self.rate else 0.0
        if delay <= 0:
            self.peer_of(source)._write(data)
            return
        # Over the rate: this chunk waits for its time, and nothing more is read from its sender meanwhile.
        self.pause(source)
        asyncio.get_running_loop().call_later(delay, self._release, source, data)

    def _charge(self, source: ProxyConnection, size: int) -> float:
        """Take ``size`` bytes from the sender's token bucket; seconds until the bucket is back to zero."""
        now = asyncio.get_running_loop().time()
        allowance = min(float(self.rate), self._allowance[source] + (now - self._refilled[source]) * self.rate) - size
        self._allowance[source], self._refilled[source] = allowance, now
        return -allowance / self.rate

    def _release(self, source: ProxyConnection, data: bytes) -> None:
        self.peer_of(source)._write(data)
        self.resume(source)

    def pause(self, side: ProxyConnection) -> None:
        self._paused[side] += 1
        if side.transport is not None and self._paused[side] == 1:
            side.transport.pause_reading()

    def resume(self, side: ProxyConnection) -> None:
        self._paused[side] -= 1
        if side.transport is not None and self._paused[side] == 0 and not side.transport.is_closing():
            side.transport.resume_reading()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.proxy.streams -= 1
        for side in self.sides:
            side.close()
        self.proxy.mod.log.info("event=bytestream-closed bytes=%d", self.carried)


def setup(mod: ModuleAPI) -> None:
    domain = mod.option(DOMAIN) or f"proxy.{mod.domain}"
    proxy = Proxy(mod, domain)
    mod.add_service(domain, proxy.handle, "File transfer proxy", {("proxy", "bytestreams", "File transfer proxy")}, {NS})
    mod.add_listener("proxy65", PORT, proxy.connection)
