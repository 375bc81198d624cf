"""Onion services: .onion domains are never looked up in DNS, the SOCKS5 client asks the proxy by name, and the
local CA copes with a domain as long as an onion name."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

from sakari.net import local_ca, socks
from sakari.net.s2s_dns import DEFAULT_PORT, Resolver, Target, is_onion

ONION = "sakari" + "a" * 50 + ".onion"  # as long as an onion v3 name
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


class NoDns:
    async def resolve(self, *args, **kwargs):
        raise AssertionError(f"DNS was asked: {args}")


def test_onion_names_are_recognised():
    assert is_onion(ONION) and is_onion(ONION.upper() + ".") and not is_onion("onion.example.org")


def test_an_onion_domain_is_never_looked_up_in_dns():
    resolver = Resolver({}, 1.0, tor_proxy=("127.0.0.1", 9050))
    resolver._dns = NoDns()
    assert asyncio.run(resolver.targets(ONION)) == [Target(ONION, DEFAULT_PORT)]
    assert asyncio.run(resolver.addresses(ONION)) == []


def test_parse_proxy_takes_an_address_and_port_and_names_a_bad_value():
    assert socks.parse_proxy("127.0.0.1:9050") == ("127.0.0.1", 9050)
    assert socks.parse_proxy("[::1]:9050") == ("::1", 9050)
    with pytest.raises(ValueError, match="SOCKS5"):
        socks.parse_proxy("127.0.0.1")


async def _proxy(reply: int, asked: list[bytes]) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readexactly(3))
        writer.write(b"\x05\x00")
        head = await reader.readexactly(5)
        asked.append(head + await reader.readexactly(head[4] + 2))
        writer.write(bytes([5, reply, 0, 1]) + bytes(6))
        if reply == 0:
            writer.write(b"hello")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_socks_connect_asks_by_name_and_hands_over_the_stream():
    async def run() -> tuple[list[bytes], bytes]:
        asked: list[bytes] = []
        server = await _proxy(0, asked)
        sock = await socks.connect(server.sockets[0].getsockname()[:2], ONION, 5269)
        data = await asyncio.get_running_loop().sock_recv(sock, 5)
        sock.close()
        server.close()
        return asked, data

    asked, data = asyncio.run(run())
    assert asked[0] == b"\x05\x01\x00"  # SOCKS5, one method: no authentication
    assert asked[1] == b"\x05\x01\x00\x03" + bytes([len(ONION)]) + ONION.encode() + (5269).to_bytes(2, "big")
    assert data == b"hello"


def test_socks_connect_reports_the_proxys_refusal():
    async def run() -> None:
        server = await _proxy(4, [])
        try:
            await socks.connect(server.sockets[0].getsockname()[:2], ONION, 5269)
        finally:
            server.close()

    with pytest.raises(socks.SocksError, match="host unreachable"):
        asyncio.run(run())


def test_the_local_ca_serves_an_onion_domain(tmp_path: Path):
    ca = local_ca.ensure(tmp_path, [ONION], NOW)
    assert len(ca.cert.subject.rfc4514_string()) < 200
    assert (tmp_path / local_ca.SERVER_CERT).exists()
