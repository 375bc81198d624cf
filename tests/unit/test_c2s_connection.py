"""The TCP client connection without sockets: what happens to it when the transport fails under it."""

from __future__ import annotations

import asyncio
from typing import Any

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.net.c2s import C2SConnection
from sakari.net.port import ClientPort, ConnectionLimits
from sakari.stream.c2s import State, StreamSettings

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"
)


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.aborted = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += bytes(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def client_port() -> ClientPort:
    events = Events()
    hosts = Hosts()
    hosts.add_users("example.org")
    tasks = Tasks()
    router = LocalRouter(hosts, events)

    async def no_account(owner: str) -> None:
        return None

    port = ClientPort(
        settings=StreamSettings(domain="example.org", tls_available=True),
        sessions=SessionManager(router, events, tasks),
        tasks=tasks,
        credentials=no_account,
        features=lambda authenticated: [],
        limits=ConnectionLimits(auth_timeout=30.0),
    )
    port.ssl_context = object()  # type: ignore[assignment]  # never used: the handshake fails first
    return port


async def test_a_reset_during_the_starttls_handshake_ends_the_connection_and_its_login_deadline(monkeypatch: Any) -> None:
    """A client that resets the connection right after <proceed/> (Dino does when it refuses the certificate)
    must leave nothing behind: before, the login deadline fired 30 s later on a closed transport."""
    port = client_port()
    conn = C2SConnection(port, direct_tls=False)
    transport = Transport()
    conn.connection_made(transport)
    conn.data_received(HEADER)
    handshake_failed = asyncio.get_running_loop().create_future()

    async def reset(*args: Any, **kwargs: Any) -> None:
        handshake_failed.set_result(None)
        raise ConnectionResetError("reset by peer")

    monkeypatch.setattr(conn.loop, "start_tls", reset)
    conn.data_received(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert conn.stream.state is State.TLS
    await handshake_failed
    await port.tasks.finish(1.0)
    assert transport.aborted
    assert conn not in port.connections
    assert conn._auth_timer is None or conn._auth_timer.cancelled()
