"""The XEP-0114 component stream, sans-IO: header, handshake, stanzas; bytes in, events and bytes out."""

from __future__ import annotations

import re

import pytest

from sakari.stream.component import (
    Authenticated,
    ComponentStream,
    StanzaReceived,
    State,
    StreamEnded,
    handshake_digest,
)
from sakari.xml import ns as NS
from sakari.xml.element import Element

SECRETS = {"irc.example.org": "s3cret", "matrix.example.org": "other"}


def header(to: str = "irc.example.org", ns: str = "jabber:component:accept") -> bytes:
    return (
        f"<stream:stream xmlns='{ns}' xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>"
    ).encode()


def opened(to: str = "irc.example.org") -> tuple[ComponentStream, bytes]:
    stream = ComponentStream(SECRETS)
    assert stream.receive(header(to)) == []
    return stream, stream.data_to_send()


def authenticated(to: str = "irc.example.org") -> ComponentStream:
    stream, _ = opened(to)
    digest = handshake_digest(stream.stream_id, SECRETS[to])
    assert stream.receive(f"<handshake>{digest}</handshake>".encode()) == [Authenticated(to)]
    assert stream.data_to_send() == b"<handshake/>"
    return stream


def error_of(out: bytes) -> str:
    m = re.search(rb"<stream:error><([a-z-]+) xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"", out)
    assert m, out
    return m.group(1).decode()


def test_handshake_in_upper_case_hex_is_accepted_too() -> None:
    stream, _ = opened()
    digest = handshake_digest(stream.stream_id, SECRETS["irc.example.org"]).upper()
    assert stream.receive(f"<handshake> {digest} </handshake>".encode()) == [Authenticated("irc.example.org")]


def test_header_answers_from_the_component_domain_with_a_stream_id() -> None:
    stream, out = opened()
    assert b"xmlns='jabber:component:accept'" in out
    assert b'from="irc.example.org"' in out and f'id="{stream.stream_id}"'.encode() in out
    assert stream.state is State.HANDSHAKE


def test_right_handshake_authenticates_and_stanzas_flow_as_jabber_client() -> None:
    stream = authenticated()
    events = stream.receive(b"<message to='a@example.org' from='u@irc.example.org'><body>hi</body></message>")
    (event,) = events
    assert isinstance(event, StanzaReceived)
    assert event.stanza.ns == NS.CLIENT and event.stanza.find("body", NS.CLIENT) is not None


def test_foreign_namespaces_inside_a_stanza_are_kept() -> None:
    stream = authenticated()
    (event,) = stream.receive(
        b"<message to='example.org'><privilege xmlns='urn:xmpp:privilege:2'>"
        b"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@example.org'/>"
        b"</forwarded></privilege></message>"
    )
    assert isinstance(event, StanzaReceived)
    forwarded = event.stanza.find("privilege", "urn:xmpp:privilege:2").find("forwarded", "urn:xmpp:forward:0")
    assert forwarded.find("message", NS.CLIENT) is not None


def test_stanzas_go_out_in_the_component_namespace() -> None:
    stream = authenticated()
    message = Element("message", NS.CLIENT, {"to": "u@irc.example.org"})
    message.add("body", text="hello")
    stream.send(message)
    out = stream.data_to_send()
    assert out == b'<message to="u@irc.example.org"><body>hello</body></message>'  # no xmlns: the stream's own
    # ... and the component reads it back in jabber:component:accept, which a second stream shows:
    echo = authenticated()
    (event,) = echo.receive(out)
    assert event.stanza.child_text("body") == "hello"


def test_wrong_handshake_ends_the_stream_with_not_authorized() -> None:
    stream, _ = opened()
    events = stream.receive(f"<handshake>{handshake_digest(stream.stream_id, 'guess')}</handshake>".encode())
    assert [e.__class__ for e in events] == [StreamEnded]
    assert error_of(stream.data_to_send()) == "not-authorized"
    assert stream.state is State.CLOSED


def test_the_secret_of_another_component_does_not_open_this_one() -> None:
    stream, _ = opened("irc.example.org")
    stream.receive(f"<handshake>{handshake_digest(stream.stream_id, SECRETS['matrix.example.org'])}</handshake>".encode())
    assert error_of(stream.data_to_send()) == "not-authorized"


def test_unconfigured_domain_gets_host_unknown() -> None:
    stream = ComponentStream(SECRETS)
    (event,) = stream.receive(header("nobody.example.org"))
    assert isinstance(event, StreamEnded) and event.error.condition == "host-unknown"
    assert error_of(stream.data_to_send()) == "host-unknown"


def test_client_namespace_is_refused() -> None:
    stream = ComponentStream(SECRETS)
    (event,) = stream.receive(header(ns="jabber:client"))
    assert event.error.condition == "invalid-namespace"


def test_stanza_before_the_handshake_is_not_authorized() -> None:
    stream, _ = opened()
    (event,) = stream.receive(b"<message to='a@example.org'/>")
    assert event.error.condition == "not-authorized"


@pytest.mark.parametrize("element", [b"<handshake>x</handshake>", b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"])
def test_anything_but_stanzas_after_the_handshake_is_unsupported(element: bytes) -> None:
    stream = authenticated()
    (event,) = stream.receive(element)
    assert event.error.condition == "unsupported-stanza-type"


def test_component_closing_its_stream_is_answered_with_ours() -> None:
    stream = authenticated()
    (event,) = stream.receive(b"</stream:stream>")
    assert event == StreamEnded(None)
    assert stream.data_to_send() == b"</stream:stream>"


def test_each_stream_gets_its_own_id() -> None:
    assert opened()[0].stream_id != opened()[0].stream_id
