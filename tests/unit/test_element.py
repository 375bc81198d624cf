"""Element serialization: escaping, namespace declarations, and parse(serialize(x)) == x.

The round trip uses our StreamParser; well-formedness and namespaces are also
checked with ElementTree, an independent parser.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.parser import StreamParser

CLIENT = "jabber:client"
HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)


def reparse(el: Element) -> Element:
    """Serialize as on a jabber:client stream and parse back with our parser."""
    parser = StreamParser(max_stanza_size=10**7, max_depth=1000)
    parser.feed(HEADER)
    (parsed,) = parser.feed(el.serialize().encode())
    return parsed


def etree(el: Element) -> ET.Element:
    """Parse the serialization independently, inside an element declaring the stream's default namespace."""
    return ET.fromstring(f"<wrapper xmlns='{CLIENT}'>{el.serialize()}</wrapper>")[0]


# --- escaping -------------------------------------------------------------------------


def test_text_escapes_ampersand_and_angle_brackets() -> None:
    body = Element("body", CLIENT, children=["a & b < c > d \"q\" 'a' ]]>"])
    assert body.serialize() == "<body>a &amp; b &lt; c &gt; d \"q\" 'a' ]]&gt;</body>"
    assert reparse(body) == body


def test_attribute_escapes_ampersand_less_than_and_double_quote() -> None:
    el = Element("message", CLIENT, {"id": "a&b<c>d\"e'f"})
    assert el.serialize() == '<message id="a&amp;b&lt;c>d&quot;e\'f"/>'
    assert reparse(el) == el
    assert etree(el).get("id") == "a&b<c>d\"e'f"


def test_entity_like_text_is_not_interpreted() -> None:
    body = Element("body", CLIENT, children=["&amp; &lt; &#65; &nbsp;"])
    assert reparse(body).text == "&amp; &lt; &#65; &nbsp;"


def test_carriage_return_in_text_survives_a_round_trip() -> None:
    # A client may send "&#13;" (RFC 6120 allows any XML character); it must reach the recipient unchanged.
    body = Element("body", CLIENT, children=["line one\r\nline two\r"])
    assert reparse(body).text == "line one\r\nline two\r"


@pytest.mark.parametrize("value", ["a\nb", "a\tb", "a\rb", "  two  spaces  "], ids=["newline", "tab", "cr", "spaces"])
def test_whitespace_in_an_attribute_survives_a_round_trip(value: str) -> None:
    # XML attribute-value normalization turns literal tab/newline/CR into spaces; they must be escaped.
    el = Element("message", CLIENT, {"id": value})
    assert reparse(el).attrs["id"] == value
    assert etree(el).get("id") == value


def test_empty_element_is_self_closing_and_text_element_is_not() -> None:
    assert Element("presence").serialize() == "<presence/>"
    assert Element("body", CLIENT, children=["x"]).serialize() == "<body>x</body>"


# --- namespaces -----------------------------------------------------------------------


def test_child_in_the_parent_namespace_is_written_without_xmlns() -> None:
    message = Element("message", CLIENT, {"to": "juliet@example.org"})
    message.add("body", text="hi")
    assert message.serialize() == '<message to="juliet@example.org"><body>hi</body></message>'


def test_child_in_another_namespace_declares_it_once_for_its_subtree() -> None:
    iq = Element("iq", CLIENT, {"type": "get", "id": "1"})
    query = iq.add("query", "jabber:iq:roster")
    query.add("item", attrs={"jid": "romeo@example.net"})
    assert iq.serialize() == (
        '<iq type="get" id="1"><query xmlns="jabber:iq:roster"><item jid="romeo@example.net"/></query></iq>'
    )
    tree = etree(iq)
    assert tree.tag == "{jabber:client}iq"
    assert tree[0].tag == "{jabber:iq:roster}query"
    assert tree[0][0].tag == "{jabber:iq:roster}item"


def test_grandchild_back_in_the_stream_namespace_redeclares_it() -> None:
    forwarded = Element("forwarded", "urn:xmpp:forward:0")
    message = forwarded.add("message", CLIENT)
    message.add("body", text="inner")
    wrapper = Element("message", CLIENT)
    wrapper.append(forwarded)
    tree = etree(wrapper)
    assert tree[0][0].tag == "{jabber:client}message"
    assert tree[0][0][0].tag == "{jabber:client}body"
    assert reparse(wrapper) == wrapper


def test_serialize_for_another_parent_namespace_declares_our_own() -> None:
    el = Element("message", CLIENT)
    assert el.serialize("") == '<message xmlns="jabber:client"/>'
    assert el.serialize("jabber:server") == '<message xmlns="jabber:client"/>'


def test_attribute_in_a_namespace_of_its_own_round_trips() -> None:
    el = Element("item", "urn:example:a", {"{urn:example:attr}flag": "yes", "plain": "1"})
    assert reparse(el) == el
    assert etree(el).attrib == {"{urn:example:attr}flag": "yes", "plain": "1"}


def test_xml_lang_round_trips_as_xml_lang() -> None:
    el = Element("body", CLIENT, {"xml:lang": "de"}, ["Hallo"])
    assert reparse(el) == el
    assert etree(el).get("{http://www.w3.org/XML/1998/namespace}lang") == "de"


def test_element_in_no_namespace_round_trips() -> None:
    outer = Element("x", "urn:example:a")
    outer.append(Element("y", ""))
    assert reparse(outer) == outer
    assert etree(outer)[0].tag == "y"


def test_fragment_dump_and_load_round_trip_a_stored_stanza() -> None:
    message = Element("message", CLIENT, {"from": "a@example.org/r", "xml:lang": "en"})
    message.add("body", text="stored & < > \"")
    message.add("delay", "urn:xmpp:delay", {"stamp": "2024-01-01T00:00:00Z"})
    assert fragment.load(fragment.dump(message)) == message


# --- property: parse(serialize(x)) == x -------------------------------------------------


def _xml_char(c: str) -> bool:
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


XML_TEXT = st.text(st.characters(min_codepoint=0x9, exclude_categories=("Cs",)).filter(_xml_char), min_size=1, max_size=20)
NAMES = st.sampled_from(["message", "body", "x", "item", "query", "a-b", "c.d", "e_f", "Mixed", "ü"])
NAMESPACES = st.sampled_from([CLIENT, "urn:example:a", "urn:example:b", "http://example.org/ns?x=1&y=<2>\"'", ""])
ATTR_KEYS = st.sampled_from(["id", "to", "type", "xml:lang", "{urn:example:attr}flag", "{urn:example:other}v"])


def _normalized(children: list[Element | str]) -> list[Element | str]:
    """What a parser can give back: adjacent texts merged, no empty text."""
    out: list[Element | str] = []
    for c in children:
        if isinstance(c, str) and out and isinstance(out[-1], str):
            out[-1] += c
        else:
            out.append(c)
    return out


def _element(children: st.SearchStrategy[list[Element | str]]) -> st.SearchStrategy[Element]:
    return st.builds(
        lambda name, ns, attrs, kids: Element(name, ns, attrs, _normalized(kids)),
        NAMES,
        NAMESPACES,
        st.dictionaries(ATTR_KEYS, st.one_of(st.just(""), XML_TEXT), max_size=3),
        children,
    )


TREES = st.recursive(
    _element(st.lists(XML_TEXT, max_size=1)),
    lambda inner: _element(st.lists(st.one_of(inner, XML_TEXT), max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_parse_of_serialize_is_identity_for_any_tree_of_xml_text(el: Element) -> None:
    assert reparse(el) == el


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_serialization_is_well_formed_for_an_independent_parser(el: Element) -> None:
    def expanded(e: Element) -> str:
        return f"{{{e.ns}}}{e.name}" if e.ns else e.name

    def same(a: Element, b: ET.Element) -> None:
        assert b.tag == expanded(a)
        for child_a, child_b in zip(list(a.elements()), list(b), strict=True):
            same(child_a, child_b)

    same(el, etree(el))
