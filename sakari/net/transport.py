"""The transport layer: listeners the server owns, and flow control between connections.

Every listener (client streams, HTTP, and later server-to-server, components
and IRC) is declared with a name, a port option and a TLS mode, then started,
logged and stopped the same way by :class:`Listeners`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sakari.config import Config, Option
from sakari.errors import StartError

log = logging.getLogger("sakari.net")


class FlowControl:
    """Which connection's input is being handled right now: the one to slow down when a stanza it sent
    fills another client's queue (see C2SConnection.write). One per server, shared by its connections."""

    __slots__ = ("current_origin",)

    def __init__(self) -> None:
        self.current_origin: Any = None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str  # shown in logs, and the key of Listeners.ports
    port: Option[int]  # 0 in the configuration disables the listener
    factory: Callable[[], asyncio.BaseProtocol]
    direct_tls: bool = False  # TLS from the first byte, with the server's certificate
    # A context of the listener's own for direct TLS (federation's asks for the peer's certificate); read when the
    # listeners start, since it may be made only then. None: the server's.
    ssl_context: Callable[[], ssl.SSLContext] | None = None


class Listeners:
    def __init__(self) -> None:
        self.declared: list[Listener] = []
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []

    def declare(self, listener: Listener) -> None:
        if any(existing.name == listener.name for existing in self.declared):
            raise ValueError(f"a listener named {listener.name} is already declared")
        self.declared.append(listener)

    async def start(self, config: Config, binds: list[str], ssl_context: ssl.SSLContext | None, handshake_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        for listener in self.declared:
            port = config[listener.port]
            if not port:
                continue
            own = listener.ssl_context() if listener.direct_tls and listener.ssl_context is not None else None
            try:
                server = await loop.create_server(
                    listener.factory,
                    binds,
                    port,
                    ssl=(own or ssl_context) if listener.direct_tls else None,
                    ssl_handshake_timeout=handshake_timeout if listener.direct_tls else None,
                    reuse_address=True,
                    backlog=4096,
                )
            except OSError as e:
                raise StartError(f"cannot listen for {listener.name} on {', '.join(binds)} port {port}: {e.strerror}") from None
            self._servers.append(server)
            self.ports[listener.name] = server.sockets[0].getsockname()[1]
            log.info("event=listening service=%s port=%d", listener.name, self.ports[listener.name])

    def add_server(self, server: asyncio.AbstractServer) -> None:
        """A server started elsewhere (the local control socket) that stops with the listeners."""
        self._servers.append(server)

    def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one: every client connection is a file, and the soft
    limit (often 1024) would cap the server far below what the system allows. Returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # a hard limit above the kernel's nr_open: keep what we have
    return resource.getrlimit(resource.RLIMIT_NOFILE)
