"""RFC 6121 §3.1.3: a subscription request for an offline contact is kept whole, extensions
included (e.g. a XEP-0379 pre-authentication token), and handed over at the contact's next login."""

import pytest

from raw_xmpp import RawStream
from xmpp_harness import NS_CLIENT

pytestmark = pytest.mark.asyncio

NS_PARS = "urn:xmpp:pars:0"


async def test_pending_subscription_request_keeps_its_extensions(server, xmpp):
    alice_account, bob_account = xmpp.account(), xmpp.account()
    alice = await RawStream.connect(server.c2s_port)
    await alice.login_plain(alice_account)
    await alice.send(
        f"<presence to='{bob_account.jid}' type='subscribe'><preauth xmlns='{NS_PARS}' token='1tMFqYDdKh'/></presence>"
        "<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    while (await alice.expect(NS_CLIENT, "iq")).get("id") != "sync":
        pass
    alice.close()

    bob = await RawStream.connect(server.c2s_port)
    await bob.login_plain(bob_account)
    await bob.send("<presence/>")
    while True:
        el = await bob.expect(NS_CLIENT, "presence")
        if el.get("type") == "subscribe":
            break
    assert el.get("from") == alice_account.jid
    token = el.find(f"{{{NS_PARS}}}preauth")
    assert token is not None and token.get("token") == "1tMFqYDdKh", "the request lost its extension"
    bob.close()
