"""Explicit subscriptions to another account's PEP node (XEP-0060 §6.1 subscribe, §6.2 unsubscribe, §5.6
subscriptions) with slixmpp's xep_0060 plugin: a contact the node's access model allows subscribes and is
notified although its caps ask for nothing, until it unsubscribes or is no longer allowed; anyone else gets
the XEP's errors."""

import xml.etree.ElementTree as ET

import pytest
from pep_helpers import NS_ERRORS, NS_EVENT, announce, is_event, pep_config, publish
from slixmpp.exceptions import IqError
from xmpp_harness import befriend, q

pytestmark = pytest.mark.asyncio

TUNE = "http://jabber.org/protocol/tune"


@pytest.fixture(scope="module")
def subscription_server(spawn_server):
    with spawn_server("pep-subscription-server", pep_config(), accounts=30) as srv:
        yield srv


@pytest.fixture
def xmpp(subscription_server, session_for):
    return session_for(subscription_server)


def tune(title: str) -> str:
    return f"<tune xmlns='{TUNE}'><title>{title}</title></tune>"


def item_id(note: ET.Element) -> str:
    return note.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}/{q(NS_EVENT, 'item')}").get("id")


async def contacts_without_notify_caps(xmpp):
    """Two mutual contacts whose clients announce caps with no +notify at all."""
    a = await xmpp.login(presence=False)
    b = await xmpp.login(presence=False)
    await announce(a)
    await announce(b)
    await befriend(a, b)
    return a, b


async def no_event_until_barrier(sender, receiver, mark: int) -> None:
    """Nothing of ``TUNE`` reached ``receiver`` since ``mark``: a message sent after the publish was answered
    arrives after any notification of it, on the same stream."""
    sender.message(receiver.bare, "barrier")
    barrier = await receiver.expect_message("barrier")
    assert not any(is_event(TUNE)(el) for el in receiver.inbox.before(barrier, mark))


async def refusal(call) -> tuple[str, str | None]:
    """The condition and pubsub condition of an error answer."""
    with pytest.raises(IqError) as caught:
        await call
    error = caught.value.iq.xml.find(q("jabber:client", "error"))
    special = next((c.tag.split("}")[1] for c in error if c.tag.startswith(f"{{{NS_ERRORS}}}")), None)
    return caught.value.iq["error"]["condition"], special


async def test_a_subscribed_contact_is_notified_without_notify_caps_until_it_unsubscribes(xmpp):
    a, b = await contacts_without_notify_caps(xmpp)
    await publish(a, TUNE, tune("First"), item_id="first")
    mark = b.inbox.mark()
    await no_event_until_barrier(a, b, mark)  # caps alone bring b nothing
    pubsub = b.xmpp.plugin["xep_0060"]
    result = await pubsub.subscribe(a.bare, TUNE)
    assert result["pubsub"]["subscription"]["subscription"] == "subscribed"
    assert result["pubsub"]["subscription"]["jid"] == b.bare
    assert item_id(await b.expect(is_event(TUNE, sender=a.bare), after=mark)) == "first"  # §6.1.7: the last item
    mark = b.inbox.mark()
    await publish(a, TUNE, tune("Second"), item_id="second")
    assert item_id(await b.expect(is_event(TUNE, sender=a.bare), after=mark)) == "second"
    listed = await pubsub.get_subscriptions(a.bare)
    assert [(s["node"], str(s["jid"]), s["subscription"]) for s in listed["pubsub"]["subscriptions"]] == [
        (TUNE, b.bare, "subscribed")]

    await pubsub.unsubscribe(a.bare, TUNE)
    mark = b.inbox.mark()
    await publish(a, TUNE, tune("Third"), item_id="third")
    await no_event_until_barrier(a, b, mark)
    assert list((await pubsub.get_subscriptions(a.bare))["pubsub"]["subscriptions"]) == []
    assert await refusal(pubsub.unsubscribe(a.bare, TUNE)) == ("unexpected-request", "not-subscribed")


async def test_a_resource_subscribed_by_its_full_jid_is_notified_alone(xmpp):
    a, b = await contacts_without_notify_caps(xmpp)
    other = await xmpp.login(b.account, resource="other", presence=False)
    await announce(other)
    await publish(a, TUNE, tune("First"))
    await b.xmpp.plugin["xep_0060"].subscribe(a.bare, TUNE, bare=False)
    await b.expect(is_event(TUNE, sender=a.bare))
    mark_b, mark_other = b.inbox.mark(), other.inbox.mark()
    await publish(a, TUNE, tune("Second"), item_id="second")
    assert item_id(await b.expect(is_event(TUNE, sender=a.bare), after=mark_b)) == "second"
    await no_event_until_barrier(a, other, mark_other)


async def test_a_subscriber_who_may_no_longer_see_the_node_loses_the_subscription(xmpp):
    a, b = await contacts_without_notify_caps(xmpp)
    await publish(a, TUNE, tune("First"))
    await b.xmpp.plugin["xep_0060"].subscribe(a.bare, TUNE)
    await b.expect(is_event(TUNE, sender=a.bare))
    await a.iq("set", f"<query xmlns='jabber:iq:roster'><item jid='{b.bare}' subscription='remove'/></query>")
    mark = b.inbox.mark()
    await publish(a, TUNE, tune("Second"))
    await no_event_until_barrier(a, b, mark)
    listed = await b.xmpp.plugin["xep_0060"].get_subscriptions(a.bare)
    assert list(listed["pubsub"]["subscriptions"]) == []  # the access model no longer allows one


async def test_who_may_not_see_a_node_cannot_subscribe(xmpp):
    a, b = await contacts_without_notify_caps(xmpp)
    stranger = await xmpp.login(presence=False)
    await announce(stranger)
    await publish(a, TUNE, tune("Private"))
    await publish(a, "secret", "<x xmlns='urn:example'/>", access_model="whitelist")
    await publish(a, "public", "<x xmlns='urn:example'/>", access_model="open")
    strangers = stranger.xmpp.plugin["xep_0060"]
    contacts = b.xmpp.plugin["xep_0060"]
    assert await refusal(strangers.subscribe(a.bare, TUNE)) == ("not-authorized", "presence-subscription-required")
    assert await refusal(contacts.subscribe(a.bare, "secret")) == ("not-allowed", "closed-node")
    assert await refusal(contacts.subscribe(a.bare, "no-such-node")) == ("item-not-found", None)
    assert await refusal(contacts.subscribe(a.bare, TUNE, subscribee=stranger.bare)) == ("bad-request", "invalid-jid")
    result = await strangers.subscribe(a.bare, "public")  # an open node takes anyone
    assert result["pubsub"]["subscription"]["subscription"] == "subscribed"
    await stranger.expect(is_event("public", sender=a.bare))
