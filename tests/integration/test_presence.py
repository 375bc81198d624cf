"""Presence (RFC 6121 §4): broadcast, probes, unavailable, directed presence."""

import pytest

from xmpp_harness import befriend, child_text, describe, is_message, is_presence

pytestmark = pytest.mark.asyncio


async def test_initial_presence_is_broadcast_to_subscribers_and_own_resources(xmpp):
    alice_account = xmpp.account()
    alice = await xmpp.login(alice_account, resource="desk", label="alice/desk")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)

    phone = await xmpp.login(alice_account, resource="phone", label="alice/phone")
    await bob.expect(is_presence(sender=phone.jid))
    await alice.expect(is_presence(sender=phone.jid))  # RFC 6121 §4.2.2: the user's other resources too


async def test_contact_coming_online_receives_current_presence_of_its_contacts(xmpp):
    """The server probes on the newcomer's behalf (§4.3) and answers with the
    contact's last presence, show and status included."""
    alice_account = xmpp.account()
    alice = await xmpp.login(alice_account, label="alice")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)
    bob.presence(show="dnd", status="in a meeting")
    await alice.expect(is_presence(sender=bob.jid, show="dnd"))
    await alice.close()

    again = await xmpp.login(alice_account, resource="again", label="alice-again")
    current = await again.expect(is_presence(sender=bob.jid, show="dnd"))
    assert child_text(current, "status") == "in a meeting"


async def test_probe_reveals_nothing_about_offline_contacts_except_unavailable(xmpp):
    alice = await xmpp.login(label="alice")
    bob_account = xmpp.account()
    bob = await xmpp.login(bob_account, label="bob")
    await befriend(alice, bob)
    await bob.close()
    await alice.expect(is_presence(sender=bob.jid, type="unavailable"))
    alice_again = await xmpp.login(alice.account, resource="again")
    # Presence is processed in order, so after this round trip the probe of
    # bob has been answered.
    await alice_again.ping_server()
    stale = [describe(el) for el in alice_again.inbox.history if is_presence(sender=bob.bare)(el)]
    assert not stale, f"offline contact shown as available: {stale}"


@pytest.mark.parametrize("how", ["stream-close", "tcp-drop"])
async def test_disconnect_broadcasts_unavailable_presence(xmpp, how):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)
    await alice.expect(is_presence(sender=bob.jid))
    if how == "stream-close":
        await bob.close()
    else:
        bob.abort()
    await alice.expect(is_presence(sender=bob.jid, type="unavailable"))


async def test_unavailable_presence_from_client_is_broadcast(xmpp):
    alice = await xmpp.login(label="alice")
    bob = await xmpp.login(label="bob")
    await befriend(alice, bob)
    bob.presence(type="unavailable", status="gone fishing")
    gone = await alice.expect(is_presence(sender=bob.jid, type="unavailable"))
    assert child_text(gone, "status") == "gone fishing"


async def test_directed_presence_reaches_non_subscriber_and_is_retracted_on_disconnect(xmpp):
    alice = await xmpp.login(label="alice")
    carol = await xmpp.login(label="carol")  # no subscription either way
    alice.presence(to=carol.jid, show="chat", status="hello you")
    directed = await carol.expect(is_presence(sender=alice.jid, show="chat"))
    assert child_text(directed, "status") == "hello you"

    await alice.close()
    await carol.expect(is_presence(sender=alice.jid, type="unavailable"))  # RFC 6121 §4.6.3


async def test_probe_from_non_subscriber_reveals_no_presence(xmpp):
    alice = await xmpp.login(label="alice")
    snoop = await xmpp.login(label="snoop")
    alice.presence(show="chat", status="only for friends")
    await alice.ping_server()
    mark = snoop.inbox.mark()
    snoop.presence(to=alice.bare, type="probe")
    await snoop.ping_server()
    alice.message(snoop.jid, "barrier")
    barrier = await snoop.expect(is_message(body="barrier"), after=mark)
    leaked = [describe(el) for el in snoop.inbox.before(barrier, mark)
              if is_presence(sender=alice.bare)(el) or child_text(el, "status") == "only for friends"]
    assert not leaked, f"a probe from a non-subscriber revealed presence: {leaked}"
