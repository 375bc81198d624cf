"""Stream framings, sans-IO: TCP (one XML document, RFC 6120 §4) and WebSocket (RFC 7395, one element per message).

What a framing writes is read back with ElementTree, an independent parser.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sakari.stream.framing import NS_FRAMING, TcpFraming, WebSocketFraming
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamClosed, StreamOpened

CLIENT = "jabber:client"
STREAMS = "http://etherx.jabber.org/streams"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
ATTRS = {"from": "example.org", "id": "abc", "version": "1.0", "xml:lang": "en"}
TCP_HEADER = (
    f"<?xml version='1.0'?><stream:stream xmlns='{CLIENT}' xmlns:stream='{STREAMS}' to='example.org' version='1.0'>"
).encode()


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def features() -> list[Element | str]:
    f = Element("features", STREAMS)
    f.add("bind", BIND)
    return f.children


# --- TCP ------------------------------------------------------------------------------------


def test_tcp_framing_turns_a_byte_stream_into_opened_elements_and_closed() -> None:
    framing = TcpFraming(10000, 16)
    events = framing.feed(TCP_HEADER + b"<message to='a@example.org'><body>hi</bo")
    assert len(events) == 1 and isinstance(events[0], StreamOpened)
    assert events[0].attrs["to"] == "example.org" and events[0].default_ns == CLIENT
    (message,) = framing.feed(b"dy></message>")
    assert isinstance(message, Element) and message.ns == CLIENT and message.child_text("body") == "hi"
    assert framing.feed(b"</stream:stream>") == [StreamClosed()]


def test_tcp_framing_restart_begins_a_new_document() -> None:
    framing = TcpFraming(10000, 16)
    framing.feed(TCP_HEADER)
    framing.restart()
    (opened,) = framing.feed(TCP_HEADER)  # a second header is the start of the new stream, not an error
    assert isinstance(opened, StreamOpened)


def test_tcp_framing_output_is_one_well_formed_document() -> None:
    framing = TcpFraming(10000, 16)
    error = StreamError("host-unknown", "no").to_element()
    data = framing.header(ATTRS) + framing.wrap("features", features()) + framing.wrap("error", error.children) + framing.footer()
    root = ET.fromstring(data)
    assert root.tag == q(STREAMS, "stream") and root.get("from") == "example.org" and root.get("id") == "abc"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    feats, err = list(root)
    assert feats.tag == q(STREAMS, "features") and feats.find(q(BIND, "bind")) is not None
    assert err.tag == q(STREAMS, "error") and err.find(q(STREAM_ERRORS, "host-unknown")) is not None


def test_tcp_framing_escapes_attribute_values_in_its_header() -> None:
    data = TcpFraming(10000, 16).header({"from": "a'b&c"}) + b"</stream:stream>"
    assert ET.fromstring(data).get("from") == "a'b&c"


def test_tcp_framing_enforces_the_stanza_size_limit() -> None:
    framing = TcpFraming(200, 16)
    framing.feed(TCP_HEADER)
    with pytest.raises(StreamError) as caught:
        framing.feed(b"<message><body>" + b"x" * 300 + b"</body></message>")
    assert caught.value.condition == "policy-violation"


# --- WebSocket (RFC 7395) -------------------------------------------------------------------


def test_websocket_open_is_a_stream_header_with_its_attributes() -> None:
    framing = WebSocketFraming(10000, 16)
    (opened,) = framing.feed(f"<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>".encode())
    assert isinstance(opened, StreamOpened)
    assert (opened.name, opened.ns, opened.default_ns) == ("stream", STREAMS, CLIENT)
    assert opened.attrs["to"] == "example.org" and opened.attrs["version"] == "1.0"


def test_websocket_messages_are_elements_each_and_close_ends_the_stream() -> None:
    framing = WebSocketFraming(10000, 16)
    framing.feed(f"<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>".encode())
    (message,) = framing.feed(f"<message xmlns='{CLIENT}' to='a@example.org'><body>hi</body></message>".encode())
    assert isinstance(message, Element) and message.ns == CLIENT and message.child_text("body") == "hi"
    (iq,) = framing.feed(f"<iq xmlns='{CLIENT}' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>".encode())
    assert iq.name == "iq" and iq.first_child().name == "ping"  # type: ignore[union-attr]
    assert framing.feed(f"<close xmlns='{NS_FRAMING}'/>".encode()) == [StreamClosed()]


def test_websocket_restart_accepts_a_new_open() -> None:
    framing = WebSocketFraming(10000, 16)
    framing.feed(f"<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>".encode())
    framing.restart()
    (opened,) = framing.feed(f"<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>".encode())
    assert isinstance(opened, StreamOpened)


def test_websocket_unknown_framing_element_is_unsupported_stanza_type() -> None:
    framing = WebSocketFraming(10000, 16)
    with pytest.raises(StreamError) as caught:
        framing.feed(f"<reopen xmlns='{NS_FRAMING}'/>".encode())
    assert caught.value.condition == "unsupported-stanza-type"


def test_websocket_enforces_the_stanza_size_limit() -> None:
    framing = WebSocketFraming(100, 16)
    with pytest.raises(StreamError) as caught:
        framing.feed(f"<message xmlns='{CLIENT}'><body>{'x' * 200}</body></message>".encode())
    assert caught.value.condition == "policy-violation"


def test_websocket_restricted_xml_is_refused() -> None:
    framing = WebSocketFraming(10000, 16)
    with pytest.raises(StreamError) as caught:
        framing.feed(b"<!-- a comment -->")
    assert caught.value.condition == "restricted-xml"


def test_websocket_parser_is_never_released() -> None:
    assert WebSocketFraming(10000, 16).release() is False


def test_websocket_output_messages_each_parse_on_their_own() -> None:
    """RFC 7395 §3.3: every message is a complete XML document with its namespace declarations."""
    framing = WebSocketFraming(10000, 16)
    opened = ET.fromstring(framing.header(ATTRS))
    assert opened.tag == q(NS_FRAMING, "open")
    assert opened.get("from") == "example.org" and opened.get("id") == "abc" and opened.get("version") == "1.0"
    feats = ET.fromstring(framing.wrap("features", features()))
    assert feats.tag == q(STREAMS, "features") and feats.find(q(BIND, "bind")) is not None
    err = ET.fromstring(framing.wrap("error", StreamError("conflict").to_element().children))
    assert err.tag == q(STREAMS, "error") and err.find(q(STREAM_ERRORS, "conflict")) is not None
    assert ET.fromstring(framing.footer()).tag == q(NS_FRAMING, "close")
