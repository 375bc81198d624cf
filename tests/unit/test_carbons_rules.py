"""XEP-0280 §6: which messages are copied to a user's other resources."""

from __future__ import annotations

import pytest

from sakari.modules.carbons import should_copy
from sakari.xml.element import Element
from sakari.xml.parser import StreamParser

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def parse(xml: str) -> Element:
    parser = StreamParser()
    parser.feed(HEADER)
    (el,) = parser.feed(xml.encode())
    return el  # type: ignore[return-value]


@pytest.mark.parametrize(
    "xml, received, copied",
    [
        ("<message type='chat'><body>hi</body></message>", False, True),
        ("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", True, True),
        ("<message><body>hi</body></message>", True, True),
        ("<message type='normal'><received xmlns='urn:xmpp:receipts' id='x'/></message>", True, False),
        ("<message type='groupchat'><body>hi</body></message>", True, False),
        ("<message type='headline'><body>hi</body></message>", True, False),
        ("<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", False, False),
        ("<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>", True, False),
        ("<message type='chat' from='a@x'><received xmlns='urn:xmpp:carbons:2'/></message>", True, False),
        ("<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>", True, True),
        ("<message from='romeo@example.net' type='error'><body>hi</body></message>", True, True),
        ("<message from='romeo@example.net/home' type='error'><body>hi</body></message>", True, False),
        ("<message type='error'><body>hi</body></message>", False, False),
        ("<message><x xmlns='http://jabber.org/protocol/muc#user'/></message>", True, True),
    ],
)
def test_copy_rules(xml: str, received: bool, copied: bool):
    assert should_copy(parse(xml), received) is copied
