"""XEP-0313 message archives against a real server: archiving, stanza-ids, paging, filters, full text,
hints and preferences, and the payloads clients build on, replayed intact."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import pytest
from mam_helpers import (
    NS_MAM,
    NS_SID,
    form,
    mam_config,
    mam_query,
    query_payload,
    rsm,
    stanza_id,
)
from xmpp_harness import Client, q

DOMAIN = "localhost"


@pytest.fixture(scope="module")
def mam_server(spawn_server):
    with spawn_server("mam-server", mam_config(), accounts=60) as srv:
        yield srv


@pytest.fixture
async def pair(mam_server, session_for) -> tuple[Client, Client]:
    session = session_for(mam_server)
    return await session.login(), await session.login()


async def converse(a: Client, b: Client, count: int, prefix: str = "msg") -> list[str]:
    """a sends count messages to b; returns when b has them all."""
    bodies = [f"{prefix} {i}" for i in range(count)]
    for body in bodies:
        a.message(b.bare, body)
    for body in bodies:
        await b.expect_message(body)
    return bodies


async def test_a_chat_is_archived_for_both_with_an_id_of_each_and_delivered_with_the_recipients(pair) -> None:
    a, b = pair
    a.message(b.bare, "hello archive")
    got = await b.expect_message("hello archive")
    theirs = await mam_query(b)
    mine = await mam_query(a)
    assert theirs.bodies == mine.bodies == ["hello archive"]
    assert stanza_id(got, b.bare) == theirs.ids[0]
    assert mine.ids[0] != theirs.ids[0]
    assert mine.messages[0].get("to") == b.bare and theirs.messages[0].get("from") == a.jid
    assert theirs.complete and theirs.rsm("count") == "1"


async def test_a_stanza_id_claiming_the_recipients_archive_is_replaced(pair) -> None:
    a, b = pair
    a.message(b.bare, "forged", extra=f"<stanza-id xmlns='{NS_SID}' by={quoteattr(b.bare)} id='forged-id'/>")
    got = await b.expect_message("forged")
    ids = [s.get("id") for s in got.findall(q(NS_SID, "stanza-id"))]
    assert len(ids) == 1 and ids[0] != "forged-id"
    assert ids == (await mam_query(b)).ids


async def test_pages_forward_by_after_and_backward_by_before_until_complete(pair) -> None:
    a, b = pair
    bodies = await converse(a, b, 25)
    forward, after = [], None
    while True:
        page = await mam_query(b, rsm(max=10, after=after))
        forward += page.bodies
        assert page.rsm("first") == page.ids[0] and page.rsm("last") == page.ids[-1]
        if page.complete:
            break
        after = page.rsm("last")
    assert forward == bodies
    pages, before = [], ""
    while True:
        page = await mam_query(b, rsm(max=10, before=before))
        pages.append(page.bodies)
        if page.complete:
            break
        before = page.rsm("first")
    assert pages == [bodies[15:], bodies[5:15], bodies[:5]]


async def test_max_zero_gives_the_count_alone(pair) -> None:
    a, b = pair
    await converse(a, b, 3)
    page = await mam_query(b, rsm(max=0))
    assert page.messages == [] and page.rsm("count") == "3"


async def test_flip_page_gives_the_last_page_newest_first(pair) -> None:
    a, b = pair
    bodies = await converse(a, b, 5)
    page = await mam_query(b, rsm(max=3, before=""), "<flip-page/>")
    assert page.bodies == bodies[:1:-1]
    assert page.rsm("first") == page.ids[0]


async def test_an_unknown_id_to_page_from_is_item_not_found(pair) -> None:
    _, b = pair
    for inner in (rsm(after="00000000deadbeef"), rsm(before="not-an-id"), form(after_id="00000000deadbeef")):
        condition, _ = await b.iq_error("set", query_payload("bad", inner))
        assert condition == "item-not-found"


async def test_filters_by_contact_time_ids_and_between_ids(mam_server, session_for) -> None:
    session = session_for(mam_server)
    a, b, c = await session.login(), await session.login(), await session.login()
    await converse(a, b, 3, "from a")
    await converse(c, b, 2, "from c")
    await converse(a, b, 3, "later a")
    everything = await mam_query(b)
    assert len(everything.ids) == 8
    assert (await mam_query(b, form(**{"with": c.bare}))).bodies == ["from c 0", "from c 1"]
    window = await mam_query(b, form(start=everything.stamps[3], end=everything.stamps[4]))
    assert window.bodies == ["from c 0", "from c 1"]
    assert (await mam_query(b, form(start=everything.stamps[6]))).bodies == ["later a 1", "later a 2"]
    picked = await mam_query(b, form(ids=[everything.ids[7], everything.ids[0]]))
    assert picked.bodies == ["from a 0", "later a 2"]
    between = await mam_query(b, form(after_id=everything.ids[1], before_id=everything.ids[5]))
    assert between.bodies == ["from a 2", "from c 0", "from c 1"]
    condition, _ = await b.iq_error("set", query_payload("x", form(colour="red")))
    assert condition == "bad-request"


async def test_full_text_search_finds_messages_by_their_words(pair) -> None:
    a, b = pair
    for body in ("The concert starts at eight", "bring the TICKETS", "concert tickets are sold out", "see you"):
        a.message(b.bare, body)
    await b.expect_message("see you")
    assert (await mam_query(b, form(fulltext="concert"))).bodies == ["The concert starts at eight", "concert tickets are sold out"]
    assert (await mam_query(b, form(fulltext="tickets CONCERT"))).bodies == ["concert tickets are sold out"]
    assert (await mam_query(a, form(fulltext="tickets"))).bodies == ["bring the TICKETS", "concert tickets are sold out"]
    assert (await mam_query(b, form(fulltext="opera"))).bodies == []


async def test_no_store_is_honoured_and_store_keeps_what_would_not_be_kept(pair) -> None:
    a, b = pair
    a.message(b.bare, "secret", extra="<no-store xmlns='urn:xmpp:hints'/>")
    a.send(f"<message to={quoteattr(b.bare)} type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    a.send(f"<message to={quoteattr(b.bare)} type='chat' id='kept-state'>"
           "<active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>")
    a.message(b.bare, "kept")
    secret = await b.expect_message("secret")
    assert secret.find(q(NS_SID, "stanza-id")) is None
    await b.expect_message("kept")
    for client in (a, b):
        assert [m.get("id") for m in (await mam_query(client)).messages][0] == "kept-state"
        assert (await mam_query(client)).bodies == [None, "kept"]


async def test_groupchat_headline_and_error_messages_are_not_archived(pair) -> None:
    a, b = pair
    for mtype in ("headline", "error", "groupchat"):
        a.message(b.bare, f"a {mtype}", type=mtype)
    a.message(b.bare, "a chat")
    await b.expect_message("a chat")
    await a.ping_server()
    assert (await mam_query(b)).bodies == ["a chat"]
    assert (await mam_query(a)).bodies == ["a chat"]


async def test_preferences_never_and_always_lists_and_default(pair, mam_server, session_for) -> None:
    a, b = pair
    c = await session_for(mam_server).login()
    result = await b.iq("get", f"<prefs xmlns='{NS_MAM}'/>")
    assert result.find(q(NS_MAM, "prefs")).get("default") == "always"
    prefs = (f"<prefs xmlns='{NS_MAM}' default='never'><always><jid>{c.bare}</jid></always>"
             f"<never><jid>{a.bare}</jid></never></prefs>")
    stored = (await b.iq("set", prefs)).find(q(NS_MAM, "prefs"))
    assert stored.get("default") == "never" and stored.findtext(f"{q(NS_MAM, 'always')}/{q(NS_MAM, 'jid')}") == c.bare
    a.message(b.bare, "from a, never")
    c.message(b.bare, "from c, always")
    await b.expect_message("from a, never")
    await b.expect_message("from c, always")
    b.message(a.bare, "to a, never")  # only once a's message arrived, so a's archive order is fixed
    await a.expect_message("to a, never")
    assert (await mam_query(b)).bodies == ["from c, always"]
    assert (await mam_query(a)).bodies == ["from a, never", "to a, never"]  # a's archive follows a's preferences
    again = (await b.iq("get", f"<prefs xmlns='{NS_MAM}'/>")).find(q(NS_MAM, "prefs"))
    assert again.get("default") == "never"
    condition, _ = await b.iq_error("set", f"<prefs xmlns='{NS_MAM}' default='sometimes'/>")
    assert condition == "bad-request"


async def test_preference_roster_archives_only_roster_contacts(pair, mam_server, session_for) -> None:
    a, b = pair
    c = await session_for(mam_server).login()
    await b.iq("set", f"<query xmlns='jabber:iq:roster'><item jid={quoteattr(a.bare)}/></query>")
    await b.iq("set", f"<prefs xmlns='{NS_MAM}' default='roster'/>")
    a.message(b.bare, "from a contact")
    c.message(b.bare, "from a stranger")
    await b.expect_message("from a contact")
    await b.expect_message("from a stranger")
    assert (await mam_query(b)).bodies == ["from a contact"]


# Payloads clients build on, each a real example from its XEP; the archive must give them back as sent.
PAYLOADS = {
    "receipt request (XEP-0184)": "<body>ack me</body><request xmlns='urn:xmpp:receipts'/>",
    "receipt (XEP-0184)": "<received xmlns='urn:xmpp:receipts' id='richard2-4.1.247'/>",
    "marker (XEP-0333)": "<displayed xmlns='urn:xmpp:chat-markers:0' id='message-1'/>",
    "markable (XEP-0333)": "<body>mark me</body><markable xmlns='urn:xmpp:chat-markers:0'/>",
    "correction (XEP-0308)": "<body>But soft, what light through yonder window breaks?</body>"
                             "<replace id='bad1' xmlns='urn:xmpp:message-correct:0'/>",
    "retraction (XEP-0424)": "<retract id='origin-id-1' xmlns='urn:xmpp:message-retract:1'/>"
                             "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>"
                             "<body>This person attempted to retract a previous message, but it's unsupported by your client.</body>",
    "reactions (XEP-0444)": "<reactions id='744f6e18-a57a-11e9-a656-4889e7820c76' xmlns='urn:xmpp:reactions:0'>"
                            "<reaction>👋</reaction><reaction>🐢</reaction></reactions>"
                            "<store xmlns='urn:xmpp:hints'/>",
    "reply (XEP-0461)": "<body>&gt; Anna wrote:\n&gt; We should bake a cake\nGreat idea!</body>"
                        "<reply to='anna@example.com/tablet' id='message-id1' xmlns='urn:xmpp:reply:0'/>"
                        "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='36'/></fallback>",
    "thread (XEP-0201)": "<body>Art thou not Romeo, and a Montague?</body>"
                         "<thread parent='7edac73ab41e45c4aafa7b2d7b749080'>e0ffe42b28561960c6b12b944a092794b9683a38</thread>",
}


def _children(message: ET.Element) -> list[str]:
    return sorted(ET.tostring(child, encoding="unicode") for child in message
                  if child.tag not in (q(NS_SID, "stanza-id"), q(NS_SID, "origin-id")))


@pytest.mark.parametrize("name", PAYLOADS)
async def test_payloads_clients_build_on_are_stored_and_replayed_intact(pair, name: str) -> None:
    a, b = pair
    a.send(f"<message to={quoteattr(b.bare)} type='chat' id='payload-1'>{PAYLOADS[name]}</message>")
    got = await b.expect(lambda el: el.get("id") == "payload-1", name)
    for client in (a, b):
        replayed = (await mam_query(client)).messages
        assert len(replayed) == 1, f"{name} not archived for {client.label}"
        assert _children(replayed[0]) == _children(got)
        assert replayed[0].get("id") == "payload-1" and replayed[0].get("type") == "chat"


async def test_another_users_archive_is_forbidden(pair) -> None:
    a, b = pair
    condition, _ = await a.iq_error("set", query_payload("peek"), to=b.bare)
    assert condition == "forbidden"
    condition, _ = await a.iq_error("get", f"<prefs xmlns='{NS_MAM}'/>", to=b.bare)
    assert condition == "forbidden"


async def test_the_account_advertises_the_archive_and_the_query_form(pair) -> None:
    a, _ = pair
    info = await a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=a.bare)
    features = {f.get("var") for f in info.iter(q("http://jabber.org/protocol/disco#info", "feature"))}
    assert {NS_MAM, f"{NS_MAM}#extended", NS_SID, "urn:xmpp:fulltext:0"} <= features
    fields = await a.iq("get", f"<query xmlns='{NS_MAM}'/>")
    names = {f.get("var") for f in fields.iter(q("jabber:x:data", "field"))}
    assert {"with", "start", "end", "after-id", "before-id", "ids", "{urn:xmpp:fulltext:0}fulltext"} <= names


async def test_metadata_names_the_first_and_last_archived_message(pair) -> None:
    a, b = pair
    await converse(a, b, 3)
    ids = (await mam_query(b)).ids
    meta = (await b.iq("get", f"<metadata xmlns='{NS_MAM}'/>")).find(q(NS_MAM, "metadata"))
    assert meta.find(q(NS_MAM, "start")).get("id") == ids[0]
    assert meta.find(q(NS_MAM, "end")).get("id") == ids[-1]


async def test_a_message_to_oneself_is_archived_once(pair) -> None:
    a, _ = pair
    a.message(a.bare, "note to self")
    await a.expect_message("note to self")
    assert (await mam_query(a)).bodies == ["note to self"]


async def test_slixmpp_mam_plugin_reads_the_archive(pair) -> None:
    a, b = pair
    bodies = await converse(a, b, 12)
    b.xmpp.register_plugin("xep_0313")
    got = [m["mam_result"]["forwarded"]["stanza"]["body"]
           async for m in b.xmpp.plugin["xep_0313"].iterate(rsm={"max": 5})]
    assert got == bodies
    newest = [m["mam_result"]["forwarded"]["stanza"]["body"]
              async for m in b.xmpp.plugin["xep_0313"].iterate(rsm={"max": 5}, reverse=True, total=7)]
    assert newest == bodies[::-1][:7]
