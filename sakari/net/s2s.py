"""Federation's network side: the s2s listener, outbound links per domain pair, timers and limits.

All XMPP logic lives in :mod:`sakari.stream.s2s`; this adapter feeds it
bytes, upgrades to TLS when it asks, and carries out its events:

- **Outbound** (:class:`Link`): the router fires ``route/remote`` for a domain
  not served here; :meth:`Federation.route` hands the stanza to the link of
  its (local domain, remote domain) pair, made on first use and reused.
  While the link comes up (DNS or the host map, TCP, TLS, authentication)
  its stanzas wait in a bounded queue; if it is not up within
  ``s2s.connect_timeout``, or every address fails, each waiting stanza is
  bounced with ``remote-server-timeout`` or ``remote-server-not-found`` and
  the link is dropped, so nothing waits forever and the next stanza tries
  again.
- **Inbound** (:class:`InboundConnection`): authenticated stanzas go to
  ``router.from_external`` in order, which checks their 'from' once more and
  routes them like local traffic. A dialback key is checked with the
  authoritative server over the outbound link to it.

Both directions write a whitespace keepalive after ``s2s.keepalive`` seconds
without output and close a stream idle (no stanza either way) for
``s2s.idle_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakari import settings as S
from sakari.config import Config, declare, non_negative, positive
from sakari.core.events import StanzaEvent
from sakari.core.router import Router
from sakari.core.tasks import Tasks
from sakari.errors import StartError
from sakari.jid import JIDError, prep_domain
from sakari.net import s2s_tls
from sakari.net import socks
from sakari.net.s2s_dns import Resolver, Target, is_onion, parse_host_map
from sakari.stream.s2s import (
    Authenticated,
    InboundStream,
    KeyChecked,
    OutboundStream,
    S2SSettings,
    StanzaReceived,
    StartTLS,
    StreamEnded,
    VerifyKey,
)
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError

log = logging.getLogger("sakari.s2s")


def _domains(value: Any) -> str | None:
    for text in value:
        try:
            prep_domain(text)
        except JIDError as e:
            return f"holds {text!r}, which is not a domain: {e.text}"
    return None


def _host_map(value: Any) -> str | None:
    try:
        parse_host_map(value)
    except ValueError as e:
        return str(e)
    return None


def _proxy(value: Any) -> str | None:
    if not value:
        return None
    try:
        socks.parse_proxy(value)
    except ValueError as e:
        return str(e)
    return None


ENABLED = declare("s2s.enabled", True, "Federation: exchange messages with users of other XMPP servers (listener on network.s2s_port, outbound connections).")
REQUIRE_VALID_CERTIFICATES = declare(
    "s2s.require_valid_certificates",
    False,
    "Talk only to servers whose certificate verifies for their domain (PKIX and RFC 6125 names against the system trust "
    "store and s2s.ca_file); no dialback. Off: a server whose certificate does not verify may prove its domain by dialback.",
)
REQUIRE_ENCRYPTION = declare(
    "s2s.require_encryption", True, "Require TLS on every server-to-server connection. Off: plain TCP where a peer offers no TLS (dialback only)."
)
ALLOW_DIALBACK = declare(
    "s2s.allow_dialback", True, "Accept and use Server Dialback (XEP-0220) where certificates do not prove a domain."
)
CA_FILE = declare("s2s.ca_file", "", "Extra trusted CA certificates (PEM) for peers' certificates, besides the system trust store: for a private federation.")
ALLOW = declare("s2s.allow", [], "Domains this server federates with. Empty: every domain not in s2s.deny.", _domains)
DENY = declare("s2s.deny", [], "Domains this server never federates with: their stanzas are refused and ours to them bounce.", _domains)
HOST_MAP = declare(
    "s2s.host_map",
    {},
    "Static addresses of remote servers, used instead of DNS: for private networks and tests. domain = \"address:port\" "
    "(STARTTLS), or \"tls:address:port\" for TLS from the first byte (XEP-0368, a peer's direct TLS port).",
    _host_map,
)
TOR_PROXY = declare(
    "s2s.tor_proxy", "",
    "A SOCKS5 proxy (Tor's SocksPort, \"127.0.0.1:9050\") through which .onion domains are reached, by name and "
    "never through DNS. Empty: .onion domains cannot be reached.",
    _proxy,
)
NAMESERVERS = declare("s2s.nameservers", [], "DNS servers for SRV look-ups (addresses). Empty: the system's (/etc/resolv.conf).")
CONNECT_TIMEOUT = declare(
    "s2s.connect_timeout", 20.0, "Seconds for a connection to a remote server to be up and authenticated; stanzas waiting for it then bounce with remote-server-timeout.", positive
)
IDLE_TIMEOUT = declare("s2s.idle_timeout", 600.0, "Seconds a server-to-server connection may carry no stanza before it is closed.", positive)
KEEPALIVE = declare("s2s.keepalive", 60.0, "Seconds without output after which a whitespace keepalive is written.", positive)
MAX_QUEUE = declare("s2s.max_queue", 1000, "Stanzas that may wait for one remote domain while its connection comes up; more bounce.", positive)
MAX_INBOUND = declare("s2s.max_inbound", 500, "Incoming server-to-server connections at once.", positive)
MAX_INBOUND_PER_DOMAIN = declare(
    "s2s.max_inbound_per_domain", 4, "Incoming connections authenticated for one remote domain at once.", positive
)
STANZA_RATE = declare(
    "s2s.stanza_rate", 500.0, "Stanzas per second one remote domain may send (all its connections together); reading pauses beyond it. 0: unlimited.", non_negative
)
STANZA_BURST = declare("s2s.stanza_burst", 2000, "Stanzas a remote domain may send at once before s2s.stanza_rate applies.", positive)


def build(config: Config, router: Router, tasks: Tasks, secret: bytes, cert: Path, key: Path) -> Federation:
    """Federation as configured, for the composition root."""
    ca_file = config[CA_FILE]
    require_valid = config[REQUIRE_VALID_CERTIFICATES]
    try:
        server_ssl = s2s_tls.server_context(cert, key, ca_file)
        present = s2s_tls.verifies_as_client(cert, key, ca_file)
        client_ssl = s2s_tls.client_context(cert if present else None, key if present else None, ca_file, verify=require_valid)
    except (OSError, ValueError, ssl.SSLError) as e:
        raise StartError(f"federation: cannot use the certificate {cert} or the CA file {ca_file!r}: {e}") from None
    settings = S2SSettings(
        serves=router.hosts.is_local,
        secret=secret,
        require_encryption=config[REQUIRE_ENCRYPTION],
        require_valid_certificates=require_valid,
        allow_dialback=config[ALLOW_DIALBACK],
        max_stanza_size=config[S.MAX_STANZA_SIZE],
        max_depth=config[S.MAX_DEPTH],
    )
    limits = S2SLimits(
        connect_timeout=config[CONNECT_TIMEOUT],
        idle_timeout=config[IDLE_TIMEOUT],
        keepalive=config[KEEPALIVE],
        max_queue=config[MAX_QUEUE],
        max_inbound=config[MAX_INBOUND],
        max_inbound_per_domain=config[MAX_INBOUND_PER_DOMAIN],
        stanza_rate=config[STANZA_RATE],
        stanza_burst=config[STANZA_BURST],
    )
    policy = Policy(frozenset(prep_domain(d) for d in config[ALLOW]), frozenset(prep_domain(d) for d in config[DENY]))
    tor_proxy = socks.parse_proxy(config[TOR_PROXY]) if config[TOR_PROXY] else None
    resolver = Resolver(parse_host_map(config[HOST_MAP]), limits.connect_timeout / 2, config[NAMESERVERS], tor_proxy)
    log.info("event=s2s-configured certificate=%s dialback=%s", "presented" if present else "not-presented", settings.dialback)
    return Federation(settings, router, tasks, resolver, server_ssl, client_ssl, present, limits, policy)


@dataclass(slots=True)
class S2SLimits:
    connect_timeout: float = 20.0
    idle_timeout: float = 600.0
    keepalive: float = 60.0
    max_queue: int = 1000
    max_inbound: int = 500
    max_inbound_per_domain: int = 4
    stanza_rate: float = 500.0
    stanza_burst: int = 2000


@dataclass(slots=True)
class Policy:
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    def permits(self, domain: str) -> bool:
        return domain not in self.deny and (not self.allow or domain in self.allow)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    time: float


@dataclass(slots=True, eq=False)
class Federation:
    """What s2s connections share: settings, the router, TLS contexts, the links, limits and rates."""

    settings: S2SSettings
    router: Router
    tasks: Tasks
    resolver: Resolver
    server_ssl: ssl.SSLContext
    client_ssl: ssl.SSLContext
    present_certificate: bool  # ours verifies as a client certificate: SASL EXTERNAL is worth trying
    limits: S2SLimits = field(default_factory=S2SLimits)
    policy: Policy = field(default_factory=Policy)
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    inbound: set[InboundConnection] = field(default_factory=set)
    inbound_by_domain: dict[str, int] = field(default_factory=dict)
    _rates: dict[str, _Bucket] = field(default_factory=dict)

    # --- outbound -----------------------------------------------------------------
    async def route(self, event: StanzaEvent) -> bool:
        """The ``route/remote`` hook: a stanza for a domain not served here."""
        local, remote = event.from_jid.domain, event.to_jid.domain
        if not self.settings.serves(local):
            raise StanzaError("not-allowed", "only this server's domains send to other servers")
        if not self.policy.permits(remote):
            raise StanzaError("not-allowed", f"this server does not federate with {remote}")
        self.link(local, remote).send(event)
        return True

    def link(self, local: str, remote: str) -> Link:
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[local, remote] = Link(self, local, remote)
        return link

    async def check_key(self, ev: VerifyKey) -> bool:
        """Ask ``ev.remote``'s authoritative server whether it made the key (XEP-0220 §2.3)."""
        if not self.policy.permits(ev.remote):
            return False
        return await self.link(ev.local, ev.remote).verify(ev.stream_id, ev.key)

    def bounce(self, event: StanzaEvent, condition: str, text: str) -> None:
        self.router.reply_error(event, StanzaError(condition, text))

    # --- inbound limits ---------------------------------------------------------------
    def rate_delay(self, remote: str, now: float) -> float:
        """Seconds to stop reading after one more stanza from ``remote`` (a token bucket per remote domain)."""
        rate = self.limits.stanza_rate
        if not rate:
            return 0.0
        bucket = self._rates.get(remote)
        if bucket is None:
            bucket = self._rates[remote] = _Bucket(float(self.limits.stanza_burst), now)
        bucket.tokens = min(self.limits.stanza_burst, bucket.tokens + (now - bucket.time) * rate) - 1
        bucket.time = now
        return -bucket.tokens / rate if bucket.tokens < 0 else 0.0

    def close_all(self) -> None:
        for link in list(self.links.values()):
            link.close(StreamError("system-shutdown", "the server is shutting down"))
        for conn in list(self.inbound):
            conn.close_stream(StreamError("system-shutdown", "the server is shutting down"))


class _Connection(asyncio.Protocol):
    """Bytes in and out of one s2s stream machine, TLS upgrades, keepalive and idle timers."""

    stream: InboundStream | OutboundStream

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_stanza = self.last_output = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._handle(self.stream.receive(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._gone()

    def _handle(self, events: list[Any]) -> None:
        raise NotImplementedError

    def _gone(self) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        out = self.stream.data_to_send()
        if out and self.transport is not None and not self.closed:
            self.transport.write(out)
            self.last_output = self.loop.time()

    def close_stream(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.stream.close(error)
        self._finish()

    def _finish(self) -> None:
        self._flush()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    # --- timers ---------------------------------------------------------------------
    def _arm(self) -> None:
        limits = self.fed.limits
        self._timer = self.loop.call_later(min(limits.keepalive, limits.idle_timeout), self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        limits = self.fed.limits
        if now - self.last_stanza >= limits.idle_timeout:
            log.info("event=s2s-idle-close %s", self._describe())
            self.close_stream()
            return
        if now - self.last_output >= limits.keepalive and self.transport is not None and not self.closed:
            self.transport.write(b" ")  # RFC 6120 §4.6.1: whitespace keeps NATs and the peer's timers happy
            self.last_output = now
        self._arm()

    def _describe(self) -> str:
        return f"local={self.stream_local} remote={self.stream_remote}"

    @property
    def stream_local(self) -> str:
        return self.stream.local

    @property
    def stream_remote(self) -> str:
        return self.stream.remote

    # --- TLS --------------------------------------------------------------------------
    async def _start_tls(self, ctx: ssl.SSLContext, server_side: bool) -> ssl.SSLObject | None:
        assert self.transport is not None
        self.transport.pause_reading()  # the handshake's bytes are for the TLS layer, not the parser
        self._flush()
        try:
            new = await self.loop.start_tls(
                self.transport, self, ctx, server_side=server_side,
                server_hostname=None if server_side else self.stream.remote,
                ssl_handshake_timeout=self.fed.limits.connect_timeout,
            )
        except (TimeoutError, OSError, ConnectionError, ValueError, ssl.SSLError) as e:
            log.info("event=s2s-tls-failed %s reason=%s", self._describe(), e.__class__.__name__)
            if self.transport is not None:
                self.transport.abort()
            self.connection_lost(e)  # the transport went to the TLS layer, which failed: nobody else tells us
            return None
        if new is None:
            return None
        self.transport = new  # type: ignore[assignment]
        return new.get_extra_info("ssl_object")  # type: ignore[no-any-return]


# --- inbound ------------------------------------------------------------------------------
class InboundConnection(_Connection):
    def __init__(self, fed: Federation, direct_tls: bool = False) -> None:
        super().__init__(fed)
        self.direct_tls = direct_tls
        self.stream = InboundStream(fed.settings, direct_tls)
        self._inbox: deque[tuple[Element, str]] = deque()
        self._routing = False
        self._rate_paused = False
        self._domains: set[str] = set()  # remote domains counted in fed.inbound_by_domain
        self._auth_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.direct_tls:  # XEP-0368: the listener finished the handshake before the first byte
            self.stream.set_certificate(_certificate_check(transport.get_extra_info("ssl_object")))
        if len(self.fed.inbound) >= self.fed.limits.max_inbound:
            log.info("event=s2s-inbound-refused reason=too-many-connections")
            self.close_stream(StreamError("resource-constraint", "too many server connections"))
            return
        self.fed.inbound.add(self)
        # A connection that proves no domain in time is closed, however long the idle timeout.
        self._auth_timer = self.loop.call_later(self.fed.limits.connect_timeout, self._auth_timed_out)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if not self.stream.authenticated:
            self.close_stream(StreamError("connection-timeout", "no domain was authenticated in time"))

    def _gone(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.fed.inbound.discard(self)
        for domain in self._domains:
            left = self.fed.inbound_by_domain.get(domain, 1) - 1
            if left > 0:
                self.fed.inbound_by_domain[domain] = left
            else:
                self.fed.inbound_by_domain.pop(domain, None)
        self._domains.clear()

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            cls = ev.__class__
            if cls is StanzaReceived:
                self._received(ev.stanza, ev.remote)
            elif cls is StartTLS:
                self.fed.tasks.spawn(self._upgrade())
                return
            elif cls is VerifyKey:
                self.fed.tasks.spawn(self._check_key(ev))
            elif cls is Authenticated:
                self._authenticated(ev)
            elif cls is StreamEnded:
                if ev.error is not None:
                    log.info("event=s2s-stream-error direction=in condition=%s text=%r %s", ev.error.condition, ev.error.text, self._describe())
                self._finish()
                return
        self._flush()

    def _authenticated(self, ev: Authenticated) -> None:
        if not self.fed.policy.permits(ev.remote):
            self.close_stream(StreamError("policy-violation", f"this server does not federate with {ev.remote}"))
            return
        if ev.remote not in self._domains:
            count = self.fed.inbound_by_domain.get(ev.remote, 0)
            if count >= self.fed.limits.max_inbound_per_domain:
                self.close_stream(StreamError("resource-constraint", f"too many connections from {ev.remote}"))
                return
            self.fed.inbound_by_domain[ev.remote] = count + 1
            self._domains.add(ev.remote)
        log.info(
            "event=s2s-authenticated direction=in local=%s remote=%s method=%s tls=%s",
            ev.local, ev.remote, ev.method, "direct" if self.direct_tls else "starttls",
        )

    async def _upgrade(self) -> None:
        ssl_object = await self._start_tls(self.fed.server_ssl, server_side=True)
        if ssl_object is None:
            return
        self.stream.tls_started(_certificate_check(ssl_object))
        self._flush()

    async def _check_key(self, ev: VerifyKey) -> None:
        valid = await self.fed.check_key(ev)
        if not self.closed:
            self._handle(self.stream.dialback_checked(ev.remote, ev.local, valid))

    # --- stanzas, in order, at the remote domain's rate -----------------------------------
    def _received(self, stanza: Element, remote: str) -> None:
        now = self.loop.time()
        self.last_stanza = now
        delay = self.fed.rate_delay(remote, now)
        if delay and not self._rate_paused and self.transport is not None:
            self._rate_paused = True
            self.transport.pause_reading()
            self.loop.call_later(delay, self._rate_resume)
        self._inbox.append((stanza, remote))
        if not self._routing:
            self._routing = True
            self.fed.tasks.spawn_eager(self._route())

    def _rate_resume(self) -> None:
        self._rate_paused = False
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    async def _route(self) -> None:
        try:
            while self._inbox and not self.closed:
                stanza, remote = self._inbox.popleft()
                try:
                    await self.fed.router.from_external(stanza, remote)
                except StreamError as e:
                    self.close_stream(e)
        finally:
            self._routing = False


def _certificate_check(ssl_object: ssl.SSLObject | None) -> Callable[[str], bool]:
    """Whether the peer's certificate proves a domain (RFC 6125); only a certificate that verified is returned by
    getpeercert ({} or None without one)."""
    peercert = ssl_object.getpeercert() if ssl_object is not None else None
    return lambda domain: s2s_tls.matches(peercert, domain)


# --- outbound -------------------------------------------------------------------------------
class OutboundConnection(_Connection):
    def __init__(self, link: Link, direct_tls: bool) -> None:
        super().__init__(link.fed)
        self.link = link
        self.direct_tls = direct_tls
        verified = direct_tls and link.fed.client_ssl.verify_mode == ssl.CERT_REQUIRED
        self.stream = OutboundStream(link.fed.settings, link.local, link.remote, direct_tls, link.fed.present_certificate)
        self.stream.peer_verified = verified
        self.up: asyncio.Future[str | None] = self.loop.create_future()  # None: authenticated; else why not

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.stream.open()
        self.link.attached(self)
        self._flush()

    def _gone(self) -> None:
        if not self.up.done():
            self.up.set_result("connection lost")
        self.link.detached(self)

    def send(self, stanza: Element) -> None:
        self.stream.send(stanza)
        self.last_stanza = self.loop.time()
        self._flush()

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            cls = ev.__class__
            if cls is KeyChecked:
                self.link.key_checked(ev)
            elif cls is StartTLS:
                self.fed.tasks.spawn(self._upgrade())
                return
            elif cls is Authenticated:
                log.info(
                    "event=s2s-authenticated direction=out local=%s remote=%s method=%s tls=%s",
                    ev.local, ev.remote, ev.method, "direct" if self.direct_tls else "starttls",
                )
                if not self.up.done():
                    self.up.set_result(None)
            elif cls is StreamEnded:
                reason = ev.error.condition if ev.error is not None else ev.remote_error or "closed"
                log.info("event=s2s-stream-ended direction=out local=%s remote=%s reason=%s", self.link.local, self.link.remote, reason)
                if not self.up.done():
                    self.up.set_result(reason)
                self._finish()
                return
        self._flush()

    async def _upgrade(self) -> None:
        ctx = self.fed.client_ssl
        if await self._start_tls(ctx, server_side=False) is None:
            return
        self.stream.tls_started(ctx.verify_mode == ssl.CERT_REQUIRED)
        self._flush()


class Link:
    """The outbound side of one (local domain, remote domain) pair: one connection, its queue, its deadline."""

    def __init__(self, fed: Federation, local: str, remote: str) -> None:
        self.fed = fed
        self.local = local
        self.remote = remote
        self.loop = asyncio.get_running_loop()
        self.conn: OutboundConnection | None = None
        self.ready = False
        self.queue: deque[StanzaEvent] = deque()
        self._checks: dict[tuple[str, str], asyncio.Future[bool]] = {}  # (stream id, key) → verdict
        self._deadline = self.loop.call_later(fed.limits.connect_timeout, self._timed_out)
        self._task = fed.tasks.spawn(self._connect())

    def send(self, event: StanzaEvent) -> None:
        if self.ready and self.conn is not None:
            self.conn.send(event.stanza)
        elif len(self.queue) >= self.fed.limits.max_queue:
            self.fed.bounce(event, "resource-constraint", f"too many stanzas waiting for {self.remote}")
        else:
            self.queue.append(event)

    async def verify(self, stream_id: str, key: str) -> bool:
        future = self._checks.get((stream_id, key))
        if future is None:
            future = self._checks[stream_id, key] = self.loop.create_future()
            if self.conn is not None:
                self.conn.stream.verify(self.local, stream_id, key)
                self.conn._flush()
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.fed.limits.connect_timeout)
        except TimeoutError:
            return False
        finally:
            self._checks.pop((stream_id, key), None)

    def key_checked(self, ev: KeyChecked) -> None:
        for (stream_id, key), future in self._checks.items():
            if stream_id == ev.stream_id and not future.done():
                future.set_result(ev.valid)

    def attached(self, conn: OutboundConnection) -> None:
        self.conn = conn
        for stream_id, key in self._checks:
            conn.stream.verify(self.local, stream_id, key)

    def detached(self, conn: OutboundConnection) -> None:
        if self.conn is not conn:
            return
        self.conn = None
        if self.ready:
            # A link that was up went down: the next stanza makes a new one.
            self._drop()

    async def _connect(self) -> None:
        why = "no address"
        try:
            targets = await self.fed.resolver.targets(self.remote)
        except Exception as e:  # noqa: BLE001 - a resolver failure of any kind means the domain cannot be reached
            log.info("event=s2s-resolve-failed remote=%s reason=%r", self.remote, e)
            targets = []
        for target in targets:
            why = await self._try(target)
            if why is None:
                self._up()
                return
        log.info("event=s2s-unreachable local=%s remote=%s reason=%s", self.local, self.remote, why)
        self._fail("remote-server-not-found", f"{self.remote} cannot be reached ({why})")

    async def _try(self, target: Target) -> str | None:
        if is_onion(self.remote):
            return await self._try_through_tor(target)
        why = "no address"
        for address in await self.fed.resolver.addresses(target.host):
            why = await self._try_address(target, address)
            if why is None:
                return None
        return why

    async def _try_address(self, target: Target, address: str) -> str | None:
        ctx = self.fed.client_ssl if target.direct_tls else None
        try:
            await self.loop.create_connection(
                lambda: OutboundConnection(self, target.direct_tls), address, target.port,
                ssl=ctx, server_hostname=self.remote if ctx is not None else None,
                ssl_handshake_timeout=self.fed.limits.connect_timeout if ctx is not None else None,
            )
        except (OSError, ssl.SSLError) as e:
            return e.__class__.__name__  # no address in logs (README): the domain is in the log line
        assert self.conn is not None
        conn = self.conn
        why = await conn.up
        if why is not None:
            conn.close_stream()
        return why

    async def _try_through_tor(self, target: Target) -> str | None:
        """A .onion domain: through the SOCKS5 proxy by name, so that no DNS server ever hears of it."""
        proxy = self.fed.resolver.tor_proxy
        if proxy is None:
            return "no Tor proxy (s2s.tor_proxy)"
        ctx = self.fed.client_ssl if target.direct_tls else None
        try:
            sock = await socks.connect(proxy, target.host, target.port)
        except OSError as e:
            return f"Tor proxy: {e}"
        try:
            await self.loop.create_connection(
                lambda: OutboundConnection(self, target.direct_tls), sock=sock,
                ssl=ctx, server_hostname=self.remote if ctx is not None else None,
                ssl_handshake_timeout=self.fed.limits.connect_timeout if ctx is not None else None,
            )
        except (OSError, ssl.SSLError) as e:
            sock.close()
            return e.__class__.__name__
        assert self.conn is not None
        conn = self.conn
        why = await conn.up
        if why is not None:
            conn.close_stream()
        return why

    def _up(self) -> None:
        self._deadline.cancel()
        self.ready = True
        assert self.conn is not None
        while self.queue:
            self.conn.send(self.queue.popleft().stanza)

    def _timed_out(self) -> None:
        if self.ready:
            return
        log.info("event=s2s-timeout local=%s remote=%s", self.local, self.remote)
        self._task.cancel()
        self._fail("remote-server-timeout", f"{self.remote} did not answer in time")

    def _fail(self, condition: str, text: str) -> None:
        self._deadline.cancel()
        self._drop()
        if self.conn is not None:
            self.conn.close_stream()
        for future in self._checks.values():
            if not future.done():
                future.set_result(False)
        while self.queue:
            self.fed.bounce(self.queue.popleft(), condition, text)

    def _drop(self) -> None:
        if self.fed.links.get((self.local, self.remote)) is self:
            del self.fed.links[self.local, self.remote]

    def close(self, error: StreamError | None = None) -> None:
        self._deadline.cancel()
        self._task.cancel()
        self._drop()
        if self.conn is not None:
            self.conn.close_stream(error)
