"""XEP-0317 hats in group chat rooms against a real server: owners and admins give and take hats with the
room's ad-hoc commands, every occupant sees them in the wearer's presence, newcomers too, and an occupant
cannot give itself one by putting it in its own presence."""

import secrets

import pytest
import pytest_asyncio

from muc_helpers import SERVICE, is_room_presence, muc_config
from test_muc_rooms import enter, make_room
from xmpp_harness import q

pytestmark = pytest.mark.asyncio

NS_HATS = "urn:xmpp:hats:0"
NS_COMMANDS = "http://jabber.org/protocol/commands"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
DON = "urn:xmpp:hats:commands:don"
DOFF = "urn:xmpp:hats:commands:doff"
TEACHER = "http://schemas.example.org/hats#teacher"


@pytest.fixture(scope="module")
def hats_server(spawn_server):
    with spawn_server("muc-hats", muc_config()) as srv:
        yield srv


@pytest_asyncio.fixture
async def s(hats_server, session_for):
    return session_for(hats_server)


def worn(presence) -> dict[str, str]:
    return {h.get("uri"): h.get("title") for h in presence.findall(f"{q(NS_HATS, 'hats')}/{q(NS_HATS, 'hat')}")}


def hat_form(node: str, session: str, account: str, uri: str, title: str = "") -> str:
    fields = (f"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:hats:commands</value></field>"
              f"<field var='accountjid'><value>{account}</value></field><field var='hat'><value>{uri}</value></field>")
    if title:
        fields += f"<field var='title'><value>{title}</value></field>"
    return (f"<command xmlns='{NS_COMMANDS}' node='{node}' sessionid='{session}'>"
            f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></command>")


async def test_owners_give_and_take_hats_and_everyone_sees_them_in_presence(s):
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = f"r{secrets.token_hex(4)}@{SERVICE}"
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    info = await alice.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    assert NS_HATS in {f.get("var") for f in info.iter(q(DISCO_INFO, "feature"))}

    # Only owners and admins see and run the commands.
    items = await alice.iq("get", f"<query xmlns='{DISCO_ITEMS}' node='{NS_COMMANDS}'/>", to=room)
    assert {i.get("node") for i in items.iter(q(DISCO_ITEMS, "item"))} == {DON, DOFF}
    items = await bob.iq("get", f"<query xmlns='{DISCO_ITEMS}' node='{NS_COMMANDS}'/>", to=room)
    assert not list(items.iter(q(DISCO_ITEMS, "item")))
    condition, _ = await bob.iq_error("set", f"<command xmlns='{NS_COMMANDS}' node='{DON}' action='execute'/>", to=room)
    assert condition == "forbidden"

    first = await alice.iq("set", f"<command xmlns='{NS_COMMANDS}' node='{DON}' action='execute'/>", to=room)
    command = first.find(q(NS_COMMANDS, "command"))
    assert command.get("status") == "executing"
    assert {f.get("var") for f in command.iter("{jabber:x:data}field")} >= {"accountjid", "hat", "title"}
    mark_alice, mark_bob = alice.inbox.mark(), bob.inbox.mark()
    done = await alice.iq("set", hat_form(DON, command.get("sessionid"), bob.bare, TEACHER, "Teacher"), to=room)
    assert done.find(q(NS_COMMANDS, "command")).get("status") == "completed"
    seen = await alice.expect(is_room_presence(f"{room}/bob"), after=mark_alice)
    assert worn(seen) == {TEACHER: "Teacher"}
    own = await bob.expect(is_room_presence(f"{room}/bob", code="110"), after=mark_bob)
    assert worn(own) == {TEACHER: "Teacher"}

    # A newcomer sees the hat; a hat in the wearer's own presence is not taken from it.
    bob.send(f"<presence to='{room}/bob'><hats xmlns='{NS_HATS}'><hat uri='urn:x:boss' title='Boss'/></hats></presence>")
    mark = carol.inbox.mark()
    await enter(carol, room, "carol")
    assert worn(await carol.expect(is_room_presence(f"{room}/bob"), after=mark)) == {TEACHER: "Teacher"}
    mark = carol.inbox.mark()
    done = await alice.iq("set", hat_form(DOFF, "s2", bob.bare, TEACHER), to=room)
    assert done.find(q(NS_COMMANDS, "command")).get("status") == "completed"
    assert worn(await carol.expect(is_room_presence(f"{room}/bob"), after=mark)) == {}
    condition, _ = await alice.iq_error("set", hat_form(DOFF, "s3", bob.bare, TEACHER), to=room)
    assert condition == "item-not-found"
