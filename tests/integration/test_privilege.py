"""XEP-0356 privileged components against a real server, with slixmpp's own xep_0356 plugin."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio
from slixmpp.exceptions import IqError

from component_helpers import as_client, connect_component
from sakari_process import DOMAIN, free_ports
from xmpp_harness import NS_ROSTER, error_condition, is_message, is_roster_push, q, roster_item

NS_PRIVILEGE = "urn:xmpp:privilege:2"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"

CONFIG = """
[modules]
enabled = ["roster", "presence", "offline", "disco", "ping", "carbons", "pep"]

[network]
component_port = {port}

[[components]]
domain = "bridge.localhost"
secret = "bridge-secret"
[components.privileges]
roster = "both"
message = "outgoing"
[components.privileges.iq]
"http://jabber.org/protocol/pubsub" = "both"
"http://jabber.org/protocol/pubsub#owner" = "set"
"urn:xmpp:http:upload:0" = "get"

[[components]]
domain = "plain.localhost"
secret = "plain-secret"

[[components]]
domain = "writer.localhost"
secret = "writer-secret"
[components.privileges]
roster = "set"

[[components]]
domain = "quiet.localhost"
secret = "quiet-secret"
[components.privileges]
roster = "get"
roster_push = false
"""


@pytest.fixture(scope="module")
def privileged_server(spawn_server):
    (port,) = free_ports(1)
    with spawn_server("privilege-server", CONFIG.format(port=port)) as srv:
        srv.component_port = port
        yield srv


@pytest_asyncio.fixture
async def users(privileged_server, session_for):
    return session_for(privileged_server)


@pytest_asyncio.fixture
async def bridge(privileged_server):
    component = await connect_component(privileged_server.component_port, "bridge.localhost", "bridge-secret", ("xep_0356",))
    yield component
    component.abort()


def condition(error: IqError) -> str | None:
    # From the XML: slixmpp's error plugin has one namespace for all its streams, and clients in the same
    # process reset it to jabber:client, so a component's IqError.condition reads a default.
    return error_condition(as_client(error.iq.xml))


def privilege_message(el: ET.Element) -> bool:
    return el.find(q(NS_PRIVILEGE, "privilege")) is not None


async def test_grants_are_announced_to_the_component_as_it_connects(bridge) -> None:
    message = await bridge.inbox.wait_for(privilege_message, "the <privilege/> announcement")
    assert message.get("from") == DOMAIN
    perms = {p.get("access"): p for p in message.find(q(NS_PRIVILEGE, "privilege"))}
    assert perms["roster"].get("type") == "both" and perms["message"].get("type") == "outgoing"
    assert perms["roster"].get("push") == "true"
    namespaces = {n.get("ns"): n.get("type") for n in perms["iq"]}
    assert namespaces == {NS_PUBSUB: "both", NS_PUBSUB + "#owner": "set", "urn:xmpp:http:upload:0": "get"}


async def test_component_reads_and_writes_a_users_roster(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    await bridge.xmpp.plugin["xep_0356"].set_roster(
        alice.bare, {"bob@bridge.localhost": {"name": "Bob (IRC)", "subscription": "both", "groups": ["IRC"]}}
    )
    push = await alice.inbox.wait_for(is_roster_push("bob@bridge.localhost", subscription="both"))
    assert push is not None
    result = await bridge.xmpp.plugin["xep_0356"].get_roster(alice.bare)
    items = result["roster"]["items"]
    assert "bob@bridge.localhost" in {str(j) for j in items}
    assert (await alice.roster_items())["bob@bridge.localhost"].get("name") == "Bob (IRC)"


async def test_component_may_not_set_a_subscription_for_contacts_outside_its_domain(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    with pytest.raises(IqError) as failed:
        await bridge.xmpp.plugin["xep_0356"].set_roster(alice.bare, {"eve@localhost": {"subscription": "both"}})
    assert condition(failed.value) == "not-allowed"


async def test_a_component_without_grants_may_not_touch_rosters(users, privileged_server) -> None:
    plain = await connect_component(privileged_server.component_port, "plain.localhost", "plain-secret")
    try:
        alice = await users.login()
        iq = plain.xmpp.make_iq_get(queryxmlns="jabber:iq:roster", ifrom="plain.localhost", ito=alice.bare)
        with pytest.raises(IqError) as failed:
            await iq.send(timeout=10)
        assert condition(failed.value) == "forbidden"
    finally:
        plain.abort()


async def test_component_sends_a_message_as_a_user_with_a_carbon_to_the_users_clients(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    bob = await users.login()
    await alice.iq("set", f"<enable xmlns='{NS_CARBONS}'/>")
    message = bridge.xmpp.make_message(mto=bob.bare, mfrom=alice.bare, mbody="sent from IRC", mtype="chat")
    bridge.xmpp.plugin["xep_0356"].send_privileged_message(message)
    got = await bob.inbox.wait_for(is_message("sent from IRC"))
    assert got.get("from") == alice.bare

    def sent_carbon(el: ET.Element) -> bool:
        forwarded = el.find(f"{q(NS_CARBONS, 'sent')}/{q(NS_FORWARD, 'forwarded')}")
        return forwarded is not None and forwarded.find(f"{q('jabber:client', 'message')}/{q('jabber:client', 'body')}").text == "sent from IRC"

    await alice.inbox.wait_for(sent_carbon, "a sent carbon of the bridged message")


async def test_component_may_not_send_messages_for_accounts_of_other_servers(bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    bridge.send(
        f"<message from='bridge.localhost' to='{DOMAIN}' id='spoof'><privilege xmlns='{NS_PRIVILEGE}'>"
        f"<forwarded xmlns='{NS_FORWARD}'><message xmlns='jabber:client' from='eve@elsewhere.example' to='x@localhost'>"
        "<body>no</body></message></forwarded></privilege></message>"
    )
    error = await bridge.inbox.wait_for(lambda el: el.get("id") == "spoof" and el.get("type") == "error")
    assert error.find(f"{q('jabber:client', 'error')}/{q('urn:ietf:params:xml:ns:xmpp-stanzas', 'forbidden')}") is not None


async def test_component_publishes_and_reads_pep_as_a_user_with_a_privileged_iq(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    plugin = bridge.xmpp.plugin["xep_0356"]
    publish = bridge.xmpp.make_iq_set(ifrom=alice.bare, ito=alice.bare)
    publish.append(ET.fromstring(
        f"<pubsub xmlns='{NS_PUBSUB}'><publish node='urn:example:bridge'><item id='one'>"
        "<entry xmlns='urn:example:bridge'>hello</entry></item></publish></pubsub>"
    ))
    await plugin.send_privileged_iq(publish)
    get = bridge.xmpp.make_iq_get(ifrom=alice.bare, ito=alice.bare)
    get.append(ET.fromstring(f"<pubsub xmlns='{NS_PUBSUB}'><items node='urn:example:bridge'/></pubsub>"))
    answer = await plugin.send_privileged_iq(get)
    assert answer["type"] == "result"
    entry = answer.xml.find(f".//{q('urn:example:bridge', 'entry')}")
    assert entry is not None and entry.text == "hello"
    # Alice's own client sees what the bridge published.
    result = await alice.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='urn:example:bridge'/></pubsub>")
    assert result.find(f".//{q('urn:example:bridge', 'entry')}").text == "hello"


async def test_a_privileged_iq_of_a_namespace_not_granted_is_forbidden(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    bridge.send(
        f"<iq type='get' from='bridge.localhost' to='{alice.bare}' id='priv'><privileged_iq xmlns='{NS_PRIVILEGE}'>"
        f"<iq xmlns='jabber:client' type='get' from='{alice.bare}' to='{alice.bare}' id='inner'>"
        "<query xmlns='jabber:iq:private'><x xmlns='urn:example'/></query></iq></privileged_iq></iq>"
    )
    error = await bridge.inbox.wait_for(lambda el: el.get("id") == "priv")
    assert error.get("type") == "error"
    assert error.find(f"{q('jabber:client', 'error')}/{q('urn:ietf:params:xml:ns:xmpp-stanzas', 'forbidden')}") is not None


def roster_push_from(owner: str, jid: str, subscription: str | None = None):
    """A roster push (XEP-0356 §4.4) as a component gets it: an iq set from the account's bare JID."""

    def pred(el: ET.Element) -> bool:
        return el.get("from") == owner and is_roster_push(jid, subscription)(el)

    return pred


async def test_component_reading_rosters_gets_the_roster_pushes_of_users(users, bridge) -> None:
    await bridge.inbox.wait_for(privilege_message)
    alice = await users.login()
    await alice.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='carol@{DOMAIN}' name='Carol'><group>Friends</group></item></query>")
    push = await bridge.inbox.wait_for(roster_push_from(alice.bare, f"carol@{DOMAIN}", "none"), "the push of a new contact")
    assert push.get("to") == "bridge.localhost"
    item = roster_item(push)
    assert item.get("name") == "Carol" and [g.text for g in item.findall(q(NS_ROSTER, "group"))] == ["Friends"]
    assert push.find(q(NS_ROSTER, "query")).get("ver")
    await alice.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='carol@{DOMAIN}' subscription='remove'/></query>")
    await bridge.inbox.wait_for(roster_push_from(alice.bare, f"carol@{DOMAIN}", "remove"), "the push of the removal")


async def test_components_that_may_not_read_rosters_or_declined_pushes_get_none(users, bridge, privileged_server) -> None:
    await bridge.inbox.wait_for(privilege_message)
    others = [
        await connect_component(privileged_server.component_port, f"{name}.localhost", f"{name}-secret")
        for name in ("writer", "quiet")
    ]
    try:
        announced = await others[1].inbox.wait_for(privilege_message)
        assert announced.find(f"{q(NS_PRIVILEGE, 'privilege')}/{q(NS_PRIVILEGE, 'perm')}").get("push") == "false"
        alice = await users.login()
        await alice.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='dave@{DOMAIN}'/></query>")
        await bridge.inbox.wait_for(roster_push_from(alice.bare, f"dave@{DOMAIN}"), "the bridge's push")
        for component in others:
            # A push to this component would have been written to its stream before the bridge got its own,
            # so it would arrive before the answer to this ping.
            domain = component.xmpp.boundjid.bare
            component.send(f"<iq type='get' id='sync' from='{domain}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
            await component.inbox.wait_for(lambda el: el.get("id") == "sync", "the answer to a ping")
            assert not [el for el in component.inbox.history if is_roster_push()(el)]
    finally:
        for component in others:
            component.abort()
