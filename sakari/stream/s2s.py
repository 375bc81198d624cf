"""Server-to-server streams (RFC 6120 §4–§7, XEP-0220, XEP-0185) as sans-IO state machines.

Two machines share this file because they share the wire: :class:`InboundStream`
is a stream another server opened to us (we are the *receiving* server, and
the *authoritative* one when it asks us to check a dialback key), and
:class:`OutboundStream` is one we opened (we are the *originating* server).

Authentication follows the RFC's order: header → STARTTLS → header → SASL
EXTERNAL with the peer's certificate → header → stanzas; or, where the
certificate does not prove the domain and policy allows it, Server Dialback
(XEP-0220) after TLS: the originating server sends a key in ``<db:result/>``,
the receiving server asks the authoritative server (by ``<db:verify/>`` on a
stream of its own) whether the key is right. Keys are
HMAC-SHA256(SHA-256(secret), receiving + ' ' + originating + ' ' + stream id)
(XEP-0185 §3), so no key is stored.

Each state accepts a fixed set of top-level elements (``_INBOUND`` and
``_OUTBOUND``); anything else is a stream error by construction. Stanzas are
read as ``jabber:client`` (the parser maps ``jabber:server``), so modules see
one namespace, and written against ``jabber:client``, which leaves them in
``jabber:server`` inside this stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from sakari.jid import JIDError, parse_jid, prep_domain
from sakari.stream.framing import AliasParser, TcpFraming, answer_starttls
from sakari.stream.machine import StreamMachine, stream_version
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamClosed, StreamOpened

NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"
_STANZA_NAMES = frozenset(("message", "presence", "iq"))
MAX_PENDING_DIALBACK = 16  # unanswered <db:result/> on one stream


class ServerParser(AliasParser):
    """Reads elements in jabber:server as jabber:client (foreign namespaces are kept)."""

    alias = NS_SERVER + " "


class ServerFraming(TcpFraming):
    content_ns = NS_SERVER
    parser = ServerParser


def dialback_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185 §3: the key the originating server sends and the authoritative server checks."""
    mac_key = hashlib.sha256(secret).hexdigest().encode()
    return hmac.new(mac_key, f"{receiving} {originating} {stream_id}".encode(), hashlib.sha256).hexdigest()


# --- events for the driver ------------------------------------------------------
@dataclass(slots=True)
class StartTLS:
    """Upgrade the transport now (server side inbound, client side outbound); then call ``tls_started``."""


@dataclass(slots=True)
class Authenticated:
    """Inbound: stanzas from ``remote`` to ``local`` are accepted from now on. Outbound: stanzas may be sent."""

    local: str
    remote: str
    method: str  # "EXTERNAL" or "dialback"


@dataclass(slots=True)
class VerifyKey:
    """Inbound: ``remote`` sent a dialback key; ask its authoritative server (a ``<db:verify/>`` on an
    outbound stream to it), then call :meth:`InboundStream.dialback_checked`."""

    local: str
    remote: str
    stream_id: str
    key: str


@dataclass(slots=True)
class KeyChecked:
    """Outbound: the authoritative server answered a ``<db:verify/>`` we sent (see :meth:`OutboundStream.verify`)."""

    local: str  # the receiving server (us)
    remote: str  # the originating server it vouched for or not
    stream_id: str
    valid: bool


@dataclass(slots=True)
class StanzaReceived:
    stanza: Element  # its 'from' is in an authenticated domain, its 'to' in a served one
    remote: str


@dataclass(slots=True)
class StreamEnded:
    error: StreamError | None  # the error we sent, or None for an orderly close
    remote_error: str | None = None  # the condition of a stream error the peer sent


Event = StartTLS | Authenticated | VerifyKey | KeyChecked | StanzaReceived | StreamEnded


@dataclass(frozen=True, slots=True)
class S2SSettings:
    serves: Callable[[str], bool]  # is this domain ours (users, services)?
    secret: bytes  # the dialback secret (XEP-0185)
    tls_available: bool = True
    require_encryption: bool = True
    require_valid_certificates: bool = False  # no dialback: only peers whose certificate proves their domain
    allow_dialback: bool = True
    max_stanza_size: int = 262144
    max_depth: int = 64

    @property
    def dialback(self) -> bool:
        return self.allow_dialback and not self.require_valid_certificates


CertificateCheck = Callable[[str], bool]  # does the peer's certificate verify, and name this domain?


def _no_certificate(domain: str) -> bool:
    return False


class _Stream(StreamMachine[Event]):
    """What both directions share: the header, closing, the parser's events (a stream error from the peer ends
    the stream too); the output is StreamMachine's."""

    def __init__(self, settings: S2SSettings, tls_active: bool) -> None:
        self.settings = settings
        self.framing = ServerFraming(settings.max_stanza_size, settings.max_depth)
        self.tls_active = tls_active
        self.closed = False
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._header_sent = False

    def receive(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        try:
            for item in self.framing.feed(data):
                if self.closed:
                    break
                if item.__class__ is Element:
                    if item.name == "error" and item.ns == NS.STREAMS:  # type: ignore[union-attr]
                        self.close(remote_error=_stream_error_condition(item))  # type: ignore[arg-type]
                    else:
                        self._element(item)  # type: ignore[arg-type]
                elif isinstance(item, StreamOpened):
                    self._header(item)
                elif isinstance(item, StreamClosed):
                    self.close()
        except StreamError as e:
            self.close(e)
        return self._flush_events()

    def close(self, error: StreamError | None = None, remote_error: str | None = None) -> None:
        if self.closed:
            return
        if not self._header_sent:
            self._send_header({})
        if error is not None:
            self._out.append(self.framing.wrap("error", error.to_element().children))
        self._out.append(self.framing.footer())
        self.closed = True
        self._events.append(StreamEnded(error, remote_error))

    def _send_header(self, attrs: dict[str, str]) -> None:
        self._header_sent = True
        # The dialback prefix is declared on the header (XEP-0220 §2.1), as an attribute of ours.
        self._out.append(self.framing.header({"xmlns:db": NS_DIALBACK, **attrs, "version": "1.0"}))

    def _restart(self) -> None:
        self.framing.restart()
        self._header_sent = False

    def _check_header(self, opened: StreamOpened) -> None:
        if opened.name != "stream" or opened.ns != NS.STREAMS:
            raise StreamError("invalid-namespace", "the stream element must be stream:stream")
        if opened.default_ns != NS_SERVER:
            raise StreamError("invalid-namespace", "the content namespace must be jabber:server")
        if stream_version(opened.attrs.get("version", "0.9")) < (1, 0):
            raise StreamError("unsupported-version")


# --- inbound ----------------------------------------------------------------------
class InState(Enum):
    HEADER = auto()  # waiting for the peer's header (after each restart)
    FEATURES = auto()  # features sent: STARTTLS, SASL EXTERNAL, dialback
    TLS = auto()  # <proceed/> sent; the driver is upgrading the transport
    READY = auto()  # at least one domain authenticated: stanzas flow (more domains may be added by dialback)


class InboundStream(_Stream):
    def __init__(self, settings: S2SSettings, direct_tls: bool = False) -> None:
        super().__init__(settings, direct_tls)
        self.state = InState.HEADER
        self.stream_id = ""
        self.local = ""  # the domain the peer's header addressed
        self.remote = ""  # the domain the peer's header claimed (may be absent before authentication)
        self.authenticated: set[tuple[str, str]] = set()  # (remote, local) pairs proven on this stream
        self._certificate: CertificateCheck = _no_certificate
        self._pending: set[tuple[str, str]] = set()  # dialback keys out for verification

    def tls_started(self, certificate: CertificateCheck) -> None:
        if self.closed:
            return
        self.tls_active = True
        self._certificate = certificate
        self._restart()
        self.state = InState.HEADER

    def set_certificate(self, certificate: CertificateCheck) -> None:
        """Direct TLS: the handshake was done before the first byte."""
        self._certificate = certificate

    def dialback_checked(self, remote: str, local: str, valid: bool) -> list[Event]:
        """The authoritative server's verdict on a key from ``remote`` (XEP-0220 §2.4)."""
        if self.closed or (remote, local) not in self._pending:
            return []
        self._pending.discard((remote, local))
        verdict = "valid" if valid else "invalid"
        self._out.append(_db("result", local, remote, verdict))
        if valid:
            self.authenticated.add((remote, local))
            self.state = InState.READY
            self._events.append(Authenticated(local, remote, "dialback"))
        else:
            self.close(StreamError("not-authorized", f"the dialback key for {remote} is not valid"))
        return self._flush_events()

    def _header(self, opened: StreamOpened) -> None:
        if self.state is not InState.HEADER:
            raise StreamError("not-well-formed", "unexpected stream header")
        to = _domain(opened.attrs.get("to"))
        frm = _domain(opened.attrs.get("from"))
        if to and not self.local:
            self.local = to
        if frm and not self.remote:
            self.remote = frm
        self.stream_id = secrets.token_urlsafe(12)
        attrs = {"id": self.stream_id}
        if self.local:
            attrs["from"] = self.local
        if self.remote:
            attrs["to"] = self.remote
        self._send_header(attrs)
        self._check_header(opened)
        if not to or not self.settings.serves(to) or to != self.local:
            raise StreamError("host-unknown", f"this server does not serve {opened.attrs.get('to', 'the empty domain')}")
        if frm and frm != self.remote:
            raise StreamError("invalid-from", "the stream changed its 'from'")
        self._send_features()

    def _send_features(self) -> None:
        features = Element("features", NS.STREAMS)
        s = self.settings
        if self.authenticated:
            self.state = InState.READY
        else:
            self.state = InState.FEATURES
            if not self.tls_active and s.tls_available:
                starttls = features.add("starttls", NS.TLS)
                if s.require_encryption:
                    starttls.add("required", NS.TLS)
            if self.tls_active or not s.require_encryption:
                if self.remote and self._certificate(self.remote):
                    features.add("mechanisms", NS.SASL).add("mechanism", NS.SASL, text="EXTERNAL")
                if s.dialback:
                    features.add("dialback", NS_DIALBACK_FEATURE).add("errors", NS_DIALBACK_FEATURE)
        self._out.append(self.framing.wrap("features", features.children))

    def _element(self, el: Element) -> None:
        handler = _INBOUND.get((self.state, el.ns, el.name))
        if handler is not None:
            handler(self, el)
        elif el.ns == NS.CLIENT and el.name in _STANZA_NAMES:
            raise StreamError("not-authorized", "authenticate first")
        else:
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not expected now")

    def _starttls(self, el: Element) -> None:
        answer_starttls(self._out, not self.tls_active and self.settings.tls_available)
        self.state = InState.TLS
        self._events.append(StartTLS())

    def _auth(self, el: Element) -> None:
        # RFC 6120 §6.4.1 and RFC 4422 Appendix A: EXTERNAL with an authorization identity that is empty ("=")
        # or the domain the header claimed; the certificate proves it.
        if el.attrs.get("mechanism") != "EXTERNAL":
            self._sasl_failure("invalid-mechanism")
            return
        if not self.tls_active or not self.remote or not self._certificate(self.remote):
            self._sasl_failure("not-authorized")
            return
        try:
            text = el.text.strip()
            authzid = "" if text in ("", "=") else base64.b64decode(text, validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self._sasl_failure("incorrect-encoding")
            return
        if authzid and _domain(authzid) != self.remote:
            self._sasl_failure("invalid-authzid")
            return
        self._out.append(f"<success xmlns='{NS.SASL}'/>".encode())
        self.authenticated.add((self.remote, self.local))
        self._events.append(Authenticated(self.local, self.remote, "EXTERNAL"))
        self._restart()
        self.state = InState.HEADER

    def _sasl_failure(self, condition: str) -> None:
        self._out.append(f"<failure xmlns='{NS.SASL}'><{condition}/></failure>".encode())
        raise StreamError("not-authorized", "SASL EXTERNAL failed")

    def _db_result(self, el: Element) -> None:
        remote, local = _domain(el.attrs.get("from")), _domain(el.attrs.get("to"))
        key = el.text.strip()
        if not self.settings.dialback:
            self._out.append(_db("result", local, remote, "error", "cancel", "policy-violation"))
            raise StreamError("not-authorized", "dialback is not allowed here")
        if not self.tls_active and self.settings.require_encryption:
            raise StreamError("policy-violation", "TLS first")
        if not remote or not key:
            raise StreamError("improper-addressing", "a dialback key needs 'from', 'to' and a key")
        if not local or not self.settings.serves(local):
            self._out.append(_db("result", local, remote, "error", "cancel", "item-not-found"))
            return
        if (remote, local) in self.authenticated:
            self._out.append(_db("result", local, remote, "valid"))
            return
        if len(self._pending) >= MAX_PENDING_DIALBACK:
            raise StreamError("policy-violation", "too many dialback keys at once")
        self._pending.add((remote, local))
        self._events.append(VerifyKey(local, remote, self.stream_id, key))

    def _db_verify(self, el: Element) -> None:
        # We are the authoritative server: was this key made here for that stream (XEP-0220 §2.3)?
        receiving, originating = _domain(el.attrs.get("from")), _domain(el.attrs.get("to"))
        stream_id = el.attrs.get("id", "")
        if not originating or not self.settings.serves(originating):
            self._out.append(_db("verify", originating, receiving, "error", "cancel", "item-not-found", stream_id))
            return
        expected = dialback_key(self.settings.secret, receiving, originating, stream_id)
        valid = hmac.compare_digest(expected, el.text.strip())
        self._out.append(_db("verify", originating, receiving, "valid" if valid else "invalid", stream_id=stream_id))

    def _stanza(self, el: Element) -> None:
        try:
            frm, to = parse_jid(el.attrs["from"]), parse_jid(el.attrs["to"])
        except (KeyError, JIDError):
            raise StreamError("improper-addressing", "a stanza between servers needs valid 'from' and 'to'") from None
        if not self.settings.serves(to.domain):
            raise StreamError("host-unknown", f"this server does not serve {to.domain}")
        if (frm.domain, to.domain) not in self.authenticated:
            raise StreamError("invalid-from", f"{frm.domain} is not authenticated for {to.domain} on this stream")
        self._events.append(StanzaReceived(el, frm.domain))


_INBOUND: dict[tuple[InState, str, str], Callable[[InboundStream, Element], None]] = {
    (InState.FEATURES, NS.TLS, "starttls"): InboundStream._starttls,
    (InState.FEATURES, NS.SASL, "auth"): InboundStream._auth,
    (InState.FEATURES, NS_DIALBACK, "result"): InboundStream._db_result,
    (InState.FEATURES, NS_DIALBACK, "verify"): InboundStream._db_verify,
    (InState.READY, NS_DIALBACK, "result"): InboundStream._db_result,
    (InState.READY, NS_DIALBACK, "verify"): InboundStream._db_verify,
    (InState.READY, NS.CLIENT, "message"): InboundStream._stanza,
    (InState.READY, NS.CLIENT, "presence"): InboundStream._stanza,
    (InState.READY, NS.CLIENT, "iq"): InboundStream._stanza,
}


# --- outbound ---------------------------------------------------------------------
class OutState(Enum):
    HEADER = auto()  # our header sent, waiting for the peer's (after each restart)
    FEATURES = auto()  # waiting for the peer's features
    TLS = auto()  # <starttls/> sent, waiting for <proceed/>
    TLS_PENDING = auto()  # <proceed/> came; the driver is upgrading the transport
    SASL = auto()  # <auth mechanism='EXTERNAL'/> sent
    DIALBACK = auto()  # <db:result/> sent, waiting for the verdict
    READY = auto()  # authenticated: stanzas may be sent


class OutboundStream(_Stream):
    """A stream from ``local`` to ``remote``. ``present_certificate``: ours verifies for ``local`` (so SASL
    EXTERNAL is worth trying); the driver knows, since it holds the certificate and the trust store."""

    def __init__(
        self, settings: S2SSettings, local: str, remote: str, direct_tls: bool = False, present_certificate: bool = False
    ) -> None:
        super().__init__(settings, direct_tls)
        self.local = local
        self.remote = remote
        self.present_certificate = present_certificate
        self.state = OutState.HEADER
        self.peer_stream_id = ""
        self.peer_verified = direct_tls  # a direct TLS handshake verified the peer when policy needs it
        self._authenticated_once = False
        self._verifies: list[bytes] = []  # <db:verify/> asked for before the stream could carry them
        self._dialback_declared = False  # the peer's header declared the dialback prefix (servers before XEP-0220 features)
        self._dialback_offered = False

    def open(self) -> None:
        """Our side speaks first."""
        self._send_header({"from": self.local, "to": self.remote})

    def tls_started(self, peer_verified: bool) -> None:
        if self.closed:
            return
        self.tls_active = True
        self.peer_verified = peer_verified
        self._restart()
        self.state = OutState.HEADER
        self.open()

    def send(self, stanza: Element) -> None:
        assert self.state is OutState.READY
        self._out.append(stanza.serialize(NS.CLIENT).encode())

    def verify(self, receiving: str, stream_id: str, key: str) -> None:
        """Ask this (authoritative) peer whether it made ``key`` for a stream it opened to ``receiving``."""
        request = _db("verify", receiving, self.remote, stream_id=stream_id, text=key)
        if self._can_verify():
            self._out.append(request)
        else:
            self._verifies.append(request)

    def _can_verify(self) -> bool:
        return self.state in (OutState.SASL, OutState.DIALBACK, OutState.READY)

    def _header(self, opened: StreamOpened) -> None:
        if self.state is not OutState.HEADER:
            raise StreamError("not-well-formed", "unexpected stream header")
        self._check_header(opened)
        frm = _domain(opened.attrs.get("from"))
        if frm and frm != self.remote:
            raise StreamError("invalid-from", f"we opened a stream to {self.remote}, not {frm}")
        self.peer_stream_id = opened.attrs.get("id", "")
        if not self.peer_stream_id:
            raise StreamError("invalid-xml", "the stream header has no id")
        self._dialback_declared = opened.attrs.get("xmlns:db") == NS_DIALBACK
        self.state = OutState.FEATURES

    def _element(self, el: Element) -> None:
        handler = _OUTBOUND.get((self.state, el.ns, el.name))
        if handler is not None:
            handler(self, el)
        else:
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not expected now")

    def _features(self, el: Element) -> None:
        s = self.settings
        if not self.tls_active:
            if el.find("starttls", NS.TLS) is not None and s.tls_available:
                self._out.append(f"<starttls xmlns='{NS.TLS}'/>".encode())
                self.state = OutState.TLS
                return
            if s.require_encryption:
                raise StreamError("policy-violation", f"{self.remote} does not offer TLS")
        elif self._authenticated_once:
            self._ready("EXTERNAL")
            return
        if s.require_valid_certificates and not self.peer_verified:
            raise StreamError("policy-violation", f"the certificate of {self.remote} does not verify")
        mechanisms = el.find("mechanisms", NS.SASL)
        offered = {m.text.strip() for m in mechanisms.find_all("mechanism", NS.SASL)} if mechanisms is not None else set()
        self._dialback_offered = el.find("dialback", NS_DIALBACK_FEATURE) is not None or self._dialback_declared
        if "EXTERNAL" in offered and self.present_certificate and self.tls_active:
            payload = base64.b64encode(self.local.encode()).decode()
            self._out.append(f"<auth xmlns='{NS.SASL}' mechanism='EXTERNAL'>{payload}</auth>".encode())
            self.state = OutState.SASL
        else:
            self._dialback()
        self._send_verifies()

    def _dialback(self) -> None:
        if not (self.settings.dialback and self._dialback_offered):
            raise StreamError("policy-violation", f"no way to authenticate to {self.remote}")
        key = dialback_key(self.settings.secret, self.remote, self.local, self.peer_stream_id)
        self._out.append(_db("result", self.local, self.remote, text=key))
        self.state = OutState.DIALBACK

    def _send_verifies(self) -> None:
        if self._can_verify():
            self._out.extend(self._verifies)
            self._verifies.clear()

    def _proceed(self, el: Element) -> None:
        self.state = OutState.TLS_PENDING
        self._events.append(StartTLS())

    def _tls_failure(self, el: Element) -> None:
        self.close(remote_error="tls-failure")

    def _sasl_success(self, el: Element) -> None:
        self._authenticated_once = True
        self._restart()
        self.state = OutState.HEADER
        self.open()

    def _sasl_failure(self, el: Element) -> None:
        # Our certificate did not convince the peer; dialback may still (RFC 6120 §6.4.5, XEP-0220 §2.1).
        self._dialback()

    def _db_result(self, el: Element) -> None:
        if _domain(el.attrs.get("from")) != self.remote or _domain(el.attrs.get("to")) != self.local:
            raise StreamError("improper-addressing", "a dialback verdict for other domains")
        verdict = el.attrs.get("type")
        if verdict == "valid":
            self._ready("dialback")
        else:
            condition = "not-authorized" if verdict == "invalid" else _db_error(el)
            self.close(remote_error=condition)

    def _db_verify(self, el: Element) -> None:
        verdict = el.attrs.get("type")
        if verdict not in ("valid", "invalid", "error"):
            raise StreamError("invalid-xml", "a dialback answer needs a type")
        self._events.append(
            KeyChecked(_domain(el.attrs.get("to")), _domain(el.attrs.get("from")), el.attrs.get("id", ""), verdict == "valid")
        )

    def _ready(self, method: str) -> None:
        self.state = OutState.READY
        self._send_verifies()
        self._events.append(Authenticated(self.local, self.remote, method))


_OUTBOUND: dict[tuple[OutState, str, str], Callable[[OutboundStream, Element], None]] = {
    (OutState.FEATURES, NS.STREAMS, "features"): OutboundStream._features,
    (OutState.TLS, NS.TLS, "proceed"): OutboundStream._proceed,
    (OutState.TLS, NS.TLS, "failure"): OutboundStream._tls_failure,
    (OutState.SASL, NS.SASL, "success"): OutboundStream._sasl_success,
    (OutState.SASL, NS.SASL, "failure"): OutboundStream._sasl_failure,
    (OutState.SASL, NS_DIALBACK, "verify"): OutboundStream._db_verify,
    (OutState.DIALBACK, NS_DIALBACK, "result"): OutboundStream._db_result,
    (OutState.DIALBACK, NS_DIALBACK, "verify"): OutboundStream._db_verify,
    (OutState.READY, NS_DIALBACK, "verify"): OutboundStream._db_verify,
}


# --- helpers ------------------------------------------------------------------------
def _domain(text: str | None) -> str:
    if not text:
        return ""
    try:
        return prep_domain(text)
    except JIDError:
        return ""


def _db(
    name: str,
    frm: str,
    to: str,
    verdict: str | None = None,
    error_type: str = "",
    condition: str = "",
    stream_id: str = "",
    text: str = "",
) -> bytes:
    """A dialback element (XEP-0220 §2): ``<result/>`` or ``<verify/>`` in jabber:server:dialback."""
    el = Element(name, NS_DIALBACK, {"from": frm, "to": to})
    if stream_id:
        el.attrs["id"] = stream_id
    if verdict:
        el.attrs["type"] = verdict
    if condition:
        el.add("error", NS_SERVER, {"type": error_type}).add(condition, NS.STANZA_ERRORS)
    if text:
        el.children.append(text)
    # With the db: prefix the stream header declared, as XEP-0220 writes it: ejabberd reads dialback elements by
    # that prefixed name and silently drops <result xmlns='jabber:server:dialback'/>, the same element unprefixed.
    body = el.serialize(NS_DIALBACK)
    if body.endswith(f"</{name}>"):
        body = body[: -len(name) - 3] + f"</db:{name}>"
    return ("<db:" + body[1:]).encode()


def _stream_error_condition(el: Element) -> str:
    return next((c.name for c in el.elements() if c.ns == NS.STREAM_ERRORS and c.name != "text"), "undefined-condition")


def _db_error(el: Element) -> str:
    error = el.find("error", NS.CLIENT)
    if error is not None:
        for c in error.elements():
            if c.ns == NS.STANZA_ERRORS:
                return c.name
    return "undefined-condition"
