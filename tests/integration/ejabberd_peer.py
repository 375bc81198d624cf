"""A real ejabberd (the Debian package) as a federation peer: its own domain, address, certificate and data.

The Erlang VM runs ejabberd in the foreground as a child of the test session
(``erl ... -s ejabberd``, no distribution, so no epmd and no cookie), with its
configuration, Mnesia spool and logs in the test's temporary directory. It finds
other servers by SRV records with Erlang's resolver (set up by an inetrc file)
and their addresses with the system's (getaddrinfo), so it runs in a mount
namespace whose /etc/resolv.conf names the test's DNS server too. Its MUC service is conference.<domain>.
Accounts are registered in band (XEP-0077) when it starts, since ejabberdctl
would need a distributed node. The package is installed when missing (as
root); without it a test skips, or fails when CI is set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

from bridge_peers import require_debian, unavailable
from federation_helpers import in_own_resolver
from register_helpers import register_in_band
from peer_process import PeerProcess
from sakari_process import Account, free_ports

LIBS = Path("/usr/lib/x86_64-linux-gnu")  # where the Debian package puts ejabberd's and its dependencies' code


def require_ejabberd() -> None:
    require_debian("ejabberdctl", "ejabberd")
    require_debian("erl", "erlang-base")
    require_debian("unshare", "util-linux")
    if not list(LIBS.glob("ejabberd-*")):
        unavailable(f"ejabberd's code is not under {LIBS}")


class EjabberdPeer(PeerProcess):
    def __init__(
        self, workdir: Path, domain: str, host: str, cert: tuple[Path, Path], ca_file: Path, resolv_conf: Path,
        accounts: int = 8,
    ) -> None:
        self.name = "ejabberd"
        self.workdir = workdir
        self.domain = domain
        self.host = host
        self.c2s_port, self.s2s_port = free_ports(2)
        self.c2s_tls_port = 0  # not offered; clients use STARTTLS
        self.resolv_conf = resolv_conf
        self.log: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._accounts = [Account(f"euser{i}@{domain}", "pw-" + secrets.token_urlsafe(9)) for i in range(1, accounts + 1)]
        for sub in ("spool", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.logfile = workdir / "logs" / "ejabberd.log"
        combined = workdir / "server.pem"  # ejabberd wants certificate and key in one file
        combined.write_bytes(cert[0].read_bytes() + cert[1].read_bytes())
        (workdir / "inetrc").write_text(f'{{resolv_conf, "{resolv_conf}"}}.\n{{hosts_file, ""}}.\n{{lookup, [dns]}}.\n')
        self.config = workdir / "ejabberd.yml"
        self.config.write_text(f"""# written by tests/integration/ejabberd_peer.py
loglevel: info
log_rotate_count: 0
hosts:
  - {domain}
certfiles:
  - "{combined}"
ca_file: "{ca_file}"
s2s_use_starttls: required
registration_timeout: infinity
listen:
  -
    port: {self.c2s_port}
    ip: "{host}"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: {self.s2s_port}
    ip: "{host}"
    module: ejabberd_s2s_in
auth_method: internal
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  muc_create:
    allow: all
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_offline: {{}}
  mod_s2s_dialback: {{}}
  mod_register:
    ip_access: all
    access: register
  mod_muc:
    host: "conference.@HOST@"
    access_create: muc_create
""")

    def start(self, timeout: float = 60) -> None:
        w = self.workdir
        env = {
            **os.environ,
            "EJABBERD_CONFIG_PATH": str(self.config),
            "EJABBERD_LOG_PATH": str(self.logfile),
            "ERL_LIBS": str(LIBS),
            "ERL_INETRC": str(w / "inetrc"),
            "ERL_CRASH_DUMP": str(w / "logs" / "erl_crash.dump"),
            "HOME": str(w),  # the VM writes nothing to the real home
        }
        erl = ["erl", "-noinput", "-env", "ERL_CRASH_DUMP_BYTES", "0", "-mnesia", "dir", f'"{w / "spool"}"', "-s", "ejabberd"]
        command = in_own_resolver(self.resolv_conf, erl)
        self.proc = subprocess.Popen(
            command, env=env, cwd=w, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready once its c2s port accepts
            if self.proc.poll() is not None:
                raise RuntimeError(f"ejabberd exited with {self.proc.returncode}:\n" + "\n".join(self.log[-40:]) + "\n" + self.log_tail())
            if self._listening():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("ejabberd did not listen in time:\n" + self.log_tail())
        self._register_all()

    def _register_all(self) -> None:
        async def all_of_them() -> None:
            for account in self._accounts:
                failed = await register_in_band(self, account.localpart, account.password, None)  # type: ignore[arg-type]
                if failed is not None:
                    raise RuntimeError(f"in-band registration of {account.jid} failed: {failed}\n{self.log_tail()}")

        # A thread of its own: the caller may be inside a running event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, all_of_them()).result()

    def new_account(self) -> Account:
        if not self._accounts:
            raise RuntimeError("every account registered at start is taken; give EjabberdPeer more")
        return self._accounts.pop(0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the VM stops its applications on SIGTERM (OTP 19+)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
