"""Message routing (RFC 6121 §8.5) and offline storage (XEP-0160, XEP-0203)."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from sakari_process import DOMAIN
from xmpp_harness import (
    NS_DELAY,
    WAIT,
    body_of,
    describe,
    error_condition,
    is_message,
    is_message_error,
    kind,
    q,
)

pytestmark = pytest.mark.asyncio


def bodies(elements) -> list[str]:
    return [body_of(el) for el in elements if kind(el) == "message" and el.get("type") != "error"]


async def test_chat_to_full_jid_reaches_only_that_resource(xmpp):
    account = xmpp.account()
    desk = await xmpp.login(account, resource="desk")
    phone = await xmpp.login(account, resource="phone")
    bob = await xmpp.login(label="bob")

    bob.message(phone.jid, "for the phone only")
    got = await phone.expect(is_message(body="for the phone only"))
    assert got.get("from") == bob.jid, "sender's full JID must be stamped (RFC 6120 §8.1.2.1)"
    assert got.get("type") == "chat"

    bob.message(desk.jid, "barrier")
    barrier = await desk.expect(is_message(body="barrier"))
    assert "for the phone only" not in bodies(desk.inbox.before(barrier))


async def test_chat_from_full_jid_to_bare_jid_and_back(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    alice.message(bob.bare, "hi bob")
    hi = await bob.expect(is_message(body="hi bob", sender=alice.jid))
    bob.message(hi.get("from"), "hi alice")  # reply to the full JID it came from
    await alice.expect(is_message(body="hi alice", sender=bob.jid))


async def test_bare_jid_message_goes_to_highest_priority_resource(xmpp):
    account = xmpp.account()
    high = await xmpp.login(account, resource="high", priority=5)
    low = await xmpp.login(account, resource="low", priority=1)
    bob = await xmpp.login(label="bob")

    bob.message(account.jid, "to the bare jid")
    await high.expect(is_message(body="to the bare jid", sender=bob.jid))
    bob.message(low.jid, "barrier")
    barrier = await low.expect(is_message(body="barrier"))
    assert "to the bare jid" not in bodies(low.inbox.before(barrier))


async def test_bare_jid_message_reaches_a_resource_among_equal_highest_priorities(xmpp):
    account = xmpp.account()
    first = await xmpp.login(account, resource="first", priority=3)
    second = await xmpp.login(account, resource="second", priority=3)
    lower = await xmpp.login(account, resource="lower", priority=0)
    bob = await xmpp.login(label="bob")

    bob.message(account.jid, "tie")
    for target in (first, second, lower):
        bob.message(target.jid, f"barrier {target.label}")
    received = []
    for target in (first, second, lower):
        barrier = await target.expect(is_message(body=f"barrier {target.label}"))
        received.append("tie" in bodies(target.inbox.before(barrier)))
    assert received[2] is False, "a lower-priority resource got the bare-JID message"
    assert received[0] or received[1], "no highest-priority resource got the bare-JID message"


async def test_negative_priority_resource_does_not_get_bare_jid_messages(xmpp):
    account = xmpp.account()
    shy = await xmpp.login(account, resource="shy", priority=-1)
    normal = await xmpp.login(account, resource="normal", priority=0)
    bob = await xmpp.login(label="bob")

    bob.message(account.jid, "to the bare jid")
    await normal.expect(is_message(body="to the bare jid"))
    bob.message(shy.jid, "barrier")  # a full-JID message does reach it (§8.5.3.1)
    barrier = await shy.expect(is_message(body="barrier"))
    assert "to the bare jid" not in bodies(shy.inbox.before(barrier))


async def test_bare_jid_message_with_only_negative_priority_resources_is_stored_offline(xmpp):
    """§8.5.2.1.1: all resources negative → as if none were available (§8.5.2.2)."""
    account = xmpp.account()
    shy = await xmpp.login(account, resource="shy", priority=-5)
    bob = await xmpp.login(label="bob")

    bob.message(account.jid, "keep this for later")
    bob.message(shy.jid, "barrier")
    barrier = await shy.expect(is_message(body="barrier"))
    assert "keep this for later" not in bodies(shy.inbox.before(barrier))

    available = await xmpp.login(account, resource="available", priority=0)
    await available.expect(is_message(body="keep this for later", sender=bob.jid))


async def test_sender_cannot_forge_from_address(xmpp):
    """RFC 6120 §8.1.2.1: the server stamps or rejects a client's 'from'."""
    alice = await xmpp.login(label="alice")
    mallory = await xmpp.login(label="mallory")
    forged = f"{alice.bare}/forged"
    mallory.send(f"<message from='{forged}' to='{alice.jid}' type='chat' id='forge'><body>trust me</body></message>")
    mallory.message(alice.jid, "barrier")
    # Either the stream is closed (invalid-from) or the barrier arrives; in
    # both cases alice must never see the forged address.
    barrier_arrived = asyncio.ensure_future(alice.expect(is_message(body="barrier")))
    await asyncio.wait({barrier_arrived, mallory.disconnected}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if barrier_arrived.done():
        barrier = barrier_arrived.result()
        for el in alice.inbox.before(barrier):
            if body_of(el) == "trust me":
                assert el.get("from") == mallory.jid, f"forged 'from' delivered: {describe(el)}"
    else:
        barrier_arrived.cancel()
        assert mallory.disconnected.done(), "neither delivered nor disconnected"
        assert mallory.stream_errors == ["invalid-from"], mallory.stream_errors
    assert not any(el.get("from") == forged for el in alice.inbox.history)


async def test_message_to_offline_user_is_delivered_on_next_available_presence_in_order(xmpp):
    bob = await xmpp.login(label="bob")
    carol_account = xmpp.account()
    sent = [f"offline {i}" for i in range(5)]
    for text in sent:
        bob.message(carol_account.jid, text)
    await bob.ping_server()

    carol = await xmpp.login(carol_account, label="carol")
    for text in sent:
        await carol.expect(is_message(body=text, sender=bob.jid))
    assert bodies(carol.inbox.history)[: len(sent)] == sent


async def test_offline_messages_wait_for_initial_presence(xmpp):
    """XEP-0160: a session that has not sent available presence gets nothing yet."""
    bob = await xmpp.login(label="bob")
    carol_account = xmpp.account()
    bob.message(carol_account.jid, "wait for presence")
    await bob.ping_server()

    carol = await xmpp.login(carol_account, label="carol", presence=False)
    await carol.ping_server()
    assert bodies(carol.inbox.history) == [], "offline message delivered before initial presence"
    carol.presence()
    await carol.expect(is_message(body="wait for presence"))


async def test_offline_messages_are_delivered_once(xmpp):
    bob = await xmpp.login(label="bob")
    carol_account = xmpp.account()
    bob.message(carol_account.jid, "only once")
    await bob.ping_server()
    first = await xmpp.login(carol_account, resource="first")
    await first.expect(is_message(body="only once"))
    second = await xmpp.login(carol_account, resource="second")
    bob.message(second.jid, "barrier")
    barrier = await second.expect(is_message(body="barrier"))
    assert "only once" not in bodies(second.inbox.before(barrier))


async def test_offline_messages_carry_a_delay_stamp(xmpp):
    bob = await xmpp.login(label="bob")
    carol_account = xmpp.account()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    bob.message(carol_account.jid, "stamped")
    await bob.ping_server()

    carol = await xmpp.login(carol_account, label="carol")
    msg = await carol.expect(is_message(body="stamped"))
    delay = msg.find(q(NS_DELAY, "delay"))
    assert delay is not None, f"no XEP-0203 delay on an offline message: {describe(msg)}"
    assert delay.get("from") in (DOMAIN, None)
    stamp = datetime.fromisoformat(delay.get("stamp").replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)


@pytest.mark.parametrize("type", ["headline", "groupchat"])
async def test_headline_and_groupchat_to_offline_user_are_not_stored(xmpp, type):
    """RFC 6121 §8.5.2.2 / XEP-0160: only normal and chat messages are kept."""
    bob = await xmpp.login(label="bob")
    carol_account = xmpp.account()
    bob.message(carol_account.jid, "fleeting", type=type)
    bob.message(carol_account.jid, "lasting", type="chat")
    await bob.ping_server()
    carol = await xmpp.login(carol_account, label="carol")
    await carol.expect(is_message(body="lasting"))
    assert "fleeting" not in bodies(carol.inbox.history)


async def test_message_to_nonexistent_user_bounces_service_unavailable(xmpp):
    bob = await xmpp.login(label="bob")
    ghost = f"ghost-{bob.account.localpart}@{DOMAIN}"
    mid = bob.message(ghost, "anyone there?")
    bounce = await bob.expect(is_message_error(sender=ghost))
    assert bounce.get("id") == mid
    assert error_condition(bounce) == "service-unavailable"


async def test_message_to_malformed_jid_bounces_jid_malformed(xmpp):
    bob = await xmpp.login(label="bob")
    mid = bob.message("two@at@localhost", "where does this go?")
    bounce = await bob.expect(is_message_error())
    assert bounce.get("id") == mid
    assert error_condition(bounce) == "jid-malformed", describe(bounce)
    assert bob.connected


async def test_iq_to_unavailable_full_jid_bounces_service_unavailable(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    condition, _ = await alice.iq_error("get", "<query xmlns='jabber:iq:version'/>", to=f"{bob.bare}/nosuchresource")
    assert condition == "service-unavailable"


async def test_many_messages_arrive_in_order(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    sent = [f"seq {i}" for i in range(200)]
    for text in sent:
        alice.message(bob.jid, text)
    await bob.expect(is_message(body=sent[-1]))
    assert [b for b in bodies(bob.inbox.history) if b.startswith("seq ")] == sent


async def test_clients_chat_concurrently(xmpp):
    pairs = [(await xmpp.login(), await xmpp.login()) for _ in range(5)]
    for i, (a, b) in enumerate(pairs):
        a.message(b.jid, f"ping {i}")
    await asyncio.gather(*(b.expect(is_message(body=f"ping {i}", sender=a.jid)) for i, (a, b) in enumerate(pairs)))
