"""Federation with Prosody (the Debian package): both find each other by DNS SRV records, both trust the test CA.

sakari.example is Sakari, prosody.example is Prosody, each on its own loopback
address (see federation_world.py, started once per session). db.sakari.example
keeps Sakari's self-signed certificate, which Prosody accepts for that domain
with dialback only (s2s_insecure_domains).
"""

from __future__ import annotations

import pytest

from federation_world import DIALBACK, PROSODY, SAKARI
from prosody_peer import ProsodyPeer
from xmpp_harness import befriend, is_message, is_presence, login

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def pair(federation):
    return federation.sakari, federation.prosody(), federation.selfsigned


@pytest.fixture
async def clients():
    made = []

    async def factory(server, account):
        client = await login(server, account)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.abort()


async def subscribe_and_chat(prosody: ProsodyPeer, alice, paul) -> None:
    try:
        await befriend(alice, paul)
        await alice.expect(is_presence(sender=paul.jid))
        await paul.expect(is_presence(sender=alice.jid))
        alice.message(paul.jid, "hello Prosody")
        await paul.expect(is_message(body="hello Prosody", sender=alice.jid))
        paul.message(alice.bare, "hello Sakari")
        await alice.expect(is_message(body="hello Sakari", sender=paul.jid))
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- prosody log ---\n{prosody.log_tail()}") from None


async def test_prosody_and_sakari_users_subscribe_to_each_other_and_chat_both_ways(pair, clients) -> None:
    sakari, prosody, _ = pair
    alice = await clients(sakari, sakari.new_account())
    paul = await clients(prosody, prosody.new_account())
    await subscribe_and_chat(prosody, alice, paul)
    # Both directions authenticated by certificates, each verified by the other side.
    for direction in ("in", "out"):
        assert any(f"direction={direction} local={SAKARI} remote={PROSODY} method=EXTERNAL" in line for line in sakari.log)
    assert prosody.log_has(f"Accepting SASL EXTERNAL identity from {SAKARI}")


async def test_a_sakari_without_a_verifiable_certificate_reaches_prosody_by_dialback(pair, clients) -> None:
    _, prosody, selfsigned = pair
    dora = await clients(selfsigned, selfsigned.new_account())
    paul = await clients(prosody, prosody.new_account())
    await subscribe_and_chat(prosody, dora, paul)
    # Sakari's streams to Prosody prove db.sakari.test by dialback, Prosody asking Sakari whether the key is its own.
    assert any(f"direction=out local={DIALBACK} remote={PROSODY} method=dialback" in line for line in selfsigned.log)
    assert prosody.log_has(f"{DIALBACK}->{PROSODY} is now authenticated for {DIALBACK}")
