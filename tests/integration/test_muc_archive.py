"""Group chat history that lasts, against a real server: a persistent room's archive (XEP-0313 on rooms)
paged both ways and filtered, for those allowed to read it and with real JIDs only for those who may see
them; history that survives a crash; XEP-0424 retraction and XEP-0425 moderation leaving tombstones;
room avatars (vCard); block lists in rooms; the bounded presence flood on entering a large room."""

import base64
import hashlib
import secrets

import pytest
import pytest_asyncio
from muc_helpers import MUC, MUC_ADMIN, MUC_USER, SERVICE, is_groupchat, is_room_presence, muc_config, status_codes
from test_muc_rooms import enter, make_room
from xmpp_harness import q

pytestmark = pytest.mark.asyncio

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
SID = "urn:xmpp:sid:0"
RETRACT = "urn:xmpp:message-retract:1"
MODERATE = "urn:xmpp:message-moderate:1"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
PERSISTENT = {"muc#roomconfig_persistentroom": "1"}


@pytest.fixture(scope="module")
def archive_server(spawn_server):
    with spawn_server("muc-archive", muc_config("presences_on_join = 2"), accounts=60) as srv:
        yield srv


@pytest_asyncio.fixture
async def s(archive_server, session_for):
    return session_for(archive_server)


def new_room() -> str:
    return f"a{secrets.token_hex(4)}@{SERVICE}"


async def say(client, room: str, nick: str, body: str) -> str:
    """Send a groupchat message, wait for it to come back; the room's stanza-id of it."""
    client.message(room, body, type="groupchat")
    echo = await client.expect(is_groupchat(f"{room}/{nick}", body))
    return echo.find(f"{{{SID}}}stanza-id").get("id")


async def query(client, room: str, form: dict[str, str] | None = None, rsm: str = "") -> tuple[list, object]:
    """A MAM query to the room: the forwarded messages in order of arrival, and the <fin/>."""
    queryid = client.next_id("q")
    fields = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in (form or {}).items())
    x = f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{MAM}</value></field>{fields}</x>"
    mark = client.inbox.mark()
    result = await client.iq("set", f"<query xmlns='{MAM}' queryid='{queryid}'>{x}<set xmlns='{RSM}'>{rsm}</set></query>", to=room)
    results = [el.find(f"{{{MAM}}}result") for el in client.inbox.since(mark)
               if el.find(f"{{{MAM}}}result") is not None and el.find(f"{{{MAM}}}result").get("queryid") == queryid]
    return results, result.find(f"{{{MAM}}}fin")


def forwarded(result):
    return result.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")


def bodies(results) -> list[str | None]:
    return [forwarded(r).findtext("{jabber:client}body") for r in results]


async def test_a_room_archive_pages_both_ways_filters_and_hides_real_jids(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", PERSISTENT)
    await enter(bob, room, "bob")
    ids = [await say(alice, room, "alice", f"m{i} apples" if i == 3 else f"m{i}") for i in range(5)]
    ids.append(await say(bob, room, "bob", "from bob"))

    first, fin = await query(bob, room, rsm="<max>2</max>")
    assert bodies(first) == ["m0", "m1"] and fin.get("complete") != "true"
    assert [r.get("id") for r in first] == ids[:2], "archive ids are the stanza-ids occupants saw"
    last = fin.findtext(f"{{{RSM}}}set/{{{RSM}}}last")
    more, _ = await query(bob, room, rsm=f"<max>2</max><after>{last}</after>")
    assert bodies(more) == ["m2", "m3 apples"]
    newest, fin = await query(bob, room, rsm="<max>2</max><before/>")
    assert bodies(newest) == ["m4", "from bob"] and fin.get("complete") != "true"
    older, fin = await query(bob, room, rsm=f"<max>2</max><before>{ids[4]}</before>")
    assert bodies(older) == ["m2", "m3 apples"]

    by_bob, _ = await query(alice, room, {"with": f"{room}/bob"})
    assert bodies(by_bob) == ["from bob"]
    found, _ = await query(alice, room, {"{urn:xmpp:fulltext:0}fulltext": "apples"})
    assert bodies(found) == ["m3 apples"]

    # Semi-anonymous: bob sees room/nick only; alice, an owner (a moderator), sees who said it.
    assert all(forwarded(r).find(f"{{{MUC_USER}}}x") is None for r in first)
    assert forwarded(first[0]).get("from") == f"{room}/alice"
    everything, _ = await query(alice, room)
    assert everything[0].find(f".//{{{MUC_USER}}}item").get("jid") == alice.bare


async def test_only_members_read_a_members_only_rooms_archive_and_temporary_rooms_keep_none(s):
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room, temporary = new_room(), new_room()
    await make_room(alice, room, "alice", {**PERSISTENT, "muc#roomconfig_membersonly": "1"})
    await alice.iq("set", f"<query xmlns='{MUC_ADMIN}'><item affiliation='member' jid='{bob.bare}'/></query>", to=room)
    await say(alice, room, "alice", "members only")
    info = await carol.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    assert MAM in {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    results, _ = await query(bob, room)
    assert bodies(results) == ["members only"], "a member reads it without being in the room"
    condition, _ = await carol.iq_error("set", f"<query xmlns='{MAM}'/>", to=room)
    assert condition == "forbidden"

    await make_room(alice, temporary, "alice")
    info = await alice.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=temporary)
    assert MAM not in {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    condition, _ = await alice.iq_error("set", f"<query xmlns='{MAM}'/>", to=temporary)
    assert condition == "feature-not-implemented"


async def test_the_sender_retracts_and_a_moderator_moderates_leaving_tombstones(s):
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", PERSISTENT)
    await enter(bob, room, "bob")
    await enter(carol, room, "carol")
    mine = await say(bob, room, "bob", "oops, wrong room")
    rude = await say(bob, room, "bob", "something rude")
    retract = f"<retract xmlns='{RETRACT}' id='{mine}'/><body>retracted</body>"

    carol.send(f"<message to='{room}' type='groupchat' id='r1'>{retract}</message>")
    refused = await carol.expect(lambda el: el.get("type") == "error" and el.get("id") == "r1")
    assert refused.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None

    bob.send(f"<message to='{room}' type='groupchat' id='r2'>{retract}</message>")
    relayed = await carol.expect(lambda el: el.find(f"{{{RETRACT}}}retract") is not None)
    assert relayed.get("from") == f"{room}/bob" and relayed.find(f"{{{RETRACT}}}retract").get("id") == mine

    condition, _ = await carol.iq_error(
        "set", f"<moderate xmlns='{MODERATE}' id='{rude}'><retract xmlns='{RETRACT}'/></moderate>", to=room)
    assert condition == "forbidden"
    await alice.iq("set", f"<moderate xmlns='{MODERATE}' id='{rude}'><retract xmlns='{RETRACT}'/>"
                          "<reason>Not here</reason></moderate>", to=room)
    announced = await carol.expect(lambda el: el.get("from") == room and el.find(f"{{{RETRACT}}}retract") is not None)
    moderated = announced.find(f"{{{RETRACT}}}retract/{{{MODERATE}}}moderated")
    assert announced.find(f"{{{RETRACT}}}retract").get("id") == rude and moderated.get("by") == f"{room}/alice"
    assert announced.findtext(f"{{{RETRACT}}}retract/{{{RETRACT}}}reason") == "Not here"

    results, _ = await query(carol, room, {"ids": mine})
    [stone] = [forwarded(r) for r in results]
    assert stone.find("{jabber:client}body") is None and stone.find(f"{{{RETRACT}}}retracted") is not None
    results, _ = await query(carol, room, {"ids": rude})
    [stone] = [forwarded(r) for r in results]
    retracted = stone.find(f"{{{RETRACT}}}retracted")
    assert stone.find("{jabber:client}body") is None and retracted.find(f"{{{MODERATE}}}moderated") is not None
    assert retracted.findtext(f"{{{RETRACT}}}reason") == "Not here"
    found, _ = await query(carol, room, {"{urn:xmpp:fulltext:0}fulltext": "rude"})
    assert found == [], "the retracted words are not found any more"

    dave = await s.login()
    mark = dave.inbox.mark()
    await enter(dave, room, "dave")
    await dave.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    shown = [el.findtext("{jabber:client}body") for el in dave.inbox.since(mark)]
    assert "oops, wrong room" not in shown and "something rude" not in shown


async def test_owners_set_a_room_avatar_that_occupants_see(s):
    alice, bob = await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice", PERSISTENT)
    await enter(bob, room, "bob")
    photo = b"\x89PNG not really" + secrets.token_bytes(8)
    vcard = (f"<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
             f"<BINVAL>{base64.b64encode(photo).decode()}</BINVAL></PHOTO></vCard>")
    condition, _ = await bob.iq_error("set", vcard, to=room)
    assert condition == "forbidden"
    await alice.iq("set", vcard, to=room)
    digest = hashlib.sha1(photo).hexdigest()
    update = await bob.expect(lambda el: el.tag == "{jabber:client}presence" and el.get("from") == room)
    assert update.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == digest
    got = await bob.iq("get", "<vCard xmlns='vcard-temp'/>", to=room)
    assert got.findtext("{vcard-temp}vCard/{vcard-temp}PHOTO/{vcard-temp}BINVAL") == base64.b64encode(photo).decode()
    info = await bob.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in info.iter("{jabber:x:data}field")}
    assert values["muc#roominfo_avatarhash"] == digest
    carol = await s.login()
    mark = carol.inbox.mark()
    await enter(carol, room, "carol")
    seen = await carol.expect(lambda el: el.get("from") == room and el.tag == "{jabber:client}presence", after=mark)
    assert seen.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == digest


async def test_who_blocked_an_occupant_gets_none_of_its_room_messages(s):
    alice, bob, carol = await s.login(), await s.login(), await s.login()
    room = new_room()
    await make_room(alice, room, "alice")
    await enter(bob, room, "bob")
    await enter(carol, room, "carol")
    await bob.iq("set", f"<block xmlns='urn:xmpp:blocking'><item jid='{alice.bare}'/></block>")
    mark = bob.inbox.mark()
    await say(alice, room, "alice", "bob blocked me")
    await carol.expect(is_groupchat(f"{room}/alice", "bob blocked me"))
    await say(carol, room, "carol", "after it")
    await bob.expect(is_groupchat(f"{room}/carol", "after it"), after=mark)
    assert all(el.findtext("{jabber:client}body") != "bob blocked me" for el in bob.inbox.since(mark))


async def test_a_newcomer_to_a_large_room_gets_a_bounded_number_of_presences(s):
    """muc.presences_on_join = 2 here: moderators first, then those who came first."""
    owner = await s.login()
    room = new_room()
    await make_room(owner, room, "owner")
    for nick in ("p1", "p2", "p3"):
        await enter(await s.login(), room, nick)
    newcomer = await s.login()
    mark = newcomer.inbox.mark()
    await enter(newcomer, room, "new")
    await newcomer.expect(lambda el: el.find("{jabber:client}subject") is not None, after=mark)
    others = [el.get("from") for el in newcomer.inbox.since(mark)
              if el.tag == "{jabber:client}presence" and el.get("from", "").startswith(f"{room}/")
              and "110" not in status_codes(el)]
    assert others == [f"{room}/owner", f"{room}/p1"]
    info = await newcomer.iq("get", f"<query xmlns='{DISCO_INFO}'/>", to=room)
    values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in info.iter("{jabber:x:data}field")}
    assert values["muc#roominfo_occupants"] == "5", "everyone is still in the room"


async def test_room_history_survives_a_crash(make_server, session_for):
    server = make_server(muc_config(), name="muc-crash", accounts=4)
    s = session_for(server)
    alice = await s.login()
    room = new_room()
    await make_room(alice, room, "alice", PERSISTENT)
    await say(alice, room, "alice", "said before the crash")
    # A query waits for the archive's writes: past it, the message is stored, as the writer would have
    # done a moment later; the crash takes nothing that was written.
    results, _ = await query(alice, room)
    assert bodies(results) == ["said before the crash"]
    server.kill()
    server.start()
    s = session_for(server)
    bob = await s.login()
    mark = bob.inbox.mark()
    await enter(bob, room, "bob")
    await bob.expect(is_groupchat(f"{room}/alice", "said before the crash"), after=mark)
    results, _ = await query(bob, room)
    assert bodies(results) == ["said before the crash"]
