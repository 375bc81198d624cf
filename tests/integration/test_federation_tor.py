"""Federation between onion services: two Sakari servers whose domains are .onion names reach each other through
the SOCKS5 proxy of s2s.tor_proxy, by name, and never through DNS.

Tor itself cannot reach the Tor network here, so the proxy is a SOCKS5 stub in the test that plays Tor's part:
it takes CONNECT requests by host name (as Tor's SocksPort does) and forwards each onion name to the loopback
address of the Sakari server behind it, recording every request.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import pytest_asyncio

from conftest import _servers
from sakari_process import SakariServer
from xmpp_harness import befriend, error_condition, is_message, is_message_error, login

pytestmark = pytest.mark.asyncio

# Onion v3 names are 56 base32 characters: these two are made up, which only the stub needs to know.
ONION_A = "sakaria" + "a" * 49 + ".onion"
ONION_B = "sakarib" + "b" * 49 + ".onion"
UNKNOWN_ONION = "sakaric" + "c" * 49 + ".onion"


class SocksStub:
    """A SOCKS5 server (RFC 1928, no authentication, CONNECT) that maps onion names to local addresses."""

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self.routes = routes
        self.requests: list[tuple[int, str, int]] = []  # (address type, host, port) as asked
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            version, n = await reader.readexactly(2)
            methods = await reader.readexactly(n)
            assert version == 5 and 0 in methods
            writer.write(b"\x05\x00")
            version, command, _, address_type = await reader.readexactly(4)
            if address_type == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                host = (await reader.readexactly(4 if address_type == 1 else 16)).hex()
            port = int.from_bytes(await reader.readexactly(2), "big")
            self.requests.append((address_type, host, port))
            route = self.routes.get(host) if command == 1 and port == 5269 else None
            if route is None:
                writer.write(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable, as Tor says of an unknown onion
                await writer.drain()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(*route)
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, AssertionError):
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest_asyncio.fixture
async def onions(tmp_path):
    a = SakariServer(tmp_path / "a" / "data", name="onion-a", domain=ONION_A, host="127.0.0.2")
    b = SakariServer(tmp_path / "b" / "data", name="onion-b", domain=ONION_B, host="127.0.0.3")
    stub = SocksStub({ONION_A: (a.host, a.s2s_port), ONION_B: (b.host, b.s2s_port)})
    await stub.start()
    for srv in (a, b):
        srv.config_path = srv.data_dir.parent / "config.toml"
        # Debug logging, so that any DNS look-up (event=srv-lookup-failed) would show in the log.
        srv.config_path.write_text(f'log_level = "debug"\n\n[s2s]\ntor_proxy = "127.0.0.1:{stub.port}"\nconnect_timeout = 5.0\n')
        srv.fill_pool(4)
        _servers.append(srv)
    try:
        await asyncio.to_thread(a.start)
        await asyncio.to_thread(b.start)
        yield a, b, stub
    finally:
        for srv in (a, b):
            srv.ensure_stopped()
            _servers.remove(srv)
        await stub.close()


async def test_onion_domains_federate_through_the_socks_proxy_and_never_ask_dns(onions) -> None:
    a, b, stub = onions
    alice = await login(a, a.new_account(), label="alice")
    bob = await login(b, b.new_account(), label="bob")
    try:
        await befriend(alice, bob)
        alice.message(bob.jid, "hello through tor")
        await bob.expect(is_message(body="hello through tor", sender=alice.jid))
        bob.message(alice.bare, "and back")
        await alice.expect(is_message(body="and back", sender=bob.jid))

        # Both directions went through the proxy, by name (address type 3), to port 5269.
        assert (3, ONION_B, 5269) in stub.requests and (3, ONION_A, 5269) in stub.requests, stub.requests
        assert all(address_type == 3 for address_type, _, _ in stub.requests)
        for srv in (a, b):
            assert not [line for line in srv.log if "srv-lookup" in line or "s2s-resolve-failed" in line], srv.log_tail()
            assert any("event=s2s-authenticated" in line and "method=dialback" in line for line in srv.log)

        # An onion the proxy cannot reach bounces, and DNS was not asked about it either.
        mark = alice.inbox.mark()
        alice.message(f"nobody@{UNKNOWN_ONION}", "anyone there?")
        bounce = await alice.expect(is_message_error(sender=f"nobody@{UNKNOWN_ONION}"), after=mark)
        assert error_condition(bounce) == "remote-server-not-found"
        assert (3, UNKNOWN_ONION, 5269) in stub.requests
        assert not [line for line in a.log if "srv-lookup" in line]
    finally:
        alice.abort()
        bob.abort()
