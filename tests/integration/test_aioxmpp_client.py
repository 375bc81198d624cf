"""Core behaviour checked with aioxmpp, a client library independent of the
slixmpp harness: login (STARTTLS + SCRAM), roster, subscriptions, messages,
offline delivery, disco, ping, vCard and blocking.

Every wait is on an event (a signal of aioxmpp or a stanza in an inbox), with
a safety-net timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime

import aiosasl
import aioxmpp
import aioxmpp.blocking
import aioxmpp.connector
import aioxmpp.disco
import aioxmpp.dispatcher
import aioxmpp.errors
import aioxmpp.ping
import aioxmpp.presence
import aioxmpp.roster
import aioxmpp.security_layer
import aioxmpp.vcard
import aioxmpp.vcard.xso
import pytest
from lxml import etree
from sakari_process import DOMAIN, HOST

TIMEOUT = 10
SERVER = aioxmpp.JID.fromstr(DOMAIN)


class RecordingPasswordProvider(aioxmpp.security_layer.PasswordSASLProvider):
    """aioxmpp's password SASL provider, recording the mechanism it ran and
    whether TLS was up; it gives the password once (no retry loop)."""

    def __init__(self, password: str):
        async def provide(jid, attempt):
            return password if attempt == 0 else None

        super().__init__(provide, max_auth_attempts=1)
        self.mechanisms: list[str] = []
        self.over_tls: bool | None = None

    async def execute(self, client_jid, features, xmlstream, tls_transport):
        self.over_tls = tls_transport is not None
        return await super().execute(client_jid, features, xmlstream, tls_transport)

    async def _execute(self, intf, mechanism, token):
        self.mechanisms.append(token[0] if isinstance(token, tuple) else type(mechanism).__name__)
        return await super()._execute(intf, mechanism, token)


class Inbox:
    """Every message a client receives (errors included), in arrival order."""

    def __init__(self, client):
        self.messages: list = []
        self._waiters: list[tuple] = []
        client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(None, None, self._received)

    def _received(self, message) -> None:
        self.messages.append(message)
        for waiter in list(self._waiters):
            predicate, future = waiter
            if not future.done() and predicate(message):
                future.set_result(message)
                self._waiters.remove(waiter)

    async def expect(self, predicate, timeout: float = TIMEOUT):
        for message in self.messages:
            if predicate(message):
                return message
        future = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def body_of(message) -> str | None:
    return message.body.any() if message.body else None


def with_body(text: str):
    return lambda m: m.type_ != aioxmpp.MessageType.ERROR and body_of(m) == text


def next_emission(signal) -> asyncio.Future:
    """A future for the arguments of the signal's next emission (AUTO_FUTURE takes one argument only)."""
    future = asyncio.get_running_loop().create_future()

    def fire(*args):
        if not future.done():
            future.set_result(args)
        return True  # disconnect

    signal.connect(fire)
    return future


async def until(signal, condition, timeout: float = TIMEOUT) -> None:
    """Wait until condition() holds, re-checking it whenever signal fires."""
    if condition():
        return
    future = asyncio.get_running_loop().create_future()

    def check(*args, **kwargs):
        if not future.done() and condition():
            future.set_result(None)
        return future.done()  # a true result disconnects the callback

    token = signal.connect(check)
    try:
        await asyncio.wait_for(future, timeout)
    finally:
        if not future.done():
            signal.disconnect(token)


def make_client(server, account, resource: str = "aioxmpp", available: bool = True):
    provider = RecordingPasswordProvider(account.password)
    security = aioxmpp.make_security_layer(account.password, no_verify=True)._replace(sasl_providers=[provider])
    jid = aioxmpp.JID.fromstr(f"{account.jid}/{resource}")
    peer = [(HOST, server.c2s_port, aioxmpp.connector.STARTTLSConnector())]
    client = aioxmpp.Client(jid, security, override_peer=peer)
    client.presence_server = client.summon(aioxmpp.PresenceServer)
    if available:  # sent as initial presence once the stream is up
        client.presence_server.set_presence(aioxmpp.PresenceState(True))
    client.sasl_provider = provider
    client.inbox = Inbox(client)
    client.roster = client.summon(aioxmpp.RosterClient)
    client.presences = client.summon(aioxmpp.PresenceClient)
    client.blocking = client.summon(aioxmpp.BlockingClient)  # fetches the block list at login
    return client


@contextlib.asynccontextmanager
async def connected(server, account, resource: str = "aioxmpp", available: bool = True):
    client = make_client(server, account, resource, available)
    async with client.connected(timeout=datetime.timedelta(seconds=TIMEOUT)):
        yield client


async def chat(client, to, text: str) -> aioxmpp.Message:
    message = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=to)
    message.body[None] = text
    await client.send(message)
    return message


async def ping_server(client) -> None:
    """A round trip: the server has processed everything sent before it."""
    await client.summon(aioxmpp.PingService).ping(SERVER)


def subscription(client, jid) -> str | None:
    item = client.roster.items.get(jid.bare())
    return item.subscription if item else None


async def befriend(a, b) -> None:
    """The RFC 6121 subscription dance, both ways, ending in 'both' on each side."""
    a_jid, b_jid = a.local_jid.bare(), b.local_jid.bare()
    b_asked = b.roster.on_subscribe.future()
    a.roster.subscribe(b_jid)
    request = await asyncio.wait_for(b_asked, TIMEOUT)
    assert request.from_.bare() == a_jid
    a_asked = a.roster.on_subscribe.future()
    b.roster.approve(a_jid)
    b.roster.subscribe(a_jid)
    request = await asyncio.wait_for(a_asked, TIMEOUT)
    assert request.from_.bare() == b_jid
    a.roster.approve(b_jid)
    await until(a.roster.on_entry_subscription_state_changed, lambda: subscription(a, b_jid) == "both")
    await until(b.roster.on_entry_subscription_state_changed, lambda: subscription(b, a_jid) == "both")


async def sees_available(watcher, jid) -> None:
    await until(watcher.presences.on_available, lambda: watcher.presences.get_most_available_stanza(jid.bare()) is not None)


# -- login ---------------------------------------------------------------------


async def test_login_over_starttls_with_scram(server):
    account = server.new_account()
    async with connected(server, account, resource="laptop") as client:
        assert client.established
        assert str(client.local_jid) == f"{account.jid}/laptop"
        provider = client.sasl_provider
        assert provider.over_tls is True
        assert len(provider.mechanisms) == 1, provider.mechanisms
        assert provider.mechanisms[0].startswith("SCRAM-SHA-"), provider.mechanisms
        assert not provider.mechanisms[0].endswith("-PLUS")
        await ping_server(client)


async def test_wrong_password_is_refused(server):
    account = server.new_account()
    wrong = type(account)(account.jid, account.password + "-wrong")
    client = make_client(server, wrong, available=False)
    with pytest.raises(aiosasl.AuthenticationFailure) as failure:
        async with client.connected(timeout=datetime.timedelta(seconds=TIMEOUT)):
            pass
    assert failure.value.opaque_error == "not-authorized", failure.value
    assert client.sasl_provider.mechanisms and client.sasl_provider.mechanisms[0].startswith("SCRAM-")


# -- roster --------------------------------------------------------------------


async def test_roster_set_is_pushed_and_read_back(server):
    account, contact = server.new_account(), server.new_account()
    contact_jid = aioxmpp.JID.fromstr(contact.jid)
    async with connected(server, account, "desk") as desk, connected(server, account, "phone") as phone:
        assert contact_jid not in desk.roster.items
        added = phone.roster.on_entry_added.future()
        await desk.roster.set_entry(contact_jid, name="Contact", add_to_groups={"Friends"})
        item = await asyncio.wait_for(added, TIMEOUT)
        assert item.jid == contact_jid
        assert item.name == "Contact"
        assert item.groups == {"Friends"}
        assert item.subscription == "none"
        await until(desk.roster.on_entry_added, lambda: contact_jid in desk.roster.items)

        renamed = phone.roster.on_entry_name_changed.future()
        await desk.roster.set_entry(contact_jid, name="Renamed")
        assert (await asyncio.wait_for(renamed, TIMEOUT)).name == "Renamed"

    # A fresh login's roster get has the item.
    async with connected(server, account, "tablet") as tablet:
        item = tablet.roster.items[contact_jid]
        assert (item.name, item.groups, item.subscription) == ("Renamed", {"Friends"}, "none")
        removed = tablet.roster.on_entry_removed.future()
        await tablet.roster.remove_entry(contact_jid)
        assert (await asyncio.wait_for(removed, TIMEOUT)).jid == contact_jid
        assert contact_jid not in tablet.roster.items


# -- subscriptions, presence and messages ----------------------------------------


async def test_subscription_both_ways_ends_in_both_and_presence_flows(server):
    alice_account, bob_account = server.new_account(), server.new_account()
    async with connected(server, alice_account) as alice, connected(server, bob_account) as bob:
        await befriend(alice, bob)
        await sees_available(alice, bob.local_jid)
        await sees_available(bob, alice.local_jid)

        # A presence change reaches the contact.
        changed = next_emission(alice.presences.on_changed)
        bob.presence_server.set_presence(aioxmpp.PresenceState(True, aioxmpp.PresenceShow.AWAY))
        jid, stanza = await asyncio.wait_for(changed, TIMEOUT)
        assert jid == bob.local_jid
        assert stanza.show == aioxmpp.PresenceShow.AWAY

    # The subscription is stored: next login's roster says 'both'.
    async with connected(server, alice_account, "again") as alice:
        assert subscription(alice, aioxmpp.JID.fromstr(bob_account.jid)) == "both"


async def test_chat_messages_each_way_to_bare_and_full_jids(server):
    alice_account, bob_account = server.new_account(), server.new_account()
    async with connected(server, alice_account, "home") as alice, connected(server, bob_account, "work") as bob:
        await befriend(alice, bob)
        await sees_available(alice, bob.local_jid)
        await sees_available(bob, alice.local_jid)

        for sender, recipient, to, text in [
            (alice, bob, bob.local_jid.bare(), "alice to bob's bare JID"),
            (alice, bob, bob.local_jid, "alice to bob's full JID"),
            (bob, alice, alice.local_jid.bare(), "bob to alice's bare JID"),
            (bob, alice, alice.local_jid, "bob to alice's full JID"),
        ]:
            sent = await chat(sender, to, text)
            got = await recipient.inbox.expect(with_body(text))
            assert got.from_ == sender.local_jid, got.from_
            assert got.to in (recipient.local_jid, recipient.local_jid.bare()), got.to
            assert got.type_ == aioxmpp.MessageType.CHAT
            assert got.id_ == sent.id_
        errors = [m for m in alice.inbox.messages + bob.inbox.messages if m.type_ == aioxmpp.MessageType.ERROR]
        assert not errors, [(m.from_, m.error) for m in errors]


async def test_offline_message_is_delivered_on_next_login(server):
    alice_account, bob_account = server.new_account(), server.new_account()
    bob_jid = aioxmpp.JID.fromstr(bob_account.jid)
    async with connected(server, alice_account) as alice:
        sent = await chat(alice, bob_jid, "while you were away")
        await ping_server(alice)  # the server has stored it
        assert not [m for m in alice.inbox.messages if m.type_ == aioxmpp.MessageType.ERROR]

    async with connected(server, bob_account, "back") as bob:
        got = await bob.inbox.expect(with_body("while you were away"))
        assert got.from_.bare() == aioxmpp.JID.fromstr(alice_account.jid)
        assert got.id_ == sent.id_
        delays = getattr(got, "xep0203_delay", None) or []
        assert delays, "no XEP-0203 delay stamp on the offline message"
        assert delays[0].from_ in (None, SERVER), delays[0].from_

    # Delivered once: a later login does not get it again.
    async with connected(server, bob_account, "later") as bob:
        barrier = await chat(bob, bob_jid.replace(resource="later"), "barrier")
        await bob.inbox.expect(with_body(barrier.body.any()))
        assert not [m for m in bob.inbox.messages if body_of(m) == "while you were away"]


# -- services ------------------------------------------------------------------


async def test_disco_info_of_the_server(server):
    async with connected(server, server.new_account()) as client:
        info = await client.summon(aioxmpp.DiscoClient).query_info(SERVER, require_fresh=True)
        identities = {(i.category, i.type_) for i in info.identities}
        assert ("server", "im") in identities, identities
        features = set(info.features)
        for feature in (
            "http://jabber.org/protocol/disco#info",
            "urn:xmpp:ping",
            "vcard-temp",
            "urn:xmpp:blocking",
            "msgoffline",
        ):
            assert feature in features, (feature, sorted(features))


async def test_ping_the_server_and_a_contact(server):
    alice_account, bob_account = server.new_account(), server.new_account()
    async with connected(server, alice_account) as alice, connected(server, bob_account) as bob:
        pinger = alice.summon(aioxmpp.PingService)
        await pinger.ping(SERVER)
        await befriend(alice, bob)
        bob.summon(aioxmpp.PingService)  # answers pings
        await pinger.ping(bob.local_jid)


async def test_vcard_set_and_get(server):
    alice_account, bob_account = server.new_account(), server.new_account()
    alice_jid = aioxmpp.JID.fromstr(alice_account.jid)
    async with connected(server, alice_account) as alice, connected(server, bob_account) as bob:
        vcards = alice.summon(aioxmpp.vcard.VCardService)
        empty = await vcards.get_vcard()
        assert empty.get_photo_data() is None

        card = aioxmpp.vcard.xso.VCard()
        etree.SubElement(card.elements, etree.QName("vcard-temp", "FN")).text = "Alice Aioxmpp"
        card.set_photo_data("image/png", b"\x89PNG not really")
        await vcards.set_vcard(card)

        own = await vcards.get_vcard()
        assert own.get_photo_data() == b"\x89PNG not really"
        assert own.get_photo_mime_type() == "image/png"
        assert own.elements.findtext("{vcard-temp}FN") == "Alice Aioxmpp"

        # Another account reads it (vCards are public).
        theirs = await bob.summon(aioxmpp.vcard.VCardService).get_vcard(alice_jid)
        assert theirs.elements.findtext("{vcard-temp}FN") == "Alice Aioxmpp"
        assert theirs.get_photo_data() == b"\x89PNG not really"


async def test_blocking(server):
    alice_account, bob_account, carol_account = server.new_account(), server.new_account(), server.new_account()
    bob_jid = aioxmpp.JID.fromstr(bob_account.jid)
    async with (
        connected(server, alice_account, "desk") as alice,
        connected(server, alice_account, "phone") as phone,
        connected(server, bob_account) as bob,
        connected(server, carol_account) as carol,
    ):
        alice_blocking, phone_blocking = alice.blocking, phone.blocking
        assert phone_blocking.blocklist == frozenset()
        assert alice_blocking.blocklist == frozenset()

        pushed = phone_blocking.on_jids_blocked.future()
        await alice_blocking.block_jids([bob_jid])
        assert await asyncio.wait_for(pushed, TIMEOUT) == frozenset({bob_jid})
        assert alice_blocking.blocklist == frozenset({bob_jid})

        # Bob's message does not reach alice: carol's later message is the barrier.
        await chat(bob, alice.local_jid.bare(), "let me in")
        await ping_server(bob)
        await chat(carol, alice.local_jid, "barrier")
        await alice.inbox.expect(with_body("barrier"))
        assert not [m for m in alice.inbox.messages if body_of(m) == "let me in"]
        bounce = [m for m in bob.inbox.messages if m.type_ == aioxmpp.MessageType.ERROR]
        if bounce:
            assert bounce[0].error.condition == aioxmpp.ErrorCondition.SERVICE_UNAVAILABLE, bounce[0].error

        # Alice cannot message bob while she blocks him (XEP-0191 §3.4: not-acceptable).
        refused = await chat(alice, bob_jid, "you are blocked")
        error = await alice.inbox.expect(lambda m: m.type_ == aioxmpp.MessageType.ERROR and m.id_ == refused.id_)
        assert error.error.condition == aioxmpp.ErrorCondition.NOT_ACCEPTABLE, error.error

        unpushed = phone_blocking.on_jids_unblocked.future()
        await alice_blocking.unblock_jids([bob_jid])
        assert await asyncio.wait_for(unpushed, TIMEOUT) == frozenset({bob_jid})
        assert alice_blocking.blocklist == frozenset()

        await chat(bob, alice.local_jid, "unblocked now")
        await alice.inbox.expect(with_body("unblocked now"))
