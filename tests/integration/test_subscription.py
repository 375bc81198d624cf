"""Presence subscriptions (RFC 6121 §3), including pre-approval (§3.4)."""

import pytest

from xmpp_harness import (
    befriend,
    describe,
    is_message,
    is_presence,
    is_roster_push,
    roster_item,
)

pytestmark = pytest.mark.asyncio


async def test_subscription_dance_reaches_both_and_presence_flows(xmpp):
    romeo = await xmpp.login(label="romeo")
    juliet = await xmpp.login(label="juliet")

    # Romeo asks (§3.1.2): his roster gets the pending item, Juliet gets the request.
    romeo.presence(to=juliet.bare, type="subscribe")
    push = await romeo.expect(is_roster_push(jid=juliet.bare, subscription="none", ask="subscribe"))
    request = await juliet.expect(is_presence(sender=romeo.bare, type="subscribe"))
    assert request.get("from") == romeo.bare, f"request must come from the bare JID: {describe(request)}"
    assert push.get("from") in (None, romeo.bare)

    # Juliet approves (§3.1.5): her item becomes 'from', his becomes 'to'.
    juliet.presence(to=romeo.bare, type="subscribed")
    await juliet.expect(is_roster_push(jid=romeo.bare, subscription="from"))
    await romeo.expect(is_presence(sender=juliet.bare, type="subscribed"))
    push = await romeo.expect(is_roster_push(jid=juliet.bare, subscription="to"))
    assert roster_item(push).get("ask") is None, f"'ask' should be gone: {describe(push)}"
    # ... and Romeo now gets Juliet's current presence.
    await romeo.expect(is_presence(sender=juliet.jid))

    # The other direction.
    juliet.presence(to=romeo.bare, type="subscribe")
    await romeo.expect(is_presence(sender=juliet.bare, type="subscribe"))
    romeo.presence(to=juliet.bare, type="subscribed")
    await romeo.expect(is_roster_push(jid=juliet.bare, subscription="both"))
    await juliet.expect(is_roster_push(jid=romeo.bare, subscription="both"))
    await juliet.expect(is_presence(sender=romeo.jid))

    # Presence now flows both ways.
    romeo.presence(show="away", status="under the balcony")
    away = await juliet.expect(is_presence(sender=romeo.jid, show="away"))
    assert away.get("to") in (None, juliet.jid, juliet.bare)
    juliet.presence(show="chat")
    await romeo.expect(is_presence(sender=juliet.jid, show="chat"))

    assert (await romeo.roster_items())[juliet.bare].get("subscription") == "both"
    assert (await juliet.roster_items())[romeo.bare].get("subscription") == "both"


async def test_unsubscribe_and_unsubscribed_end_the_subscription(xmpp):
    romeo = await xmpp.login(label="romeo")
    juliet = await xmpp.login(label="juliet")
    await befriend(romeo, juliet)

    # Romeo stops watching Juliet (§3.3): both items lose that direction, and
    # Romeo learns Juliet is (for him) unavailable.
    romeo.presence(to=juliet.bare, type="unsubscribe")
    await romeo.expect(is_roster_push(jid=juliet.bare, subscription="from"))
    await juliet.expect(is_presence(sender=romeo.bare, type="unsubscribe"))
    await juliet.expect(is_roster_push(jid=romeo.bare, subscription="to"))
    await romeo.expect(is_presence(sender=juliet.jid, type="unavailable"))

    # Romeo cancels Juliet's subscription to him (§3.2): nothing is left, and
    # Juliet learns Romeo is (for her) unavailable.
    romeo.presence(to=juliet.bare, type="unsubscribed")
    await romeo.expect(is_roster_push(jid=juliet.bare, subscription="none"))
    await juliet.expect(is_presence(sender=romeo.bare, type="unsubscribed"))
    await juliet.expect(is_roster_push(jid=romeo.bare, subscription="none"))
    await juliet.expect(is_presence(sender=romeo.jid, type="unavailable"))

    # Presence no longer flows: a message sent after the change is the barrier.
    mark = juliet.inbox.mark()
    romeo.presence(show="xa")
    romeo.message(juliet.jid, "barrier")
    barrier = await juliet.expect(is_message(body="barrier"), after=mark)
    leaked = [describe(el) for el in juliet.inbox.before(barrier, mark) if is_presence(sender=romeo.jid, type=None)(el)]
    assert not leaked, f"presence still flows after unsubscription: {leaked}"


async def test_stream_features_advertise_subscription_preapproval(xmpp):
    client = await xmpp.login()
    assert "preapproval" in client.xmpp.features, "no <sub xmlns='urn:xmpp:features:pre-approval'/> in stream features"


async def test_preapproved_subscription_is_accepted_without_asking(xmpp):
    romeo = await xmpp.login(label="romeo")
    juliet = await xmpp.login(label="juliet")

    # Juliet pre-approves Romeo (§3.4): her roster says so.
    mark = juliet.inbox.mark()
    juliet.presence(to=romeo.bare, type="subscribed")
    push = await juliet.expect(is_roster_push(jid=romeo.bare, subscription="none"))
    assert roster_item(push).get("approved") == "true", describe(push)

    # Romeo's request is approved by the server; Juliet is never asked.
    romeo.presence(to=juliet.bare, type="subscribe")
    await romeo.expect(is_presence(sender=juliet.bare, type="subscribed"))
    await romeo.expect(is_roster_push(jid=juliet.bare, subscription="to"))
    push = await juliet.expect(is_roster_push(jid=romeo.bare, subscription="from"), after=mark)
    asked = [describe(el) for el in juliet.inbox.before(push, mark) if is_presence(sender=romeo.bare, type="subscribe")(el)]
    romeo.message(juliet.jid, "barrier")
    barrier = await juliet.expect(is_message(body="barrier"), after=mark)
    asked += [describe(el) for el in juliet.inbox.before(barrier, mark) if is_presence(sender=romeo.bare, type="subscribe")(el)]
    assert not asked, f"pre-approved request was still shown to the contact: {asked}"


async def test_subscription_request_to_offline_contact_is_delivered_when_they_come_online(xmpp):
    romeo = await xmpp.login(label="romeo")
    juliet_account = xmpp.account()
    romeo.presence(to=juliet_account.jid, type="subscribe")
    await romeo.expect(is_roster_push(jid=juliet_account.jid, ask="subscribe"))
    await romeo.ping_server()

    juliet = await xmpp.login(juliet_account, label="juliet")
    await juliet.expect(is_presence(sender=romeo.bare, type="subscribe"))


async def test_presence_is_not_broadcast_to_non_subscribers(xmpp):
    romeo = await xmpp.login(label="romeo")
    juliet = await xmpp.login(label="juliet")
    stranger = await xmpp.login(label="stranger")
    await befriend(romeo, juliet)

    mark = stranger.inbox.mark()
    romeo.presence(show="dnd")
    await juliet.expect(is_presence(sender=romeo.jid, show="dnd"))
    romeo.message(stranger.jid, "barrier")
    barrier = await stranger.expect(is_message(body="barrier"), after=mark)
    leaked = [describe(el) for el in stranger.inbox.before(barrier, mark) if is_presence(sender=romeo.bare, type=None)(el)]
    assert not leaked, f"a non-subscriber received presence: {leaked}"
