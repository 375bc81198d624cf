"""The group chat service as a whole against servers of their own: persistent rooms survive a restart
(configuration, affiliations, subject, history), temporary ones do not; who may create rooms; the join
rate and rooms-per-user limits."""

import secrets

import pytest
from muc_helpers import MUC, SERVICE, is_groupchat, is_room_presence, muc_config
from test_muc_rooms import enter, make_room
from xmpp_harness import error_condition

pytestmark = pytest.mark.asyncio

DISCO_INFO = "http://jabber.org/protocol/disco#info"


def new_room() -> str:
    return f"s{secrets.token_hex(4)}@{SERVICE}"


async def test_a_persistent_room_survives_a_restart(make_server, session_for):
    server = make_server(muc_config(), name="muc-restart", accounts=6)
    s = session_for(server)
    alice, bob = await s.login(), await s.login()
    room, temporary = new_room(), new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1",
                                           "muc#roomconfig_roomname": "Kept"})
    await alice.iq("set", f"<query xmlns='{MUC}#admin'><item affiliation='member' jid='{bob.bare}'/></query>", to=room)
    alice.send(f"<message to='{room}' type='groupchat'><subject>Still here</subject></message>")
    alice.message(room, "before the restart", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/alice", "before the restart"))
    await make_room(alice, temporary, "alice")

    assert server.stop() == 0
    server.start()

    s = session_for(server)
    bob2, carol = await s.login(bob.account, label="bob-again"), await s.login()
    info = await bob2.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    features = {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    assert {"muc_persistent", "muc_membersonly"} <= features
    assert info.find(f"{{{DISCO_INFO}}}query/{{{DISCO_INFO}}}identity").get("name") == "Kept"
    mark = bob2.inbox.mark()
    await enter(bob2, room, "bob")
    subject = await bob2.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert subject.findtext("{jabber:client}subject") == "Still here"
    assert any(el.findtext("{jabber:client}body") == "before the restart" for el in bob2.inbox.since(mark))
    carol.send(f"<presence to='{room}/carol'><x xmlns='{MUC}'/></presence>")
    refused = await carol.expect(is_room_presence(f"{room}/carol", type="error"))
    assert error_condition(refused) == "registration-required"
    condition, _ = await carol.iq_error("get", f"<query xmlns='{DISCO_INFO}'/>", to=temporary)
    assert condition == "item-not-found"


async def test_only_admins_create_rooms_when_so_configured(make_server, session_for):
    server = make_server('admins = ["user001@localhost"]\n' + muc_config('create_rooms = "admins"'),
                         name="muc-admins-create", accounts=3)
    s = session_for(server)
    root, alice = await s.login(), await s.login()
    room = new_room()
    alice.send(f"<presence to='{room}/alice'><x xmlns='{MUC}'/></presence>")
    refused = await alice.expect(is_room_presence(f"{room}/alice", type="error"))
    assert error_condition(refused) == "not-allowed"
    await make_room(root, room, "root")
    await enter(alice, room, "alice")


async def test_joins_and_owned_rooms_are_limited(make_server, session_for):
    server = make_server(muc_config("joins_per_minute = 2\nmax_rooms_per_user = 1"), name="muc-limits", accounts=3)
    s = session_for(server)
    alice, bob = await s.login(), await s.login()
    first = new_room()
    await make_room(alice, first, "alice")
    alice.send(f"<presence to='{new_room()}/alice'><x xmlns='{MUC}'/></presence>")
    refused = await alice.expect(lambda el: el.get("type") == "error" and el.tag.endswith("presence"))
    assert error_condition(refused) == "policy-violation"
    for n in range(2):
        await enter(bob, first, f"bob{n}")
        bob.send(f"<presence to='{first}/bob{n}' type='unavailable'/>")
        await bob.expect(is_room_presence(f"{first}/bob{n}", type="unavailable"))
    bob.send(f"<presence to='{first}/bob9'><x xmlns='{MUC}'/></presence>")
    refused = await bob.expect(is_room_presence(f"{first}/bob9", type="error"))
    assert error_condition(refused) == "resource-constraint"
