"""Stanza errors carry the XEP-0086 legacy code beside the RFC 6120 condition, for clients that read only it."""

from sakari.xml.errors import STANZA_CONDITIONS, StanzaError, error_reply
from sakari.xml.element import Element


def test_item_not_found_carries_code_404_beside_its_condition():
    reply = error_reply(Element("iq", attrs={"type": "get", "id": "1"}), StanzaError("item-not-found"))
    error = reply.find("error")
    assert error is not None and error.attrs["code"] == "404" and error.attrs["type"] == "cancel"
    assert error.find("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas") is not None


def test_every_condition_with_a_legacy_code_gets_a_three_digit_one():
    codes = {c: StanzaError(c).to_element().attrs.get("code") for c in STANZA_CONDITIONS}
    assert codes["service-unavailable"] == "503" and codes["forbidden"] == "403"
    assert all(code is None or (len(code) == 3 and code.isdigit()) for code in codes.values())
