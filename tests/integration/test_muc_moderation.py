"""Room types, roles and affiliations against a real server, driven by slixmpp's XEP-0045 plugin where it
has the call (XEP-0045 §8-§10): members-only, password-protected, moderated, non-anonymous and full
rooms; kick, ban, voice and voice requests; admin lists; the server's admins owning every room; who may
create rooms; invitations, destruction and registered nicks."""

import secrets

import pytest
import pytest_asyncio
from muc_helpers import (
    MUC,
    MUC_ADMIN,
    MUC_USER,
    SERVICE,
    is_groupchat,
    is_room_presence,
    item_of,
    muc_config,
    status_codes,
    with_muc,
)
from slixmpp.exceptions import IqError
from test_muc_rooms import enter, make_room
from xmpp_harness import error_condition, q

pytestmark = pytest.mark.asyncio



@pytest.fixture(scope="module")
def muc_server(spawn_server):
    # The first account made is the server's administrator; 'admins' is a top-level key, before any table.
    config = 'admins = ["user001@localhost"]\n' + muc_config("max_occupants = 3")
    with spawn_server("muc-moderation", config, accounts=0) as srv:
        srv.root = srv.add_accounts(1)[0]
        srv.fill_pool(40)
        yield srv


@pytest_asyncio.fixture
async def s(muc_server, session_for):
    return session_for(muc_server)


def new_room() -> str:
    return f"m{secrets.token_hex(4)}@{SERVICE}"


async def refused(client, room: str, nick: str, extra: str = "") -> str | None:
    client.send(f"<presence to='{room}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>")
    return error_condition(await client.expect(is_room_presence(f"{room}/{nick}", type="error")))


async def test_members_only_rooms_want_membership_and_admin_lists_show_it(s):
    alice, bob = await with_muc(await s.login()), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_membersonly": "1"})
    assert await refused(bob, room, "bob") == "registration-required"
    await alice.muc.set_affiliation(room, "member", jid=bob.bare)
    assert bob.bare in {str(j) for j in await alice.muc.get_affiliation_list(room, "member")}
    await enter(bob, room, "bob")
    await alice.muc.set_affiliation(room, "none", jid=bob.bare)
    gone = await bob.expect(is_room_presence(f"{room}/bob", type="unavailable", code="321"))
    assert "110" in status_codes(gone)


async def test_a_password_protected_room_wants_the_password(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_passwordprotectedroom": "1",
                                           "muc#roomconfig_roomsecret": "tea"})
    assert await refused(bob, room, "bob") == "not-authorized"
    assert await refused(bob, room, "bob", "<password>coffee</password>") == "not-authorized"
    await enter(bob, room, "bob", "<password>tea</password>")


async def test_kick_and_ban_by_a_moderator(s):
    """§8.2 kick (307), §9.1 ban (301, then forbidden on return); a participant may do neither."""
    alice, bob, carol = await with_muc(await s.login()), await with_muc(await s.login()), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    await enter(carol, room, "carol")
    with pytest.raises(IqError) as e:
        await bob.muc.set_role(room, "carol", "none")
    assert e.value.condition == "forbidden"
    await alice.muc.set_role(room, "carol", "none", reason="calm down")
    kicked = await carol.expect(is_room_presence(f"{room}/carol", type="unavailable", code="307"))
    assert item_of(kicked).findtext(q(MUC_USER, "reason")) == "calm down"
    await bob.expect(is_room_presence(f"{room}/carol", type="unavailable", code="307"))
    await enter(carol, room, "carol")
    await alice.muc.set_affiliation(room, "outcast", jid=carol.bare, reason="enough")
    await carol.expect(is_room_presence(f"{room}/carol", type="unavailable", code="301"))
    assert await refused(carol, room, "carol") == "forbidden"
    assert carol.bare in {str(j) for j in await alice.muc.get_affiliation_list(room, "outcast")}


async def test_voice_in_a_moderated_room(s):
    """§8.3-8.4 and §8.6: visitors may not speak; a voice request reaches the moderators; voice granted."""
    alice, bob = await with_muc(await s.login()), await with_muc(await s.login())
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_moderatedroom": "1"})
    await enter(bob, room, "bob")
    joined = await alice.expect(is_room_presence(f"{room}/bob"))
    assert item_of(joined).get("role") == "visitor"
    bob.message(room, "may I?", type="groupchat")
    err = await bob.expect(lambda el: el.get("type") == "error" and el.tag.endswith("message"))
    assert error_condition(err) == "forbidden"
    bob.muc.request_voice(room, "participant")
    request = await alice.expect(lambda el: el.find("{jabber:x:data}x") is not None and el.get("from") == room)
    nick = [f.findtext("{jabber:x:data}value") for f in request.iter("{jabber:x:data}field")
            if f.get("var") == "muc#roomnick"]
    assert nick == ["bob"]
    await alice.muc.set_role(room, "bob", "participant")
    voiced = await bob.expect(is_room_presence(f"{room}/bob", code="110"))
    assert item_of(voiced).get("role") == "participant"
    bob.message(room, "thanks", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/bob", "thanks"))
    assert "bob" in await alice.muc.get_roles_list(room, "participant")


async def test_admins_may_not_touch_owners_and_the_last_owner_stays(s):
    alice, bob = await with_muc(await s.login()), await with_muc(await s.login())
    room = new_room()
    await make_room(alice, room, "alice")
    await alice.muc.set_affiliation(room, "admin", jid=bob.bare)
    with pytest.raises(IqError) as e:
        await bob.muc.set_affiliation(room, "none", jid=alice.bare)
    assert e.value.condition == "not-allowed"
    with pytest.raises(IqError) as e:
        await alice.muc.set_affiliation(room, "member", jid=alice.bare)
    assert e.value.condition == "conflict"
    condition, _ = await bob.iq_error("get", f"<query xmlns='{MUC}#owner'/>", to=room)
    assert condition == "forbidden"


async def test_non_anonymous_rooms_show_real_jids_to_everyone(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_whois": "anyone"})
    mark = bob.inbox.mark()
    await enter(bob, room, "bob")
    own = [el for el in bob.inbox.since(mark) if el.get("from") == f"{room}/bob"][0]
    assert "100" in status_codes(own)
    seen = [el for el in bob.inbox.since(mark) if el.get("from") == f"{room}/alice"]
    assert item_of(seen[0]).get("jid") == alice.jid


async def test_a_full_room_is_unavailable_except_to_its_admins(s):
    """muc.max_occupants = 3 on this server (§7.2.10)."""
    alice, b, c, d = [await s.login() for _ in range(4)]
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(b, room, "b")
    await enter(c, room, "c")
    assert await refused(d, room, "d") == "service-unavailable"
    owner = await s.login(s.server.new_account())
    await alice.iq("set", f"<query xmlns='{MUC_ADMIN}'><item affiliation='admin' jid='{owner.bare}'/></query>", to=room)
    await enter(owner, room, "admin")


async def test_the_servers_admins_own_every_room(s, muc_server):
    """The 'admins' key: an owner of every room, who may enter a members-only room and configure it."""
    alice, root = await s.login(), await s.login(muc_server.root)
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_membersonly": "1"})
    mark = root.inbox.mark()
    await enter(root, room, "root")
    own = [el for el in root.inbox.since(mark) if el.get("from") == f"{room}/root"][0]
    assert item_of(own).get("affiliation") == "owner" and item_of(own).get("role") == "moderator"
    await root.iq("get", f"<query xmlns='{MUC}#owner'/>", to=room)


async def test_invitations_mediated_and_declined(s):
    """§7.8.2-7.8.3: the room forwards the invitation (with a XEP-0249 element for clients that know
    only direct invitations) and takes the decline back to the inviter."""
    alice, bob = await with_muc(await s.login()), await with_muc(await s.login())
    room = new_room()
    await make_room(alice, room, "alice", {"muc#roomconfig_membersonly": "1"})
    alice.muc.invite(room, bob.bare, reason="tea?")
    invite = await bob.expect(lambda el: el.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}invite") is not None)
    assert invite.get("from") == room
    assert invite.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}invite").get("from") == alice.bare
    assert invite.find("{jabber:x:conference}x").get("jid") == room
    await enter(bob, room, "bob")  # the invitation made bob a member of the members-only room
    carol = await s.login()
    carol.send(f"<message to='{room}'><x xmlns='{MUC_USER}'><decline to='{alice.bare}'><reason>busy</reason>"
               "</decline></x></message>")
    declined = await alice.expect(lambda el: el.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}decline") is not None)
    assert declined.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}decline").get("from") == carol.bare


async def test_direct_invitations_pass_between_clients(s):
    """XEP-0249: a client-to-client message the server only carries."""
    alice, bob = await s.login(), await s.login()
    alice.send(f"<message to='{bob.jid}'><x xmlns='jabber:x:conference' jid='tea@{SERVICE}' reason='hi'/></message>")
    got = await bob.expect(lambda el: el.find("{jabber:x:conference}x") is not None)
    assert got.find("{jabber:x:conference}x").get("jid") == f"tea@{SERVICE}"


async def test_destroying_a_room_sends_everyone_to_the_alternate_venue(s):
    alice, bob = await with_muc(await s.login()), await s.login()
    room, venue = new_room(), new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    await alice.muc.destroy(room, reason="moved", altroom=venue)
    gone = await bob.expect(is_room_presence(f"{room}/bob", type="unavailable"))
    destroy = gone.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}destroy")
    assert destroy.get("jid") == venue and destroy.findtext(q(MUC_USER, "reason")) == "moved"
    condition, _ = await bob.iq_error("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=room)
    assert condition == "item-not-found"


async def test_a_registered_nick_is_reserved(s):
    """§7.10: registering makes a member with that nick; others get conflict for it."""
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    form = await bob.iq("get", "<query xmlns='jabber:iq:register'/>", to=room)
    assert form.find(".//{jabber:x:data}field[@var='muc#register_roomnick']") is not None
    await bob.iq("set", "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
                        "<field var='muc#register_roomnick'><value>bobby</value></field></x></query>", to=room)
    again = await bob.iq("get", "<query xmlns='jabber:iq:register'/>", to=room)
    assert again.findtext(".//{jabber:iq:register}username") == "bobby"
    assert await refused(carol, room, "bobby") == "conflict"
    node = await bob.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>", to=room)
    assert node.find(".//{http://jabber.org/protocol/disco#info}identity").get("name") == "bobby"
    await enter(bob, room, "bobby")
