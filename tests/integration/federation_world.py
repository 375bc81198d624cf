"""One federation of real servers for the whole test session, each peer started on first use.

- sakari.example (127.0.0.8) has a certificate from the session's test CA for
  itself and its group chat service conference.sakari.example;
- db.sakari.example (127.0.0.10) keeps Sakari's self-signed certificate, so
  only dialback proves its domain;
- prosody.example (127.0.0.9) is Prosody, ejabberd.example (127.0.0.11)
  ejabberd (Debian packages), each with a MUC component on conference.<domain>
  and a certificate of the CA naming both;
- tls.sakari.example (127.0.0.12) is a Sakari that DNS names only by its
  direct TLS port (XEP-0368).

Every server finds the others by SRV records from the test's own DNS server
(on a loopback address of its own), as on the Internet. The domains end in
.example, not .test: libunbound, Prosody's resolver, answers every name under
test. itself (a default local zone, RFC 6761) and never asks a DNS server.

The fixture ``federation`` (conftest.py) makes one world per session; a test
module asks it for the peers it needs (``federation.prosody()``), so a peer
starts once, however many modules federate with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import _servers
from federation_helpers import TestCA, TestDNS
from sakari_process import SakariServer, free_ports
from xmpp_harness import Client, befriend, is_message, is_presence

SAKARI, DIALBACK, PROSODY, EJABBERD = "sakari.example", "db.sakari.example", "prosody.example", "ejabberd.example"
DIRECT_TLS = "tls.sakari.example"
HOSTS = {SAKARI: "127.0.0.8", PROSODY: "127.0.0.9", DIALBACK: "127.0.0.10", EJABBERD: "127.0.0.11", DIRECT_TLS: "127.0.0.12"}


def conference(domain: str) -> str:
    return f"conference.{domain}"


class FederationWorld:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.ca = TestCA(work / "ca")
        self.dns = TestDNS()
        self.dns.start()
        self.resolv_conf = work / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {self.dns.address}\n")
        self._peers: dict[str, Any] = {}
        self._sakaris: list[SakariServer] = []

    def start(self) -> None:
        self.sakari = self._sakari(SAKARI, verified=True)
        self.selfsigned = self._sakari(DIALBACK, verified=False)

    def publish(self, domain: str, port: int, *, direct_tls: bool = False) -> None:
        """SRV records for ``domain`` and its group chat service, both served by the server at ``HOSTS[domain]``."""
        service = "_xmpps-server" if direct_tls else "_xmpp-server"
        for name in (domain, conference(domain)):
            self.dns.add(f"{service}._tcp.{name}.", "SRV", f"0 5 {port} {domain}.")
        self.dns.add(f"{domain}.", "A", HOSTS[domain])

    def direct_tls(self) -> SakariServer:
        """A Sakari whose DNS names only a direct TLS port (an _xmpps-server SRV record, XEP-0368), started on
        first use: other servers reach it with TLS from the first byte."""
        if DIRECT_TLS not in self._peers:
            self._peers[DIRECT_TLS] = self._sakari(DIRECT_TLS, verified=True, direct_tls=True)
        return self._peers[DIRECT_TLS]

    def _sakari(self, domain: str, verified: bool, direct_tls: bool = False) -> SakariServer:
        srv = SakariServer(self.work / domain / "data", name=domain, domain=domain, host=HOSTS[domain])
        lines = ["[s2s]", f'nameservers = ["{self.dns.address}"]', f'ca_file = "{self.ca.path}"']
        if verified:
            cert, key = self.ca.issue(domain, conference(domain))
            lines += ["[tls]", f'certificate = "{cert}"', f'key = "{key}"']
        port = srv.s2s_port
        if direct_tls:
            (port,) = free_ports(1)
            lines += ["[network]", f"s2s_tls_port = {port}"]
        srv.config_path = self.work / f"{domain}.toml"
        srv.config_path.write_text("\n".join(lines) + "\n")
        self.publish(domain, port, direct_tls=direct_tls)
        _servers.append(srv)
        self._sakaris.append(srv)
        srv.fill_pool(8)
        srv.start()
        return srv

    def prosody(self):
        """Prosody, started on first use; it takes db.sakari.example's self-signed certificate for dialback only."""
        from prosody_peer import ProsodyPeer, require_prosody

        return self._peer(PROSODY, require_prosody, lambda cert: ProsodyPeer(
            self.work / "prosody", PROSODY, HOSTS[PROSODY], cert, self.ca.path, self.resolv_conf,
            f's2s_insecure_domains = {{ "{DIALBACK}" }}',
        ))

    def ejabberd(self):
        """ejabberd, started on first use."""
        from ejabberd_peer import EjabberdPeer, require_ejabberd

        return self._peer(EJABBERD, require_ejabberd, lambda cert: EjabberdPeer(
            self.work / "ejabberd", EJABBERD, HOSTS[EJABBERD], cert, self.ca.path, self.resolv_conf,
        ))

    def _peer(self, domain: str, require: Callable[[], None], make: Callable[[tuple[Path, Path]], Any]) -> Any:
        if domain not in self._peers:
            require()
            peer = make(self.ca.issue(domain, conference(domain)))
            self.publish(domain, peer.s2s_port)
            self._peers[domain] = peer
            peer.start()
        return self._peers[domain]

    def close(self) -> None:
        for peer in self._peers.values():
            if not isinstance(peer, SakariServer):  # those stop below
                peer.stop()
        for srv in self._sakaris:
            srv.ensure_stopped()
            _servers.remove(srv)
        self.dns.close()


@contextlib.contextmanager
def with_log(peer: Any) -> Iterator[None]:
    """An assertion that fails inside carries the tail of ``peer``'s own log, where the other half of the story is."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- {peer.name} log ---\n{peer.log_tail()}") from None


async def subscribe_and_chat(peer: Any, ours: Client, theirs: Client) -> None:
    """A Sakari user and a user of ``peer`` subscribe to each other's presence (RFC 6121 §3) and chat both ways."""
    with with_log(peer):
        await befriend(ours, theirs)
        await ours.expect(is_presence(sender=theirs.jid))
        await theirs.expect(is_presence(sender=ours.jid))
        ours.message(theirs.jid, f"hello {peer.name}")
        await theirs.expect(is_message(body=f"hello {peer.name}", sender=ours.jid))
        theirs.message(ours.bare, "hello Sakari")
        await ours.expect(is_message(body="hello Sakari", sender=theirs.jid))
