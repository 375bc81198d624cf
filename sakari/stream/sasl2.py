"""What SASL2 (XEP-0388) adds to the SASL mechanisms of :mod:`sakari.stream.sasl`, sans-IO.

- The ``<authenticate/>`` request: mechanism, initial response, the client's ``<user-agent id=…>``,
  and the inline requests that ride on it: a Bind 2 request (XEP-0386), FAST token requests and
  token use (XEP-0484), and elements modules take before binding (XEP-0198 ``<resume/>``).
- The Hashed Token mechanisms of FAST (draft-schmaus-kitten-sasl-ht): one message each way, an
  HMAC over "Initiator"/"Responder" and the channel binding data, keyed by the token.
- The server-chosen resource of a Bind 2 request: stable for one client of one account, without
  showing the client's id.

SCRAM and PLAIN are not repeated here: the c2s machine runs the same :class:`ScramServer` and
PLAIN check for both SASL profiles, and only the framing of their messages differs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sakari.credentials import Credentials
from sakari.jid import JIDError, prep_resource
from sakari.stream.sasl import Identity, SaslFailure
from sakari.xml.element import Element

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"

# FAST mechanisms, with the channel binding each one covers (None: no binding).
HT_MECHANISMS: dict[str, str | None] = {"HT-SHA-256-ENDP": "tls-server-end-point", "HT-SHA-256-NONE": None}
MAX_TAG = 32  # characters of a Bind 2 tag kept in the resource: it names software, not a person
MAX_USER_AGENT_ID = 256


@dataclass(slots=True)
class Sasl2Request:
    """The parts of ``<authenticate/>`` besides the SASL exchange itself."""

    mechanism: str
    initial: bytes | None  # None: no <initial-response/>, the mechanism starts with a challenge
    client_id: str | None = None  # <user-agent id=…>: one installation of a client, stable across logins
    bind: Element | None = None  # <bind xmlns='urn:xmpp:bind:0'/>, done once authenticated
    request_token: str | None = None  # the FAST mechanism a new token is asked for
    invalidate_token: bool = False  # <fast invalidate='true'/>: the token used here is spent
    # Children the stream machine does not know itself, in order: inline requests that modules take
    # (XEP-0198 <resume/>), picked out by the stream's settings.
    others: list[Element] = field(default_factory=list)


def parse_authenticate(el: Element) -> Sasl2Request:
    request = Sasl2Request(el.attrs.get("mechanism", ""), None)
    for child in el.children:
        if child.__class__ is not Element:
            continue
        ns, name = child.ns, child.name  # type: ignore[union-attr]
        if ns == NS_SASL2 and name == "initial-response":
            request.initial = decode(child.text)  # type: ignore[union-attr]
        elif ns == NS_SASL2 and name == "user-agent":
            client_id = child.attrs.get("id", "")  # type: ignore[union-attr]
            request.client_id = client_id[:MAX_USER_AGENT_ID] or None
        elif ns == NS_BIND2 and name == "bind":
            request.bind = child  # type: ignore[assignment]
        elif ns == NS_FAST and name == "request-token":
            request.request_token = child.attrs.get("mechanism", "")  # type: ignore[union-attr]
        elif ns == NS_FAST and name == "fast":
            request.invalidate_token = child.attrs.get("invalidate") in ("true", "1")  # type: ignore[union-attr]
        elif ns != NS_SASL2:
            request.others.append(child)  # type: ignore[arg-type]
    return request


def decode(text: str) -> bytes:
    """SASL2 data: base64, where an empty element is empty data (no "=" convention as in SASL1)."""
    text = text.strip()
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SaslFailure("incorrect-encoding") from None


def data_element(name: str, data: bytes) -> Element:
    return Element(name, NS_SASL2, children=[base64.b64encode(data).decode()])


def failure_element(failure: SaslFailure) -> Element:
    el = Element("failure", NS_SASL2)
    el.add(failure.condition, "urn:ietf:params:xml:ns:xmpp-sasl")
    if failure.text:
        el.add("text", NS_SASL2, text=failure.text)
    return el


# --- Bind 2 -------------------------------------------------------------------------------
def bind2_resource(secret: bytes, user: str, client_id: str | None, tag: str, random_part: str) -> str:
    """``tag.id``: with the client's user-agent id, ``id`` is derived from it and the account under a server
    secret, so the same client gets the same resource on every login (and replaces its own stale session)
    while the resource does not reveal the id; without one, ``random_part``."""
    try:
        tag = prep_resource(tag[:MAX_TAG]) if tag else ""
    except JIDError:
        tag = ""
    if client_id is not None and secret:
        digest = hmac.digest(secret, b"bind2-resource\0" + user.encode() + b"\0" + client_id.encode(), "sha256")
        random_part = base64.b32encode(digest[:10]).decode().lower()
    return f"{tag}.{random_part}" if tag else random_part


# --- FAST: the Hashed Token mechanisms -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenCheck:
    """A token store's verdict on a FAST login."""

    ok: bool
    condition: str = "not-authorized"  # when not ok: credentials-expired for a token that is no longer trusted
    rotate: bool = False  # ok, but the token nears its expiry: give the client a new one


class TokenStore(Protocol):
    """Keeps FAST tokens (the fast module); the c2s driver asks it during SASL2 logins."""

    async def check(
        self, user: str, host: str, client_id: str, mechanism: str, creds: Credentials, verify: Callable[[bytes], bool]
    ) -> TokenCheck:
        """Whether one of the client's tokens for ``mechanism`` passes ``verify`` (given each stored key)."""
        ...

    async def issue(self, user: str, host: str, client_id: str, mechanism: str, creds: Credentials) -> Element:
        """A new token for the client: the ``<token/>`` element for ``<success/>``."""
        ...

    async def invalidate(self, user: str, host: str, client_id: str) -> None: ...


def token_key(token: str) -> bytes:
    """What is stored of a token. HMAC hashes a key longer than its block (64 bytes for SHA-256) before use
    (RFC 2104 §2), so for such tokens HMAC(token, m) == HMAC(SHA-256(token), m): the server checks a login
    with the hash, and the token itself is never stored."""
    return hashlib.sha256(token.encode()).digest()


class HashedToken:
    """One HT exchange: the client's single message is ``authcid NUL HMAC(token, "Initiator" || cb-data)``;
    the server answers ``HMAC(token, "Responder" || cb-data)`` as additional data."""

    def __init__(self, mechanism: str, channel_bindings: dict[str, bytes]) -> None:
        binding = HT_MECHANISMS[mechanism]
        if binding is not None and binding not in channel_bindings:
            raise SaslFailure("invalid-mechanism", "no channel binding on this connection")
        self.mechanism = mechanism
        self.cb_data = channel_bindings[binding] if binding is not None else b""
        self.proof = b""
        self.key: bytes | None = None

    def start(self, message: bytes) -> Identity:
        authcid, sep, proof = message.partition(b"\x00")
        if not sep or not authcid or len(proof) != hashlib.sha256().digest_size:
            raise SaslFailure("malformed-request")
        try:
            username = authcid.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request") from None
        self.proof = proof
        return Identity(username, None)

    def verify(self, key: bytes) -> bool:
        """For the token store: does the client's proof come from this stored key? (constant time)"""
        if hmac.compare_digest(hmac.digest(key, b"Initiator" + self.cb_data, "sha256"), self.proof):
            self.key = key
            return True
        return False

    def responder(self) -> bytes:
        assert self.key is not None
        return hmac.digest(self.key, b"Responder" + self.cb_data, "sha256")
