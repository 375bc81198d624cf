"""Incremental, hardened XML stream parser (sans-IO) built on expat.

Bytes go in with :meth:`StreamParser.feed`; out come stream-level events:
the stream header, each complete top-level element (a stanza or a
negotiation element), and the end of the stream. Anything the XMPP
restricted XML profile forbids (RFC 6120 §11.1: DTDs, entity declarations,
processing instructions, comments) ends the stream with ``restricted-xml``;
a top-level element that grows past ``max_stanza_size`` bytes or nests
deeper than ``max_depth`` ends it with ``policy-violation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from sakari.xml.errors import StreamError
from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_attr

_XML_NS_PREFIX = NS.XML + " "


@dataclass(slots=True)
class StreamOpened:
    name: str
    ns: str
    default_ns: str | None
    attrs: dict[str, str]


@dataclass(slots=True)
class StreamClosed:
    pass


Event = StreamOpened | Element | StreamClosed


def _split(qname: str) -> tuple[str, str]:
    ns, sep, local = qname.rpartition(" ")
    return (local, ns) if sep else (qname, "")


def _attrs(raw: dict[str, str]) -> dict[str, str]:
    for key in raw:
        if " " in key:
            break
    else:
        return raw  # no namespaced attribute: expat's dict is ours to keep
    out = {}
    for key, value in raw.items():
        if " " in key:
            if key.startswith(_XML_NS_PREFIX):
                key = "xml:" + key[len(_XML_NS_PREFIX):]
            else:
                attr_ns, _, local = key.rpartition(" ")
                key = "{" + attr_ns + "}" + local
        out[key] = value
    return out


def _join_text(children: list[Element | str]) -> list[Element | str]:
    """Merge runs of text pieces (linear: one join per run, whatever the number of pieces)."""
    out: list[Element | str] = []
    run: list[str] = []
    for c in children:
        if c.__class__ is str:
            run.append(c)  # type: ignore[arg-type]
            continue
        if run:
            out.append(run[0] if len(run) == 1 else "".join(run))
            run = []
        out.append(c)
    if run:
        out.append(run[0] if len(run) == 1 else "".join(run))
    return out


class StreamParser:
    """Turns the bytes of one XML stream into events; one instance per stream restart.

    An idle stream can give its expat parser back (:meth:`release`, about 12 KiB
    per connection): the next bytes go to a fresh parser primed with a
    synthetic copy of the stream header's namespace declarations. Release is
    only allowed between top-level elements with nothing but whitespace
    after the last one, so no partial token is ever lost.
    """

    def __init__(self, max_stanza_size: int = 262144, max_depth: int = 64) -> None:
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self._events: list[Event] = []
        self._stack: list[Element] = []
        self._depth = 0
        self._stanza_start = 0
        self._fed = 0
        self._default_ns: str | None = None
        self._root_decls: list[tuple[str | None, str]] = []
        self._priming = False
        self._top_end = -1
        self._mark = 0  # where the current unfinished top-level item (header, stanza, whitespace) began
        self.at_boundary = False
        self._expat: Any = self._new_expat()

    def _new_expat(self) -> Any:
        p = expat.ParserCreate("UTF-8", " ")
        # pyexpat allocates the text buffer per parser, i.e. per connection: keep it small.
        # Longer texts arrive in pieces, joined when their element ends.
        p.buffer_text = True
        p.buffer_size = 2048
        p.ordered_attributes = False
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        p.StartNamespaceDeclHandler = self._ns_decl
        p.XmlDeclHandler = self._xml_decl
        p.StartDoctypeDeclHandler = self._restricted
        p.EntityDeclHandler = self._restricted
        p.ProcessingInstructionHandler = self._restricted
        p.CommentHandler = self._restricted
        p.ExternalEntityRefHandler = self._restricted
        p.NotationDeclHandler = self._restricted
        p.UnparsedEntityDeclHandler = self._restricted
        return p

    def feed(self, data: bytes) -> list[Event]:
        """Parse more bytes; return the events they complete. Raises StreamError."""
        if self._expat is None:
            self._prime()
        chunk_start = self._fed
        self._fed += len(data)
        self._top_end = -1
        try:
            self._expat.Parse(data, False)
        except expat.ExpatError as e:
            raise StreamError("not-well-formed", str(e)) from None
        pending_from = self._stanza_start if self._depth > 1 else self._mark
        if self._fed - pending_from > self.max_stanza_size:
            # Also a header or a start tag that never ends: nothing unfinished may grow past the limit.
            raise StreamError("policy-violation", "stanza too large")
        self._note_boundary(data, chunk_start)
        events = self._events
        self._events = []
        return events

    def _note_boundary(self, data: bytes, chunk_start: int) -> None:
        if self._depth != 1:
            self.at_boundary = False
        elif self._top_end >= 0:
            # The last top-level end event is at its end tag "</name>", or, for an
            # empty element "<name/>", just after it.
            offset = self._top_end - chunk_start
            end = -1
            if offset >= 0:
                if data.startswith(b"</", offset):
                    close = data.find(b">", offset)
                    end = close + 1 if close >= 0 else -1
                else:
                    end = offset
            self.at_boundary = end >= 0 and not data[end:].strip()
        else:
            self.at_boundary = self.at_boundary and not data.strip()

    def release(self) -> bool:
        """Drop the expat parser if the stream is between elements; it comes back on the next bytes."""
        if self._expat is None or not self.at_boundary or self._stream_prefix() is None:
            return False
        self._expat = None
        return True

    @property
    def released(self) -> bool:
        return self._expat is None

    def _stream_prefix(self) -> str | None:
        for prefix, uri in self._root_decls:
            if prefix and uri == NS.STREAMS:
                return prefix
        return None

    def _prime(self) -> None:
        prefix = self._stream_prefix()
        decls = "".join(
            f" xmlns:{p}='{escape_attr(u)}'" if p else f" xmlns='{escape_attr(u)}'" for p, u in self._root_decls
        )
        header = f"<{prefix}:stream{decls}>".encode()
        self._expat = self._new_expat()
        self._priming = True
        try:
            self._expat.Parse(header, False)
        finally:
            self._priming = False
        self._fed = len(header)
        self._mark = self._fed
        self._depth = 1

    # --- expat handlers -----------------------------------------------------
    def _restricted(self, *args: object) -> int:
        raise StreamError("restricted-xml", "DTDs, entities, comments and processing instructions are not allowed")

    def _xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        # The parser is created for UTF-8 and would ignore a declared encoding, reading
        # Latin-1 bytes as (broken) UTF-8; RFC 6120 §11.6 wants the stream refused instead.
        if encoding is not None and encoding.lower() != "utf-8":
            raise StreamError("unsupported-encoding", f"only UTF-8 is supported, not {encoding}")

    def _ns_decl(self, prefix: str | None, uri: str) -> None:
        if self._depth == 0 and not self._priming:
            self._root_decls.append((prefix, uri))
            if prefix is None:
                self._default_ns = uri

    def _start(self, qname: str, attrs: dict[str, str]) -> None:
        depth = self._depth
        self._depth = depth + 1
        name, ns = _split(qname)
        if depth == 0:
            if not self._priming:
                self._events.append(StreamOpened(name, ns, self._default_ns, _attrs(attrs)))
            self._mark = self._expat.CurrentByteIndex
            return
        if depth > self.max_depth:
            raise StreamError("policy-violation", "XML nested too deeply")
        el = Element(name, ns, _attrs(attrs))
        if depth == 1:
            self._stanza_start = self._expat.CurrentByteIndex
        else:
            self._stack[-1].children.append(el)
        self._stack.append(el)

    def _end(self, qname: str) -> None:
        self._depth -= 1
        depth = self._depth
        if depth == 0:
            self._events.append(StreamClosed())
            return
        el = self._stack.pop()
        children = el.children
        if len(children) > 1:
            el.children = _join_text(children)
        if depth == 1:
            index = self._expat.CurrentByteIndex
            if index - self._stanza_start > self.max_stanza_size:
                raise StreamError("policy-violation", "stanza too large")
            self._top_end = index
            self._mark = index
            self._events.append(el)

    def _text(self, data: str) -> None:
        if self._depth > 1:
            self._stack[-1].children.append(data)
        else:
            self._mark = self._fed  # whitespace between stanzas is dropped; it never counts
        # Text between top-level elements is whitespace keepalive; it carries nothing.
