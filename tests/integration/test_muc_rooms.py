"""Group chat rooms against a real server (XEP-0045 §7, §10.1, §6): creating and configuring a room with
slixmpp's XEP-0045 plugin, entering, messages to everyone, the subject, nick conflicts and changes, private
messages and iq between occupants, leaving, service discovery, legacy history and XEP-0410 self-ping."""

import asyncio
import secrets

import pytest
import pytest_asyncio
from muc_helpers import (
    MUC,
    MUC_OWNER,
    MUC_USER,
    SERVICE,
    is_groupchat,
    is_room_presence,
    item_of,
    muc_config,
    status_codes,
    with_muc,
)
from xmpp_harness import error_condition, q

pytestmark = pytest.mark.asyncio

NS_SID = "urn:xmpp:sid:0"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DELAY = "urn:xmpp:delay"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
STANDARD_FIELDS = {
    "muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_lang", "muc#roomconfig_persistentroom",
    "muc#roomconfig_publicroom", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom",
    "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_whois",
    "muc#roomconfig_changesubject", "muc#roomconfig_allowinvites", "muc#roomconfig_allowpm",
    "muc#roomconfig_maxusers", "muc#roomconfig_presencebroadcast", "muc#roomconfig_getmemberlist",
    "muc#roomconfig_enablelogging", "muc#roomconfig_roomowners", "muc#roomconfig_roomadmins",
    "muc#maxhistoryfetch",
}


@pytest.fixture(scope="module")
def muc_server(spawn_server):
    with spawn_server("muc-rooms", muc_config()) as srv:
        yield srv


@pytest_asyncio.fixture
async def s(muc_server, session_for):
    return session_for(muc_server)


def new_room() -> str:
    return f"r{secrets.token_hex(4)}@{SERVICE}"


def submit(fields: dict[str, str | list[str]] | None = None) -> str:
    inner = f"<field var='FORM_TYPE'><value>{MUC}#roomconfig</value></field>"
    for var, value in (fields or {}).items():
        values = value if isinstance(value, list) else [value]
        inner += f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"
    return f"<query xmlns='{MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>{inner}</x></query>"


async def make_room(owner, room: str, nick: str = "owner", fields=None) -> None:
    owner.send(f"<presence to='{room}/{nick}'><x xmlns='{MUC}'/></presence>")
    await owner.expect(is_room_presence(f"{room}/{nick}", code="201"))
    await owner.iq("set", submit(fields), to=room)


async def enter(client, room: str, nick: str, history: str = "") -> None:
    client.send(f"<presence to='{room}/{nick}'><x xmlns='{MUC}'>{history}</x></presence>")
    await client.expect(is_room_presence(f"{room}/{nick}", code="110"))


async def test_slixmpp_creates_configures_and_joins_a_room(s):
    """§10.1.2-10.1.3: the first occupant creates a locked room, gets the form with every standard
    muc#roomconfig field, submits it; the room then lets others in and tells them its name."""
    alice = await with_muc(await s.login())
    room = new_room()
    presence, subject, _, _ = await alice.muc.join_muc_wait(room, "alice", maxstanzas=0, timeout=10)
    assert {"110", "201"} <= status_codes(presence.xml)
    form = await alice.muc.get_room_config(room)
    assert STANDARD_FIELDS <= set(form.get_fields())
    form["type"] = "submit"
    form.set_values({"muc#roomconfig_roomname": "Tea room", "muc#roomconfig_publicroom": True})
    await alice.muc.set_room_config(room, form)

    bob = await s.login()
    await enter(bob, room, "bob")
    info = await bob.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    features = {f.get("var") for f in info.iter(q(DISCO_INFO, "feature"))}
    assert {MUC, "muc_public", "muc_temporary", "muc_open", "muc_semianonymous", "muc_unsecured",
            "muc_unmoderated", NS_SID, NS_OCCUPANT_ID} <= features
    identity = info.find(f"{q(DISCO_INFO, 'query')}/{q(DISCO_INFO, 'identity')}")
    assert identity.get("category") == "conference" and identity.get("name") == "Tea room"
    roominfo = {f.get("var"): [v.text for v in f] for f in info.iter("{jabber:x:data}field")}
    assert roominfo["muc#roominfo_occupants"] == ["2"]
    items = await bob.iq("get", f"<query xmlns='{DISCO_ITEMS}'/>", to=SERVICE)
    listed = {i.get("jid"): i.get("name") for i in items.iter(q(DISCO_ITEMS, "item"))}
    assert listed[room] == "Tea room"


async def test_a_locked_room_turns_others_away_until_its_owner_configures_it(s):
    """§10.1.1: item-not-found while the owner has not accepted a configuration."""
    alice, bob = await s.login(), await s.login()
    room = new_room()
    alice.send(f"<presence to='{room}/alice'><x xmlns='{MUC}'/></presence>")
    await alice.expect(is_room_presence(f"{room}/alice", code="201"))
    bob.send(f"<presence to='{room}/bob'><x xmlns='{MUC}'/></presence>")
    refused = await bob.expect(is_room_presence(f"{room}/bob", type="error"))
    assert error_condition(refused) == "item-not-found"
    await alice.iq("set", submit(), to=room)
    await enter(bob, room, "bob")


async def test_an_owner_who_speaks_or_invites_in_a_new_room_takes_it_as_an_instant_room(s):
    """Dino answers the 201 with no configuration at all: its owner's first words in the room, or an
    invitation from it, accept the default settings; before either, the room still turns others away."""
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    alice.send(f"<presence to='{room}/alice'><x xmlns='{MUC}'/></presence>")
    await alice.expect(is_room_presence(f"{room}/alice", code="201"))
    alice.message(room, "hello, anyone?", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/alice", "hello, anyone?"))
    mark = bob.inbox.mark()
    bob.send(f"<presence to='{room}/bob'><x xmlns='{MUC}'/></presence>")
    entered = await bob.expect(is_room_presence(f"{room}/bob", type=None), after=mark)
    assert entered.get("type") != "error", f"still locked: {error_condition(entered)}"
    assert "110" in status_codes(entered)

    other = new_room()
    alice.send(f"<presence to='{other}/alice'><x xmlns='{MUC}'/></presence>")
    await alice.expect(is_room_presence(f"{other}/alice", code="201"))
    mark = carol.inbox.mark()
    alice.send(f"<message to='{other}'><x xmlns='{MUC_USER}'><invite to='{carol.bare}'/></x></message>")
    await carol.expect(lambda el: el.tag == "{jabber:client}message" and el.get("from") == other, after=mark)
    mark = carol.inbox.mark()
    carol.send(f"<presence to='{other}/carol'><x xmlns='{MUC}'/></presence>")
    entered = await carol.expect(is_room_presence(f"{other}/carol", type=None), after=mark)
    assert entered.get("type") != "error", f"still locked: {error_condition(entered)}"


async def test_occupants_see_each_other_and_messages_reach_everyone_once(s):
    """§7.2.3 the occupant list then one's own presence (110); §7.4 a message to all, with the room's
    stanza-id (XEP-0359) and the sender's occupant-id (XEP-0421), the same for every recipient."""
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    mark = bob.inbox.mark()
    await enter(bob, room, "bob")
    first = await bob.expect(is_room_presence(f"{room}/alice"), after=mark)
    assert item_of(first).get("jid") is None, "a semi-anonymous room hides real JIDs from participants"
    joined = await alice.expect(is_room_presence(f"{room}/bob"))
    assert item_of(joined).get("jid") == bob.jid, "moderators see real JIDs"
    await enter(carol, room, "carol")
    bob.message(room, "hello all", type="groupchat", id="m1")
    seen = [await c.expect(is_groupchat(f"{room}/bob", "hello all")) for c in (alice, bob, carol)]
    ids = {m.find(q(NS_SID, "stanza-id")).get("id") for m in seen}
    assert len(ids) == 1 and seen[0].find(q(NS_SID, "stanza-id")).get("by") == room
    occupant_ids = {m.find(q(NS_OCCUPANT_ID, "occupant-id")).get("id") for m in seen}
    assert len(occupant_ids) == 1
    assert all(m.get("id") == "m1" for m in seen)
    assert all(m.get("to") == c.jid for m, c in zip(seen, (alice, bob, carol)))


async def test_a_nick_in_use_is_refused_with_conflict(s):
    """§7.2.9: 409 conflict for someone else's nick."""
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    bob.send(f"<presence to='{room}/alice'><x xmlns='{MUC}'/></presence>")
    refused = await bob.expect(is_room_presence(f"{room}/alice", type="error"))
    assert error_condition(refused) == "conflict"


async def test_the_subject_is_set_by_moderators_and_sent_on_entering(s):
    """§8.1: participants may not change it unless the room allows; newcomers get it last."""
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    bob.send(f"<message to='{room}' type='groupchat'><subject>mine now</subject></message>")
    refused = await bob.expect(lambda el: el.get("type") == "error" and el.tag.endswith("message"))
    assert error_condition(refused) == "forbidden"
    alice.send(f"<message to='{room}' type='groupchat'><subject>Teatime</subject></message>")
    for c in (alice, bob):
        await c.expect(lambda el: el.findtext("{jabber:client}subject") == "Teatime")
    mark = carol.inbox.mark()
    await enter(carol, room, "carol")
    got = await carol.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert got.findtext("{jabber:client}subject") == "Teatime" and got.get("from") == f"{room}/alice"


async def test_nick_change_and_leaving_are_announced(s):
    """§7.6: unavailable with 303 and the new nick, then the new presence; §7.14: leaving."""
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    bob.send(f"<presence to='{room}/robert'/>")
    gone = await alice.expect(is_room_presence(f"{room}/bob", type="unavailable", code="303"))
    assert item_of(gone).get("nick") == "robert"
    own = await bob.expect(is_room_presence(f"{room}/bob", type="unavailable", code="303"))
    assert "110" in status_codes(own)
    await alice.expect(is_room_presence(f"{room}/robert"))
    await bob.expect(is_room_presence(f"{room}/robert", code="110"))
    bob.send(f"<presence to='{room}/robert' type='unavailable'/>")
    await alice.expect(is_room_presence(f"{room}/robert", type="unavailable"))
    alice.message(room, "still here?", type="groupchat")
    await alice.expect(is_groupchat(f"{room}/alice", "still here?"))
    assert not any(is_groupchat(f"{room}/alice", "still here?")(el) for el in bob.inbox.history)


async def test_a_client_that_disconnects_leaves_its_rooms(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    bob.abort()
    await alice.expect(is_room_presence(f"{room}/bob", type="unavailable"))


async def test_private_messages_and_iq_go_to_the_occupants_real_address(s):
    """§7.5: a private message comes from the sender's room address; an iq to room/nick is forwarded and
    its answer comes back (XEP-0045 §7.5, as with vCards and version queries)."""
    alice, bob = await s.login(), await s.login()
    await with_muc(alice)  # brings disco (XEP-0030), which answers the forwarded query
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    bob.message(f"{room}/alice", "psst", type="chat")
    pm = await alice.expect(lambda el: el.findtext("{jabber:client}body") == "psst")
    assert pm.get("from") == f"{room}/bob" and pm.find(q(MUC_USER, "x")) is not None
    answer = await bob.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=f"{room}/alice")
    assert answer.get("from") == f"{room}/alice"
    missing, _ = await bob.iq_error("get", f"<query xmlns='{DISCO_INFO}'/>", to=f"{room}/nobody")
    assert missing == "item-not-found"
    bob.message(f"{room}/nobody", "anyone?", type="chat")
    err = await bob.expect(lambda el: el.get("type") == "error" and el.get("from") == f"{room}/nobody")
    assert error_condition(err) == "item-not-found"


async def test_self_ping_says_whether_one_is_still_in_the_room(s):
    """XEP-0410: a ping to one's own occupant address is answered by the room; not-acceptable once out."""
    alice = await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await alice.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=f"{room}/alice")
    other = new_room()
    await make_room(alice, other, "a")
    alice.send(f"<presence to='{other}/a' type='unavailable'/>")
    await alice.expect(is_room_presence(f"{other}/a", type="unavailable"))
    condition, _ = await alice.iq_error("get", "<ping xmlns='urn:xmpp:ping'/>", to=f"{room}/stranger")
    assert condition in ("item-not-found", "not-acceptable")


async def test_newcomers_get_the_history_they_ask_for(s):
    """§7.2.15: the last messages with XEP-0203 delays, within maxstanzas / maxchars / since."""
    alice, bob, carol, dave = [await s.login() for _ in range(4)]
    room = new_room()
    await make_room(alice, room, "alice")
    for n in range(3):
        alice.message(room, f"m{n}", type="groupchat")
        await alice.expect(is_groupchat(f"{room}/alice", f"m{n}"))

    def history(client, mark):
        return [el.findtext("{jabber:client}body") for el in client.inbox.since(mark)
                if el.get("type") == "groupchat" and el.find(q(NS_DELAY, "delay")) is not None]

    mark = bob.inbox.mark()
    await enter(bob, room, "bob", "<history maxstanzas='2'/>")
    await bob.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert history(bob, mark) == ["m1", "m2"]
    mark = carol.inbox.mark()
    await enter(carol, room, "carol", "<history maxstanzas='0'/>")
    await carol.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert history(carol, mark) == []
    mark = dave.inbox.mark()
    await enter(dave, room, "dave", "<history since='2999-01-01T00:00:00Z'/>")
    await dave.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert history(dave, mark) == []
    eve = await s.login()
    mark = eve.inbox.mark()
    await enter(eve, room, "eve")
    await eve.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    assert history(eve, mark) == ["m0", "m1", "m2"]


async def test_messages_from_outside_the_room_are_refused(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    bob.message(room, "let me in", type="groupchat")
    err = await bob.expect(lambda el: el.get("type") == "error" and el.tag.endswith("message"))
    assert error_condition(err) == "not-acceptable"
    bob.message(f"nosuchroom@{SERVICE}", "hello?", type="groupchat")
    err = await bob.expect(lambda el: el.get("type") == "error" and el.get("from") == f"nosuchroom@{SERVICE}")
    assert error_condition(err) == "item-not-found"


async def test_two_occupants_querying_each_other_at_once_both_get_answers(s):
    """Clients query each other's caps through the room as they enter (profanity does): the forwarded
    queries must not wait on each other."""
    alice, bob = await with_muc(await s.login()), await with_muc(await s.login())
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    query = f"<query xmlns='{DISCO_INFO}'/>"
    to_bob, to_alice = await asyncio.gather(alice.iq("get", query, to=f"{room}/bob"),
                                            bob.iq("get", query, to=f"{room}/alice"))
    assert to_bob.get("from") == f"{room}/bob" and to_alice.get("from") == f"{room}/alice"
