"""Group chat across servers (XEP-0045 over s2s): a user of a real peer (Prosody, ejabberd) in a Sakari room,
and a Sakari user in a room of the peer's MUC component. Every server is started once per session
(federation_world.py); each test makes rooms of its own.
"""

from __future__ import annotations

import secrets

import pytest

from federation_world import conference, with_log
from muc_helpers import MUC, MUC_OWNER, is_groupchat, is_room_presence, item_of
from xmpp_harness import Client, is_message

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def peer(federation_peer):
    return federation_peer


async def enter(client: Client, room: str, nick: str) -> None:
    """Join ``room`` as ``nick``; a room this made is configured at once as an instant room (XEP-0045 §10.1.2),
    so that others may enter whatever the service's locking default."""
    occupant = f"{room}/{nick}"
    client.send(f"<presence to='{occupant}'><x xmlns='{MUC}'/></presence>")
    own = await client.expect(is_room_presence(occupant, code="110"))
    if "201" in {s.get("code") for s in own.iter(f"{{{MUC}#user}}status")}:
        answer = await client.iq("set", f"<query xmlns='{MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>", to=room)
        assert answer.get("type") == "result", answer


async def chat_in(room: str, host: tuple[Client, str], guest: tuple[Client, str]) -> None:
    """``host`` made ``room``; ``guest``, of the other server, enters; both see each other and talk."""
    (owner, owner_nick), (visitor, visitor_nick) = host, guest
    await enter(owner, room, owner_nick)
    await enter(visitor, room, visitor_nick)
    await visitor.expect(is_room_presence(f"{room}/{owner_nick}"))
    arrival = await owner.expect(is_room_presence(f"{room}/{visitor_nick}"))
    assert item_of(arrival).get("jid") == visitor.jid  # the owner, a moderator, sees the remote occupant's full JID
    visitor.message(room, f"hello from {visitor.bare}", type="groupchat")
    for client in (owner, visitor):  # the sender gets its own message back from the room too
        await client.expect(is_groupchat(f"{room}/{visitor_nick}", f"hello from {visitor.bare}"))
    owner.message(room, f"welcome, {visitor_nick}", type="groupchat")
    for client in (owner, visitor):
        await client.expect(is_groupchat(f"{room}/{owner_nick}", f"welcome, {visitor_nick}"))
    # A private message between occupants goes through the room to the other server's user's full JID.
    visitor.message(f"{room}/{owner_nick}", "just between us")
    await owner.expect(is_message(body="just between us", sender=f"{room}/{visitor_nick}"))
    owner.message(f"{room}/{visitor_nick}", "sure")
    await visitor.expect(is_message(body="sure", sender=f"{room}/{owner_nick}"))
    visitor.send(f"<presence to='{room}/{visitor_nick}' type='unavailable'/>")
    await owner.expect(is_room_presence(f"{room}/{visitor_nick}", type="unavailable"))


def room_on(domain: str) -> str:
    return f"room-{secrets.token_hex(4)}@{conference(domain)}"


async def test_a_remote_user_joins_a_sakari_room_and_chats(federation, peer, clients) -> None:
    alice, paul = await clients(federation.sakari), await clients(peer)
    with with_log(peer):
        await chat_in(room_on(federation.sakari.domain), (alice, "alice"), (paul, "paul"))


async def test_a_sakari_user_joins_a_room_of_the_remote_server_and_chats(federation, peer, clients) -> None:
    alice, paul = await clients(federation.sakari), await clients(peer)
    with with_log(peer):
        await chat_in(room_on(peer.domain), (paul, "paul"), (alice, "alice"))


async def test_an_occupant_whose_server_cannot_be_reached_leaves_the_room_and_one_refusal_does_not(
    federation, clients
) -> None:
    # What a room sends to an occupant whose server went away comes back as an error from the occupant's JID
    # (remote-server-not-found, from the room's own server); bob and carol send such bounces themselves here.
    alice, bob, carol = [await clients(federation.sakari) for _ in range(3)]
    room = room_on(federation.sakari.domain)
    await enter(alice, room, "alice")
    await enter(bob, room, "bob")
    await enter(carol, room, "carol")
    bounce = "<message type='error' to='{to}'><error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    bob.send(bounce.format(to=f"{room}/alice", condition="remote-server-not-found"))
    gone = await alice.expect(is_room_presence(f"{room}/bob", type="unavailable", code="333"))
    assert gone.findtext("{jabber:client}status") == "Kicked: remote server not found"
    # Refusing one message (here: not acceptable) is no reason to leave: carol still gets the room's messages.
    carol.send(bounce.format(to=f"{room}/alice", condition="not-acceptable"))
    alice.message(room, "still there, carol?", type="groupchat")
    await carol.expect(is_groupchat(f"{room}/alice", "still there, carol?"))
    assert not [p for p in alice.inbox.since(0) if p.get("from") == f"{room}/carol" and p.get("type") == "unavailable"]
