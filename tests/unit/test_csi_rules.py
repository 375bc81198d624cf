"""XEP-0352: what an inactive client's server holds back and how it collapses it."""

from __future__ import annotations

import pytest

from sakari.modules.csi import ClientState, holding_key
from sakari.xml.element import Element
from sakari.xml.parser import StreamParser

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def parse(xml: str) -> Element:
    parser = StreamParser()
    parser.feed(HEADER)
    (el,) = parser.feed(xml.encode())
    return el  # type: ignore[return-value]


@pytest.mark.parametrize(
    "xml, key",
    [
        ("<presence from='a@x/r'><show>away</show></presence>", ("presence", "a@x/r")),
        ("<presence from='a@x/r' type='unavailable'/>", ("presence", "a@x/r")),
        ("<presence from='a@x' type='subscribe'/>", None),
        ("<message from='a@x/r' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
         ("chatstate", "a@x/r")),
        ("<message from='a@x/r' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/>"
         "<no-store xmlns='urn:xmpp:hints'/><thread>t</thread></message>", ("chatstate", "a@x/r")),
        ("<message from='a@x/r' type='chat'><body>hi</body>"
         "<active xmlns='http://jabber.org/protocol/chatstates'/></message>", None),
        ("<message from='a@x/r'><encrypted xmlns='eu.siacs.conversations.axolotl'/>"
         "<active xmlns='http://jabber.org/protocol/chatstates'/></message>", None),
        ("<message from='a@x/r'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>", None),
        ("<message from='a@x/r'><received xmlns='urn:xmpp:receipts' id='m'/></message>", None),
        ("<iq from='a@x/r' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", None),
    ],
)
def test_what_is_held(xml: str, key: tuple[str, str] | None):
    assert holding_key(parse(xml)) == key


def test_the_latest_of_each_contact_is_kept_in_the_order_last_updated():
    state = ClientState()
    first = parse("<presence from='a@x/r'><status>1</status></presence>")
    other = parse("<presence from='b@x/r'/>")
    latest = parse("<presence from='a@x/r'><status>2</status></presence>")
    for stanza in (first, other, latest):
        state.hold(holding_key(stanza), stanza)  # type: ignore[arg-type]
    assert state.release() == [other, latest]
    assert state.release() == []
