"""Profiles on PEP with real clients' plugins: XEP-0084 avatars, XEP-0402 bookmarks, XEP-0292 vCard4 and
XEP-0172 nicknames round-trip between two resources of an account and a contact."""

import hashlib

import pytest

from pep_helpers import NS_EVENT, NS_PUBSUB, announce, is_event, items, pep_config, publish, publish_xml, pubsub_condition
from xmpp_harness import befriend, q

pytestmark = pytest.mark.asyncio

AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
VCARD4 = "urn:xmpp:vcard4"
NICK = "http://jabber.org/protocol/nick"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def profile_server(spawn_server):
    with spawn_server("pep-profile-server", pep_config(), accounts=20) as srv:
        yield srv


@pytest.fixture
def xmpp(profile_server, session_for):
    return session_for(profile_server)


async def test_avatar_published_with_the_xep_0084_plugin_reaches_a_contact(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b, AVATAR_META)
    await befriend(a, b)
    a.xmpp.register_plugin("xep_0084")
    avatar = a.xmpp.plugin["xep_0084"]
    avatar_id = avatar.generate_id(PNG)
    await avatar.publish_avatar(PNG)
    await avatar.publish_avatar_metadata([{"id": avatar_id, "type": "image/png", "bytes": len(PNG)}])
    note = await b.expect(is_event(AVATAR_META, sender=a.bare))
    info = note.find(f".//{{{AVATAR_META}}}info")
    assert info.get("id") == avatar_id == hashlib.sha1(PNG).hexdigest()
    b.xmpp.register_plugin("xep_0084")
    got = await b.xmpp.plugin["xep_0084"].retrieve_avatar(a.bare, avatar_id)
    data = got["pubsub"]["items"]["item"]["avatar_data"]["value"]
    assert data == PNG


async def test_bookmarks_stay_private_and_reach_the_other_resource(xmpp):
    account = xmpp.account()
    one = await xmpp.login(account, resource="one", presence=False)
    two = await xmpp.login(account, resource="two", presence=False)
    await announce(one)
    await announce(two, BOOKMARKS)
    contact = await xmpp.login(presence=False)
    await announce(contact, BOOKMARKS)
    await befriend(one, contact)
    room = "room@conference.localhost"
    conference = f"<conference xmlns='{BOOKMARKS}' name='Team' autojoin='true'><nick>me</nick></conference>"
    await publish(one, BOOKMARKS, conference, item_id=room, persist_items="true", max_items="max",
                  send_last_published_item="never", access_model="whitelist")
    await publish(one, BOOKMARKS, conference.replace("Team", "Other"), item_id="other@conference.localhost",
                  persist_items="true", max_items="max", send_last_published_item="never", access_model="whitelist")
    note = await two.expect(is_event(BOOKMARKS, sender=account.jid))
    assert note.find(f".//{q(NS_EVENT, 'item')}").get("id") == room
    assert {i.get("id") for i in await items(two, None, BOOKMARKS)} == {room, "other@conference.localhost"}
    condition, error = await contact.iq_error("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>",
                                              to=account.jid)
    assert condition == "not-allowed" and pubsub_condition(error) == "closed-node"
    assert not any(is_event(BOOKMARKS)(el) for el in contact.inbox.history)


async def test_vcard4_and_nickname_reach_a_contact(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b, NICK)
    await befriend(a, b)
    vcard = "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><fn><text>Ada Lovelace</text></fn></vcard>"
    await a.iq("set", publish_xml(VCARD4, vcard, item_id="current", access_model="presence"))
    got = await items(b, a.bare, VCARD4)
    assert got[0].find(".//{urn:ietf:params:xml:ns:vcard-4.0}text").text == "Ada Lovelace"
    await publish(a, NICK, f"<nick xmlns='{NICK}'>Ada</nick>")
    note = await b.expect(is_event(NICK, sender=a.bare))
    assert note.find(f".//{{{NICK}}}nick").text == "Ada"
