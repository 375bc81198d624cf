"""How an XMPP stream is framed on its transport, apart from what the stream says.

The stream state machines (c2s, components; s2s later) negotiate the
same way whatever carries them. A framing turns the transport's input into
stream events (opened, element, closed) and wraps what the machine writes:

- :class:`TcpFraming`: one XML document over a byte stream (RFC 6120 §4),
  parsed incrementally; restarts begin a new document.
- :class:`WebSocketFraming`: one element per WebSocket message, ``<open/>``
  and ``<close/>`` in the framing namespace (RFC 7395 §3.3–§3.6).

BOSH (XEP-0206) carries the same elements inside ``<body/>`` wrappers and
frames like WebSocket once those are taken off.
"""

from __future__ import annotations

from typing import Protocol

from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_attr
from sakari.xml.errors import StreamError
from sakari.xml.parser import Event, StreamClosed, StreamOpened, StreamParser

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
_WS_HEADER = f"<framing xmlns='{NS_FRAMING}'>".encode()
_CLIENT_PREFIX = NS.CLIENT + " "  # expat's "namespace name" form


class Framing(Protocol):
    def feed(self, data: bytes) -> list[Event]:
        """Transport input (bytes of the stream, or one message) → stream events."""

    def restart(self) -> None:
        """A new stream begins on the same transport (after STARTTLS or SASL success)."""

    def release(self) -> bool:
        """Free parsing state between stanzas of an idle stream; it comes back with the next input."""

    def header(self, attrs: dict[str, str]) -> bytes:
        """Our side's stream opening, with these attributes (from, id, version, xml:lang)."""

    def wrap(self, name: str, children: list[Element | str]) -> bytes:
        """A stream-namespace element (features, error) as this framing writes it."""

    def footer(self) -> bytes:
        """Our side's stream close."""

    @property
    def stanza_ns(self) -> str:
        """The namespace stanzas are serialized against: jabber:client inside a stream whose header
        declared it, "" where each stanza stands alone and declares its own (WebSocket messages)."""


def _attr_text(attrs: dict[str, str]) -> str:
    # Double quotes: escape_attr escapes for them (a ' in a value would end a single-quoted one).
    return "".join(f' {k}="{escape_attr(v)}"' for k, v in attrs.items())


class TcpFraming:
    stanza_ns = NS.CLIENT
    # What the header declares as the default namespace, and the parser that reads the stream: components
    # (XEP-0114) declare jabber:component:accept and have a parser reading their stanzas as jabber:client.
    content_ns = NS.CLIENT
    parser: type[StreamParser] = StreamParser

    def __init__(self, max_stanza_size: int, max_depth: int) -> None:
        self._limits = (max_stanza_size, max_depth)
        self._parser = self.parser(max_stanza_size, max_depth)

    def feed(self, data: bytes) -> list[Event]:
        return self._parser.feed(data)

    def restart(self) -> None:
        self._parser = self.parser(*self._limits)

    def release(self) -> bool:
        return self._parser.release()

    def header(self, attrs: dict[str, str]) -> bytes:
        return (
            f"<?xml version='1.0'?><stream:stream xmlns='{self.content_ns}' xmlns:stream='{NS.STREAMS}'{_attr_text(attrs)}>"
        ).encode()

    def wrap(self, name: str, children: list[Element | str]) -> bytes:
        # With the stream: prefix that the header declared.
        inner = "".join(c.serialize(NS.STREAMS) for c in children if c.__class__ is Element)  # type: ignore[union-attr]
        return f"<stream:{name}>{inner}</stream:{name}>".encode()

    def footer(self) -> bytes:
        return b"</stream:stream>"


_TLS_PROCEED = f"<proceed xmlns='{NS.TLS}'/>".encode()
_TLS_FAILURE = f"<failure xmlns='{NS.TLS}'/>".encode()


def answer_starttls(out: list[bytes], available: bool) -> None:
    """RFC 6120 §5.4.2, on a byte stream (c2s and s2s alike): ``<proceed/>`` where TLS can start now;
    otherwise ``<failure/>``, and the stream ends with the StreamError this raises."""
    if not available:
        out.append(_TLS_FAILURE)
        raise StreamError("undefined-condition", "STARTTLS is not available")
    out.append(_TLS_PROCEED)


class AliasParser(StreamParser):
    """Reads the elements of a stream's own content namespace as jabber:client (foreign namespaces are kept), so
    every module sees one namespace: s2s streams (jabber:server) and components (jabber:component:accept)."""

    alias = ""  # a subclass names the namespace in expat's "namespace name" form: the namespace and a space

    def _start(self, qname: str, attrs: dict[str, str]) -> None:
        alias = self.alias
        if qname.startswith(alias):
            qname = _CLIENT_PREFIX + qname[len(alias):]
        super()._start(qname, attrs)


class WebSocketFraming:
    """RFC 7395: each message is one complete element; the stream is opened and closed by framing elements."""

    stanza_ns = ""  # §3.3: every message is a document of its own, so each stanza declares jabber:client

    def __init__(self, max_stanza_size: int, max_depth: int) -> None:
        self._limits = (max_stanza_size, max_depth)
        self._parser = self._new_parser()

    def _new_parser(self) -> StreamParser:
        parser = StreamParser(*self._limits)
        parser.feed(_WS_HEADER)  # messages are parsed as children of one synthetic document
        return parser

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        for item in self._parser.feed(data):
            if item.__class__ is not Element:
                raise StreamError("not-well-formed", "a WebSocket message is one element")
            el: Element = item  # type: ignore[assignment]
            if el.ns != NS_FRAMING:
                out.append(el)
            elif el.name == "open":
                # What the RFC 6120 header carries, so the stream machine checks both alike.
                out.append(StreamOpened("stream", NS.STREAMS, NS.CLIENT, dict(el.attrs)))
            elif el.name == "close":
                out.append(StreamClosed())
            else:
                raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not a framing element")
        return out

    def restart(self) -> None:
        self._parser = self._new_parser()

    def release(self) -> bool:
        return False  # one parser per connection, held between messages

    def header(self, attrs: dict[str, str]) -> bytes:
        return f"<open xmlns='{NS_FRAMING}'{_attr_text(attrs)}/>".encode()

    def wrap(self, name: str, children: list[Element | str]) -> bytes:
        inner = "".join(c.serialize(NS.STREAMS) for c in children if c.__class__ is Element)  # type: ignore[union-attr]
        return f"<stream:{name} xmlns:stream='{NS.STREAMS}'>{inner}</stream:{name}>".encode()

    def footer(self) -> bytes:
        return f"<close xmlns='{NS_FRAMING}'/>".encode()
