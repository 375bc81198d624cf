"""Iq payloads that modules take before authentication (XEP-0077 in-band registration), sans-IO."""

from __future__ import annotations

from sakari.stream.c2s import PreAuthReceived
from sakari.xml.element import Element
from test_c2s_negotiation import SASL, Client, q, scram_login

REGISTER = "jabber:iq:register"
PRE_AUTH = frozenset({(REGISTER, "query")})


def test_a_registered_iq_before_authentication_is_handed_to_the_driver_and_answered_on_the_stream() -> None:
    client = Client(pre_auth=PRE_AUTH)
    client.starttls()
    (event,) = client.send(f"<iq type='get' id='r1'><query xmlns='{REGISTER}'/></iq>")
    assert isinstance(event, PreAuthReceived) and event.iq.attrs["id"] == "r1"
    assert client.take() == []  # the module answers, not the stream machine
    client.stream.send(Element("iq", "jabber:client", {"type": "result", "id": "r1"}))
    client.after([])
    assert client.last().get("id") == "r1"
    # SASL still follows as usual on the same stream.
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")


def test_before_tls_when_encryption_is_required_the_iq_ends_the_stream() -> None:
    client = Client(pre_auth=PRE_AUTH)
    client.open()
    assert client.send(f"<iq type='set' id='r1'><query xmlns='{REGISTER}'/></iq>")[-1].error.condition == "not-authorized"


def test_without_tls_where_encryption_is_optional_the_iq_is_taken() -> None:
    client = Client(pre_auth=PRE_AUTH, require_encryption=False)
    client.open()
    (event,) = client.send(f"<iq type='get' id='r1'><query xmlns='{REGISTER}'/></iq>")
    assert isinstance(event, PreAuthReceived)


def test_an_iq_no_module_registered_before_authentication_ends_the_stream() -> None:
    client = Client(pre_auth=PRE_AUTH)
    client.starttls()
    assert client.send("<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")[-1].error.condition == "not-authorized"
    assert client.server_closed
