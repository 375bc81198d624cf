"""The client-to-server stream (RFC 6120 §4–§7) as a sans-IO state machine.

Bytes go in through :meth:`C2SStream.receive`, which returns events for the
network layer and the core; bytes to write come out of
:meth:`C2SStream.data_to_send`. Negotiation follows the RFC's order:
header → (STARTTLS → header) → SASL → header → resource binding → stanzas.
Each state accepts a fixed set of top-level elements (the table in
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
from sakari.stream.framing import Framing, TcpFraming
from sakari.stream.sasl import Identity, SaslFailure, ScramServer, parse_plain
from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_text
from sakari.xml.errors import StanzaError, StreamError, error_reply
from sakari.xml.parser import StreamClosed, StreamOpened

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
class Authenticated:
    user: str


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
    StartTLS | NeedCredentials | CheckPassword | Authenticated | BindRequest | PreBindReceived | PreAuthReceived
    | StanzaReceived | NonzaReceived | StreamEnded
)


class State(Enum):
    HEADER = auto()  # waiting for the client's stream header (after each restart)
    FEATURES = auto()  # features sent before authentication: STARTTLS or SASL
    TLS = auto()  # <proceed/> sent; the driver is upgrading the transport
    SASL_LOOKUP = auto()  # waiting for the driver's credentials (or, for PLAIN, its password check)
    SASL_RESPONSE = auto()  # challenge sent, waiting for the client's response
    BIND = auto()  # authenticated, waiting for resource binding
    BIND_PENDING = auto()  # the driver decides on the resource, or on a registered pre-bind element
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

    def serves(self, domain: str) -> bool:
        return domain == self.domain or domain in self.domains


FeatureProvider = Callable[[bool], list[Element]]  # argument: authenticated?


class C2SStream:
    def __init__(
        self,
        settings: StreamSettings,
        direct_tls: bool = False,
        extra_features: FeatureProvider | None = None,
        features_cache: dict[tuple[bool, bool, tuple[str, ...]], bytes] | None = None,
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
        self._plain_password: str | None = None
        self._identity: Identity | None = None
        self._auth_failures = 0
        self._bind_iq: Element | None = None
        self._held: list[Element] = []  # elements pipelined behind a request the driver still decides on

    # --- I/O ------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Event]:
        if self.state is State.CLOSED:
            return []
        try:
            for item in self.framing.feed(data):
                if self.state is State.CLOSED:
                    break
                if item.__class__ is Element:
                    self._element(item)  # type: ignore[arg-type]
                elif isinstance(item, StreamOpened):
                    self._header(item)
                elif isinstance(item, StreamClosed):
                    self.close()
        except StreamError as e:
            self.close(e)
        events = self._events
        self._events = []
        return events

    def release_parser(self) -> bool:
        """Free the parser of an idle stream between stanzas (it returns with the next bytes)."""
        return self.state is State.READY and self.framing.release()

    def data_to_send(self) -> bytes:
        """What to write, as one byte string (a byte stream such as TCP)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def frames_to_send(self) -> list[bytes]:
        """What to write, one element (or header) each, for transports with messages (WebSocket)."""
        out, self._out = self._out, []
        return out

    def send(self, stanza: Element) -> None:
        self._out.append(stanza.serialize(self.framing.stanza_ns).encode())

    def close(self, error: StreamError | None = None) -> None:
        if self.state is State.CLOSED:
            return
        if not self._header_sent:
            self._send_header()
        if error is not None:
            self._out.append(self.framing.wrap("error", error.to_element().children))
        self._out.append(self.framing.footer())
        self.state = State.CLOSED
        self._events.append(StreamEnded(error))

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
                self.state = State.SASL_RESPONSE
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

    def _flush_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events

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
        if _version(version) < (1, 0):
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

    def _send_features(self) -> None:
        authenticated = self.user is not None
        self.state = State.BIND if authenticated else State.FEATURES
        key = (authenticated, self.tls_active, tuple(self.channel_bindings))
        cached = self.features_cache.get(key)
        if cached is None:
            cached = self.features_cache[key] = self._features()
        self._out.append(cached)

    def _features(self) -> bytes:
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
                if self.channel_bindings:
                    cb = features.add("sasl-channel-binding", NS.SASL_CB)
                    for name in self.channel_bindings:
                        cb.add("channel-binding", NS.SASL_CB, {"type": name})
        else:
            features.add("bind", NS.BIND)
            features.add("session", NS.SESSION).add("optional", NS.SESSION)
        if self.extra_features is not None:
            features.children.extend(self.extra_features(self.user is not None))
        return self.framing.wrap("features", features.children)

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
        if self.tls_active or not self.settings.tls_available:
            self._out.append(f"<failure xmlns='{NS.TLS}'/>".encode())
            raise StreamError("undefined-condition", "STARTTLS is not available")
        self._out.append(f"<proceed xmlns='{NS.TLS}'/>".encode())
        self.state = State.TLS
        self._events.append(StartTLS())

    def _auth(self, el: Element) -> None:
        try:
            if self.settings.require_encryption and not self.tls_active:
                raise SaslFailure("encryption-required")
            mech = el.attrs.get("mechanism", "")
            if mech not in self._mechanisms():
                raise SaslFailure("invalid-mechanism")
            initial = _decode_payload(el.text)
            if mech == "PLAIN":
                self._sasl = None
                if not initial:
                    self._challenge(b"")
                    self.state = State.SASL_RESPONSE
                    return
                self._start_plain(initial)
            else:
                hash_name = "SHA-256" if mech.startswith("SCRAM-SHA-256") else "SHA-1"
                self._sasl = ScramServer(hash_name, mech.endswith("-PLUS"), self.channel_bindings)
                if not initial:
                    self._challenge(b"")
                    self.state = State.SASL_RESPONSE
                    return
                self._lookup(self._sasl.start(initial))
        except SaslFailure as f:
            self._fail(f)

    def _start_plain(self, message: bytes) -> None:
        identity, password = parse_plain(message)
        self._plain_password = password
        self._lookup(identity)

    def _lookup(self, identity: Identity) -> None:
        try:
            user = prep_local(identity.username)
        except JIDError:
            raise SaslFailure("not-authorized") from None
        if identity.authzid and identity.authzid not in (user, f"{user}@{self.domain}"):
            raise SaslFailure("invalid-authzid")
        self._identity = identity
        self._pending_user = user
        self.state = State.SASL_LOOKUP
        self._events.append(NeedCredentials(user))

    def _response(self, el: Element) -> None:
        try:
            data = _decode_payload(el.text)
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
        self._out.append(f"<challenge xmlns='{NS.SASL}'>{base64.b64encode(data).decode()}</challenge>".encode())

    def _succeed(self, additional: bytes | None) -> None:
        payload = base64.b64encode(additional).decode() if additional else ""
        self._out.append(f"<success xmlns='{NS.SASL}'>{payload}</success>".encode())
        self.user = self._pending_user
        self._sasl = None
        self._identity = None
        self._events.append(Authenticated(self.user))
        self._restart()

    def _fail(self, failure: SaslFailure) -> None:
        self._sasl = None
        self._identity = None
        self._plain_password = None
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


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise StreamError("unsupported-version") from None


_ACCEPTS: dict[tuple[State, str, str], Callable[[C2SStream, Element], None]] = {
    (State.FEATURES, NS.TLS, "starttls"): C2SStream._starttls,
    (State.FEATURES, NS.SASL, "auth"): C2SStream._auth,
    (State.SASL_RESPONSE, NS.SASL, "response"): C2SStream._response,
    (State.SASL_RESPONSE, NS.SASL, "abort"): C2SStream._abort,
    (State.BIND, NS.CLIENT, "iq"): C2SStream._iq_before_bind,
}
