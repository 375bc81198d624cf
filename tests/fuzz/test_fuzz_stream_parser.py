"""Fuzzing the XML stream parser (sakari/xml/parser.py): whatever bytes arrive, in whatever chunks, it yields
events or raises StreamError, and nothing it yields passes the configured limits."""

from __future__ import annotations

from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"to='example.org' version='1.0'>"
)
MAX_SIZE = 600
MAX_DEPTH = 6

# Pieces of XML, hostile and plain, that a grammar strings together: what a split, a bad byte or a forbidden
# construct could break.
NAMES = ["message", "iq", "presence", "body", "x", "stream:stream", "stream:features", "a:b", "xmlns", "q", "é"]
NAMESPACES = ["jabber:client", "http://etherx.jabber.org/streams", "urn:x", "", "http://www.w3.org/XML/1998/namespace",
              "http://www.w3.org/2000/xmlns/"]
ATTR_NAMES = ["to", "id", "type", "xml:lang", "xmlns", "xmlns:a", "xmlns:stream", "a:attr", "xml:space", "b"]
TEXTS = ["hi", "&amp;", "&lt;&gt;", "&#x263A;", "&#0;", "&#xD800;", "&bogus;", "&lol;", "]]>", "\u00e9", "\U0001f600",
         "\x00", "\x1b", "\ufffe", "  ", "\n"]
SPECIALS = [b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>]>", b"<!ENTITY x SYSTEM 'file:///etc/passwd'>", b"<!-- c -->",
            b"<?pi data?>", b"<?xml version='1.0'?>", b"<![CDATA[x<y]]>", b"</stream:stream>", b"\xff\xfe",
            b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"<", b">", b"/>", b"'", b'"', b"=", b"&"]


@st.composite
def tag(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(NAMES))
    attrs = draw(st.lists(st.tuples(st.sampled_from(ATTR_NAMES), st.sampled_from(NAMESPACES + TEXTS)), max_size=3))
    text = "".join(f" {k}='{v}'" for k, v in attrs)
    return draw(st.sampled_from([f"<{name}{text}>", f"<{name}{text}/>", f"</{name}>"])).encode()


token = st.one_of(tag(), st.sampled_from(TEXTS).map(str.encode), st.sampled_from(SPECIALS), st.binary(max_size=8))


def document(tokens: list[bytes], header: bool) -> bytes:
    return (HEADER if header else b"") + b"".join(tokens)


def feed_in_chunks(data: bytes, cuts: list[int]) -> None:
    parser = StreamParser(max_stanza_size=MAX_SIZE, max_depth=MAX_DEPTH)
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for start, end in zip(bounds, bounds[1:]):
            for event in parser.feed(data[start:end]):
                if isinstance(event, Element):
                    check_limits(event)
    except StreamError:
        pass  # the one way a stream may end on bad input


def check_limits(stanza: Element) -> None:
    """Text and attribute values come from the stanza's bytes, which may not pass MAX_SIZE (references only
    shrink, a character is at least one byte); depth counts the stanza itself as 1."""
    chars = 0
    todo = [(stanza, 1)]
    while todo:
        el, depth = todo.pop()
        assert depth <= MAX_DEPTH, "a stanza nested deeper than max_depth came through"
        chars += sum(len(v) for v in el.attrs.values())
        for child in el.children:
            if isinstance(child, str):
                chars += len(child)
            else:
                todo.append((child, depth + 1))
    assert chars <= MAX_SIZE, "a stanza larger than max_stanza_size came through"


@fuzz()
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=8), header=st.booleans())
def test_arbitrary_bytes_yield_events_or_a_stream_error(data: bytes, cuts: list[int], header: bool) -> None:
    feed_in_chunks(document([data], header), cuts)


@fuzz(200)
@given(tokens=st.lists(token, max_size=40), cuts=st.lists(st.integers(min_value=0), max_size=8),
       header=st.booleans())
def test_xml_like_input_yields_events_or_a_stream_error(tokens: list[bytes], cuts: list[int], header: bool) -> None:
    feed_in_chunks(document(tokens, header), cuts)


@fuzz(100)
@given(depth=st.integers(min_value=1, max_value=40), width=st.integers(min_value=1, max_value=60),
       cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_deep_and_wide_stanzas_stay_within_the_limits(depth: int, width: int, cuts: list[int]) -> None:
    inner = b"<x>" * depth + b"y" * width + b"</x>" * depth
    feed_in_chunks(HEADER + b"<message>" + inner * (width // 10 + 1) + b"</message>", cuts)
