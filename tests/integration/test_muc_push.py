"""Push notifications (XEP-0357) for group chat: members of a members-only room who are away get its
messages through their app server, and a message that names them is flagged (``last-message-priority``
= ``high`` in the summary form), without the message's sender or text unless they allowed it. The app
server is a component that records the publishes and answers them."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio

from component_helpers import connect_component
from muc_helpers import MUC, MUC_ADMIN, SERVICE, is_groupchat, is_room_presence, muc_config
from sakari_process import free_ports
from sm_client import SmClient
from test_muc_rooms import enter, make_room
from test_push import APP_SERVER, answer, enable, offered, publish_to, set_contents, summary
from xmpp_harness import NS_CLIENT, describe, q

pytestmark = pytest.mark.asyncio

MIN_INTERVAL = 1.0
SUMMARY = "urn:xmpp:push:summary"


@pytest.fixture(scope="module")
def muc_push_server(spawn_server):
    (port,) = free_ports(1)
    config = muc_config() + (
        f"\n[network]\ncomponent_port = {port}\n\n"
        f"[push]\nmin_interval = {MIN_INTERVAL}\n\n"
        f'[[components]]\ndomain = "{APP_SERVER}"\nsecret = "app-secret"\n'
    )
    with spawn_server("muc-push", config) as srv:
        srv.component_port = port
        yield srv


@pytest_asyncio.fixture
async def app_server(muc_push_server):
    component = await connect_component(muc_push_server.component_port, APP_SERVER, "app-secret")
    yield component
    component.abort()


async def members_only_room(owner, members: dict[str, str]) -> str:
    """A members-only room of ``owner`` (nick "alice") with these members (bare JID → reserved nick, or "")."""
    room = f"r{secrets.token_hex(4)}@{SERVICE}"
    await make_room(owner, room, "alice", {"muc#roomconfig_membersonly": "1"})
    items = "".join(f"<item affiliation='member' jid='{jid}'" + (f" nick='{nick}'" if nick else "") + "/>"
                    for jid, nick in members.items())
    await owner.iq("set", f"<query xmlns='{MUC_ADMIN}'>{items}</query>", to=room)
    return room


def priority(iq: ET.Element) -> str | None:
    return (summary(iq) or {}).get("last-message-priority")


async def test_members_who_are_away_are_woken_by_room_messages_and_a_mention_of_their_nick_is_flagged(
    muc_push_server, app_server, session_for
):
    xmpp = session_for(muc_push_server)
    alice, bob, carol, dave = [await xmpp.login() for _ in range(4)]
    room = await members_only_room(alice, {bob.bare: "bobby", carol.bare: "", dave.bare: ""})
    # carol was in the room as "Caro" (the nick she last used there), let notifications carry sender and text,
    # then left and went offline; bob never entered (his registered nick is "bobby") and went offline too.
    await enter(carol, room, "Caro")
    await carol.iq("set", enable("carol-node"))
    (key,) = offered(await set_contents(carol, None))
    await set_contents(carol, [key])
    carol.send(f"<presence to='{room}/Caro' type='unavailable'/>")
    await carol.expect(is_room_presence(f"{room}/Caro", type="unavailable"))
    await carol.close()
    await bob.iq("set", enable("bob-node"))
    await bob.close()
    # dave is a member too, connected but not in the room: his client is there to see the room, no push.
    await dave.iq("set", enable("dave-node"))

    mark = app_server.inbox.mark()
    alice.send(f"<message to='{room}' type='groupchat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    alice.message(room, "hello everyone", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/alice", "hello everyone"))
    to_carol, to_bob = await answer(app_server, "carol-node", after=mark), await answer(app_server, "bob-node", after=mark)
    assert to_carol.get("from") == carol.bare and to_bob.get("from") == bob.bare
    assert summary(to_carol) == {"FORM_TYPE": SUMMARY, "message-count": "1", "last-message-sender": f"{room}/alice",
                                 "last-message-body": "hello everyone"}
    assert summary(to_bob) is None  # bob allowed nothing: the notification says only that something came
    text = ET.tostring(to_bob, encoding="unicode")
    assert "hello" not in text and "alice" not in text, describe(to_bob)

    mark = app_server.inbox.mark()
    alice.message(room, "caro: tea at five?", type="groupchat")
    to_carol, to_bob = await answer(app_server, "carol-node", after=mark), await answer(app_server, "bob-node", after=mark)
    assert priority(to_carol) == "high" and summary(to_carol)["last-message-body"] == "caro: tea at five?"
    assert summary(to_bob) is None  # not bob's nick

    mark = app_server.inbox.mark()
    alice.message(room, "And you, BOBBY!", type="groupchat")
    reflected = await alice.expect(is_groupchat(f"{room}/alice", "And you, BOBBY!"))
    to_carol, to_bob = await answer(app_server, "carol-node", after=mark), await answer(app_server, "bob-node", after=mark)
    assert summary(to_bob) == {"FORM_TYPE": SUMMARY, "last-message-priority": "high"}  # the one bit, no content
    assert priority(to_carol) is None  # the mention of "Caro" was told in the notification before
    assert summary(to_carol)["message-count"] == "3"

    # A retraction (its body only a fallback) is nothing new: the next notification counts only what follows.
    stanza_id = reflected.find(q("urn:xmpp:sid:0", "stanza-id")).get("id")
    mark = app_server.inbox.mark()
    alice.send(f"<message to='{room}' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='{stanza_id}'/>"
               "<body>This person attempted to retract a previous message.</body></message>")
    alice.message(room, "fin", type="groupchat")
    to_carol = await answer(app_server, "carol-node", after=mark)
    assert summary(to_carol)["message-count"] == "4" and summary(to_carol)["last-message-body"] == "fin"
    assert not [el for el in app_server.inbox.since(0) if publish_to("dave-node")(el)]


async def test_a_session_hibernating_in_a_room_is_woken_only_when_its_nick_is_mentioned(
    muc_push_server, app_server, session_for
):
    xmpp = session_for(muc_push_server)
    alice = await xmpp.login()
    account = muc_push_server.new_account()
    room = await members_only_room(alice, {account.jid: ""})
    phone = await SmClient.login(muc_push_server, account, resource="phone")
    await phone.enable()
    await phone.send("<presence/>")
    await phone.send(f"<presence to='{room}/erin'><x xmlns='{MUC}'/></presence>")
    while not ((el := await phone.next()).tag == q(NS_CLIENT, "presence") and el.get("from") == f"{room}/erin"):
        pass
    await phone.send(f"<iq type='set' id='push1'>{enable('erin-node')}</iq>")
    while not ((el := await phone.next()).tag == q(NS_CLIENT, "iq") and el.get("id") == "push1"):
        pass
    assert el.get("type") == "result", describe(el)
    phone.close()  # the session hibernates, still in the room

    mark = app_server.inbox.mark()
    alice.message(room, "a busy room says many things", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/alice", "a busy room says many things"))
    alice.message(room, "@erin have a look", type="groupchat")
    iq = await answer(app_server, "erin-node", after=mark)
    # The first notification is the mention's: the message before it woke nobody.
    assert iq.get("from") == account.jid and priority(iq) == "high", describe(iq)
