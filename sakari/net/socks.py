"""A SOCKS5 client (RFC 1928), CONNECT by host name only, no authentication: what Tor's SocksPort takes.

The name goes to the proxy as it is (address type 3), never to DNS here: for a ``.onion`` domain there is no DNS
answer to have, and asking DNS would tell the resolver which hidden service the server talks to.
"""

from __future__ import annotations

import asyncio
import socket

VERSION = 5
NO_AUTH = 0
CONNECT = 1
DOMAIN_NAME = 3
REPLIES = {
    1: "general failure", 2: "not allowed by the proxy's rules", 3: "network unreachable", 4: "host unreachable",
    5: "connection refused", 6: "TTL expired", 7: "command not supported", 8: "address type not supported",
}


class SocksError(OSError):
    """The proxy refused, or did not speak SOCKS5."""


def parse_proxy(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9050"`` or ``"[::1]:9050"`` → (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: give \"address:port\" of a SOCKS5 proxy, e.g. \"127.0.0.1:9050\"")
    return host.strip("[]"), int(port)


async def _read(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise SocksError("the SOCKS5 proxy closed the connection")
        data += chunk
    return data


async def connect(proxy: tuple[str, int], host: str, port: int) -> socket.socket:
    """A connected socket to ``host:port`` through the proxy, ready for any protocol (TLS included) on top.
    The caller bounds the time (the proxy may take long to build a Tor circuit)."""
    loop = asyncio.get_running_loop()
    name = host.encode("idna") if not host.isascii() else host.encode()
    if len(name) > 255:
        raise SocksError("host name too long for SOCKS5")
    info = await loop.getaddrinfo(proxy[0], proxy[1], type=socket.SOCK_STREAM)  # the proxy's own address: a literal
    family, type_, proto, _, address = info[0]
    sock = socket.socket(family, type_, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, bytes([VERSION, 1, NO_AUTH]))
        chosen = await _read(loop, sock, 2)
        if chosen != bytes([VERSION, NO_AUTH]):
            raise SocksError("the SOCKS5 proxy wants authentication or is not SOCKS5")
        await loop.sock_sendall(sock, bytes([VERSION, CONNECT, 0, DOMAIN_NAME, len(name)]) + name + port.to_bytes(2, "big"))
        version, reply, _, address_type = await _read(loop, sock, 4)
        if version != VERSION:
            raise SocksError("the SOCKS5 proxy answered with another version")
        if reply != 0:
            raise SocksError(f"the SOCKS5 proxy could not connect: {REPLIES.get(reply, f'error {reply}')}")
        # The bound address that follows means nothing to us; it has to be read all the same.
        length = {1: 4, 4: 16}.get(address_type)
        if length is None:
            length = (await _read(loop, sock, 1))[0]
        await _read(loop, sock, length + 2)
        return sock
    except BaseException:
        sock.close()
        raise
