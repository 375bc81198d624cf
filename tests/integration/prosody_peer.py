"""A real Prosody (the Debian package) as a federation peer: its own domain, address, certificate and data.

Prosody runs in the foreground as a child of the test session; its resolver
(libunbound) reads a resolv.conf that names the test's DNS server, so it finds
Sakari by SRV records. Its MUC component serves conference.<domain>.
Accounts are made with ``prosodyctl register``. The package is installed when
missing (as root); without it a test skips, or fails when CI is set.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from pathlib import Path

from bridge_peers import require_debian
from peer_process import PeerProcess
from sakari_process import Account, free_ports


def require_prosody() -> None:
    require_debian("prosody", "prosody")
    require_debian("prosodyctl", "prosody")


class ProsodyPeer(PeerProcess):
    def __init__(
        self, workdir: Path, domain: str, host: str, cert: tuple[Path, Path], ca_file: Path, resolv_conf: Path, extra: str = ""
    ) -> None:
        self.name = "prosody"
        self.workdir = workdir
        self.domain = domain
        self.host = host
        self.c2s_port, self.s2s_port = free_ports(2)
        self.c2s_tls_port = 0  # not offered; clients use STARTTLS
        self.resolv_conf = resolv_conf
        self.log: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._count = 0
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prosody.cfg.lua"
        self.logfile = workdir / "prosody.log"
        self.config.write_text(f"""-- written by tests/integration/prosody_peer.py
run_as_root = true
daemonize = false
pidfile = "{workdir}/prosody.pid"
data_path = "{workdir}/data"
plugin_paths = {{}}
log = {{ debug = "{self.logfile}" }}
interfaces = {{ "{host}" }}
c2s_ports = {{ {self.c2s_port} }}
s2s_ports = {{ {self.s2s_port} }}
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping" }}
unbound = {{ resolvconf = "{resolv_conf}" }}
ssl = {{ certificate = "{cert[0]}"; key = "{cert[1]}"; cafile = "{ca_file}"; }}
{extra}
VirtualHost "{domain}"

Component "conference.{domain}" "muc"
    restrict_room_creation = false
""")

    def start(self, timeout: float = 30) -> None:
        command = ["prosody", "-F", "--config", str(self.config)]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready once its c2s port accepts (Prosody logs no "ready" line)
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited with {self.proc.returncode}:\n" + "\n".join(self.log[-40:]) + "\n" + self.log_tail())
            if self._listening():
                return
            time.sleep(0.1)
        raise RuntimeError("prosody did not listen in time:\n" + self.log_tail())

    def new_account(self) -> Account:
        self._count += 1
        account = Account(f"puser{self._count}@{self.domain}", "pw-" + secrets.token_urlsafe(9))
        result = subprocess.run(
            ["prosodyctl", "--config", str(self.config), "register", account.localpart, self.domain, account.password],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"prosodyctl register failed: {result.stdout}{result.stderr}")
        return account

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

