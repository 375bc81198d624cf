"""What a client transport needs from the rest of the server, and nothing more.

The composition root fills one :class:`ClientPort` in; connections see only
this, not the Server class, so a new transport (WebSocket, BOSH) or a test
can supply its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sakari.core.session import Session
from sakari.core.sessions import PreAuthHandler, PreBindHandler, SessionManager
from sakari.core.tasks import Tasks
from sakari.credentials import Credentials
from sakari.net.throttle import Abuse
from sakari.net.transport import FlowControl
from sakari.stream.c2s import C2SStream, FeaturesCache, StreamSettings
from sakari.stream.framing import Framing
from sakari.stream.sasl2 import TokenStore
from sakari.xml.element import Element


@dataclass(slots=True)
class ConnectionLimits:
    auth_timeout: float = 30.0  # seconds to authenticate and bind
    rate_bytes: int = 0  # bytes per second a client may send; 0: unlimited
    rate_burst: int = 0
    max_send_buffer: int = 4194304
    send_high_water: int = 262144
    send_stall_timeout: float = 60.0


@dataclass(slots=True)
class ClientPort:
    settings: StreamSettings
    sessions: SessionManager
    tasks: Tasks
    credentials: Callable[[str], Awaitable[Credentials | None]]  # by bare JID text
    features: Callable[[bool], list[Element]]  # modules' stream features; the argument: authenticated?
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    flow: FlowControl = field(default_factory=FlowControl)
    abuse: Abuse = field(default_factory=Abuse)  # login throttle, connection and stanza limits
    ssl_context: ssl.SSLContext | None = None
    channel_bindings: dict[str, bytes] = field(default_factory=dict)
    pre_bind: dict[tuple[str, str], PreBindHandler] = field(default_factory=dict)
    pre_auth: dict[tuple[str, str], PreAuthHandler] = field(default_factory=dict)
    bind_inline: dict[str, Callable[[Session, Element], Element | None]] = field(default_factory=dict)
    token_store: TokenStore | None = None
    features_cache: FeaturesCache = field(default_factory=dict)
    connections: set[object] = field(default_factory=set)  # the open ones, for idle parser release and shutdown
    all_closed: asyncio.Event | None = None  # set when the last connection closes (during shutdown)

    def http_stream(self, framing: Framing, features_cache: FeaturesCache, secure: bool, tls_here: bool) -> C2SStream:
        """A client stream carried over HTTP (WebSocket, BOSH): no STARTTLS on it, confidential where ``secure``
        (as the web origin judges the request), and the certificate's channel bindings only where TLS ends on
        our own port (``tls_here``)."""
        stream = C2SStream(dataclasses.replace(self.settings, tls_available=False), secure, self.features, features_cache, framing)
        if tls_here:
            stream.channel_bindings = self.channel_bindings
        return stream
