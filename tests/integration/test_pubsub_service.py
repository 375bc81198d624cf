"""XEP-0060 pubsub service on pubsub.localhost against a real server: nodes created instant and named,
configured and deleted; publish, retract and items; subscriptions with their states and notifications;
affiliations managed by owners; who may create nodes; limits; discovery; persistence across a restart."""

import pytest
from pep_helpers import (
    NS_EVENT,
    NS_OWNER,
    NS_PUBSUB,
    form,
    is_event,
    pep_config,
    publish_xml,
    pubsub_condition,
)
from xmpp_harness import q

pytestmark = pytest.mark.asyncio

SERVICE = "pubsub.localhost"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_INFO = "http://jabber.org/protocol/disco#info"
LIMITS = """
[pubsub]
max_nodes_per_owner = 4
max_item_size = 2000
max_items = 3
"""


@pytest.fixture(scope="module")
def pubsub_server(spawn_server):
    with spawn_server("pubsub-server", pep_config(LIMITS, modules=["pubsub"]), accounts=40) as srv:
        yield srv


@pytest.fixture
def xmpp(pubsub_server, session_for):
    return session_for(pubsub_server)


def pubsub(inner: str, owner: bool = False) -> str:
    return f"<pubsub xmlns='{NS_OWNER if owner else NS_PUBSUB}'>{inner}</pubsub>"


async def create(client, node: str, **config: str) -> None:
    configure = f"<configure>{form(NS_PUBSUB + '#node_config', **config)}</configure>" if config else ""
    await client.iq("set", pubsub(f"<create node='{node}'/>{configure}"), to=SERVICE)


async def publish(client, node: str, payload: str, item_id: str | None = None) -> str:
    result = await client.iq("set", publish_xml(node, payload, item_id), to=SERVICE)
    return result.find(f".//{q(NS_PUBSUB, 'item')}").get("id")


async def item_ids(client, node: str) -> list[str]:
    result = await client.iq("get", pubsub(f"<items node='{node}'/>"), to=SERVICE)
    return [i.get("id") for i in result.iter(q(NS_PUBSUB, "item"))]


async def subscribe(client, node: str, jid: str | None = None) -> str:
    result = await client.iq("set", pubsub(f"<subscribe node='{node}' jid='{jid or client.bare}'/>"), to=SERVICE)
    return result.find(f".//{q(NS_PUBSUB, 'subscription')}").get("subscription")


async def set_affiliation(owner, node: str, jid: str, affiliation: str) -> None:
    await owner.iq("set", pubsub(f"<affiliations node='{node}'><affiliation jid='{jid}' affiliation='{affiliation}'/>"
                                 "</affiliations>", owner=True), to=SERVICE)


def entry(n: int) -> str:
    return f"<entry xmlns='http://www.w3.org/2005/Atom'><title>post {n}</title></entry>"


async def test_service_is_listed_and_says_what_it_does(xmpp):
    a = await xmpp.login()
    items = await a.iq("get", f"<query xmlns='{NS_ITEMS}'/>", to="localhost")
    assert SERVICE in {i.get("jid") for i in items.iter(q(NS_ITEMS, "item"))}
    info = await a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=SERVICE)
    identities = {(i.get("category"), i.get("type")) for i in info.iter(q(NS_INFO, "identity"))}
    features = {f.get("var") for f in info.iter(q(NS_INFO, "feature"))}
    assert ("pubsub", "service") in identities
    assert {NS_PUBSUB, f"{NS_PUBSUB}#create-nodes", f"{NS_PUBSUB}#subscribe", f"{NS_PUBSUB}#instant-nodes"} <= features


async def test_instant_node_gets_a_name_and_a_named_node_cannot_be_created_twice(xmpp):
    a = await xmpp.login()
    result = await a.iq("set", pubsub("<create/>"), to=SERVICE)
    name = result.find(f"{q(NS_PUBSUB, 'pubsub')}/{q(NS_PUBSUB, 'create')}").get("node")
    assert name
    await create(a, f"feed-{a.account.localpart}")
    condition, _ = await a.iq_error("set", pubsub(f"<create node='feed-{a.account.localpart}'/>"), to=SERVICE)
    assert condition == "conflict"


async def test_subscribers_are_notified_once_with_the_item_and_get_the_last_on_subscribing(xmpp):
    owner = await xmpp.login()
    reader = await xmpp.login()
    node = f"news-{owner.account.localpart}"
    await create(owner, node)
    first = await publish(owner, node, entry(1))
    assert await subscribe(reader, node) == "subscribed"
    last = await reader.expect(is_event(node, sender=SERVICE))
    assert last.find(f".//{q(NS_EVENT, 'item')}").get("id") == first
    second = await publish(owner, node, entry(2))
    note = await reader.expect(is_event(node, sender=SERVICE))
    assert note.find(f".//{q(NS_EVENT, 'item')}").get("id") == second and note.get("to") == reader.bare
    await reader.iq("set", pubsub(f"<unsubscribe node='{node}' jid='{reader.bare}'/>"), to=SERVICE)
    await publish(owner, node, entry(3))
    await reader.ping_server()
    owner.message(reader.jid, "barrier")
    await reader.expect_message("barrier")
    assert sum(1 for el in reader.inbox.history if is_event(node)(el)) == 2
    condition, error = await reader.iq_error("set", pubsub(f"<unsubscribe node='{node}' jid='{reader.bare}'/>"), to=SERVICE)
    assert condition == "unexpected-request" and pubsub_condition(error) == "not-subscribed"


async def test_only_publishers_publish_and_owners_manage_affiliations(xmpp):
    owner = await xmpp.login()
    other = await xmpp.login()
    node = f"team-{owner.account.localpart}"
    await create(owner, node)
    condition, _ = await other.iq_error("set", publish_xml(node, entry(1)), to=SERVICE)
    assert condition == "forbidden"
    condition, _ = await other.iq_error("set", pubsub(f"<affiliations node='{node}'><affiliation jid='{other.bare}' "
                                                     "affiliation='owner'/></affiliations>", owner=True), to=SERVICE)
    assert condition == "forbidden"
    await set_affiliation(owner, node, other.bare, "publisher")
    item = await publish(other, node, entry(1))
    await other.iq("set", pubsub(f"<retract node='{node}'><item id='{item}'/></retract>"), to=SERVICE)
    assert await item_ids(owner, node) == []
    listed = await owner.iq("get", pubsub(f"<affiliations node='{node}'/>", owner=True), to=SERVICE)
    assert {(a.get("jid"), a.get("affiliation")) for a in listed.iter(q(NS_OWNER, "affiliation"))} == {
        (owner.bare, "owner"), (other.bare, "publisher")}
    mine = await other.iq("get", pubsub("<affiliations/>"), to=SERVICE)
    assert [(a.get("node"), a.get("affiliation")) for a in mine.iter(q(NS_PUBSUB, "affiliation"))] == [(node, "publisher")]
    condition, _ = await owner.iq_error("set", pubsub(f"<affiliations node='{node}'><affiliation jid='{owner.bare}' "
                                                     "affiliation='none'/></affiliations>", owner=True), to=SERVICE)
    assert condition == "not-acceptable"


async def test_an_outcast_loses_its_subscription_and_cannot_read_or_subscribe(xmpp):
    owner = await xmpp.login()
    troll = await xmpp.login()
    node = f"open-{owner.account.localpart}"
    await create(owner, node)
    await subscribe(troll, node)
    await set_affiliation(owner, node, troll.bare, "outcast")
    subs = await owner.iq("get", pubsub(f"<subscriptions node='{node}'/>", owner=True), to=SERVICE)
    assert list(subs.iter(q(NS_OWNER, "subscription"))) == []
    condition, _ = await troll.iq_error("set", pubsub(f"<subscribe node='{node}' jid='{troll.bare}'/>"), to=SERVICE)
    assert condition == "forbidden"
    condition, _ = await troll.iq_error("get", pubsub(f"<items node='{node}'/>"), to=SERVICE)
    assert condition == "forbidden"


async def test_authorize_node_keeps_a_subscription_pending_until_the_owner_approves(xmpp):
    owner = await xmpp.login()
    reader = await xmpp.login()
    node = f"club-{owner.account.localpart}"
    await create(owner, node, access_model="authorize")
    await publish(owner, node, entry(1))
    assert await subscribe(reader, node) == "pending"
    request = await owner.expect(lambda el: el.get("from") == SERVICE and el.find(q("jabber:x:data", "x")) is not None)
    fields = {f.get("var"): f.findtext(q("jabber:x:data", "value")) for f in request.iter(q("jabber:x:data", "field"))}
    assert fields["pubsub#node"] == node and fields["pubsub#subscriber_jid"] == reader.bare
    condition, error = await reader.iq_error("get", pubsub(f"<items node='{node}'/>"), to=SERVICE)
    assert condition == "not-authorized" and pubsub_condition(error) == "not-subscribed"
    owner.send(f"<message to='{SERVICE}'><x xmlns='jabber:x:data' type='submit'>"
               "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field>"
               f"<field var='pubsub#node'><value>{node}</value></field>"
               f"<field var='pubsub#subscriber_jid'><value>{reader.bare}</value></field>"
               "<field var='pubsub#allow'><value>true</value></field></x></message>")
    await reader.expect(lambda el: el.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'subscription')}") is not None)
    await reader.expect(is_event(node, sender=SERVICE))  # the last item, now that it may see it
    assert len(await item_ids(reader, node)) == 1


async def test_whitelist_node_is_hidden_from_strangers_and_open_to_members(xmpp):
    owner = await xmpp.login()
    member = await xmpp.login()
    stranger = await xmpp.login()
    node = f"private-{owner.account.localpart}"
    await create(owner, node, access_model="whitelist")
    await publish(owner, node, entry(1))
    await set_affiliation(owner, node, member.bare, "member")
    assert len(await item_ids(member, node)) == 1
    condition, error = await stranger.iq_error("get", pubsub(f"<items node='{node}'/>"), to=SERVICE)
    assert condition == "not-allowed" and pubsub_condition(error) == "closed-node"

    async def listed(client):
        result = await client.iq("get", f"<query xmlns='{NS_ITEMS}'/>", to=SERVICE)
        return {i.get("node") for i in result.iter(q(NS_ITEMS, "item"))}

    assert node in await listed(member) and node not in await listed(stranger)
    condition, error = await owner.iq_error(
        "set", pubsub(f"<configure node='{node}'>{form(NS_PUBSUB + '#node_config', access_model='presence')}</configure>",
                      owner=True), to=SERVICE)
    assert condition == "not-acceptable" and pubsub_condition(error) == "unsupported-access-model"


async def test_configure_and_delete_notify_and_remove(xmpp):
    owner = await xmpp.login()
    reader = await xmpp.login()
    node = f"temp-{owner.account.localpart}"
    await create(owner, node)
    await owner.iq("set", pubsub(f"<configure node='{node}'>{form(NS_PUBSUB + '#node_config', title='Town news')}"
                                 "</configure>", owner=True), to=SERVICE)
    info = await reader.iq("get", f"<query xmlns='{NS_INFO}' node='{node}'/>", to=SERVICE)
    values = {f.get("var"): f.findtext(q("jabber:x:data", "value")) for f in info.iter(q("jabber:x:data", "field"))}
    assert values["pubsub#title"] == "Town news" and values["pubsub#owner"] == owner.bare
    await subscribe(reader, node)
    await owner.iq("set", pubsub(f"<delete node='{node}'/>", owner=True), to=SERVICE)
    await reader.expect(is_event(node, sender=SERVICE, child="delete"))
    condition, _ = await reader.iq_error("get", pubsub(f"<items node='{node}'/>"), to=SERVICE)
    assert condition == "item-not-found"


async def test_limits_on_items_size_and_nodes_per_owner(xmpp):
    owner = await xmpp.login()
    node = f"limits-{owner.account.localpart}"
    await create(owner, node, max_items="max")
    for n in range(5):
        await publish(owner, node, entry(n), item_id=f"i{n}")
    assert await item_ids(owner, node) == ["i2", "i3", "i4"]  # pubsub.max_items = 3
    condition, error = await owner.iq_error("set", publish_xml(node, f"<b xmlns='urn:example'>{'x' * 3000}</b>"), to=SERVICE)
    assert condition == "not-acceptable" and pubsub_condition(error) == "payload-too-big"
    for n in range(3):
        await create(owner, f"{node}-{n}")
    condition, error = await owner.iq_error("set", pubsub(f"<create node='{node}-more'/>"), to=SERVICE)
    assert condition == "not-allowed" and pubsub_condition(error) == "max-nodes-exceeded"


async def test_only_admins_create_nodes_when_so_configured_and_nodes_survive_a_restart(make_server, session_for):
    config = 'admins = ["user001@localhost"]\n' + pep_config('[pubsub]\ncreate_nodes = "admins"\n', modules=["pubsub"])
    srv = make_server(config, name="pubsub-admins", accounts=2)
    boss_account, pleb_account = srv.new_account(), srv.new_account()
    xmpp = session_for(srv)
    boss = await xmpp.login(boss_account)
    pleb = await xmpp.login(pleb_account)
    condition, _ = await pleb.iq_error("set", pubsub("<create node='mine'/>"), to=SERVICE)
    assert condition == "forbidden"
    await create(boss, "announcements")
    item = await publish(boss, "announcements", entry(1))
    await subscribe(pleb, "announcements")
    await xmpp.close()
    srv.stop()
    srv.start()
    pleb = await session_for(srv).login(pleb_account)
    assert await item_ids(pleb, "announcements") == [item]
    subs = await pleb.iq("get", pubsub("<subscriptions/>"), to=SERVICE)
    assert [(s.get("node"), s.get("subscription")) for s in subs.iter(q(NS_PUBSUB, "subscription"))] == [
        ("announcements", "subscribed")]
