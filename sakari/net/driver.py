"""What a client transport does with the stream machine's events, whatever carries the stream.

TCP (:mod:`sakari.net.c2s`), WebSocket (:mod:`sakari.net.websocket`) and
BOSH (:mod:`sakari.net.bosh`) differ only in how bytes move. The side
effects of negotiation — credential look-ups, password checks off the event
loop, FAST token checks, binding (also Bind 2's, with its inline features),
pre-bind elements (stream resumption), the authentication deadline, the rate
limit, closing — are the same for all and live here once.
A transport subclasses :class:`StreamDriver` and supplies how to write what
the stream produced (``_flush_stream``), how to end the transport
(``_finish``, ``abort``) and, if it can, how to upgrade to TLS.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from sakari.core.events import NonzaEvent
from sakari.core.session import Session
from sakari.core.sessions import PreAuth, PreBind
from sakari.credentials import check_password
from sakari.net.port import ClientPort
from sakari.stream.c2s import (
    AuthFailed,
    Authenticated,
    BindRequest,
    C2SStream,
    CheckPassword,
    CheckToken,
    NeedCredentials,
    NonzaReceived,
    PreAuthReceived,
    PreBindReceived,
    Sasl2Succeeded,
    StanzaReceived,
    StartTLS,
    StreamEnded,
)
from sakari.stream.sasl import SaslFailure
from sakari.stream.sasl2 import NS_BIND2, TokenCheck
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError, error_reply

log = logging.getLogger("sakari.c2s")


class StreamDriver:
    """Carries out a :class:`C2SStream`'s events for one client; the session's Connection while attached."""

    def __init__(self, port: ClientPort, stream: C2SStream) -> None:
        self.port = port
        self.limits = port.limits
        self.loop = asyncio.get_running_loop()
        self.stream = stream
        self.stanza_ns = stream.framing.stanza_ns  # see Connection
        self.web_origin = ""  # see Connection; set by the web transports
        self.session: Session | None = None
        self.last_active = self.loop.time()
        self._auth_timer: asyncio.TimerHandle | None = None
        self._tokens = float(port.limits.rate_burst)
        self._token_time = self.last_active
        self._closed = False
        self._pre_auth_state: dict[str, Any] = {}  # what pre-auth handlers keep between requests (a XEP-0401 token)
        # Logs name a connection by this id, never by its address (unless the operator asks: log_ip).
        self.conn_id = secrets.token_hex(4)
        self.address = ""  # the client's address as the limits count it (sakari.net.throttle.address_key)
        self._limited = False  # the address is subject to the limits (not in limits.exempt_networks)
        self._admitted = False  # counted by the connection gate
        self._stanzas = 0  # stanzas received since the account's stanza bucket was last charged
        self._bucket: Any = None  # the account's stanza bucket while bound (None: no limit)

    # --- what each transport supplies -------------------------------------------
    def _flush_stream(self) -> None:
        """Write what the stream produced."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Bytes to the client (the session's Connection)."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Write what is queued, then end the transport."""
        raise NotImplementedError

    def abort(self) -> None:
        """End the transport now, writing nothing more."""
        raise NotImplementedError

    def _upgrade_tls(self) -> None:
        """STARTTLS: only byte streams offer it (the stream machine asks only where tls_available)."""
        raise NotImplementedError

    # --- life cycle ---------------------------------------------------------------
    def _opened(self, address: str = "") -> None:
        self.port.connections.add(self)
        self._auth_timer = self.loop.call_later(self.limits.auth_timeout, self._auth_timed_out)
        abuse = self.port.abuse
        self.address = address
        self._limited = not abuse.is_exempt(address)
        if abuse.log_ip:
            log.info("event=connection-opened conn=%s address=%s", self.conn_id, address or "unknown")
        if self._limited and abuse.gate is not None:
            refused = abuse.gate.admit(address)
            if refused is not None:
                log.info("event=connection-refused conn=%s reason=%r", self.conn_id, refused)
                self.close_stream(StreamError("policy-violation", refused))
                return
            self._admitted = True

    def _gone(self) -> None:
        """The transport is gone: the session detaches or closes (the session manager decides)."""
        self._closed = True
        self.port.connections.discard(self)
        if self._admitted:
            self._admitted = False
            self.port.abuse.gate.release(self.address)  # type: ignore[union-attr]
        if not self.port.connections and self.port.all_closed is not None:
            self.port.all_closed.set()
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        session = self.session
        if session is not None:
            self.session = None
            self.port.sessions.connection_lost(session, self)

    def _active(self, now: float) -> None:
        self.last_active = now
        if self.session is not None:
            self.session.last_active = now

    def _rate_delay(self, size: int, now: float) -> float:
        """Seconds to stop reading after ``size`` bytes arrived, by the token bucket of limits.rate_bytes."""
        rate = self.limits.rate_bytes
        if not rate:
            return 0.0
        tokens = min(self.limits.rate_burst, self._tokens + (now - self._token_time) * rate) - size
        self._tokens, self._token_time = tokens, now
        return -tokens / rate if tokens < 0 else 0.0

    def _stanza_delay(self, now: float) -> float:
        """Seconds to stop reading after the stanzas just handled, by the account's stanza rate (limits.stanza_rate,
        one bucket for all its connections). Called after handling a read: the stanzas of one read pass, the
        next read waits for them."""
        stanzas, self._stanzas = self._stanzas, 0
        if not stanzas or self._bucket is None:
            return 0.0
        return self.port.abuse.shaper.delay(self._bucket, stanzas, now)

    def close_stream(self, error: StreamError | None = None) -> None:
        """Close from our side: send the error (if any) and the stream's end, then end the transport."""
        if self._closed:
            return
        self.stream.close(error)
        self._flush_stream()
        self._finish()

    # --- stream events --------------------------------------------------------
    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            cls = ev.__class__
            if cls is StanzaReceived:
                self._stanzas += 1
                self.session.receive(ev.stanza)  # type: ignore[union-attr]
            elif cls is NeedCredentials:
                if not self._login_throttled(ev.user, token=False):
                    self.port.tasks.spawn_eager(self._lookup(ev.user))
            elif cls is CheckPassword:
                self.port.tasks.spawn(self._check_password(ev))
            elif cls is BindRequest:
                self._bind(ev.resource)
            elif cls is StartTLS:
                self._upgrade_tls()
                return
            elif cls is NonzaReceived:
                assert self.session is not None
                self.session.receive(NonzaEvent(self.session, ev.element))
            elif cls is PreAuthReceived:
                self.port.tasks.spawn_eager(self._pre_auth(ev.iq))
            elif cls is PreBindReceived:
                self.port.tasks.spawn_eager(self._pre_bind(ev.element))
            elif cls is CheckToken:
                if not self._login_throttled(ev.user, token=True):
                    self.port.tasks.spawn_eager(self._check_token(ev))
            elif cls is AuthFailed:
                if self._limited and self.port.abuse.logins is not None:
                    self.port.abuse.logins.failed(self.address, f"{ev.user}@{self.stream.domain}")
            elif cls is Sasl2Succeeded:
                self.port.tasks.spawn_eager(self._sasl2_succeeded(ev))
            elif cls is StreamEnded:
                if ev.error is not None:
                    log.info("event=stream-error conn=%s condition=%s text=%r session=%s", self.conn_id, ev.error.condition, ev.error.text, self.session)
                self._flush_stream()
                self._finish()
                session, self.session = self.session, None
                if session is not None:
                    self.port.sessions.close(session)  # a closed stream ends its session: nothing to resume
                return
            elif cls is Authenticated:
                # With log_ip the operator must be able to tell which account an address used: at info then.
                level = logging.INFO if self.port.abuse.log_ip else logging.DEBUG
                log.log(level, "event=authenticated conn=%s user=%s@%s", self.conn_id, ev.user, self.stream.domain)
                if self._limited and self.port.abuse.logins is not None:
                    self.port.abuse.logins.succeeded(self.address, f"{ev.user}@{self.stream.domain}")
        self._flush_stream()

    def _login_throttled(self, user: str, token: bool) -> bool:
        """Refuse a login attempt at once, with temporary-auth-failure, while its address or account waits
        out the back-off of earlier failures (sakari.net.throttle)."""
        logins = self.port.abuse.logins
        if not self._limited or logins is None:
            return False
        wait = logins.wait(self.address, f"{user}@{self.stream.domain}", token)
        if not wait:
            return False
        log.info("event=login-throttled conn=%s wait=%.0f", self.conn_id, wait)
        text = f"too many failed login attempts; try again in {max(1, round(wait))} seconds"
        self._handle(self.stream.refuse(SaslFailure("temporary-auth-failure", text)))
        return True

    async def _lookup(self, user: str) -> None:
        creds = await self.port.credentials(f"{user}@{self.stream.domain}")
        if not self._closed:
            self._handle(self.stream.provide_credentials(creds))

    async def _check_password(self, ev: CheckPassword) -> None:
        # PBKDF2 releases the GIL: in a thread it neither stalls other sessions nor serializes with them.
        ok = await self.loop.run_in_executor(None, check_password, ev.creds, ev.password)
        if not self._closed:
            self._handle(self.stream.password_checked(ok))

    async def _check_token(self, ev: CheckToken) -> None:
        store = self.port.token_store
        creds = await self.port.credentials(f"{ev.user}@{self.stream.domain}")
        if creds is None or store is None:
            check = TokenCheck(False)  # no account, or a disabled one: like a wrong token
        else:
            check = await store.check(ev.user, self.stream.domain, ev.client_id, ev.mechanism, creds, ev.verify)
        if not self._closed:
            self._handle(self.stream.token_checked(check))

    async def _sasl2_succeeded(self, ev: Sasl2Succeeded) -> None:
        """What SASL2's <success/> carries: FAST tokens first (their storage is the only wait), then Bind 2 and
        its inline features, at once before <success/>, so nothing reaches the session in between."""
        extra: list[Element] = []
        store, request, host = self.port.token_store, ev.request, self.stream.domain
        if store is not None and request.client_id is not None:
            if ev.token_used is not None and request.invalidate_token:
                await store.invalidate(ev.user, host, request.client_id)
            mechanism = request.request_token
            if mechanism is None and ev.rotate_token and not request.invalidate_token:
                mechanism = ev.token_used
            if mechanism is not None:
                creds = await self.port.credentials(f"{ev.user}@{host}")
                if creds is not None:
                    extra.append(await store.issue(ev.user, host, request.client_id, mechanism, creds))
        resumed: Session | None = None
        then: list[bytes] = []
        if ev.pre_bind is not None:
            # XEP-0198 <resume/> inline (XEP-0388 §2.1): its answer goes in <success/>; a resumed session
            # takes the place of Bind 2's, a failed resumption leaves Bind 2 to go on.
            pre = PreBind(ev.user, host, ev.pre_bind, self, inline=True)
            reply, resumed = await self.port.pre_bind[ev.pre_bind.ns, ev.pre_bind.name](pre)
            if reply is not None:
                extra.insert(0, reply)
            then = pre.then
        if self._closed:
            return
        jid = None
        if resumed is not None:
            self.session = resumed
            self.port.sessions.resume(resumed, self)
            resumed.last_active = self.last_active
            self._authorized()
            jid = resumed.jid
        elif ev.resource is not None and request.bind is not None:
            session = self.session = self.port.sessions.bind(ev.user, host, ev.resource, self)
            session.last_active = self.last_active
            self._authorized()
            bound = Element("bound", NS_BIND2)
            for child in request.bind.children:
                handler = self.port.bind_inline.get(child.ns) if child.__class__ is Element else None  # type: ignore[union-attr]
                if handler is not None:
                    answer = handler(session, child)  # type: ignore[arg-type]
                    if answer is not None:
                        bound.children.append(answer)
            extra.insert(0, bound)
            jid = session.jid
        self._handle(self.stream.sasl2_done(jid, extra))
        for data in then:  # after <success/>, before anything routed to the session from now on
            self.write(data)

    def _bind(self, resource: str | None) -> None:
        assert self.stream.user is not None
        self.session = self.port.sessions.bind(self.stream.user, self.stream.domain, resource, self)
        self.session.last_active = self.last_active
        self._authorized()
        self._handle(self.stream.bound(self.session.jid))

    async def _pre_bind(self, element: Element) -> None:
        assert self.stream.user is not None
        handler = self.port.pre_bind[element.ns, element.name]  # type: ignore[index]
        reply, session = await handler(PreBind(self.stream.user, self.stream.domain, element, self))
        if self._closed:
            return
        if session is not None:
            self.session = session
            self.port.sessions.resume(session, self)
            session.last_active = self.last_active
            self._authorized()
        self._handle(self.stream.pre_bind_done(reply, session.jid if session is not None else None))

    async def _pre_auth(self, iq: Element) -> None:
        payload = iq.first_child()
        assert payload is not None
        handler = self.port.pre_auth[payload.ns, payload.name]
        try:
            reply = await handler(PreAuth(self.stream.domain, iq, self._pre_auth_state))
        except StanzaError as e:
            reply = error_reply(iq, e)
        except Exception:
            log.exception("event=pre-auth-handler-failed")
            reply = error_reply(iq, StanzaError("internal-server-error"))  # a request is always answered
        if not self._closed:
            self.stream.send(reply)
            self._flush_stream()

    def _authorized(self) -> None:
        if self._limited and self.session is not None:
            self._bucket = self.port.abuse.shaper.bucket(str(self.session.jid.bare))
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.session is None:
            self.close_stream(StreamError("connection-timeout", "authentication took too long"))
