"""StreamParser: bytes of an XML stream in, stream events out, with the limits of RFC 6120 §11.

Sans-IO: every test feeds bytes and reads events; no sockets, no event loop.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sakari.xml.errors import StreamError
from sakari.xml.element import Element
from sakari.xml.parser import StreamClosed, StreamOpened, StreamParser

CLIENT = "jabber:client"
STREAMS = "http://etherx.jabber.org/streams"

HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"to='example.org' version='1.0' xml:lang='en'>"
)

# A stream exercising what a split could break: multi-byte UTF-8, entity and character
# references, prefixed and default namespace declarations, xml:lang, empty elements,
# end tags with whitespace, whitespace keepalives between stanzas.
STANZAS = [
    b"<message to='juliet@example.org' id='m1' type='chat' xml:lang='fr'>"
    b"<body>bonjour &amp; &lt;salut&gt; \xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 &#x263A; &#233;</body>"
    b"<thread>t1</thread></message>",
    b"\n  ",
    b"<iq type='get' id='q1' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    b"<presence><show>away</show><status xml:lang='de'>Bin weg &quot;kurz&quot;</status>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
    b" ",
    b"<message><x:data xmlns:x='urn:example:x' x:attr='1' plain='2'><x:item>a</x:item><other/></x:data></message>",
    b"<presence   ></presence   >",
    b"<message><body>" + "ünïcødé ✓ 中文".encode() + b"</body></message>",
]
STREAM = HEADER + b"".join(STANZAS) + b"</stream:stream>"


def parse_all(chunks: list[bytes], **limits: int) -> list[object]:
    parser = StreamParser(**limits)
    events: list[object] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def stanza_parser(**limits: int) -> StreamParser:
    parser = StreamParser(**limits)
    (opened,) = parser.feed(HEADER)
    assert isinstance(opened, StreamOpened)
    return parser


def stream_error(chunks: list[bytes], **limits: int) -> StreamError:
    parser = StreamParser(**limits)
    with pytest.raises(StreamError) as caught:
        for chunk in chunks:
            parser.feed(chunk)
    return caught.value


def in_pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


WHOLE = parse_all([STREAM])


# --- events and their content ----------------------------------------------------------


def test_whole_stream_yields_header_each_stanza_and_the_close() -> None:
    opened, *stanzas, closed = WHOLE
    assert opened == StreamOpened(
        "stream", STREAMS, CLIENT, {"to": "example.org", "version": "1.0", "xml:lang": "en"}
    )
    assert [s.name for s in stanzas] == ["message", "iq", "presence", "message", "presence", "message"]
    assert isinstance(closed, StreamClosed)


def test_text_is_unescaped_and_decoded_from_utf8() -> None:
    message = WHOLE[1]
    assert message.find("body").text == "bonjour & <salut> été ☃ 😀 ☺ é"
    assert WHOLE[-2].find("body").text == "ünïcødé ✓ 中文"


def test_stanzas_inherit_the_stream_default_namespace_and_children_declare_their_own() -> None:
    iq = WHOLE[2]
    assert iq.ns == CLIENT
    assert iq.first_child().ns == "http://jabber.org/protocol/disco#info"
    caps = WHOLE[3].find("c", "http://jabber.org/protocol/caps")
    assert caps is not None and caps.attrs == {"hash": "sha-1", "node": "n", "ver": "v="}
    assert WHOLE[3].find("show").ns == CLIENT  # an unprefixed child without xmlns stays in jabber:client


def test_prefixed_elements_and_attributes_resolve_to_their_namespace() -> None:
    data = WHOLE[4].first_child()
    assert (data.name, data.ns) == ("data", "urn:example:x")
    assert data.attrs == {"{urn:example:x}attr": "1", "plain": "2"}
    item, other = list(data.elements())
    assert (item.name, item.ns, item.text) == ("item", "urn:example:x", "a")
    assert (other.name, other.ns) == ("other", CLIENT)  # the default namespace, not the parent's prefix


def test_xml_lang_is_kept_as_an_attribute_named_xml_lang() -> None:
    assert WHOLE[1].attrs["xml:lang"] == "fr"
    assert WHOLE[3].find("status").attrs == {"xml:lang": "de"}
    assert WHOLE[3].find("status").text == 'Bin weg "kurz"'


def test_stream_prefix_other_than_stream_is_understood() -> None:
    header = b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' version='1.0'>"
    opened, message = parse_all([header + b"<message/>"])
    assert (opened.name, opened.ns, opened.default_ns) == ("stream", STREAMS, CLIENT)
    assert message == Element("message", CLIENT)


def test_whitespace_between_stanzas_produces_no_events() -> None:
    parser = stanza_parser()
    assert parser.feed(b"   \n\t  ") == []
    assert parser.feed(b"\n") == []


def test_incomplete_stanza_produces_no_event_until_its_end_tag() -> None:
    parser = stanza_parser()
    assert parser.feed(b"<message><body>hel") == []
    assert parser.feed(b"lo</body>") == []
    (message,) = parser.feed(b"</message>")
    assert message.find("body").text == "hello"


# --- chunk boundaries ------------------------------------------------------------------


def test_byte_by_byte_feeding_yields_the_same_events() -> None:
    assert parse_all(in_pieces(STREAM, 1)) == WHOLE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True, max_size=40))
def test_any_split_of_a_valid_stream_yields_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in zip(bounds, bounds[1:])]
    assert parse_all(chunks) == WHOLE


def test_long_text_arriving_in_many_pieces_is_one_text_child() -> None:
    parser = stanza_parser()
    parser.feed(b"<message><body>")
    for _ in range(50):
        assert parser.feed(b"x" * 997) == []
    (message,) = parser.feed(b"</body></message>")
    assert message.find("body").children == ["x" * 997 * 50]


# --- restricted XML (RFC 6120 §11.1) ------------------------------------------------------

RESTRICTED = {
    "doctype": b"<?xml version='1.0'?><!DOCTYPE stream:stream>" + HEADER[len(b"<?xml version='1.0'?>") :],
    "internal_subset_entity": (
        b"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY name 'value'>]>"
        + HEADER[len(b"<?xml version='1.0'?>") :]
        + b"<message><body>&name;</body></message>"
    ),
    "billion_laughs": (
        b"<?xml version='1.0'?><!DOCTYPE lolz ["
        b"<!ENTITY lol 'lol'>"
        + b"".join(
            b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
        )
        + b"]>"
        + HEADER[len(b"<?xml version='1.0'?>") :]
        + b"<message><body>&lol9;</body></message>"
    ),
    "external_entity": (
        b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>"
        + HEADER[len(b"<?xml version='1.0'?>") :]
        + b"<message><body>&ext;</body></message>"
    ),
    "processing_instruction_in_stanza": HEADER + b"<message><?evil data?></message>",
    "processing_instruction_between_stanzas": HEADER + b"<?evil data?>",
    "comment_in_stanza": HEADER + b"<message><!-- hidden --><body>x</body></message>",
    "comment_between_stanzas": HEADER + b"<!-- hidden -->",
    "comment_before_the_header": b"<?xml version='1.0'?><!-- hi -->" + HEADER[len(b"<?xml version='1.0'?>") :],
}


@pytest.mark.parametrize("data", RESTRICTED.values(), ids=RESTRICTED.keys())
def test_dtd_entities_comments_and_pis_end_stream_with_restricted_xml(data: bytes) -> None:
    assert stream_error([data]).condition == "restricted-xml"


@pytest.mark.parametrize("data", RESTRICTED.values(), ids=RESTRICTED.keys())
def test_restricted_xml_is_caught_when_fed_byte_by_byte(data: bytes) -> None:
    assert stream_error(in_pieces(data, 1)).condition == "restricted-xml"


@pytest.mark.parametrize("encoding", [b"ISO-8859-1", b"UTF-16", b"us-ascii"])
def test_an_encoding_other_than_utf8_is_refused(encoding: bytes) -> None:
    header = b"<?xml version='1.0' encoding='" + encoding + b"'?>" + HEADER[len(b"<?xml version='1.0'?>") :]
    assert stream_error([header]).condition == "unsupported-encoding"


@pytest.mark.parametrize("encoding", [b"UTF-8", b"utf-8"])
def test_a_utf8_encoding_declaration_is_accepted(encoding: bytes) -> None:
    header = b"<?xml version='1.0' encoding='" + encoding + b"'?>" + HEADER[len(b"<?xml version='1.0'?>") :]
    (opened,) = StreamParser().feed(header)
    assert isinstance(opened, StreamOpened)


def test_undefined_entity_is_not_well_formed() -> None:
    assert stream_error([HEADER, b"<message><body>&nbsp;</body></message>"]).condition == "not-well-formed"


def test_predefined_entities_and_character_references_are_allowed() -> None:
    (message,) = stanza_parser().feed(b"<message><body>&amp;&lt;&gt;&apos;&quot;&#65;&#x42;</body></message>")
    assert message.find("body").text == "&<>'\"AB"


# --- malformed input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"<message></presence>",
        b"<message a='1' a='2'/>",
        b"<message><body>unclosed</message>",
        b"<message><x:y/></message>",  # undeclared prefix
        b"<message>\xff\xfe</message>",  # not UTF-8
        b"<message>\x00</message>",  # not an XML character
        b"<<<>>>",
    ],
)
def test_garbage_ends_stream_with_not_well_formed(garbage: bytes) -> None:
    assert stream_error([HEADER, garbage]).condition == "not-well-formed"


def test_garbage_instead_of_a_header_is_not_well_formed() -> None:
    assert stream_error([b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"]).condition == "not-well-formed"


# --- size limit ---------------------------------------------------------------------------

LIMIT = 1000
BIG_TEXT = HEADER + b"<message><body>" + b"a" * (3 * LIMIT) + b"</body></message>"
BIG_ATTR = HEADER + b"<message to='" + b"a" * (3 * LIMIT) + b"'><body>hi</body></message>"
MANY_CHILDREN = HEADER + b"<message>" + b"<x/>" * LIMIT + b"</message>"


@pytest.mark.parametrize("chunk", [None, 4096, 512, 7, 1], ids=lambda c: "whole" if c is None else f"chunks-of-{c}")
@pytest.mark.parametrize("data", [BIG_TEXT, BIG_ATTR, MANY_CHILDREN], ids=["text", "attribute", "children"])
def test_oversized_stanza_is_policy_violation_in_one_chunk_or_many(data: bytes, chunk: int | None) -> None:
    chunks = [data] if chunk is None else in_pieces(data, chunk)
    assert stream_error(chunks, max_stanza_size=LIMIT).condition == "policy-violation"


def test_oversized_stanza_is_refused_before_it_is_complete() -> None:
    """A stanza that never ends must not make the parser buffer without bound."""
    parser = stanza_parser(max_stanza_size=LIMIT)
    parser.feed(b"<message><body>")
    with pytest.raises(StreamError) as caught:
        for _ in range(100):
            parser.feed(b"a" * 100)
    assert caught.value.condition == "policy-violation"


def test_oversized_start_tag_is_refused_before_it_is_complete() -> None:
    """An opening tag whose attribute value never ends is a stanza growing past the limit too."""
    parser = stanza_parser(max_stanza_size=LIMIT)
    parser.feed(b"<message to='")
    with pytest.raises(StreamError) as caught:
        for _ in range(1000):  # 100 times the limit
            parser.feed(b"a" * 100)
    assert caught.value.condition == "policy-violation"


def test_oversized_stream_header_is_refused_before_it_is_complete() -> None:
    parser = StreamParser(max_stanza_size=LIMIT)
    parser.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='")
    with pytest.raises(StreamError) as caught:
        for _ in range(1000):  # 100 times the limit
            parser.feed(b"a" * 100)
    assert caught.value.condition == "policy-violation"


def test_stanza_just_under_the_size_limit_passes_and_the_limit_is_per_stanza() -> None:
    stanza = b"<message><body>" + b"a" * (LIMIT - 40) + b"</body></message>"
    assert len(stanza) <= LIMIT
    parser = stanza_parser(max_stanza_size=LIMIT)
    for _ in range(10):  # many stanzas together far exceed the limit; each alone does not
        (message,) = parser.feed(stanza)
        assert len(message.find("body").text) == LIMIT - 40


@pytest.mark.parametrize(
    "chunk, count",
    [(b" " * 5 * LIMIT, 1), (b" " * 3 * LIMIT, 10), (b" " * (LIMIT // 2), 40), (b" \n\t" * LIMIT, 3)],
    ids=["one-big-chunk", "big-chunks", "small-chunks", "mixed-whitespace"],
)
def test_whitespace_between_stanzas_never_counts_against_the_stanza_size_limit(chunk: bytes, count: int) -> None:
    """Keepalive whitespace is not kept by the parser, so no amount of it is a stanza too large."""
    parser = stanza_parser(max_stanza_size=LIMIT)
    (first,) = parser.feed(b"<presence/>")
    for _ in range(count):
        assert parser.feed(chunk) == []
    (message,) = parser.feed(b"<message><body>after</body></message>")
    assert message.find("body").text == "after"


# --- depth limit --------------------------------------------------------------------------


def nested(levels: int) -> bytes:
    """A stanza with ``levels`` elements nested, counting the stanza itself as level 1."""
    return b"<message>" + b"<a>" * (levels - 1) + b"</a>" * (levels - 1) + b"</message>"


@pytest.mark.parametrize("chunk", [None, 3, 1], ids=lambda c: "whole" if c is None else f"chunks-of-{c}")
def test_nesting_past_the_depth_limit_is_policy_violation(chunk: int | None) -> None:
    data = HEADER + nested(200)
    chunks = [data] if chunk is None else in_pieces(data, chunk)
    assert stream_error(chunks, max_depth=64).condition == "policy-violation"


def test_deep_nesting_is_refused_without_waiting_for_the_end_tags() -> None:
    parser = stanza_parser(max_depth=64)
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message>" + b"<a>" * 100)
    assert caught.value.condition == "policy-violation"


def test_stanza_nested_exactly_max_depth_levels_is_accepted() -> None:
    """limits.max_depth is documented as the deepest nesting inside a stanza: the stanza is level 1."""
    (message,) = stanza_parser(max_depth=5).feed(nested(5))
    assert message.name == "message"
    with pytest.raises(StreamError) as caught:
        stanza_parser(max_depth=5).feed(nested(6))
    assert caught.value.condition == "policy-violation"
