"""JIDs prepared per RFC 7622: PRECIS profiles (precis-i18n) and IDNA domains (idna).

Parsing is on the hot path (every stanza's to/from), and preparation is
costly, so results are cached by input string.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import idna
import precis_i18n

from sakari.xml.errors import StanzaError

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_RESOURCE = precis_i18n.get_profile("OpaqueString")

_PLAIN_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-+")
_PLAIN_DOMAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
# RFC 7622 §3.3.1: these may not appear in a localpart even though PRECIS allows them.
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@")
# RFC 7622 §3.2 strips a final label separator; IDNA (UTS #46) takes these full stops for one, as it does ".".
_DOTS = frozenset(".\u3002\uff0e\uff61")


class JIDError(StanzaError):
    def __init__(self, text: str) -> None:
        super().__init__("jid-malformed", text)


class JID:
    """A prepared JID. Immutable; its bare form and text are computed once, since every stanza asks."""

    __slots__ = ("local", "domain", "resource", "bare", "text", "_hash")

    local: str
    domain: str
    resource: str
    bare: JID
    text: str

    def __init__(self, local: str, domain: str, resource: str = "") -> None:
        # Set past the guard below: our own __setattr__ would be a Python call per field, and JIDs are made per stanza.
        init = object.__setattr__
        init(self, "local", local)
        init(self, "domain", domain)
        init(self, "resource", resource)
        init(self, "bare", JID(local, domain) if resource else self)
        text = f"{local}@{domain}" if local else domain
        text = f"{text}/{resource}" if resource else text
        init(self, "text", text)
        init(self, "_hash", hash(text))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"JID({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not JID:
            return NotImplemented
        return self.text == other.text  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JID is immutable")

    def __reduce__(self) -> tuple[type[JID], tuple[str, str, str]]:
        # copy, deepcopy and pickle build a JID anew, through __init__.
        return JID, (self.local, self.domain, self.resource)


def prep_local(local: str) -> str:
    if not local:
        raise JIDError("empty localpart")
    if set(local) <= _PLAIN_LOCAL:
        result = local
    else:
        try:
            result = _USERNAME.enforce(local)
        except UnicodeError as e:
            raise JIDError(f"invalid localpart: {e}") from None
        if _LOCAL_FORBIDDEN & set(result):
            raise JIDError("localpart contains a forbidden character")
    if len(result.encode()) > 1023:
        raise JIDError("localpart too long")
    return result


def prep_domain(domain: str) -> str:
    if domain[-1:] in _DOTS:
        domain = domain[:-1]
    if not domain:
        raise JIDError("empty domainpart")
    if domain.startswith("["):
        if not domain.endswith("]"):
            raise JIDError("invalid IPv6 address literal")
        try:
            address = ipaddress.IPv6Address(domain[1:-1])
        except ValueError:
            raise JIDError("invalid IPv6 address literal") from None
        if address.scope_id is not None:
            # RFC 7622 takes IP-literal from RFC 3986, which has no zone IDs: they only mean something on one host.
            raise JIDError("IPv6 zone IDs are not allowed in a JID")
        return f"[{address.compressed}]"
    lowered = domain.lower()
    if set(lowered) <= _PLAIN_DOMAIN and "xn--" not in lowered:
        labels = lowered.split(".")
        if any(not label or len(label) > 63 or label[0] == "-" or label[-1] == "-" for label in labels):
            raise JIDError("invalid domainpart")
        result = lowered
    else:
        try:
            # A-labels and U-labels of one name are the same domain: keep the U-label form.
            result = idna.decode(idna.encode(domain, uts46=True))
        except (idna.IDNAError, UnicodeError) as e:
            raise JIDError(f"invalid domainpart: {e}") from None
        if result.endswith("."):
            # A trailing dot the mapping made (a second "." or an ideographic full stop "。") is one more empty
            # label: kept, the prepared JID would not parse back to itself (its dot is stripped on the way in).
            raise JIDError("invalid domainpart: empty label")
    if len(result.encode()) > 1023:
        raise JIDError("invalid domainpart")
    return result


def prep_resource(resource: str) -> str:
    if not resource:
        raise JIDError("empty resourcepart")
    if resource.isascii() and resource.isprintable():
        result = resource
    else:
        try:
            result = _RESOURCE.enforce(resource)
        except UnicodeError as e:
            raise JIDError(f"invalid resourcepart: {e}") from None
    if len(result.encode()) > 1023:
        raise JIDError("resourcepart too long")
    return result


@lru_cache(maxsize=65536)
def parse_jid(text: str) -> JID:
    """Parse and prepare a JID string; raises JIDError (jid-malformed)."""
    rest, slash, resource = text.partition("/")
    if slash and not resource:
        raise JIDError("empty resourcepart")
    local, at, domain = rest.rpartition("@")
    if not at:
        domain = rest
    elif not local:
        raise JIDError("empty localpart")
    return JID(
        prep_local(local) if at else "",
        prep_domain(domain),
        prep_resource(resource) if slash else "",
    )
