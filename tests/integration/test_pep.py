"""XEP-0163 PEP against a real server: publish, notifications filtered by caps, access models, last items,
retract, retrieval, owner requests, publish-options preconditions and bounds."""

import pytest
from pep_helpers import (
    NS_EVENT,
    NS_OWNER,
    NS_PUBSUB,
    announce,
    form,
    is_event,
    items,
    pep_config,
    publish,
    publish_xml,
    pubsub_condition,
)
from xmpp_harness import befriend, q

pytestmark = pytest.mark.asyncio

TUNE = "http://jabber.org/protocol/tune"
MOOD = "http://jabber.org/protocol/mood"
LIMITS = """
[pep]
max_nodes = 3
max_item_size = 2000
max_items = 5
"""


@pytest.fixture(scope="module")
def pep_server(spawn_server):
    with spawn_server("pep-server", pep_config(LIMITS), accounts=40) as srv:
        yield srv


@pytest.fixture
def xmpp(pep_server, session_for):
    return session_for(pep_server)


def tune(title: str) -> str:
    return f"<tune xmlns='{TUNE}'><title>{title}</title></tune>"


async def friends(xmpp, *interests_b: str):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a, TUNE)
    await announce(b, *interests_b)
    await befriend(a, b)
    return a, b


async def test_account_disco_lists_pep_identity_and_publish_options(xmpp):
    a = await xmpp.login()
    info = await a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=a.bare)
    query = info.find(q("http://jabber.org/protocol/disco#info", "query"))
    identities = {(i.get("category"), i.get("type")) for i in query.findall(q("http://jabber.org/protocol/disco#info", "identity"))}
    features = {f.get("var") for f in query.findall(q("http://jabber.org/protocol/disco#info", "feature"))}
    assert ("pubsub", "pep") in identities and ("account", "registered") in identities
    assert {f"{NS_PUBSUB}#publish-options", f"{NS_PUBSUB}#auto-create", f"{NS_PUBSUB}#access-whitelist"} <= features


async def test_publish_notifies_owner_and_contacts_with_notify_caps_only(xmpp):
    a, b = await friends(xmpp, TUNE)
    c = await xmpp.login(presence=False)  # a contact without +notify for tunes
    await announce(c, MOOD)
    await befriend(a, c)
    item_id = await publish(a, TUNE, tune("Song"))
    note = await b.expect(is_event(TUNE, sender=a.bare))
    got = note.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}/{q(NS_EVENT, 'item')}")
    assert got.get("id") == item_id and got.find(f"{{{TUNE}}}tune/{{{TUNE}}}title").text == "Song"
    assert note.get("to") == b.jid and note.get("type") == "headline"
    await a.expect(is_event(TUNE, sender=a.bare))  # the owner's own resource, which has +notify
    a.message(c.jid, "barrier")
    await c.expect_message("barrier")
    assert not any(is_event(TUNE)(el) for el in c.inbox.history), "a contact without +notify got the tune"


async def test_items_presence_access_refuses_strangers_and_open_access_does_not(xmpp):
    a, b = await friends(xmpp, TUNE)
    stranger = await xmpp.login()
    await publish(a, TUNE, tune("Private"))
    condition, error = await stranger.iq_error("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{TUNE}'/></pubsub>", to=a.bare)
    assert condition == "not-authorized" and pubsub_condition(error) == "presence-subscription-required"
    assert [i.get("id") for i in await items(b, a.bare, TUNE)] != []
    await publish(a, "open-node", "<x xmlns='urn:example'/>", access_model="open")
    assert len(await items(stranger, a.bare, "open-node")) == 1


async def test_last_item_reaches_a_contact_resource_on_initial_presence(xmpp):
    a, b = await friends(xmpp, TUNE)
    await publish(a, TUNE, tune("First"))
    last = await publish(a, TUNE, tune("Last"))
    b2 = await xmpp.login(b.account, resource="second", presence=False)
    await announce(b2, TUNE)
    note = await b2.expect(is_event(TUNE, sender=a.bare))
    assert note.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}/{q(NS_EVENT, 'item')}").get("id") == last


async def test_caps_showing_notify_later_bring_the_last_item(xmpp):
    a, b = await friends(xmpp, MOOD)
    await publish(a, TUNE, tune("Later"))
    await announce(b, MOOD, TUNE)  # a new caps hash in a new presence
    await b.expect(is_event(TUNE, sender=a.bare))


async def test_retract_notifies_and_items_by_id_and_max_items(xmpp):
    a, b = await friends(xmpp, TUNE)
    ids = [await publish(a, TUNE, tune(f"t{n}"), item_id=f"i{n}", max_items="max") for n in range(3)]
    assert [i.get("id") for i in await items(a, None, TUNE)] == ids
    assert [i.get("id") for i in await items(b, a.bare, TUNE, " max_items='2'")] == ids[1:]
    assert [i.get("id") for i in await items(b, a.bare, TUNE, inner="<item id='i0'/>")] == ["i0"]
    await a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node='{TUNE}' notify='true'><item id='i1'/></retract></pubsub>")
    note = await b.expect(is_event(TUNE, sender=a.bare, child="retract"))
    assert note.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}/{q(NS_EVENT, 'retract')}").get("id") == "i1"
    assert [i.get("id") for i in await items(a, None, TUNE)] == ["i0", "i2"]
    condition, _ = await a.iq_error("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node='{TUNE}'><item id='nope'/></retract></pubsub>")
    assert condition == "item-not-found"


async def test_republishing_an_id_replaces_it_and_max_items_keeps_the_newest(xmpp):
    a = await xmpp.login()
    for n in range(7):  # the server keeps 5 at most (pep.max_items)
        await publish(a, "many", f"<n xmlns='urn:example'>{n}</n>", item_id=f"i{n}", max_items="max")
    await publish(a, "many", "<n xmlns='urn:example'>again</n>", item_id="i3", max_items="max")
    got = await items(a, None, "many")
    assert [i.get("id") for i in got] == ["i2", "i4", "i5", "i6", "i3"]


async def test_purge_and_delete_notify_and_remove(xmpp):
    a, b = await friends(xmpp, TUNE)
    await publish(a, TUNE, tune("x"))
    await a.iq("set", f"<pubsub xmlns='{NS_OWNER}'><purge node='{TUNE}'/></pubsub>")
    await b.expect(is_event(TUNE, sender=a.bare, child="purge"))
    assert await items(a, None, TUNE) == []
    await a.iq("set", f"<pubsub xmlns='{NS_OWNER}'><delete node='{TUNE}'/></pubsub>")
    await b.expect(is_event(TUNE, sender=a.bare, child="delete"))
    condition, _ = await a.iq_error("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{TUNE}'/></pubsub>")
    assert condition == "item-not-found"


async def test_publish_options_are_preconditions_on_an_existing_node(xmpp):
    a = await xmpp.login()
    await publish(a, "prefs", "<p xmlns='urn:example'/>", persist_items="true", access_model="whitelist")
    await publish(a, "prefs", "<p xmlns='urn:example'/>", persist_items="true", access_model="whitelist")
    condition, error = await a.iq_error("set", publish_xml("prefs", "<p xmlns='urn:example'/>", access_model="open"))
    assert condition == "conflict" and pubsub_condition(error) == "precondition-not-met"
    condition, error = await a.iq_error("set", publish_xml("prefs", "<p xmlns='urn:example'/>", unknown_option="1"))
    assert condition == "conflict" and pubsub_condition(error) == "precondition-not-met"


async def test_configure_whitelist_and_affiliations(xmpp):
    a, b = await friends(xmpp, TUNE)
    await publish(a, "secret", "<s xmlns='urn:example'/>")
    await a.iq("set", f"<pubsub xmlns='{NS_OWNER}'><configure node='secret'>"
               f"{form(NS_PUBSUB + '#node_config', access_model='whitelist')}</configure></pubsub>")
    condition, error = await b.iq_error("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='secret'/></pubsub>", to=a.bare)
    assert condition == "not-allowed" and pubsub_condition(error) == "closed-node"
    await a.iq("set", f"<pubsub xmlns='{NS_OWNER}'><affiliations node='secret'>"
               f"<affiliation jid='{b.bare}' affiliation='member'/></affiliations></pubsub>")
    assert len(await items(b, a.bare, "secret")) == 1
    config = await a.iq("get", f"<pubsub xmlns='{NS_OWNER}'><configure node='secret'/></pubsub>")
    values = {f.get("var"): [v.text for v in f.findall(q("jabber:x:data", "value"))]
              for f in config.iter(q("jabber:x:data", "field"))}
    assert values["pubsub#access_model"] == ["whitelist"]


async def test_others_cannot_publish_to_an_account(xmpp):
    a, b = await friends(xmpp, TUNE)
    condition, _ = await b.iq_error("set", publish_xml(TUNE, tune("not mine")), to=a.bare)
    assert condition == "forbidden"


async def test_bounds_on_item_size_and_node_count(xmpp):
    a = await xmpp.login()
    condition, error = await a.iq_error("set", publish_xml("big", f"<b xmlns='urn:example'>{'x' * 3000}</b>"))
    assert condition == "not-acceptable" and pubsub_condition(error) == "payload-too-big"
    for n in range(3):
        await publish(a, f"node{n}", "<n xmlns='urn:example'/>")
    condition, error = await a.iq_error("set", publish_xml("node3", "<n xmlns='urn:example'/>"))
    assert condition == "not-allowed" and pubsub_condition(error) == "max-nodes-exceeded"
    await publish(a, "node0", "<n xmlns='urn:example'/>")  # publishing to an existing node is still fine


async def test_disco_items_lists_the_nodes_a_requester_may_see(xmpp):
    a, b = await friends(xmpp, TUNE)
    stranger = await xmpp.login()
    await publish(a, TUNE, tune("x"))
    await publish(a, "public", "<p xmlns='urn:example'/>", access_model="open")
    ns = "http://jabber.org/protocol/disco#items"

    async def listed(client):
        result = await client.iq("get", f"<query xmlns='{ns}'/>", to=a.bare)
        return {i.get("node") for i in result.iter(q(ns, "item"))}

    assert await listed(b) == {TUNE, "public"}
    assert await listed(stranger) == {"public"}


async def test_approving_a_subscription_brings_the_last_items_to_the_new_subscriber(xmpp):
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a, TUNE)
    await announce(b, TUNE)
    item_id = await publish(a, TUNE, tune("before we met"))
    await befriend(a, b)
    note = await b.expect(is_event(TUNE, sender=a.bare))
    assert note.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}/{q(NS_EVENT, 'item')}").get("id") == item_id
