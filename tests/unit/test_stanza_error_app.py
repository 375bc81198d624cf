"""Stanza errors may carry an application-specific condition (RFC 6120 §8.3.3)."""

from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, error_reply


def test_application_condition_follows_the_defined_condition_and_text():
    app = Element("file-too-large", "urn:xmpp:http:upload:0")
    app.add("max-file-size", text="1024")
    iq = Element("iq", "jabber:client", {"type": "get", "id": "u1", "from": "a@localhost/r", "to": "upload.localhost"})
    error = error_reply(iq, StanzaError("not-acceptable", "too big", app=app)).find("error", "jabber:client")
    assert error is not None
    assert [(c.name, c.ns) for c in error.children] == [
        ("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas"),
        ("text", "urn:ietf:params:xml:ns:xmpp-stanzas"),
        ("file-too-large", "urn:xmpp:http:upload:0"),
    ]
    assert error.attrs["type"] == "modify"
