"""The client that sets a roster item gets the iq result before the roster push, as with Prosody
(clients and test scripts written against it rely on that order)."""

import pytest

from raw_xmpp import RawStream
from xmpp_harness import NS_CLIENT, q

pytestmark = pytest.mark.asyncio

NS_ROSTER = "jabber:iq:roster"


async def test_roster_set_is_answered_before_the_push(server, xmpp):
    stream = await RawStream.connect(server.c2s_port)
    await stream.login_plain(xmpp.account())
    await stream.send(f"<iq type='get' id='r1'><query xmlns='{NS_ROSTER}'/></iq>")
    assert (await stream.expect(NS_CLIENT, "iq")).get("id") == "r1"
    await stream.send(f"<iq type='set' id='r2'><query xmlns='{NS_ROSTER}'><item jid='nurse@localhost'/></query></iq>")
    first = await stream.expect(NS_CLIENT, "iq")
    second = await stream.expect(NS_CLIENT, "iq")
    assert (first.get("type"), first.get("id")) == ("result", "r2")
    item = second.find(f"{q(NS_ROSTER, 'query')}/{q(NS_ROSTER, 'item')}")
    assert second.get("type") == "set" and item is not None
    assert item.get("jid") == "nurse@localhost" and item.get("subscription") == "none"
    stream.close()
