"""Real bridges and the networks behind them, started by the tests on loopback.

- ngircd (Debian) is the IRC network, biboumi (Debian) the IRC gateway;
- Synapse (PyPI ``matrix-synapse``) is the Matrix homeserver, slidge + matridge (PyPI) the Matrix
  gateway. Each runs from a virtual environment of its own under ``.cache/bridges`` (made on first
  use, kept between runs), since their pinned dependencies (slixmpp, aiohttp, Twisted…) are not
  Sakari's.

What is missing is installed when we can (apt-get as root, pip); when it still cannot be had the
test is skipped, except in CI (``CI`` set), where it fails with the reason.
Every peer listens on 127.0.0.1 and ephemeral ports, keeps its data in the test's temporary
directory, and is told not to reach anything beyond loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sakari_process import HOST, REPO_ROOT, SakariServer, free_ports

CACHE = REPO_ROOT / ".cache" / "bridges"
HERE = Path(__file__).resolve().parent


def unavailable(message: str) -> None:
    """A piece cannot be had: fail loudly in CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_debian(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first when it is missing and we are root."""
    if shutil.which(binary) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", package]
        if subprocess.run(install, env=env, check=False, capture_output=True, timeout=600).returncode != 0:
            # The package lists may be missing or stale on a fresh machine.
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=600)
            subprocess.run(install, env=env, check=False, capture_output=True, timeout=600)
    path = shutil.which(binary)
    if path is None:
        unavailable(f"{binary} is needed (apt-get install {package})")
    return path  # type: ignore[return-value]


def venv_with(name: str, requirements: list[str]) -> Path:
    """The python of a virtual environment with ``requirements``, made once and kept under .cache/bridges."""
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:12]
    root = CACHE / f"{name}-{key}"
    python = root / "bin" / "python"
    stamp = root / ".installed"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(root)], check=False, capture_output=True, text=True)
        if made.returncode != 0:
            unavailable(f"cannot make a virtual environment for {name}: {made.stderr[-2000:]}")
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements]
        done = subprocess.run(pip, check=False, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            unavailable(f"pip install {' '.join(requirements)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        stamp.write_text("\n".join(requirements) + "\n")
    return python


def prepare_venvs(specs: dict[str, list[str]]) -> dict[str, Path]:
    """Several environments side by side: each install mostly waits on downloads and unpacking."""
    results: dict[str, Path | BaseException] = {}

    def make(name: str, requirements: list[str]) -> None:
        try:
            results[name] = venv_with(name, requirements)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread below
            results[name] = e

    threads = [threading.Thread(target=make, args=item) for item in specs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results.values():
        if isinstance(result, BaseException):
            raise result
    return {name: results[name] for name in specs}  # type: ignore[misc]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(condition: Callable[[], bool], what: str, timeout: float, diagnostics: Callable[[], str] = lambda: "") -> None:
    """Poll ``condition`` until it holds or ``timeout`` passes (then fail with ``diagnostics``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s\n{diagnostics()}")


def wait_for_component(server: SakariServer, domain: str, timeout: float = 60) -> None:
    """Sakari logged the component's handshake."""
    needle = f"event=component-connected domain={domain}"
    wait_until(lambda: any(needle in line for line in server.log), f"{domain} connecting to Sakari", timeout, server.log_tail)


class Peer:
    """A child process whose output is kept for the failure report."""

    name = "peer"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        threading.Thread(target=self._pump, name=f"{self.name}-log", daemon=True).start()

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.log[-lines:])

    def wait_ready(self, condition: Callable[[], bool], timeout: float) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode if self.proc else '?'}\n{self.log_tail()}")
            return condition()

        wait_until(ready, f"{self.name} ready", timeout, self.log_tail)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- IRC ------------------------------------------------------------------------------------------
class Ngircd(Peer):
    """Debian's ngircd in the foreground: one IRC server named irc.test on 127.0.0.1."""

    name = "ngircd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        (self.port,) = free_ports(1)
        self.config = workdir / "ngircd.conf"
        # DNS and Ident off: ngircd would otherwise look up every client, beyond loopback.
        self.config.write_text(f"""# written by tests/integration/bridge_peers.py
[Global]
Name = irc.test
Info = Sakari test IRC server
AdminInfo1 = Sakari tests
AdminInfo2 = loopback
AdminEMail = nobody@irc.test
Listen = {HOST}
Ports = {self.port}
MotdPhrase = "Sakari test network"
[Limits]
MaxConnectionsIP = 0
MaxJoins = 50
[Options]
DNS = no
Ident = no
PAM = no
""")

    def start(self) -> None:
        self.spawn([require_debian("ngircd", "ngircd"), "--nodaemon", "--config", str(self.config)])
        self.wait_ready(lambda: port_open(self.port), 30)


class Biboumi(Peer):
    """Debian's biboumi, connected to Sakari's component port as ``domain``."""

    name = "biboumi"

    def __init__(self, workdir: Path, domain: str, secret: str, component_port: int) -> None:
        super().__init__(workdir)
        self.domain = domain
        self.config = workdir / "biboumi.cfg"
        # identd_port=0: biboumi would otherwise listen on port 113. The policy files stay biboumi's own.
        self.config.write_text(f"""hostname={domain}
password={secret}
xmpp_server_ip={HOST}
port={component_port}
admin=
db_name={workdir / "biboumi.sqlite"}
identd_port=0
realname_customization=true
realname_from_jid=false
log_file=
log_level=1
""")

    def start(self, server: SakariServer) -> None:
        self.spawn([require_debian("biboumi", "biboumi"), str(self.config)])
        self.wait_ready(lambda: any(f"domain={self.domain}" in line and "component-connected" in line for line in server.log), 30)


class IrcClient:
    """A plain IRC client on a socket: what biboumi's IRC side looks like to a person on IRC."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection(HOST, port)
        self._task = asyncio.create_task(self._read())
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :Sakari test")
        await self.wait_for(lambda line: line.split(" ")[1:2] in (["376"], ["422"]), "the end of the welcome (MOTD)")

    def send(self, line: str) -> None:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")

    async def _read(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text.startswith("PING "):
                self.send("PONG " + text[5:])
            self.lines.append(text)
            self._changed.set()

    async def wait_for(self, pred: Callable[[str], bool], what: str, timeout: float = 20) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if pred(line):
                    return line
            seen = len(self.lines)
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.nick} waited {timeout}s for {what}; got:\n  " + "\n  ".join(self.lines[-20:]))
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._writer is not None:
            self.send("QUIT :bye")
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


# --- Matrix ---------------------------------------------------------------------------------------
SYNAPSE_REQUIREMENTS = ["matrix-synapse==1.163.2"]
# The 0.4 line: the last on Python 3.11. matrix-nio's e2e extra comes with matridge (python-olm).
MATRIDGE_REQUIREMENTS = ["matridge==0.4.1", "slidge==0.4.2"]


class Synapse(Peer):
    """Synapse on SQLite, one client listener on 127.0.0.1, no federation, no key servers, no phoning home."""

    name = "synapse"
    server_name = "matrix.test"

    def __init__(self, workdir: Path, python: Path) -> None:
        super().__init__(workdir)
        self.python = python
        (self.port,) = free_ports(1)
        self.url = f"http://{HOST}:{self.port}"
        self.shared_secret = "registration-" + hashlib.sha256(str(workdir).encode()).hexdigest()[:16]
        self.config = workdir / "homeserver.yaml"
        unlimited = "{per_second: 10000, burst_count: 10000}"
        # No federation listener and an empty whitelist: nothing is sent to or taken from other homeservers.
        self.config.write_text(f"""# written by tests/integration/bridge_peers.py
server_name: "{self.server_name}"
public_baseurl: "{self.url}/"
pid_file: "{workdir / 'homeserver.pid'}"
listeners:
  - port: {self.port}
    bind_addresses: ['{HOST}']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{workdir / 'homeserver.db'}"
media_store_path: "{workdir / 'media'}"
signing_key_path: "{workdir / 'signing.key'}"
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
report_stats: false
enable_metrics: false
url_preview_enabled: false
presence:
  enabled: false
enable_registration: false
registration_shared_secret: "{self.shared_secret}"
macaroon_secret_key: "macaroon-{self.shared_secret}"
form_secret: "form-{self.shared_secret}"
rc_message: {unlimited}
rc_registration: {unlimited}
rc_login:
  address: {unlimited}
  account: {unlimited}
  failed_attempts: {unlimited}
rc_joins:
  local: {unlimited}
rc_invites:
  per_room: {unlimited}
  per_user: {unlimited}
  per_issuer: {unlimited}
""")
        self._users = 0

    def start(self) -> None:
        keys = subprocess.run(
            [str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config), "--generate-keys"],
            cwd=self.workdir, check=False, capture_output=True, text=True, timeout=120,
        )
        if keys.returncode != 0:
            raise RuntimeError(f"synapse --generate-keys failed:\n{keys.stdout}{keys.stderr}")
        self.spawn([str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config)])
        self.wait_ready(self._answers, 120)

    def _answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def new_user(self, prefix: str = "user") -> tuple[str, str]:
        """A fresh Matrix account (user id, password), made with the registration shared secret."""
        self._users += 1
        name, password = f"{prefix}{self._users}", f"pw-{prefix}-{self._users}"
        register = self.python.parent / "register_new_matrix_user"
        done = subprocess.run(
            [str(register), "-u", name, "-p", password, "--no-admin", "-k", self.shared_secret, self.url],
            check=False, capture_output=True, text=True, timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"register_new_matrix_user failed:\n{done.stdout}{done.stderr}")
        return f"@{name}:{self.server_name}", password


class Matridge(Peer):
    """slidge + matridge as a component of Sakari, started by matridge_launcher.py (no component avatar fetch)."""

    name = "matridge"

    def __init__(self, workdir: Path, python: Path, domain: str, secret: str, component_port: int) -> None:
        super().__init__(workdir)
        self.python = python
        self.domain = domain
        self.secret = secret
        self.component_port = component_port

    def start(self, server: SakariServer) -> None:
        self.spawn([
            str(self.python), str(HERE / "matridge_launcher.py"),
            "--jid", self.domain, "--secret", self.secret, "--server", HOST, "--port", str(self.component_port),
            "--home-dir", str(self.workdir / "home"),
        ])
        self.wait_ready(lambda: any("successfully started" in line for line in self.log), 90)
        wait_for_component(server, self.domain, 10)
