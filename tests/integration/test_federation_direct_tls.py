"""Direct TLS between servers (XEP-0368): Prosody and ejabberd find only an _xmpps-server SRV record for
tls.sakari.example and connect to its direct TLS port (network.s2s_tls_port) with TLS from the first byte,
then authenticate with their certificates as on the STARTTLS port. See federation_world.py.
"""

from __future__ import annotations

import pytest

from federation_world import DIRECT_TLS, subscribe_and_chat

pytestmark = pytest.mark.asyncio


async def test_a_peer_that_finds_only_a_direct_tls_record_connects_with_tls_from_the_first_byte(
    federation, federation_peer, clients
) -> None:
    tess_server = federation.direct_tls()
    tess, paul = await clients(tess_server), await clients(federation_peer)
    await subscribe_and_chat(federation_peer, tess, paul)
    authenticated = f"event=s2s-authenticated direction=in local={DIRECT_TLS} remote={federation_peer.domain} method=EXTERNAL"
    assert any(f"{authenticated} tls=direct" in line for line in tess_server.log)
    assert not any(f"{authenticated} tls=starttls" in line for line in tess_server.log)
