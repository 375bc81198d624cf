"""Stream and stanza errors as values with names (RFC 6120 §4.9 and §8.3)."""

from __future__ import annotations

from sakari.xml import ns as NS
from sakari.xml.element import Element

STREAM_CONDITIONS = frozenset(
    ["bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown", "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset", "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition", "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version"]
)

# RFC 6120 §8.3.3: each defined condition with the error type it is normally sent with.
STANZA_CONDITIONS: dict[str, str] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


class StreamError(Exception):
    """A fault that ends one stream with a defined condition."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text

    def to_element(self) -> Element:
        el = Element("error", NS.STREAMS)
        el.add(self.condition, NS.STREAM_ERRORS)
        if self.text:
            el.add("text", NS.STREAM_ERRORS, {"xml:lang": "en"}, self.text)
        return el


# XEP-0086 legacy error codes. Deprecated, yet some clients still read only them: profanity publishes its
# first OMEMO device list only when fetching the missing one fails with code 404.
LEGACY_CODES = {
    "bad-request": "400", "conflict": "409", "feature-not-implemented": "501", "forbidden": "403", "gone": "302",
    "internal-server-error": "500", "item-not-found": "404", "jid-malformed": "400", "not-acceptable": "406",
    "not-allowed": "405", "not-authorized": "401", "payment-required": "402", "recipient-unavailable": "404",
    "redirect": "302", "registration-required": "407", "remote-server-not-found": "404",
    "remote-server-timeout": "504", "resource-constraint": "500", "service-unavailable": "503",
    "subscription-required": "407", "undefined-condition": "500", "unexpected-request": "400",
}


class StanzaError(Exception):
    """Raised by a handler; the core answers the sender with the matching error stanza."""

    def __init__(self, condition: str, text: str | None = None, type: str | None = None, app: Element | None = None) -> None:
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.type = type or STANZA_CONDITIONS[condition]
        self.app = app  # an application-specific condition (RFC 6120 §8.3.3), e.g. XEP-0363's <file-too-large/>

    def to_element(self, by: str | None = None) -> Element:
        attrs = {"type": self.type}
        code = LEGACY_CODES.get(self.condition)
        if code is not None:
            attrs["code"] = code
        if by:
            attrs["by"] = by
        el = Element("error", NS.CLIENT, attrs)
        el.add(self.condition, NS.STANZA_ERRORS)
        if self.text:
            el.add("text", NS.STANZA_ERRORS, {"xml:lang": "en"}, self.text)
        if self.app is not None:
            el.append(self.app)
        return el


def error_reply(stanza: Element, error: StanzaError, by: str | None = None) -> Element:
    """The error stanza answering ``stanza``: addresses swapped, original payload kept (RFC 6120 §8.3.1)."""
    attrs = {"type": "error"}
    for src, dst in (("from", "to"), ("to", "from")):
        value = stanza.attrs.get(src)
        if value is not None:
            attrs[dst] = value
    if "id" in stanza.attrs:
        attrs["id"] = stanza.attrs["id"]
    reply = Element(stanza.name, stanza.ns, attrs)
    if stanza.name != "iq":
        reply.children = [c for c in stanza.children if c.__class__ is Element and c.name != "error"]  # type: ignore[union-attr]
    reply.children.append(error.to_element(by))
    return reply
