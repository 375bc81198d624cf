"""XEP-0115: the caps hash in the stream features is the one a client computes from disco#info,
also when XEP-0157 contact addresses add a data form to it."""

import pytest

from raw_xmpp import RawStream
from xmpp_harness import q

pytestmark = pytest.mark.asyncio

NS_CAPS = "http://jabber.org/protocol/caps"
CONTACTS = """
[contact_info]
abuse = ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
security = ["https://localhost/security"]
"""


@pytest.fixture(scope="module")
def contact_server(spawn_server):
    with spawn_server("caps-contact-server", CONTACTS, accounts=2) as srv:
        yield srv


async def check_caps(server, client) -> dict:
    raw = await RawStream.connect(server.c2s_port)
    features = await raw.open()
    raw.close()
    caps = features.find(q(NS_CAPS, "c"))
    assert caps is not None, "no XEP-0115 <c/> in the stream features"
    assert caps.get("hash") == "sha-1" and caps.get("node")
    for plugin in ("xep_0004", "xep_0030", "xep_0115"):
        client.xmpp.register_plugin(plugin)
    node = f"{caps.get('node')}#{caps.get('ver')}"
    info = await client.xmpp.plugin["xep_0030"].get_info(jid="localhost", node=node)
    computed = client.xmpp.plugin["xep_0115"].generate_verstring(info["disco_info"], "sha-1")
    assert computed == caps.get("ver"), f"advertised {caps.get('ver')}, slixmpp computes {computed}"
    return info["disco_info"]


async def test_caps_ver_in_stream_features_matches_disco_info(server, xmpp):
    await check_caps(server, await xmpp.login())


async def test_caps_ver_covers_the_contact_addresses_form(contact_server, session_for):
    client = await session_for(contact_server).login()
    info = await check_caps(contact_server, client)
    forms = [s for s in info["substanzas"] if s.name == "x"]
    assert forms, "no XEP-0157 form in disco#info"
    fields = forms[0].get_fields()
    assert fields["abuse-addresses"].get_value() == ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
    assert fields["security-addresses"].get_value() == ["https://localhost/security"]
