"""Federation with ejabberd (the Debian package): both find each other by DNS SRV records, both trust the test CA.

sakari.example is Sakari, ejabberd.example is ejabberd, each on its own
loopback address (see federation_world.py, started once per session). Group
chat with ejabberd is in test_federation_muc.py.
"""

from __future__ import annotations

import pytest

from federation_world import EJABBERD, SAKARI, subscribe_and_chat

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
