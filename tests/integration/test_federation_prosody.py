"""Federation with Prosody (the Debian package): both find each other by DNS SRV records, both trust the test CA.

sakari.test is Sakari on 127.0.0.8, prosody.test is Prosody on 127.0.0.9; a
DNS server of the test on a loopback address of its own answers for both. db.sakari.test
(127.0.0.10) keeps Sakari's self-signed certificate, which Prosody accepts
for that domain with dialback only (s2s_insecure_domains). Each is started
once for the module.
"""

from __future__ import annotations

import pytest

from conftest import _servers
from federation_helpers import TestCA, TestDNS
from prosody_peer import ProsodyPeer, available
from sakari_process import SakariServer
from xmpp_harness import befriend, is_message, is_presence, login

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not available(), reason="Prosody (Debian package) and unshare are needed"),
]

SAKARI, PROSODY, DIALBACK = "sakari.test", "prosody.test", "db.sakari.test"
SAKARI_HOST, PROSODY_HOST, DIALBACK_HOST = "127.0.0.8", "127.0.0.9", "127.0.0.10"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    work = tmp_path_factory.mktemp("prosody-federation")
    ca = TestCA(work / "ca")
    sakari = SakariServer(work / "sakari" / "data", name=SAKARI, domain=SAKARI, host=SAKARI_HOST)
    selfsigned = SakariServer(work / "dialback" / "data", name=DIALBACK, domain=DIALBACK, host=DIALBACK_HOST)
    dns_server = TestDNS()
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {dns_server.address}\n")
    prosody = ProsodyPeer(
        work / "prosody", PROSODY, PROSODY_HOST, ca.issue(PROSODY), ca.path, resolv, f's2s_insecure_domains = {{ "{DIALBACK}" }}'
    )
    peers = ((SAKARI, SAKARI_HOST, sakari.s2s_port), (PROSODY, PROSODY_HOST, prosody.s2s_port),
             (DIALBACK, DIALBACK_HOST, selfsigned.s2s_port))
    for domain, host, port in peers:
        dns_server.add(f"_xmpp-server._tcp.{domain}.", "SRV", f"0 5 {port} {domain}.")
        dns_server.add(f"{domain}.", "A", host)
    dns_server.start()
    cert, key = ca.issue(SAKARI)
    sakari.config_path = work / "sakari.toml"
    sakari.config_path.write_text(
        f'[s2s]\nnameservers = ["{dns_server.address}"]\nca_file = "{ca.path}"\n[tls]\ncertificate = "{cert}"\nkey = "{key}"\n'
    )
    selfsigned.config_path = work / "dialback.toml"
    selfsigned.config_path.write_text(f'[s2s]\nnameservers = ["{dns_server.address}"]\nca_file = "{ca.path}"\n')
    try:
        for srv in (sakari, selfsigned):
            _servers.append(srv)
            srv.fill_pool(4)
            srv.start()
        prosody.start()
        yield sakari, prosody, selfsigned
    finally:
        prosody.stop()
        for srv in (sakari, selfsigned):
            srv.ensure_stopped()
            _servers.remove(srv)
        dns_server.close()


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
