"""The XEP-0065 SOCKS5 bytestream proxy with two slixmpp clients (xep_0065): found by disco, negotiated, activated by
the initiator, bytes relayed within the size and rate limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from sakari.settings import DEFAULT_MODULES
from sakari_process import free_ports
from xmpp_harness import WAIT

RATE = 131072
MAX_SIZE = 300000
NS = "http://jabber.org/protocol/bytestreams"


@pytest.fixture(scope="module")
def proxy_server(spawn_server):
    (port,) = free_ports(1)
    config = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["proxy65"]!r}

[proxy65]
port = {port}
address = "127.0.0.1"
rate = {RATE}
max_size = {MAX_SIZE}
"""
    with spawn_server("proxy65", config, accounts=8) as srv:
        srv.proxy_port = port
        yield srv


class Receiver:
    """The target's side: takes every offered stream and counts what arrives."""

    def __init__(self, client) -> None:
        client.xmpp.remove_handler("test:iq-set")  # the plugin answers the stream offer itself
        client.xmpp.register_plugin("xep_0065", pconfig={"auto_accept": True})
        self.data = bytearray()
        self.closed = asyncio.Event()
        self._grown = asyncio.Event()
        client.xmpp.add_event_handler("socks5_data", self._received)
        client.xmpp.add_event_handler("socks5_closed", lambda _: self.closed.set())

    def _received(self, data: bytes) -> None:
        self.data += data
        self._grown.set()

    async def until(self, size: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.data) < size:
                self._grown.clear()
                await self._grown.wait()


async def transfer(xmpp, payload: bytes) -> tuple[Receiver, float]:
    alice, bob = await xmpp.login(), await xmpp.login()
    receiver = Receiver(bob)
    alice.xmpp.register_plugin("xep_0065")
    started = time.monotonic()
    stream = await alice.xmpp.plugin["xep_0065"].handshake(bob.jid, timeout=WAIT)
    assert stream is not None, "no stream through the proxy"
    await stream.write(payload)
    return receiver, started


async def test_a_file_goes_through_the_proxy(proxy_server, session_for):
    payload = bytes(range(256)) * 256  # 64 KiB
    receiver, _ = await transfer(session_for(proxy_server), payload)
    await receiver.until(len(payload))
    assert bytes(receiver.data) == payload


async def test_the_rate_holds(proxy_server, session_for):
    payload = b"r" * (2 * RATE)  # the first RATE bytes pass at once, the rest takes a second
    receiver, started = await transfer(session_for(proxy_server), payload)
    await receiver.until(len(payload))
    assert time.monotonic() - started >= 0.8


async def test_a_transfer_beyond_the_size_limit_is_cut(proxy_server, session_for):
    receiver, _ = await transfer(session_for(proxy_server), b"s" * (MAX_SIZE + 100000))
    await asyncio.wait_for(receiver.closed.wait(), WAIT)
    assert len(receiver.data) <= MAX_SIZE


async def test_the_service_answers_its_address_and_refuses_unknown_streams(proxy_server, session_for):
    client = await session_for(proxy_server).login()
    result = await client.iq("get", f"<query xmlns='{NS}'/>", to="proxy.localhost")
    host = result.find(f"{{{NS}}}query/{{{NS}}}streamhost")
    assert host is not None and host.attrib == {"jid": "proxy.localhost", "host": "127.0.0.1", "port": str(proxy_server.proxy_port)}
    condition, _ = await client.iq_error(
        "set", f"<query xmlns='{NS}' sid='nope'><activate>someone@localhost/x</activate></query>", to="proxy.localhost"
    )
    assert condition == "item-not-found"
