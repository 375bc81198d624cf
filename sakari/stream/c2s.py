"""The client-to-server stream (RFC 6120 §4–§7) as a sans-IO state machine.

Bytes go in through :meth:`C2SStream.receive`, which returns events for the
network layer and the core; bytes to write come out of
:meth:`C2SStream.data_to_send`. Negotiation follows the RFC's order:
header → (STARTTLS → header) → SASL → header → resource binding → stanzas.
SASL2 (XEP-0388, :mod:`sakari.stream.sasl2`) is offered beside it and runs the same mechanisms; it has
no restart, and may bind (Bind 2, XEP-0386) and hand out FAST tokens (XEP-0484) as it succeeds:
header → (STARTTLS → header) → SASL2 [+ bind] → stanzas. Each state accepts a fixed set of top-level elements (the table in
``_ACCEPTS``); anything else is a stream error by construction. How the
stream is framed on its transport (TCP, WebSocket) is the framing's job
(:mod:`sakari.stream.framing`), so the same negotiation serves them all.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from sakari.credentials import Credentials, decoy
from sakari.jid import JID, JIDError, prep_domain, prep_local, prep_resource
from sakari.stream.framing import Framing, TcpFraming, answer_starttls
from sakari.stream.machine import StreamMachine, stream_version
from sakari.stream.sasl import Identity, SaslFailure, ScramServer, parse_plain
from sakari.stream.sasl2 import (
    HT_MECHANISMS,
    NS_BIND2,
    NS_FAST,
    NS_SASL2,
    HashedToken,
    Sasl2Request,
    TokenCheck,
    bind2_resource,
    data_element,
    failure_element,
    parse_authenticate,
)
from sakari.stream.sasl2 import decode as sasl2_decode
from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_text
from sakari.xml.errors import StanzaError, StreamError, error_reply
from sakari.xml.parser import StreamOpened

MAX_AUTH_ATTEMPTS = 3
MAX_HELD = 64
_STANZA_NAMES = frozenset(("message", "presence", "iq"))


# --- events for the driver ------------------------------------------------------
@dataclass(slots=True)
class StartTLS:
    """Upgrade the transport now; then call :meth:`C2SStream.tls_started`."""


@dataclass(slots=True)
class NeedCredentials:
    """Look the user up; then call :meth:`C2SStream.provide_credentials`."""

    user: str


@dataclass(slots=True)
class CheckPassword:
    """SASL PLAIN: compare ``password`` with ``creds`` (a PBKDF2, milliseconds of CPU, so off
    the event loop: :func:`sakari.credentials.check_password` in a thread); then call
    :meth:`C2SStream.password_checked`."""

    creds: Credentials
    password: str


@dataclass(slots=True)
class CheckToken:
    """FAST: ask the token store whether a token of ``client_id`` for ``mechanism`` passes ``verify``; then
    call :meth:`C2SStream.token_checked`."""

    user: str
    mechanism: str
    client_id: str
    verify: Callable[[bytes], bool]


@dataclass(slots=True)
class Authenticated:
    user: str


@dataclass(slots=True)
class AuthFailed:
    """A login to ``user`` failed on its credentials (wrong password, proof or token): the driver counts it
    for the login throttle."""

    user: str


@dataclass(slots=True)
class Sasl2Succeeded:
    """SASL2 authenticated ``user``: bind ``resource`` (None: no Bind 2 request) with the request's inline
    features, issue or drop FAST tokens, then call :meth:`C2SStream.sasl2_done` with what goes in
    ``<success/>``."""

    user: str
    request: Sasl2Request
    resource: str | None
    token_used: str | None  # the FAST mechanism of the token this login used
    rotate_token: bool  # the token store wants the client to get a new one
    # A pre-bind element sent inline (XEP-0198 <resume/>): its module answers before Bind 2, and a session it
    # resumes replaces the binding; its answer goes in <success/>.
    pre_bind: Element | None = None


@dataclass(slots=True)
class BindRequest:
    """Bind ``resource`` (None: the server picks); then call ``bound``."""

    resource: str | None


@dataclass(slots=True)
class PreBindReceived:
    """An element a module registered for the stage between authentication and binding (e.g. XEP-0198
    ``<resume/>``); the driver hands it to that module, then calls :meth:`C2SStream.pre_bind_done`."""

    element: Element


@dataclass(slots=True)
class PreAuthReceived:
    """An iq whose payload a module registered for the stage before authentication (XEP-0077 in-band
    registration); the driver hands it to that module and sends its answer with :meth:`C2SStream.send`."""

    iq: Element


@dataclass(slots=True)
class StanzaReceived:
    stanza: Element


@dataclass(slots=True)
class NonzaReceived:
    """A top-level element outside jabber:client after binding (e.g. stream management)."""

    element: Element


@dataclass(slots=True)
class StreamEnded:
    error: StreamError | None  # the error we sent, or None for an orderly close


Event = (
    StartTLS | NeedCredentials | CheckPassword | CheckToken | Authenticated | AuthFailed | Sasl2Succeeded | BindRequest
    | PreBindReceived | PreAuthReceived | StanzaReceived | NonzaReceived | StreamEnded
)


class State(Enum):
    HEADER = auto()  # waiting for the client's stream header (after each restart)
    FEATURES = auto()  # features sent before authentication: STARTTLS or SASL
    TLS = auto()  # <proceed/> sent; the driver is upgrading the transport
    SASL_LOOKUP = auto()  # waiting for the driver's credentials (or its PLAIN password or FAST token check)
    SASL_RESPONSE = auto()  # challenge sent, waiting for the client's response
    SASL2_RESPONSE = auto()  # the same in SASL2, whose elements have their own namespace
    BIND = auto()  # authenticated, waiting for resource binding
    BIND_PENDING = auto()  # the driver binds, or decides on a pre-bind element or on what SASL2's success carries
    READY = auto()  # stanzas flow
    CLOSED = auto()


@dataclass(frozen=True, slots=True)
class StreamSettings:
    domain: str  # the domain of a stream whose header names none
    tls_available: bool
    require_encryption: bool = True
    allow_plain: bool = True
    max_stanza_size: int = 262144
    max_depth: int = 64
    # With a secret, an unknown user gets a decoy SCRAM challenge instead of an
    # immediate failure, so a login attempt does not reveal which accounts exist.
    decoy_secret: bytes = b""
    decoy_iterations: int = 10000
    domains: frozenset[str] = frozenset()  # every domain with local accounts (virtual hosts); empty: just ``domain``
    pre_bind: frozenset[tuple[str, str]] = frozenset()  # (namespace, name) of elements modules take before bind
    pre_auth: frozenset[tuple[str, str]] = frozenset()  # (namespace, name) of iq payloads modules take before SASL
    sasl2: bool = True  # offer XEP-0388 beside RFC 6120 SASL
    bind_inline: tuple[str, ...] = ()  # namespaces of features modules enable inside a Bind 2 request
    # (namespace, feature, element): pre-bind elements a client may send inside SASL2's <authenticate/>,
    # each announced as <feature xmlns=namespace/> in SASL2's <inline/> (XEP-0198's <sm/> for <resume/>)
    sasl2_inline: tuple[tuple[str, str, str], ...] = ()
    fast: bool = False  # a token store takes FAST (XEP-0484) logins

    def serves(self, domain: str) -> bool:
        return domain == self.domain or domain in self.domains


FeatureProvider = Callable[[bool], list[Element]]  # argument: authenticated?
FeaturesCache = dict[tuple[bool, bool, bool, tuple[str, ...]], bytes]  # by (authenticated, bound, TLS, bindings)


class C2SStream(StreamMachine[Event]):
    CLOSED = State.CLOSED
    ENDED = StreamEnded

    def __init__(
        self,
        settings: StreamSettings,
        direct_tls: bool = False,
        extra_features: FeatureProvider | None = None,
        features_cache: FeaturesCache | None = None,
        framing: Framing | None = None,
    ) -> None:
        self.settings = settings
        self.framing = framing or TcpFraming(settings.max_stanza_size, settings.max_depth)
        self.domain = settings.domain  # the one the client's header named
        # The features only depend on the stage, so streams of one server may share their bytes.
        self.features_cache = features_cache if features_cache is not None else {}
        self.tls_active = direct_tls
        self.channel_bindings: dict[str, bytes] = {}
        self.extra_features = extra_features
        self.state = State.HEADER
        self.user: str | None = None
        self.jid: JID | None = None
        self.stream_id = ""
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._header_sent = False
        self._sasl: ScramServer | None = None
        self._sasl2: Sasl2Request | None = None  # while a SASL2 exchange runs, and until its success is sent
        self._token: HashedToken | None = None  # a FAST login
        self._rotate_token = False
        self._additional: bytes | None = None  # the mechanism's last message, for SASL2's <success/>
        self._plain_password: str | None = None
        self._identity: Identity | None = None
        self._auth_failures = 0
        self._bind_iq: Element | None = None
        self._held: list[Element] = []  # elements pipelined behind a request the driver still decides on

    # --- I/O ------------------------------------------------------------------
    def release_parser(self) -> bool:
        """Free the parser of an idle stream between stanzas (it returns with the next bytes)."""
        return self.state is State.READY and self.framing.release()

    def frames_to_send(self) -> list[bytes]:
        """What to write, one element (or header) each, for transports with messages (WebSocket)."""
        out, self._out = self._out, []
        return out

    def send(self, stanza: Element) -> None:
        self._out.append(stanza.serialize(self.framing.stanza_ns).encode())

    # --- driver callbacks -----------------------------------------------------
    def tls_started(self, channel_bindings: dict[str, bytes]) -> None:
        if self.state is State.CLOSED:
            return  # the stream ended (e.g. on junk after <starttls/>) while the driver upgraded
        self.tls_active = True
        self.channel_bindings = channel_bindings
        self._restart()

    def provide_credentials(self, creds: Credentials | None) -> list[Event]:
        if self.state is State.CLOSED:
            return []  # the client left while we looked
        assert self.state is State.SASL_LOOKUP
        try:
            if creds is None:
                if not self.settings.decoy_secret:
                    raise SaslFailure("not-authorized")
                creds = decoy(self.settings.decoy_secret, self._pending_user or "", self.settings.decoy_iterations)
            if self._sasl is not None:
                self._challenge(self._sasl.first(creds))
                self.state = State.SASL2_RESPONSE if self._sasl2 is not None else State.SASL_RESPONSE
            else:
                self._events.append(CheckPassword(creds, self._plain_password or ""))
                self._plain_password = None
        except SaslFailure as f:
            self._fail_or_close(f)
        return self._replay()

    def password_checked(self, ok: bool) -> list[Event]:
        if self.state is State.CLOSED:
            return []  # the client left while we compared
        assert self.state is State.SASL_LOOKUP
        if ok:
            self._succeed(None)
        else:
            self._fail_or_close(SaslFailure("not-authorized"))
        return self._replay()

    def token_checked(self, check: TokenCheck) -> list[Event]:
        if self.state is State.CLOSED:
            return []  # the client left while the store looked
        assert self.state is State.SASL_LOOKUP and self._token is not None
        if check.ok and self._token.key is not None:  # only a key that verified the proof lets the client in
            self._rotate_token = check.rotate
            self._succeed(self._token.responder())
        else:
            self._fail_or_close(SaslFailure(check.condition))
        return self._replay()

    def sasl2_done(self, jid: JID | None, extra: list[Element]) -> list[Event]:
        """Send SASL2's ``<success/>`` with ``extra`` (Bind 2's ``<bound/>``, a FAST ``<token/>``) and the
        features of the authenticated stream; with ``jid`` (bound), stanzas flow at once."""
        if self.state is State.CLOSED:
            return []
        assert self.state is State.BIND_PENDING and self._sasl2 is not None and self.user is not None
        success = Element("success", NS_SASL2)
        if self._additional:
            success.children.append(data_element("additional-data", self._additional))
        identity = str(jid) if jid is not None else f"{self.user}@{self.domain}"
        success.add("authorization-identifier", NS_SASL2, text=identity)
        success.children.extend(extra)
        self._out.append(bytes(success))
        self._sasl2 = None
        self._additional = None
        self.jid = jid
        self._send_features(bound=jid is not None)
        return self._replay()

    def refuse(self, failure: SaslFailure) -> list[Event]:
        """The driver refuses a login attempt before looking at its credentials (the login throttle)."""
        if self.state is State.CLOSED:
            return []
        assert self.state is State.SASL_LOOKUP
        self._fail_or_close(failure)
        return self._replay()

    def _fail_or_close(self, failure: SaslFailure) -> None:
        try:
            self._fail(failure)
        except StreamError as e:
            self.close(e)

    def bound(self, jid: JID) -> list[Event]:
        """The resource is bound; returns events for anything the client pipelined behind the request."""
        if self.state is State.CLOSED:
            return []
        assert self.state is State.BIND_PENDING and self._bind_iq is not None
        self.jid = jid
        result = Element("iq", NS.CLIENT, {"type": "result", "id": self._bind_iq.attrs.get("id", "")})
        result.add("bind", NS.BIND).add("jid", NS.BIND, text=str(jid))
        self.send(result)
        self._bind_iq = None
        self.state = State.READY
        return self._replay()

    def pre_bind_done(self, reply: Element | None, resumed: JID | None = None) -> list[Event]:
        """A module answered a pre-bind element: send ``reply``; with ``resumed``, stanzas flow for that
        session (no binding); without, the client goes on to bind."""
        if self.state is State.CLOSED:
            return []
        assert self.state is State.BIND_PENDING and self._bind_iq is None
        if reply is not None:
            self.send(reply)
        if resumed is not None:
            self.jid = resumed
            self.state = State.READY
        else:
            self.state = State.BIND
        return self._replay()

    def _replay(self) -> list[Event]:
        held, self._held = self._held, []
        try:
            for el in held:
                if self.state is State.CLOSED:
                    break
                self._element(el)
        except StreamError as e:
            self.close(e)
        return self._flush_events()

    # --- the stream header ----------------------------------------------------
    def _header(self, opened: StreamOpened) -> None:
        if self.state is not State.HEADER:
            raise StreamError("not-well-formed", "unexpected stream header")
        to = opened.attrs.get("to")
        domain = self.domain
        if to is not None:
            try:
                domain = prep_domain(to)
            except JIDError:
                domain = ""
            if self.settings.serves(domain) and self.user is None:
                self.domain = domain  # our header names the domain the client asked for; fixed once authenticated
        self._send_header()
        if opened.name != "stream" or opened.ns != NS.STREAMS:
            raise StreamError("invalid-namespace", "the stream element must be stream:stream")
        if opened.default_ns != NS.CLIENT:
            raise StreamError("invalid-namespace", "the content namespace must be jabber:client")
        version = opened.attrs.get("version", "0.9")
        if stream_version(version) < (1, 0):
            raise StreamError("unsupported-version")
        if to is not None and domain != self.domain:
            raise StreamError("host-unknown", f"this server does not serve {to}")
        self._send_features()

    def _send_header(self) -> None:
        self._header_sent = True
        self.stream_id = secrets.token_urlsafe(12)
        self._out.append(
            self.framing.header({"from": self.domain, "id": self.stream_id, "version": "1.0", "xml:lang": "en"})
        )

    def _send_features(self, bound: bool = False) -> None:
        authenticated = self.user is not None
        self.state = State.READY if bound else State.BIND if authenticated else State.FEATURES
        key = (authenticated, bound, self.tls_active, tuple(self.channel_bindings))
        cached = self.features_cache.get(key)
        if cached is None:
            cached = self.features_cache[key] = self._features(bound)
        self._out.append(cached)

    def _features(self, bound: bool) -> bytes:
        features = Element("features", NS.STREAMS)
        s = self.settings
        if self.user is None:
            if not self.tls_active and s.tls_available:
                starttls = features.add("starttls", NS.TLS)
                if s.require_encryption:
                    starttls.add("required", NS.TLS)
            if self.tls_active or not s.require_encryption:
                mechs = features.add("mechanisms", NS.SASL)
                for mech in self._mechanisms():
                    mechs.add("mechanism", NS.SASL, text=mech)
                if s.sasl2:
                    features.children.append(self._sasl2_feature())
                # XEP-0440, for both SASL profiles
                if self.channel_bindings:
                    cb = features.add("sasl-channel-binding", NS.SASL_CB)
                    for name in self.channel_bindings:
                        cb.add("channel-binding", NS.SASL_CB, {"type": name})
        elif not bound:
            features.add("bind", NS.BIND)
            features.add("session", NS.SESSION).add("optional", NS.SESSION)
        if self.extra_features is not None:
            features.children.extend(self.extra_features(self.user is not None))
        return self.framing.wrap("features", features.children)

    def _sasl2_feature(self) -> Element:
        authentication = Element("authentication", NS_SASL2)
        for mech in self._mechanisms():
            authentication.add("mechanism", NS_SASL2, text=mech)
        inline = authentication.add("inline", NS_SASL2)
        bind_features = inline.add("bind", NS_BIND2).add("inline", NS_BIND2)
        for var in self.settings.bind_inline:
            bind_features.add("feature", NS_BIND2, {"var": var})
        for ns, feature, _ in self.settings.sasl2_inline:
            inline.add(feature, ns)
        fast_mechs = self._fast_mechanisms()
        if fast_mechs:
            fast = inline.add("fast", NS_FAST)
            for mech in fast_mechs:
                fast.add("mechanism", NS_FAST, text=mech)
        return authentication

    def _fast_mechanisms(self) -> list[str]:
        if not self.settings.fast or not self.tls_active:
            return []  # a token crosses only a confidential stream (XEP-0484 §6)
        return [m for m, binding in HT_MECHANISMS.items() if binding is None or binding in self.channel_bindings]

    def _mechanisms(self) -> list[str]:
        mechs = []
        for h in ("SHA-256", "SHA-1"):
            if self.channel_bindings:
                mechs.append(f"SCRAM-{h}-PLUS")
            mechs.append(f"SCRAM-{h}")
        if self.tls_active and self.settings.allow_plain:
            mechs.append("PLAIN")
        return mechs

    def _restart(self) -> None:
        self.framing.restart()
        self.state = State.HEADER

    # --- top-level elements, by state -----------------------------------------
    def _element(self, el: Element) -> None:
        state = self.state
        if state is State.READY and el.ns == NS.CLIENT and el.name in _STANZA_NAMES:
            if el.name == "iq" and self._is_legacy_session(el):
                self.send(Element("iq", NS.CLIENT, {"type": "result", "id": el.attrs.get("id", "")}))
            else:
                self._events.append(StanzaReceived(el))
            return
        if state is State.BIND_PENDING or self.state is State.SASL_LOOKUP:
            if len(self._held) >= MAX_HELD:
                raise StreamError("policy-violation", "too much pipelined before the server could answer")
            self._held.append(el)
            return
        handler = _ACCEPTS.get((self.state, el.ns, el.name))
        if handler is not None:
            handler(self, el)
            return
        if state is State.BIND and (el.ns, el.name) in self.settings.pre_bind:
            self.state = State.BIND_PENDING
            self._events.append(PreBindReceived(el))
            return
        if state is State.FEATURES and el.name == "iq" and el.ns == NS.CLIENT and self._pre_auth_iq(el):
            self._events.append(PreAuthReceived(el))
            return
        if self.state is State.READY:
            if el.ns != NS.CLIENT:
                self._events.append(NonzaReceived(el))
                return
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not a stanza")
        if el.ns == NS.CLIENT and el.name in _STANZA_NAMES:
            raise StreamError("not-authorized", "authenticate and bind a resource first")
        raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not expected now")

    def _is_legacy_session(self, iq: Element) -> bool:
        child = iq.first_child()
        return child is not None and child.name == "session" and child.ns == NS.SESSION and iq.attrs.get("type") == "set"

    def _pre_auth_iq(self, iq: Element) -> bool:
        """A request a module takes before authentication, on a stream confidential enough for SASL (a
        password is about to cross it)."""
        payload = iq.first_child()
        return (
            payload is not None
            and (payload.ns, payload.name) in self.settings.pre_auth
            and iq.attrs.get("type") in ("get", "set")
            and (self.tls_active or not self.settings.require_encryption)
        )

    def _starttls(self, el: Element) -> None:
        answer_starttls(self._out, not self.tls_active and self.settings.tls_available)
        self.state = State.TLS
        self._events.append(StartTLS())

    def _auth(self, el: Element) -> None:
        try:
            self._start(el.attrs.get("mechanism", ""), _decode_payload(el.text))
        except SaslFailure as f:
            self._fail(f)

    def _authenticate(self, el: Element) -> None:
        """SASL2: the same mechanisms as ``<auth/>`` (and FAST's), with what the client wants once authenticated."""
        try:
            self._sasl2 = request = parse_authenticate(el)
            if request.request_token not in self._fast_mechanisms():
                request.request_token = None  # a token is only for a mechanism we offer (XEP-0484 §3.2)
            if request.mechanism in HT_MECHANISMS:
                self._start_token(request)
            else:
                self._start(request.mechanism, request.initial)
        except SaslFailure as f:
            self._fail(f)

    def _start(self, mech: str, initial: bytes | None) -> None:
        if self.settings.require_encryption and not self.tls_active:
            raise SaslFailure("encryption-required")
        if mech not in self._mechanisms():
            raise SaslFailure("invalid-mechanism")
        if mech == "PLAIN":
            self._sasl = None
        else:
            hash_name = "SHA-256" if mech.startswith("SCRAM-SHA-256") else "SHA-1"
            self._sasl = ScramServer(hash_name, mech.endswith("-PLUS"), self.channel_bindings)
        if not initial:
            self._challenge(b"")
            self.state = State.SASL2_RESPONSE if self._sasl2 is not None else State.SASL_RESPONSE
        elif self._sasl is None:
            self._start_plain(initial)
        else:
            self._lookup(self._sasl.start(initial))

    def _start_token(self, request: Sasl2Request) -> None:
        """FAST: one message, checked by the driver's token store against this client's tokens."""
        if request.mechanism not in self._fast_mechanisms():
            raise SaslFailure("invalid-mechanism")
        if request.client_id is None:
            raise SaslFailure("not-authorized", "a token login needs the client's <user-agent id=…>")
        self._token = HashedToken(request.mechanism, self.channel_bindings)
        identity = self._token.start(request.initial or b"")
        self._lookup(identity, token=True)

    def _start_plain(self, message: bytes) -> None:
        identity, password = parse_plain(message)
        self._plain_password = password
        self._lookup(identity)

    def _lookup(self, identity: Identity, token: bool = False) -> None:
        try:
            user = prep_local(identity.username)
        except JIDError:
            raise SaslFailure("not-authorized") from None
        if identity.authzid and identity.authzid not in (user, f"{user}@{self.domain}"):
            raise SaslFailure("invalid-authzid")
        self._identity = identity
        self._pending_user = user
        self.state = State.SASL_LOOKUP
        if token:
            assert self._token is not None and self._sasl2 is not None and self._sasl2.client_id is not None
            self._events.append(CheckToken(user, self._token.mechanism, self._sasl2.client_id, self._token.verify))
        else:
            self._events.append(NeedCredentials(user))

    def _response(self, el: Element) -> None:
        try:
            data = _decode_payload(el.text) if self._sasl2 is None else sasl2_decode(el.text)
            if self._sasl is None:
                self._start_plain(data)
            elif self._identity is None:
                self._lookup(self._sasl.start(data))
            else:
                self._succeed(self._sasl.final(data))
        except SaslFailure as f:
            self._fail(f)

    def _abort(self, el: Element) -> None:
        self._fail(SaslFailure("aborted"))

    def _challenge(self, data: bytes) -> None:
        if self._sasl2 is not None:
            self._out.append(bytes(data_element("challenge", data)))
            return
        self._out.append(f"<challenge xmlns='{NS.SASL}'>{base64.b64encode(data).decode()}</challenge>".encode())

    def _succeed(self, additional: bytes | None) -> None:
        self.user = self._pending_user
        self._sasl = None
        self._identity = None
        self._events.append(Authenticated(self.user))
        request = self._sasl2
        if request is None:
            payload = base64.b64encode(additional).decode() if additional else ""
            self._out.append(f"<success xmlns='{NS.SASL}'>{payload}</success>".encode())
            self._restart()
            return
        # SASL2: no restart; <success/> waits for what the driver binds and issues (sasl2_done).
        self._additional = additional
        resource = None
        if request.bind is not None:
            random_part = secrets.token_urlsafe(6)
            tag = request.bind.child_text("tag", NS_BIND2) or ""
            resource = bind2_resource(self.settings.decoy_secret, self.user, request.client_id, tag, random_part)
        token_used = self._token.mechanism if self._token is not None else None
        self._token = None
        self.state = State.BIND_PENDING
        inline = {(ns, name) for ns, _, name in self.settings.sasl2_inline}
        pre_bind = next((el for el in request.others if (el.ns, el.name) in inline), None)
        self._events.append(Sasl2Succeeded(self.user, request, resource, token_used, self._rotate_token, pre_bind))

    def _fail(self, failure: SaslFailure) -> None:
        if failure.condition == "not-authorized" and self._identity is not None:
            self._events.append(AuthFailed(self._pending_user))  # credentials were checked and did not match
        self._sasl = None
        self._identity = None
        self._plain_password = None
        self._token = None
        if self._sasl2 is not None:
            self._sasl2 = None
            self._out.append(bytes(failure_element(failure)))
        else:
            text = f"<text xml:lang='en'>{escape_text(failure.text)}</text>" if failure.text else ""
            self._out.append(f"<failure xmlns='{NS.SASL}'><{failure.condition}/>{text}</failure>".encode())
        self.state = State.FEATURES
        if failure.condition != "aborted":
            self._auth_failures += 1
            if self._auth_failures >= MAX_AUTH_ATTEMPTS:
                raise StreamError("policy-violation", "too many failed authentication attempts")

    def _bind(self, iq: Element) -> None:
        bind = iq.find("bind", NS.BIND)
        assert bind is not None
        if iq.attrs.get("type") != "set":
            self.send(error_reply(iq, StanzaError("bad-request", "resource binding is an iq of type set")))
            return
        resource_text = bind.child_text("resource", NS.BIND)
        resource = None
        if resource_text:
            try:
                resource = prep_resource(resource_text)
            except JIDError as e:
                self.send(error_reply(iq, StanzaError("bad-request", e.text)))
                return
        self._bind_iq = iq
        self.state = State.BIND_PENDING
        self._events.append(BindRequest(resource))

    def _iq_before_bind(self, iq: Element) -> None:
        if iq.find("bind", NS.BIND) is not None:
            self._bind(iq)
        elif iq.attrs.get("type") in ("get", "set"):
            self.send(error_reply(iq, StanzaError("not-authorized", "bind a resource first")))


def _decode_payload(text: str) -> bytes:
    text = text.strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


_ACCEPTS: dict[tuple[State, str, str], Callable[[C2SStream, Element], None]] = {
    (State.FEATURES, NS.TLS, "starttls"): C2SStream._starttls,
    (State.FEATURES, NS.SASL, "auth"): C2SStream._auth,
    (State.SASL_RESPONSE, NS.SASL, "response"): C2SStream._response,
    (State.SASL_RESPONSE, NS.SASL, "abort"): C2SStream._abort,
    (State.FEATURES, NS_SASL2, "authenticate"): C2SStream._authenticate,
    (State.SASL2_RESPONSE, NS_SASL2, "response"): C2SStream._response,
    (State.SASL2_RESPONSE, NS_SASL2, "abort"): C2SStream._abort,
    (State.BIND, NS.CLIENT, "iq"): C2SStream._iq_before_bind,
}
