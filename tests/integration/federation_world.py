"""One federation of real servers for the whole test session, each peer started on first use.

- sakari.example (127.0.0.8) has a certificate from the session's test CA for
  itself and its group chat service conference.sakari.example;
- db.sakari.example (127.0.0.10) keeps Sakari's self-signed certificate, so
  only dialback proves its domain;
- prosody.example (127.0.0.9) is Prosody, ejabberd.example (127.0.0.11)
  ejabberd (Debian packages), each with a MUC component on conference.<domain>
  and a certificate of the CA naming both.

Every server finds the others by SRV records from the test's own DNS server
(on a loopback address of its own), as on the Internet. The domains end in
.example, not .test: libunbound, Prosody's resolver, answers every name under
test. itself (a default local zone, RFC 6761) and never asks a DNS server.

The fixture ``federation`` (conftest.py) makes one world per session; a test
module asks it for the peers it needs (``federation.prosody()``), so a peer
starts once, however many modules federate with it.
"""

from __future__ import annotations

from pathlib import Path

from conftest import _servers
from federation_helpers import TestCA, TestDNS
from sakari_process import SakariServer

SAKARI, DIALBACK, PROSODY, EJABBERD = "sakari.example", "db.sakari.example", "prosody.example", "ejabberd.example"
HOSTS = {SAKARI: "127.0.0.8", PROSODY: "127.0.0.9", DIALBACK: "127.0.0.10", EJABBERD: "127.0.0.11"}


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
        self._peers: dict[str, object] = {}
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

    def _sakari(self, domain: str, verified: bool) -> SakariServer:
        srv = SakariServer(self.work / domain / "data", name=domain, domain=domain, host=HOSTS[domain])
        lines = ["[s2s]", f'nameservers = ["{self.dns.address}"]', f'ca_file = "{self.ca.path}"']
        if verified:
            cert, key = self.ca.issue(domain, conference(domain))
            lines += ["[tls]", f'certificate = "{cert}"', f'key = "{key}"']
        srv.config_path = self.work / f"{domain}.toml"
        srv.config_path.write_text("\n".join(lines) + "\n")
        self.publish(domain, srv.s2s_port)
        _servers.append(srv)
        self._sakaris.append(srv)
        srv.fill_pool(8)
        srv.start()
        return srv

    def prosody(self):
        """Prosody, started on first use; it takes db.sakari.example's self-signed certificate for dialback only."""
        from prosody_peer import ProsodyPeer, require_prosody

        if PROSODY not in self._peers:
            require_prosody()
            peer = ProsodyPeer(
                self.work / "prosody", PROSODY, HOSTS[PROSODY], self.ca.issue(PROSODY, conference(PROSODY)),
                self.ca.path, self.resolv_conf, f's2s_insecure_domains = {{ "{DIALBACK}" }}',
            )
            self.publish(PROSODY, peer.s2s_port)
            self._peers[PROSODY] = peer
            peer.start()
        return self._peers[PROSODY]

    def close(self) -> None:
        for peer in self._peers.values():
            peer.stop()  # type: ignore[attr-defined]
        for srv in self._sakaris:
            srv.ensure_stopped()
            _servers.remove(srv)
        self.dns.close()
