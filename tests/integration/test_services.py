"""Server services: disco (XEP-0030), ping (XEP-0199), time (XEP-0202),
last activity (XEP-0012), version (XEP-0092), vCard (XEP-0054),
private XML storage (XEP-0049), blocking (XEP-0191)."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from sakari_process import DOMAIN
from xmpp_harness import (
    WAIT,
    NS_BLOCKING,
    NS_BLOCKING_ERRORS,
    befriend,
    describe,
    error_condition,
    is_iq_set,
    is_message,
    is_message_error,
    is_presence,
    q,
)

pytestmark = pytest.mark.asyncio

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"


# -- disco, ping, time, last, version --------------------------------------


async def test_server_disco_info_lists_identity_and_features(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
    query = result.find(q(NS_DISCO_INFO, "query"))
    identities = {(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))}
    assert ("server", "im") in identities, identities
    features = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
    expected = {
        NS_DISCO_INFO,
        NS_DISCO_ITEMS,
        "urn:xmpp:ping",
        "urn:xmpp:time",
        "jabber:iq:last",
        NS_VCARD,
        NS_BLOCKING,
        "msgoffline",
    }
    assert expected <= features, f"missing features: {sorted(expected - features)}; got {sorted(features)}"
    assert "jabber:iq:version" not in features, "version disclosure is off by default"


async def test_server_disco_items_answers(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=DOMAIN)
    assert result.find(q(NS_DISCO_ITEMS, "query")) is not None


async def test_ping_to_server_gets_empty_result(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    assert result.get("type") == "result" and len(result) == 0, describe(result)
    assert result.get("from") in (DOMAIN, None)


async def test_entity_time_of_server_is_current_utc(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", "<time xmlns='urn:xmpp:time'/>", to=DOMAIN)
    time_el = result.find(q("urn:xmpp:time", "time"))
    utc = time_el.findtext(q("urn:xmpp:time", "utc"))
    tzo = time_el.findtext(q("urn:xmpp:time", "tzo"))
    assert utc and utc.endswith("Z"), f"utc must be UTC with 'Z' (XEP-0082): {utc!r}"
    stamp = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    assert abs(stamp - datetime.now(timezone.utc)) < timedelta(seconds=60)
    assert tzo == "Z" or (tzo and len(tzo) == 6 and tzo[0] in "+-" and tzo[3] == ":"), f"bad tzo {tzo!r}"


async def test_last_activity_of_server_is_its_uptime(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", "<query xmlns='jabber:iq:last'/>", to=DOMAIN)
    seconds = result.find(q("jabber:iq:last", "query")).get("seconds")
    assert seconds is not None and int(seconds) >= 0, describe(result)


async def test_last_activity_of_a_user_is_hidden_from_non_subscribers(xmpp):
    """XEP-0012 §4: only entities allowed to see the user's presence may learn it."""
    stranger = await xmpp.login(label="stranger")
    user = xmpp.account()
    user_client = await xmpp.login(user)
    await user_client.close()
    condition, reply = await stranger.iq_error("get", "<query xmlns='jabber:iq:last'/>", to=user.jid)
    assert condition in ("forbidden", "service-unavailable", "subscription-required"), describe(reply)


async def test_last_activity_of_a_contact_is_the_time_since_logout(xmpp):
    """XEP-0012 §4: seconds since the contact's last logout, with the status
    text of its last unavailable presence."""
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)
    bob.presence(type="unavailable", status="gone fishing")
    await alice.expect(is_presence(sender=bob.jid, type="unavailable"))
    await bob.close()
    # The server records the logout when it sees the connection end, which
    # no client can observe: ask until it is no longer "never logged out".
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        reply = await alice.iq_reply("get", "<query xmlns='jabber:iq:last'/>", to=bob.bare)
        if error_condition(reply) != "item-not-found" or loop.time() > deadline:
            break
    assert reply.get("type") == "result", describe(reply)
    query = reply.find(q("jabber:iq:last", "query"))
    assert 0 <= int(query.get("seconds")) < 30, describe(reply)
    assert query.text == "gone fishing", describe(reply)


async def test_software_version_is_not_disclosed_by_default(xmpp):
    client = await xmpp.login()
    condition, _ = await client.iq_error("get", "<query xmlns='jabber:iq:version'/>", to=DOMAIN)
    assert condition == "service-unavailable"


async def test_unknown_iq_namespace_gets_service_unavailable(xmpp):
    client = await xmpp.login()
    condition, reply = await client.iq_error("get", "<query xmlns='urn:example:nothing-handles-this'/>", to=DOMAIN)
    assert condition == "service-unavailable"
    assert reply.get("id", "").startswith("iq-")


# -- vCard -----------------------------------------------------------------

VCARD = f"<vCard xmlns='{NS_VCARD}'><FN>Juliet Capulet</FN><NICKNAME>jcap</NICKNAME></vCard>"


async def test_vcard_set_is_returned_to_its_owner_and_to_other_users(xmpp):
    juliet = await xmpp.login(label="juliet")
    romeo = await xmpp.login(label="romeo")
    await juliet.iq("set", VCARD)

    own = await juliet.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")
    assert own.findtext(f"{q(NS_VCARD, 'vCard')}/{q(NS_VCARD, 'FN')}") == "Juliet Capulet"

    theirs = await romeo.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=juliet.bare)
    assert theirs.get("from") == juliet.bare
    card = theirs.find(q(NS_VCARD, "vCard"))
    assert card.findtext(q(NS_VCARD, "FN")) == "Juliet Capulet"
    assert card.findtext(q(NS_VCARD, "NICKNAME")) == "jcap"


async def test_vcard_of_offline_user_is_served_by_the_server(xmpp):
    juliet_account = xmpp.account()
    juliet = await xmpp.login(juliet_account)
    await juliet.iq("set", VCARD)
    await juliet.close()
    romeo = await xmpp.login()
    result = await romeo.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=juliet_account.jid)
    assert result.findtext(f"{q(NS_VCARD, 'vCard')}/{q(NS_VCARD, 'FN')}") == "Juliet Capulet"


async def test_vcard_of_another_user_cannot_be_set(xmpp):
    juliet = await xmpp.login(label="juliet")
    mallory = await xmpp.login(label="mallory")
    await juliet.iq("set", VCARD)
    evil = f"<vCard xmlns='{NS_VCARD}'><FN>Hacked</FN></vCard>"
    condition, _ = await mallory.iq_error("set", evil, to=juliet.bare)
    assert condition in ("forbidden", "not-allowed", "service-unavailable"), condition
    card = await juliet.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")
    assert card.findtext(f"{q(NS_VCARD, 'vCard')}/{q(NS_VCARD, 'FN')}") == "Juliet Capulet"


# -- private XML storage -------------------------------------------------------


async def test_private_storage_round_trip(xmpp):
    client = await xmpp.login()
    stored = f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='urn:example:prefs'><colour>teal</colour></prefs></query>"
    await client.iq("set", stored)
    result = await client.iq("get", f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='urn:example:prefs'/></query>")
    assert result.findtext(f"{q(NS_PRIVATE, 'query')}/{q('urn:example:prefs', 'prefs')}/{q('urn:example:prefs', 'colour')}") == "teal"


async def test_private_storage_returns_empty_element_for_unknown_namespace(xmpp):
    client = await xmpp.login()
    result = await client.iq("get", f"<query xmlns='{NS_PRIVATE}'><other xmlns='urn:example:never-stored'/></query>")
    other = result.find(f"{q(NS_PRIVATE, 'query')}/{q('urn:example:never-stored', 'other')}")
    assert other is not None and len(other) == 0, describe(result)


async def test_private_storage_of_another_user_is_forbidden(xmpp):
    owner = await xmpp.login(label="owner")
    snoop = await xmpp.login(label="snoop")
    await owner.iq("set", f"<query xmlns='{NS_PRIVATE}'><secret xmlns='urn:example:secret'>42</secret></query>")
    condition, reply = await snoop.iq_error(
        "get", f"<query xmlns='{NS_PRIVATE}'><secret xmlns='urn:example:secret'/></query>", to=owner.bare
    )
    assert condition in ("forbidden", "service-unavailable"), condition
    assert ">42<" not in describe(reply), "the private data leaked"  # as element text: account names may contain 42


# -- blocking ---------------------------------------------------------------------


def blocked_jids(result) -> set[str]:
    blocklist = result.find(q(NS_BLOCKING, "blocklist"))
    assert blocklist is not None, describe(result)
    return {item.get("jid") for item in blocklist.findall(q(NS_BLOCKING, "item"))}


async def test_blocklist_starts_empty_and_lists_blocked_jids(xmpp):
    client = await xmpp.login()
    assert blocked_jids(await client.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == set()
    nuisance = f"nuisance-{client.account.localpart}@{DOMAIN}"
    await client.iq("set", f"<block xmlns='{NS_BLOCKING}'><item jid='{nuisance}'/></block>")
    assert blocked_jids(await client.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == {nuisance}


async def test_block_is_pushed_to_the_users_other_resources(xmpp):
    account = xmpp.account()
    desk = await xmpp.login(account, resource="desk")
    phone = await xmpp.login(account, resource="phone")
    await phone.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")  # interested in pushes
    nuisance = f"nuisance-{account.localpart}@{DOMAIN}"
    await desk.iq("set", f"<block xmlns='{NS_BLOCKING}'><item jid='{nuisance}'/></block>")
    push = await phone.expect(is_iq_set(NS_BLOCKING, "block"))
    assert {i.get("jid") for i in push.find(q(NS_BLOCKING, "block"))} == {nuisance}


async def test_blocked_contact_gets_no_presence_and_its_messages_bounce(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    carol = await xmpp.login(label="carol")
    await befriend(alice, bob)
    assert "urn:xmpp:blocking" in {
        f.get("var") for f in (await alice.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)).iter(q(NS_DISCO_INFO, "feature"))
    }

    await alice.iq("set", f"<block xmlns='{NS_BLOCKING}'><item jid='{bob.bare}'/></block>")
    # XEP-0191 §3.3: the blocked contact sees alice go offline.
    await bob.expect(is_presence(sender=alice.jid, type="unavailable"))

    # Bob's message is not delivered; he gets an error (or nothing).
    alice_mark = alice.inbox.mark()
    mid = bob.message(alice.jid, "let me in")
    bob.presence(show="chat", status="look at me")
    await bob.ping_server()
    carol.message(alice.jid, "barrier")
    barrier = await alice.expect(is_message(body="barrier"), after=alice_mark)
    leaked = [describe(el) for el in alice.inbox.before(barrier, alice_mark) if el.get("from", "").startswith(bob.bare)]
    assert not leaked, f"blocked contact reached the blocker: {leaked}"
    bounce = next((el for el in bob.inbox.history if is_message_error()(el) and el.get("id") == mid), None)
    if bounce is not None:
        assert error_condition(bounce) == "service-unavailable", describe(bounce)

    # Alice's presence changes no longer reach bob.
    bob_mark = bob.inbox.mark()
    alice.presence(show="away")
    alice.message(carol.jid, "alice barrier")
    await carol.expect(is_message(body="alice barrier"))
    await alice.ping_server()
    carol.message(bob.jid, "bob barrier")
    barrier = await bob.expect(is_message(body="bob barrier"), after=bob_mark)
    leaked = [describe(el) for el in bob.inbox.before(barrier, bob_mark) if el.get("from", "").startswith(alice.bare)]
    assert not leaked, f"blocker's presence reached the blocked contact: {leaked}"


async def test_blocker_cannot_message_the_blocked_contact(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    await alice.iq("set", f"<block xmlns='{NS_BLOCKING}'><item jid='{bob.bare}'/></block>")
    mid = alice.message(bob.jid, "you are blocked")
    bounce = await alice.expect(is_message_error())
    assert bounce.get("id") == mid
    assert error_condition(bounce) == "not-acceptable", describe(bounce)
    assert bounce.find(f"{q('jabber:client', 'error')}/{q(NS_BLOCKING_ERRORS, 'blocked')}") is not None, describe(bounce)


async def test_unblock_without_items_clears_the_blocklist(xmpp):
    """XEP-0191 §3.4: an empty <unblock/> unblocks everyone."""
    client = await xmpp.login()
    jids = {f"n{i}-{client.account.localpart}@{DOMAIN}" for i in range(3)}
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    await client.iq("set", f"<block xmlns='{NS_BLOCKING}'>{items}</block>")
    assert blocked_jids(await client.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == jids
    await client.iq("set", f"<unblock xmlns='{NS_BLOCKING}'/>")
    assert blocked_jids(await client.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == set()


async def test_block_without_items_is_bad_request(xmpp):
    client = await xmpp.login()
    condition, _ = await client.iq_error("set", f"<block xmlns='{NS_BLOCKING}'/>")
    assert condition == "bad-request"


async def test_unblock_restores_presence_and_messages(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)
    await alice.iq("set", f"<block xmlns='{NS_BLOCKING}'><item jid='{bob.bare}'/></block>")
    await bob.expect(is_presence(sender=alice.jid, type="unavailable"))

    mark = bob.inbox.mark()
    await alice.iq("set", f"<unblock xmlns='{NS_BLOCKING}'><item jid='{bob.bare}'/></unblock>")
    assert blocked_jids(await alice.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == set()
    # Bob sees alice again and can talk to her.
    await bob.expect(is_presence(sender=alice.jid), after=mark)
    bob.message(alice.jid, "hello again")
    await alice.expect(is_message(body="hello again", sender=bob.jid))
