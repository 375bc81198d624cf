"""Federation between real Sakari servers, each with its own domain on its own loopback address.

- a.sakari.test (127.0.0.2) and b.sakari.test (127.0.0.3) have certificates
  from the session's test CA and trust it: they authenticate each other with
  SASL EXTERNAL.
- c.sakari.test (127.0.0.4) and d.sakari.test (127.0.0.5) keep the
  self-signed certificates Sakari makes: only dialback can prove their
  domains.
- tls.sakari.test (127.0.0.7) has a certificate of the CA and a direct TLS
  port (XEP-0368), where a.sakari.test reaches it (a "tls:" host map entry).

Every server is started once for the module; tests take fresh accounts.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from conftest import _servers
from federation_helpers import RawServerStream, TestCA, toml_table
from sakari_process import SakariServer, free_ports
from xmpp_harness import befriend, error_condition, is_message, is_message_error, is_presence, login

pytestmark = pytest.mark.asyncio

A, B, C, D, T = "a.sakari.test", "b.sakari.test", "c.sakari.test", "d.sakari.test", "tls.sakari.test"
CONNECT_TIMEOUT = 3.0  # a.sakari.test's s2s.connect_timeout: how long a blackholed domain may take to bounce
IDLE_TIMEOUT = 3.0  # a.sakari.test's s2s.idle_timeout
MAX_PER_DOMAIN = 2  # a.sakari.test's s2s.max_inbound_per_domain


def _closed_port(host: str) -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("federation-ca"))


@pytest.fixture(scope="module")
def blackhole():
    """A server that accepts connections and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.6", 0))
    s.listen(8)
    yield s.getsockname()
    s.close()


@pytest.fixture(scope="module")
def peers(tmp_path_factory, ca, blackhole):
    servers = {
        domain: SakariServer(tmp_path_factory.mktemp(domain) / "data", name=domain, domain=domain, host=host)
        for domain, host in ((A, "127.0.0.2"), (B, "127.0.0.3"), (C, "127.0.0.4"), (D, "127.0.0.5"), (T, "127.0.0.7"))
    }
    (tls_port,) = free_ports(1)

    def where(domain: str) -> str:
        return f"{servers[domain].host}:{servers[domain].s2s_port}"

    maps = {
        A: {
            B: where(B), T: f"tls:{servers[T].host}:{tls_port}",
            "nowhere.test": f"127.0.0.6:{_closed_port('127.0.0.6')}", "blackhole.test": "%s:%d" % blackhole,
        },
        B: {A: where(A)},
        C: {D: where(D)},
        D: {C: where(C)},
        T: {A: where(A)},
    }
    for domain, srv in servers.items():
        lines = ["[s2s]", f"host_map = {toml_table(maps[domain])}", "keepalive = 1.0"]
        if domain == T:
            lines = ["[network]", f"s2s_tls_port = {tls_port}", *lines]
        if domain in (A, B, T):
            cert, key = ca.issue(domain)
            lines += [f'ca_file = "{ca.path}"', "[tls]", f'certificate = "{cert}"', f'key = "{key}"']
        if domain == A:
            lines[1:1] = [
                f"connect_timeout = {CONNECT_TIMEOUT}", f"idle_timeout = {IDLE_TIMEOUT}",
                f"max_inbound_per_domain = {MAX_PER_DOMAIN}", 'deny = ["denied.test"]',
            ]
        assert srv.config_path is None
        srv.config_path = srv.data_dir.parent / "config.toml"
        srv.config_path.write_text("\n".join(lines) + "\n")
        _servers.append(srv)
        srv.fill_pool(8)
    try:
        for srv in servers.values():
            srv.start()
        yield servers
    finally:
        for srv in servers.values():
            srv.ensure_stopped()
            _servers.remove(srv)


def logged(srv: SakariServer, text: str) -> bool:
    return any(text in line for line in srv.log)


async def chat_both_ways(x, y) -> None:
    x.message(y.jid, "hello from " + x.bare)
    got = await y.expect(is_message(body="hello from " + x.bare, sender=x.jid))
    assert got.get("from") == x.jid
    y.message(x.bare, "hello back")
    await x.expect(is_message(body="hello back", sender=y.jid))


async def test_verified_certificates_federate_with_sasl_external_subscription_and_chat_both_ways(peers, clients) -> None:
    alice, bob = await clients(peers[A]), await clients(peers[B])
    await befriend(alice, bob)
    await alice.expect(is_presence(sender=bob.jid))
    await bob.expect(is_presence(sender=alice.jid))
    await chat_both_ways(alice, bob)
    for here, there in ((A, B), (B, A)):
        assert logged(peers[here], f"event=s2s-authenticated direction=in local={here} remote={there} method=EXTERNAL")


async def test_self_signed_servers_federate_by_dialback_subscription_and_chat_both_ways(peers, clients) -> None:
    carol, dave = await clients(peers[C]), await clients(peers[D])
    await befriend(carol, dave)
    await chat_both_ways(carol, dave)
    for here, there in ((C, D), (D, C)):
        assert logged(peers[here], f"event=s2s-authenticated direction=in local={here} remote={there} method=dialback")
        assert not logged(peers[here], "method=EXTERNAL")


async def test_a_server_reaches_another_on_its_direct_tls_port(peers, clients) -> None:
    alice, tess = await clients(peers[A]), await clients(peers[T])
    await befriend(alice, tess)
    await chat_both_ways(alice, tess)
    # a.sakari.test → tls.sakari.test with TLS from the first byte, and SASL EXTERNAL on it; the way back is STARTTLS.
    assert logged(peers[A], f"event=s2s-authenticated direction=out local={A} remote={T} method=EXTERNAL tls=direct")
    assert logged(peers[T], f"event=s2s-authenticated direction=in local={T} remote={A} method=EXTERNAL tls=direct")
    assert logged(peers[T], f"event=s2s-authenticated direction=out local={T} remote={A} method=EXTERNAL tls=starttls")


async def test_an_iq_crosses_and_its_answer_comes_back(peers, clients) -> None:
    alice = await clients(peers[A])
    answer = await alice.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=B)
    assert answer.get("type") == "result" and answer.get("from") == B


async def test_an_unreachable_domain_bounces_remote_server_not_found(peers, clients) -> None:
    alice = await clients(peers[A])
    alice.message("someone@nowhere.test", "anyone there?")
    bounce = await alice.expect(is_message_error(sender="someone@nowhere.test"))
    assert error_condition(bounce) == "remote-server-not-found"


async def test_a_silent_domain_bounces_remote_server_timeout_within_the_connect_timeout(peers, clients) -> None:
    alice = await clients(peers[A])
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(3):
        alice.message("someone@blackhole.test", f"queued {i}")
    for _ in range(3):  # every queued stanza comes back: nothing is kept
        bounce = await alice.expect(is_message_error(sender="someone@blackhole.test"), timeout=CONNECT_TIMEOUT + 5)
        assert error_condition(bounce) == "remote-server-timeout"
    assert loop.time() - started < CONNECT_TIMEOUT + 2


async def test_a_stream_claiming_a_domain_with_a_forged_dialback_key_is_refused(peers) -> None:
    # b.sakari.test is real and reachable, so a.sakari.test asks it, and it denies having made the key.
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.starttls()
        features = await raw.read_until(r"</stream:features>")
        assert "urn:xmpp:features:dialback" in features and "EXTERNAL" not in features  # no certificate, no EXTERNAL
        raw.send(f"<db:result from='{B}' to='{A}'>{'ab' * 32}</db:result>")
        verdict = await raw.read_until(r"<(db:)?result[^>]*type=.(valid|invalid)")
        assert "invalid" in verdict
        assert await raw.stream_error() == "not-authorized"
    finally:
        raw.close()


async def test_a_certificate_for_one_domain_does_not_authenticate_another(peers, ca) -> None:
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm="mallory.test", to=A)
    try:
        await raw.starttls(cert=ca.issue(B))  # a valid certificate, but of b.sakari.test
        features = await raw.read_until(r"</stream:features>")
        assert "EXTERNAL" not in features
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        await raw.read_until(r"<failure xmlns=.urn:ietf:params:xml:ns:xmpp-sasl.><not-authorized/>")
        assert await raw.stream_error() == "not-authorized"
    finally:
        raw.close()


async def test_a_stanza_whose_from_is_not_the_authenticated_domain_ends_the_stream(peers, ca, clients) -> None:
    victim = await clients(peers[A])
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.starttls(cert=ca.issue(B))
        await raw.sasl_external()
        raw.send(f"<message from='mallory@evil.test' to='{victim.bare}' type='chat'><body>spoofed</body></message>")
        assert await raw.stream_error() == "invalid-from"
    finally:
        raw.close()
    # What an authenticated stream says in its own name still arrives (the barrier), the spoofed one never did.
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.starttls(cert=ca.issue(B))
        await raw.sasl_external()
        raw.send(f"<message from='eve@{B}/x' to='{victim.jid}' type='chat'><body>genuine</body></message>")
        await victim.expect(is_message(body="genuine"))
        assert not [m for m in victim.inbox.since(0) if "spoofed" in (m.findtext("{jabber:client}body") or "")]
    finally:
        raw.close()


async def test_a_stanza_for_a_domain_not_served_here_is_refused(peers, ca) -> None:
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.starttls(cert=ca.issue(B))
        await raw.sasl_external()
        raw.send(f"<message from='eve@{B}' to='someone@{C}' type='chat'><body>relay this</body></message>")
        assert await raw.stream_error() == "host-unknown"
    finally:
        raw.close()


async def test_a_denied_domain_gets_nothing_and_the_sender_is_told(peers, clients) -> None:
    alice = await clients(peers[A])
    alice.message("someone@denied.test", "hello?")
    bounce = await alice.expect(is_message_error(sender="someone@denied.test"))
    assert error_condition(bounce) == "not-allowed"
    assert not logged(peers[A], "remote=denied.test")  # no connection was even tried


async def test_an_idle_stream_gets_whitespace_keepalives_then_is_closed(peers, ca) -> None:
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.starttls(cert=ca.issue(B))
        await raw.sasl_external()
        await raw.read_until(r"^\s+$", timeout=IDLE_TIMEOUT)  # keepalive = 1 s: whitespace, nothing else
        await raw.read_until(r"</stream:stream>", timeout=IDLE_TIMEOUT + 2)
    finally:
        raw.close()


async def test_connections_per_remote_domain_are_limited(peers, ca) -> None:
    domain = "e.sakari.test"  # a domain of its own, so no other test's connections count
    cert = ca.issue(domain)
    streams = []
    try:
        for _ in range(MAX_PER_DOMAIN):
            raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=domain, to=A)
            streams.append(raw)
            await raw.starttls(cert=cert)
            await raw.sasl_external()
        extra = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=domain, to=A)
        streams.append(extra)
        await extra.starttls(cert=cert)
        assert "EXTERNAL" in await extra.read_until(r"</stream:features>")  # the certificate is fine; the number is not
        extra.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        assert await extra.stream_error() == "resource-constraint"
    finally:
        for raw in streams:
            raw.close()


async def test_a_connection_that_proves_no_domain_is_closed_after_the_connect_timeout(peers) -> None:
    raw = await RawServerStream.connect(peers[A].host, peers[A].s2s_port, frm=B, to=A)
    try:
        await raw.read_until(r"</stream:features>")
        assert await raw.stream_error() == "connection-timeout"  # within the read's own limit of a few seconds
    finally:
        raw.close()
