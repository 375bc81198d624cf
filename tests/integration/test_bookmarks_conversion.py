"""XEP-0411 against a real server: legacy private-storage bookmarks and XEP-0402 PEP bookmarks are one list,
read and written from either side, and the PEP node stays private."""

import pytest
from pep_helpers import NS_EVENT, NS_PUBSUB, announce, is_event, items, pep_config, publish, pubsub_condition
from xmpp_harness import befriend, q

pytestmark = pytest.mark.asyncio

BOOKMARKS = "urn:xmpp:bookmarks:1"
OPTIONS = {"persist_items": "true", "max_items": "max", "send_last_published_item": "never", "access_model": "whitelist"}


@pytest.fixture(scope="module")
def bookmarks_server(spawn_server):
    with spawn_server("bookmarks-server", pep_config(modules=["bookmarks"]), accounts=20) as srv:
        yield srv


@pytest.fixture
def xmpp(bookmarks_server, session_for):
    return session_for(bookmarks_server)


async def legacy(client) -> dict[str, dict]:
    result = await client.iq("get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
    rooms = {}
    for c in result.iter(q("storage:bookmarks", "conference")):
        rooms[c.get("jid")] = {"name": c.get("name"), "autojoin": c.get("autojoin"),
                               "nick": c.findtext(q("storage:bookmarks", "nick"))}
    return rooms


async def test_account_advertises_the_conversion(xmpp):
    a = await xmpp.login()
    info = await a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=a.bare)
    assert "urn:xmpp:bookmarks-conversion:0" in {
        f.get("var") for f in info.iter(q("http://jabber.org/protocol/disco#info", "feature"))}


async def test_legacy_bookmarks_become_private_pep_bookmarks_that_reach_the_other_client(xmpp):
    account = xmpp.account()
    old = await xmpp.login(account, resource="old")
    modern = await xmpp.login(account, resource="modern", presence=False)
    await announce(modern, BOOKMARKS)
    contact = await xmpp.login(presence=False)
    await announce(contact, BOOKMARKS)
    await befriend(modern, contact)
    await old.iq("set", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                        "<conference jid='tea@conference.localhost' name='Tea' autojoin='1'><nick>ada</nick></conference>"
                        "<conference jid='work@conference.localhost' autojoin='false'/></storage></query>")
    note = await modern.expect(is_event(BOOKMARKS, sender=account.jid))
    assert note.find(f".//{q(NS_EVENT, 'item')}").get("id") == "tea@conference.localhost"
    got = {i.get("id"): i.find(q(BOOKMARKS, "conference")) for i in await items(modern, None, BOOKMARKS)}
    assert set(got) == {"tea@conference.localhost", "work@conference.localhost"}
    tea = got["tea@conference.localhost"]
    assert (tea.get("name"), tea.get("autojoin"), tea.findtext(q(BOOKMARKS, "nick"))) == ("Tea", "true", "ada")
    condition, error = await contact.iq_error("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>",
                                              to=account.jid)
    assert condition == "not-allowed" and pubsub_condition(error) == "closed-node"
    assert not any(is_event(BOOKMARKS)(el) for el in contact.inbox.history)


async def test_pep_bookmarks_show_in_legacy_storage_and_a_legacy_write_retracts_what_it_drops(xmpp):
    account = xmpp.account()
    old = await xmpp.login(account, resource="old")
    modern = await xmpp.login(account, resource="modern", presence=False)
    await announce(modern, BOOKMARKS)
    await publish(modern, BOOKMARKS, f"<conference xmlns='{BOOKMARKS}' name='Club' autojoin='true'><nick>me</nick>"
                                     "</conference>", item_id="club@conference.localhost", **OPTIONS)
    assert await legacy(old) == {"club@conference.localhost": {"name": "Club", "autojoin": "true", "nick": "me"}}
    await old.iq("set", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                        "<conference jid='other@conference.localhost' name='Other' autojoin='false'/></storage></query>")
    await modern.expect(is_event(BOOKMARKS, sender=account.jid, child="retract"))
    assert [i.get("id") for i in await items(modern, None, BOOKMARKS)] == ["other@conference.localhost"]
    assert set(await legacy(old)) == {"other@conference.localhost"}


async def test_other_private_data_is_still_kept_by_private_storage(xmpp):
    a = await xmpp.login()
    await a.iq("set", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>blue</prefs></query>")
    result = await a.iq("get", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>")
    assert result.findtext(f".//{{urn:example:prefs}}prefs") == "blue"
    assert await legacy(a) == {}
