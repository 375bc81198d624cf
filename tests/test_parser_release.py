"""An idle stream's parser can be freed between stanzas and comes back without losing a byte."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamClosed, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:example:x' to='localhost' version='1.0'>"
)
STANZAS = [
    b"<presence a='&gt;>'/>",
    b"<message id='x>y' to='a@b'><body>hi &amp; bye</body><x:thing x:attr='1'/></message>",
    b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<presence></presence  >",
    b"  ",
    b"<message><body>" + "ünïcødé".encode() + b"</body></message>",
]
STREAM = HEADER + b"".join(STANZAS) + b"</stream:stream>"


def parse(chunks: list[bytes], release: bool) -> list[str]:
    parser = StreamParser()
    out: list[str] = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            out.append("closed" if isinstance(event, StreamClosed) else str(getattr(event, "name", event)) + repr(event))
        if release:
            parser.release()
    return out


def test_released_parser_resumes_with_the_header_namespaces() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.feed(STANZAS[0])
    assert parser.release() and parser.released
    (message,) = parser.feed(STANZAS[1])
    assert not parser.released
    thing = message.find("thing", "urn:example:x")  # the x: prefix was declared on the original header
    assert thing is not None and thing.attrs == {"{urn:example:x}attr": "1"}
    assert message.attrs["id"] == "x>y"


def test_release_is_refused_inside_a_stanza() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.feed(b"<message><body>half")
    assert not parser.release()
    (message,) = parser.feed(b" done</body></message>")
    assert message.find("body").text == "half done"


def test_release_is_refused_with_a_partial_tag_pending() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.feed(b"<iq id='1'/><mess")
    assert not parser.release()
    (message,) = parser.feed(b"age/>")
    assert message.name == "message"


def test_stream_end_after_release_is_seen() -> None:
    parser = StreamParser()
    parser.feed(HEADER + STANZAS[2])
    assert parser.release()
    assert isinstance(parser.feed(b"</stream:stream>")[0], StreamClosed)


def test_size_limit_holds_after_release() -> None:
    parser = StreamParser(max_stanza_size=1000)
    parser.feed(HEADER + STANZAS[2])
    assert parser.release()
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message><body>" + b"a" * 2000 + b"</body></message>")
    assert caught.value.condition == "policy-violation"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True, max_size=12))
def test_releasing_after_any_chunk_changes_nothing(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in zip(bounds, bounds[1:])]
    assert parse(chunks, release=True) == parse(chunks, release=False)
