"""Federation with Prosody (the Debian package): both find each other by DNS SRV records, both trust the test CA.

sakari.example is Sakari, prosody.example is Prosody, each on its own loopback
address (see federation_world.py, started once per session). db.sakari.example
keeps Sakari's self-signed certificate, which Prosody accepts for that domain
with dialback only (s2s_insecure_domains).
"""

from __future__ import annotations

import pytest

from federation_world import DIALBACK, PROSODY, SAKARI, subscribe_and_chat

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def pair(federation):
    return federation.sakari, federation.prosody(), federation.selfsigned


async def test_prosody_and_sakari_users_subscribe_to_each_other_and_chat_both_ways(pair, clients) -> None:
    sakari, prosody, _ = pair
    alice = await clients(sakari)
    paul = await clients(prosody)
    await subscribe_and_chat(prosody, alice, paul)
    # Both directions authenticated by certificates, each verified by the other side.
    for direction in ("in", "out"):
        assert any(f"direction={direction} local={SAKARI} remote={PROSODY} method=EXTERNAL" in line for line in sakari.log)
    assert prosody.log_has(f"Accepting SASL EXTERNAL identity from {SAKARI}")


async def test_a_sakari_without_a_verifiable_certificate_reaches_prosody_by_dialback(pair, clients) -> None:
    _, prosody, selfsigned = pair
    dora = await clients(selfsigned)
    paul = await clients(prosody)
    await subscribe_and_chat(prosody, dora, paul)
    # Sakari's streams to Prosody prove db.sakari.example by dialback, Prosody asking Sakari whether the key is its own.
    assert any(f"direction=out local={DIALBACK} remote={PROSODY} method=dialback" in line for line in selfsigned.log)
    assert prosody.log_has(f"{DIALBACK}->{PROSODY} is now authenticated for {DIALBACK}")
