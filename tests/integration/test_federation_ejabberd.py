"""Federation with ejabberd (the Debian package): both find each other by DNS SRV records, both trust the test CA.

sakari.example is Sakari, ejabberd.example is ejabberd, each on its own
loopback address (see federation_world.py, started once per session). Group
chat with ejabberd is in test_federation_muc.py.
"""

from __future__ import annotations

import pytest

from federation_world import DIALBACK, EJABBERD, SAKARI, subscribe_and_chat

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def ejabberd(federation):
    return federation.ejabberd()


async def test_ejabberd_and_sakari_users_subscribe_to_each_other_and_chat_both_ways(federation, ejabberd, clients) -> None:
    sakari = federation.sakari
    alice, erin = await clients(sakari), await clients(ejabberd)
    await subscribe_and_chat(ejabberd, alice, erin)
    # Both directions authenticated by certificates, each verified by the other side.
    for direction in ("in", "out"):
        assert any(f"direction={direction} local={SAKARI} remote={EJABBERD} method=EXTERNAL" in line for line in sakari.log)


async def test_a_sakari_without_a_verifiable_certificate_reaches_ejabberd_by_dialback(federation, ejabberd, clients) -> None:
    selfsigned = federation.selfsigned
    dora, erin = await clients(selfsigned), await clients(ejabberd)
    await subscribe_and_chat(ejabberd, dora, erin)
    # Sakari's streams to ejabberd prove db.sakari.example by dialback: ejabberd asked Sakari whether the key is its own
    # and said valid. (ejabberd reads dialback elements only with the db: prefix; without it this waited forever.)
    assert any(f"direction=out local={DIALBACK} remote={EJABBERD} method=dialback" in line for line in selfsigned.log)
