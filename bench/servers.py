"""The servers under test: Sakari, Prosody and ejabberd.

Each server runs from its own temporary work directory (config, data, logs)
on its own loopback ports, in the foreground, as a child of the runner, in
its own process group, pinned to the server CPUs and with the highest
``RLIMIT_NOFILE`` this machine allows.  The system services installed by the
Debian packages are never used.

Settings are made equivalent on purpose; :attr:`Server.relaxed` lists, for the
report, what was changed from each server's defaults.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import xmpp
from bench.component import COMPONENTS, SECRET
from bench.loadgen import Target

DOMAIN = "localhost"
MUC_DOMAIN = "conference.localhost"
HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
SCRAM_ITERATIONS = 4096  # what the accounts of Prosody are written with (ejabberd's default too)

_LIVE: list["Server"] = []  # every started server, for the runner's last-resort cleanup


def account(i: int) -> tuple[str, str]:
    return f"u{i}", f"pw{i}-bench"


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def make_cert(workdir: Path, domain: str = DOMAIN) -> tuple[Path, Path, Path]:
    """A throwaway self-signed certificate for ``domain`` and its group chat service (the STARTTLS variant, and
    server-to-server TLS in the s2s scenario)."""
    key, cert, combined = workdir / "key.pem", workdir / "cert.pem", workdir / "combined.pem"
    if not combined.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "30", "-subj", f"/CN={domain}",
                        "-addext", f"subjectAltName=DNS:{domain},DNS:conference.{domain}"],
                       check=True, capture_output=True)
        combined.write_bytes(cert.read_bytes() + key.read_bytes())
        for p in (key, cert, combined):
            p.chmod(0o644)
    return key, cert, combined


def _preexec(cpus: set[int] | None):
    def fn() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return fn


def probe_stream(port: int, timeout: float = 2.0, host: str = HOST, domain: str = DOMAIN) -> bool:
    """True when the port answers a stream header with stream features."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    return False
                data += chunk
                if b"features>" in data:
                    s.sendall(b"</stream:stream>")
                    return True
    except OSError:
        return False
    return False


class Server:
    name = "server"
    features: set[str] = set()
    relaxed: list[str] = []
    base_port = 20000
    component_port: int | None = None  # XEP-0114 listener, configured only for the component scenario

    def __init__(self, root: Path, cpus: set[int] | None, tls: bool = False, domain: str = DOMAIN, host: str = HOST,
                 base_port: int | None = None) -> None:
        # Another domain, address and ports: the second server of a pair (the s2s scenario, bench/s2s.py).
        self.domain = domain
        self.host = host
        if base_port is not None:
            self.base_port = base_port
        self.workdir = root / (self.name if domain == DOMAIN else f"{self.name}-{domain}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.tls = tls
        self.s2s_peers: dict[str, tuple[str, int]] = {}  # s2s scenario: the other servers, domain → (address, s2s port)
        self.proc: subprocess.Popen | None = None
        self.c2s_port = self.base_port + 222
        self.created_accounts = 0
        self.archive_filled = 0  # messages in u1's archive (mam scenario)
        self.extra: set[str] = set()
        self._logfile = None

    # ------------------------------------------------------------ interface
    @property
    def target(self) -> Target:
        return Target(self.host, self.c2s_port, self.domain, self.tls, f"conference.{self.domain}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def accounts(self, n: int) -> list[tuple[str, str]]:
        if n > self.created_accounts:
            raise RuntimeError(f"{self.name}: {n} accounts needed, only {self.created_accounts} created")
        return [account(i) for i in range(1, n + 1)]

    def is_installed(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def ensure_accounts(self, n: int) -> None:
        """Create accounts u1..un (passwords pw<i>-bench); may start/stop the server."""
        raise NotImplementedError

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 90.0, extra: set[str] | frozenset[str] = frozenset()) -> None:
        """Start the server; ``extra`` names optional features that only some
        scenarios want switched on (e.g. "mam": archiving costs every message,
        so it is on only for the mam scenario)."""
        self.extra = set(extra)
        for port in self.ports():
            if not port_free(port, self.host):
                raise RuntimeError(f"{self.name}: port {port} on {self.host} is already in use")
        self.write_config()
        cmd, env = self.command()
        self._logfile = open(self.workdir / "server-output.log", "ab")
        self._logfile.write(f"\n==== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
        self._logfile.flush()
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env={**os.environ, **env},
                                     stdin=subprocess.DEVNULL, stdout=self._logfile, stderr=subprocess.STDOUT,
                                     preexec_fn=_preexec(self.cpus), start_new_session=True)
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} during start; "
                                   f"see {self.workdir / 'server-output.log'}")
            if probe_stream(self.c2s_port, host=self.host, domain=self.domain):
                time.sleep(0.5)  # let late module loads finish
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.c2s_port} within {timeout:.0f}s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # the process group may still hold helpers even if the leader is gone
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self in _LIVE:
            _LIVE.remove(self)
        if self._logfile:
            self._logfile.close()
            self._logfile = None

    def ports(self) -> list[int]:
        return [self.c2s_port]

    def write_config(self) -> None:
        raise NotImplementedError

    # Whether fill_archive can write the mam scenario's archive straight into the server's storage (bench/mam_fill.py).
    direct_fill = False

    def fill_archive(self, n: int) -> None:
        """Append n messages to u1's archive in the server's storage; the server must be stopped."""
        raise NotImplementedError


def stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


# =====================================================================  Sakari
def default_features() -> set[str]:
    """The bench features that the installed Sakari serves with its default module list: group chat
    when ``muc`` is in it, the archive when ``mam`` is. Nothing when Sakari is not installed yet."""
    importlib.invalidate_caches()  # the runner may have installed it a moment ago
    if importlib.util.find_spec("sakari") is None:
        return set()
    from sakari.settings import DEFAULT_MODULES

    return {f for f in ("muc", "mam") if f in DEFAULT_MODULES}


class Sakari(Server):
    name = "sakari"
    base_port = 15000
    features: set[str] = set()  # set in __init__ from the installed Sakari; --sakari-features overrides
    # "default": the modules Sakari ships on (archive, carbons, stream management...); "core": instant messaging
    # only, as the other servers are configured for chat, login and idle here (--sakari-modules)
    modules = "default"
    relaxed = [
        "`[c2s] require_encryption = false` (plain TCP c2s on loopback)",
        "`[limits] c2s_rate_bytes = 0`, `c2s_rate_burst = 0` (no per-connection rate limit; default 64 KiB/s)",
        "`[limits] exempt_networks` = loopback (the load generator's thousands of connections come from one address; "
        "by default an address may hold 100, open 5 per second, and each account send 30 stanzas per second)",
        "`--log-level warning` (like the others' `warn`/`warning`)",
        "component scenario only: `[network] component_port` and four `[[components]]` (`echo1…4.localhost`, "
        "a shared secret)",
        "s2s scenario only: `[s2s] host_map` naming the other server, `stanza_rate = 0` (no per-domain rate limit on "
        "incoming server streams; default 500 stanzas/s)",
        "`--archive` (chat, chat-many): the default module list, which archives every 1:1 message for sender and "
        "recipient (`mam`, `mam.default = \"always\"`, SQLite in the data directory) with `carbons` and `smacks` on",
    ]

    direct_fill = True
    storage_url: str | None = None  # PostgreSQL (SakariPostgres); None: SQLite in the data directory

    def __init__(self, root: Path, cpus: set[int] | None, tls: bool = False, **where) -> None:
        super().__init__(root, cpus, tls, **where)
        self.features = default_features()

    def fill_archive(self, n: int) -> None:
        from bench.mam_fill import fill_sakari

        fill_sakari(self.workdir / "data", f"{account(1)[0]}@{self.domain}", self.domain, n, self.storage_url)

    def ports(self) -> list[int]:
        b = self.base_port
        return [b + 222, b + 223, b + 280, b + 269, b + 347]

    @property
    def s2s_port(self) -> int:
        return self.base_port + 269

    @property
    def component_port(self) -> int:  # type: ignore[override]
        return self.base_port + 347

    def is_installed(self) -> bool:
        return importlib.util.find_spec("sakari") is not None

    def install(self) -> None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)

    def version(self) -> str:
        try:
            rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
        except OSError:
            rev = ""
        return f"git {rev}" if rev else "working tree"

    def write_config(self) -> None:
        lines = ["[c2s]", "require_encryption = false", "", "[limits]", "c2s_rate_bytes = 0",
                 "c2s_rate_burst = 0", 'exempt_networks = ["127.0.0.0/8", "::1"]', ""]
        if self.tls:
            key, cert, _ = make_cert(self.workdir, self.domain)
            lines += ["[tls]", f'certificate = "{cert}"', f'key = "{key}"', ""]
        if "s2s" in self.extra:  # its own self-signed certificate, so the pair proves its domains by dialback
            host_map = ", ".join(f'"{d}" = "{h}:{port}"' for d, (h, port) in self.s2s_peers.items())
            lines += ["[s2s]", f"host_map = {{ {host_map} }}", "stanza_rate = 0", ""]
        from sakari.settings import CORE_MODULES, DEFAULT_MODULES  # the installed Sakari's own lists

        enabled = list(CORE_MODULES if self.modules == "core" else DEFAULT_MODULES)
        if "muc" in self.features and "muc" not in enabled:  # group chat is a module; on where it is not by default
            enabled.append("muc")
        for module in ("mam", "carbons", "smacks"):  # --archive asks for these; on by default, but say so
            if module in self.extra and module not in enabled:
                enabled.append(module)
        if "component" in self.extra and "mam" not in self.extra and "mam" in enabled:
            # Archiving costs every message; Prosody archives nothing in this scenario, so neither does Sakari
            # (the fairness rules in bench/README.md). The older scenarios still run Sakari's default list.
            enabled.remove("mam")
        if enabled != list(DEFAULT_MODULES):
            lines += ["[modules]", "enabled = [" + ", ".join(f'"{m}"' for m in enabled) + "]", ""]
        if self.storage_url:
            lines += ["[storage]", 'backend = "postgresql"', f'url = "{self.storage_url}"', ""]
        # Listeners on fixed default ports are closed (HTTPS 5281, the file transfer proxy's 5000): a `./run serve`
        # running beside the bench holds them, and the scenarios use neither.
        network = ["https_port = 0"]
        if "component" in self.extra:
            network.append(f"component_port = {self.component_port}")
        lines += ["[network]", *network, "", "[proxy65]", "port = 0", ""]
        if "component" in self.extra:
            for domain in COMPONENTS:
                lines += ["[[components]]", f'domain = "{domain}"', f'secret = "{SECRET}"', ""]
        (self.workdir / "sakari.toml").write_text("\n".join(lines))

    def command(self) -> tuple[list[str], dict[str, str]]:
        b = self.base_port
        return ([sys.executable, "-m", "sakari", "serve", "--config", str(self.workdir / "sakari.toml"),
                 "--data-dir", str(self.workdir / "data"), "--domain", self.domain, "--bind", self.host,
                 "--c2s-port", str(b + 222), "--c2s-tls-port", str(b + 223), "--http-port", str(b + 280),
                 "--s2s-port", str(b + 269), "--log-level", "warning"], {})

    def ensure_accounts(self, n: int) -> None:
        if n <= self.created_accounts:
            return
        (self.workdir / "data").mkdir(exist_ok=True)
        users = self.workdir / "users.txt"
        users.write_text("".join(f"{u}@{self.domain} {p}\n" for u, p in
                                 (account(i) for i in range(self.created_accounts + 1, n + 1))))
        r = subprocess.run([sys.executable, "-m", "sakari", "user", "add", "--from-file", str(users),
                            "--data-dir", str(self.workdir / "data"), "--domain", self.domain], capture_output=True, text=True,
                           cwd=self.workdir)
        if r.returncode != 0:
            raise RuntimeError(f"sakari user add failed ({r.returncode}): {r.stderr[-2000:]}")
        self.created_accounts = n


class SakariPostgres(Sakari):
    """Sakari with its storage on PostgreSQL: a database of its own on the server at ``admin_url``, made when
    the accounts are and dropped at the runner's end (``drop_databases``). PostgreSQL itself is not pinned to
    the server CPUs: it is the machine's own service, shared with whatever else uses it."""

    name = "sakari-pg"
    base_port = 15500
    admin_url = os.environ.get("SAKARI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

    def __init__(self, root: Path, cpus: set[int] | None, tls: bool = False, **where) -> None:
        super().__init__(root, cpus, tls, **where)
        self.database = f"sakari_bench_{os.getpid()}"
        self.storage_url = f"{self.admin_url.rpartition('/')[0]}/{self.database}"
        self.relaxed = [*Sakari.relaxed, "`[storage] backend = \"postgresql\"`: a database of its own on the "
                        "machine's PostgreSQL, which is not pinned to the server CPU"]
        self._created = False

    def _admin(self, statement: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def ensure_accounts(self, n: int) -> None:
        if n <= self.created_accounts:
            return
        if not self._created:
            self._admin(f'CREATE DATABASE "{self.database}"')
            self._created = True
            _LIVE_DATABASES.append(self)
        self.write_config()  # `sakari user add` writes where the server will read: the configured database
        (self.workdir / "data").mkdir(exist_ok=True)
        users = self.workdir / "users.txt"
        users.write_text("".join(f"{u}@{self.domain} {p}\n" for u, p in
                                 (account(i) for i in range(self.created_accounts + 1, n + 1))))
        r = subprocess.run([sys.executable, "-m", "sakari", "user", "add", "--from-file", str(users),
                            "--config", str(self.workdir / "sakari.toml"), "--data-dir", str(self.workdir / "data"),
                            "--domain", self.domain], capture_output=True, text=True, cwd=self.workdir)
        if r.returncode != 0:
            raise RuntimeError(f"sakari user add failed ({r.returncode}): {r.stderr[-2000:]}")
        self.created_accounts = n

    def drop_database(self) -> None:
        if self._created:
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self._created = False


_LIVE_DATABASES: list[SakariPostgres] = []


def drop_databases() -> None:
    """The databases SakariPostgres made, at the runner's end."""
    for server in list(_LIVE_DATABASES):
        try:
            server.drop_database()
        except Exception as e:  # noqa: BLE001 - cleanup: say so, go on
            print(f"{server.name}: could not drop database {server.database}: {e}", file=sys.stderr)
        _LIVE_DATABASES.remove(server)


# =====================================================================  Prosody
class Prosody(Server):
    name = "prosody"
    base_port = 16000
    features = {"muc", "mam"}
    relaxed = [
        "`c2s_require_encryption = false` (plain TCP c2s on loopback)",
        "`mod_limits` not loaded (no per-connection rate limit; default is 10 kB/s)",
        "`network_settings = { tcp_backlog = 1024 }`",
        "`run_as_root = true`, `daemonize = false` (foreground child of the runner)",
        "MUC component: `muc_room_locking = false`, `restrict_room_creation = false`",
        "mam scenario only: `mod_mam` loaded, its archive in SQL storage (`storage = { archive = \"sql\" }`, "
        "`sql = { driver = \"SQLite3\" }`; the rest stays internal), `archive_expires_after = \"never\"`",
        "`--archive` (chat, chat-many): `mod_mam` as in the mam scenario (`default_archive_policy = true`), "
        "`mod_carbons` and `mod_smacks` loaded",
        "component scenario only: `component_ports`, four `Component \"echo1…4.localhost\"` with "
        "`component_secret`",
        "s2s scenario only: `mod_s2s` and `mod_dialback` on, s2s on port 5269 of an address of its own, "
        "`unbound = { hoststxt = ... }` naming the other server (Prosody has no static routes)",
    ]

    def ports(self) -> list[int]:
        return [self.base_port + 222, self.s2s_port, self.base_port + 347]

    @property
    def component_port(self) -> int:  # type: ignore[override]
        return self.base_port + 347

    @property
    def s2s_port(self) -> int:
        # Prosody has no static routes: in the s2s scenario a peer finds it by its address (an A record from a hosts
        # file) on the default port, each server having an address of its own.
        return 5269 if "s2s" in self.extra else self.base_port + 269

    def is_installed(self) -> bool:
        return shutil.which("prosody") is not None

    def version(self) -> str:
        return _dpkg_version("prosody")

    def write_config(self) -> None:
        w = self.workdir
        tls = ""
        if self.tls or "s2s" in self.extra:  # server-to-server streams need TLS (s2s_require_encryption)
            key, cert, _ = make_cert(w, self.domain)
            tls = f'ssl = {{ key = "{key}"; certificate = "{cert}"; }}\n'
        s2s = ""
        if "s2s" in self.extra:
            # libunbound answers names under test. itself: SRV look-ups fail at once, addresses come from this file.
            (w / "hosts").write_text("".join(f"{h} {d}\n" for d, (h, _) in self.s2s_peers.items()))
            s2s = f'unbound = {{ hoststxt = "{w}/hosts" }}\n'
        mam = ', "mam"' if "mam" in self.extra else ""
        # The archive in SQL (SQLite): the storage the issue compares against, and one the fast fill can write.
        storage = ('{ archive = "sql" }\nsql = { driver = "SQLite3", database = "prosody.sqlite" }'
                   if "mam" in self.extra else '"internal"')
        pep = ', "pep"' if "pep" in self.extra else ""  # on in Debian's default configuration
        # --archive: carbons and stream management (both in Debian's default configuration too)
        mam += "".join(f', "{m}"' for m in ("carbons", "smacks") if m in self.extra)
        components = "".join(f'\nComponent "{d}"\n    component_secret = "{SECRET}"\n'
                             for d in COMPONENTS) if "component" in self.extra else ""
        cfg = f"""-- generated by bench/servers.py
run_as_root = true
daemonize = false
pidfile = "{w}/prosody.pid"
data_path = "{w}/data"
certificates = "{w}"
plugin_paths = {{}}
log = {{ warn = "{w}/prosody.log" }}
network_backend = "epoll"
network_settings = {{ tcp_backlog = 1024 }}
c2s_ports = {{ {self.base_port + 222} }}
c2s_interfaces = {{ "{self.host}" }}
s2s_ports = {{ {self.s2s_port} }}
s2s_interfaces = {{ "{self.host}" }}
http_ports = {{}}
https_ports = {{}}
component_ports = {{ {self.base_port + 347} }}
component_interfaces = {{ "{self.host}" }}
c2s_require_encryption = false
authentication = "internal_hashed"
storage = {storage}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping"{mam}{pep}{', "dialback"' if s2s else ''} }}
archive_expires_after = "never"
default_archive_policy = true
modules_disabled = {{ {'' if s2s else '"s2s"'} }}
{tls}{s2s}
VirtualHost "{self.domain}"

Component "conference.{self.domain}" "muc"
    muc_room_locking = false
    restrict_room_creation = false
{components}"""
        (w / "prosody.cfg.lua").write_text(cfg)

    def command(self) -> tuple[list[str], dict[str, str]]:
        return (["prosody", "-F", "--config", str(self.workdir / "prosody.cfg.lua")], {})

    direct_fill = True

    def fill_archive(self, n: int) -> None:
        from bench.mam_fill import fill_prosody

        database = self.workdir / "data" / "prosody.sqlite"
        if not database.exists():
            raise RuntimeError(f"{database} is missing: Prosody makes its tables when it first starts with mod_mam")
        fill_prosody(database, account(1)[0], self.domain, n)

    def ensure_accounts(self, n: int) -> None:
        """Write internal_hashed account files directly (the format Prosody's
        internal storage reads: a Lua chunk returning a table).  Equivalent to
        ``prosodyctl adduser`` but takes seconds for 10,000 accounts."""
        if n <= self.created_accounts:
            return
        d = self.workdir / "data" / self.domain.replace(".", "%2e") / "accounts"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(self.created_accounts + 1, n + 1):
            user, pw = account(i)
            salt = str(uuid.uuid4())
            salted = hashlib.pbkdf2_hmac("sha1", pw.encode(), salt.encode(), SCRAM_ITERATIONS)
            client_key = hmac.digest(salted, b"Client Key", "sha1")
            stored = hashlib.sha1(client_key).hexdigest()
            server = hmac.digest(salted, b"Server Key", "sha1").hex()
            (d / f"{user}.dat").write_text(
                f'return {{\n\t["iteration_count"] = {SCRAM_ITERATIONS};\n\t["salt"] = "{salt}";\n'
                f'\t["stored_key"] = "{stored}";\n\t["server_key"] = "{server}";\n}};\n')
        self.created_accounts = n


# =====================================================================  ejabberd
class Ejabberd(Server):
    name = "ejabberd"
    base_port = 17000
    features = {"muc", "mam"}
    relaxed = [
        "c2s listener: `starttls_required: false` (plain TCP c2s on loopback), `shaper: none`, `backlog: 1024`",
        "`shaper_rules: c2s_shaper: none` (default config uses `normal`, 1,000 B/s)",
        "`mod_register` with `ip_access: all` and `registration_timeout: infinity` (accounts are created by in-band registration before the runs)",
        "`mod_muc`: `max_users: 1000` and `default_room_options: max_users: 1000` (default 200), `access_create: all`",
        "mam scenario only: `mod_mam` with `default: always` (default `never`), default (mnesia) storage",
        "`--archive` (chat, chat-many): `mod_mam` as in the mam scenario, `mod_carboncopy` and `mod_stream_mgmt` "
        "(defaults)",
        "Erlang VM started directly (`erl ... -s ejabberd`, no distribution), `ERL_MAX_PORTS=65536`",
    ]

    def ports(self) -> list[int]:
        return [self.base_port + 222]

    def is_installed(self) -> bool:
        return bool(list(Path("/usr/lib/x86_64-linux-gnu").glob("ejabberd-*"))) or \
            bool(shutil.which("ejabberdctl"))

    def version(self) -> str:
        return _dpkg_version("ejabberd")

    def write_config(self) -> None:
        w = self.workdir
        (w / "spool").mkdir(exist_ok=True)
        (w / "logs").mkdir(exist_ok=True)
        tls_lines = "    starttls: false\n"
        certs = ""
        if self.tls:
            _, _, combined = make_cert(w)
            tls_lines = "    starttls: true\n"
            certs = f'certfiles:\n  - "{combined}"\n'
        mam = "  mod_mam:\n    default: always\n" if "mam" in self.extra else ""
        if "carbons" in self.extra:  # --archive
            mam += "  mod_carboncopy: {}\n"
        if "smacks" in self.extra:
            mam += "  mod_stream_mgmt: {}\n"
        cfg = f"""# generated by bench/servers.py
loglevel: warning
log_rotate_count: 0
hosts:
  - {DOMAIN}
{certs}listen:
  -
    port: {self.c2s_port}
    ip: "{HOST}"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    backlog: 1024
{tls_lines}    starttls_required: false
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
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
shaper_rules:
  max_user_sessions: 10
  c2s_shaper: none
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_offline: {{}}
{mam}  mod_register:
    ip_access: all
    access: register
  mod_muc:
    host: "{MUC_DOMAIN}"
    access_create: muc_create
    max_users: 1000
    default_room_options:
      max_users: 1000
"""
        (w / "ejabberd.yml").write_text(cfg)
        (w / "inetrc").write_text("{lookup,[file,native]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n")

    def command(self) -> tuple[list[str], dict[str, str]]:
        w = self.workdir
        env = {
            "EJABBERD_CONFIG_PATH": str(w / "ejabberd.yml"),
            "EJABBERD_LOG_PATH": str(w / "logs" / "ejabberd.log"),
            "ERL_LIBS": "/usr/lib/x86_64-linux-gnu",
            "ERL_MAX_PORTS": "65536",
            "ERL_INETRC": str(w / "inetrc"),
            "ERL_CRASH_DUMP": str(w / "logs" / "erl_crash.dump"),
        }
        # `erl` execs erlexec which execs beam.smp: the child pid is the VM.
        return (["erl", "+K", "true", "+P", "1000000", "-noinput", "-env", "ERL_CRASH_DUMP_BYTES", "0",
                 "-mnesia", "dir", f'"{w / "spool"}"', "-s", "ejabberd"], env)

    def ensure_accounts(self, n: int) -> None:
        """In-band registration (XEP-0077) over loopback, 50 at a time."""
        if n <= self.created_accounts:
            return
        self.start()
        try:
            asyncio.run(_register_all(self.target, range(self.created_accounts + 1, n + 1)))
        finally:
            self.stop()
        self.created_accounts = n


async def _register_all(target: Target, indexes) -> None:
    sem = asyncio.Semaphore(50)
    tls = xmpp.client_tls_context() if target.tls else None

    async def one(i: int) -> None:
        user, pw = account(i)
        async with sem:
            for attempt in range(5):
                try:
                    await xmpp.register_account(target.host, target.port, user, pw, target.domain, tls=tls)
                    return
                except (OSError, xmpp.XMPPError, asyncio.TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one(i) for i in indexes))


def _dpkg_version(pkg: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


SERVERS: dict[str, type[Server]] = {"sakari": Sakari, "sakari-pg": SakariPostgres, "prosody": Prosody,
                                    "ejabberd": Ejabberd}


def install_debian_packages(names: list[str]) -> None:
    """``apt-get install -y`` the given packages without letting their
    maintainer scripts start the system services (a policy-rc.d that says
    "no" for the duration), then stop anything the install started anyway."""
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    before = _daemon_pids()
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *names], env=env)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *names], env=env, check=True)
    finally:
        if created:
            policy.unlink()
    for pid in _daemon_pids() - before:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _daemon_pids() -> set[int]:
    """prosody / ejabberd processes run by the system users the packages create."""
    out = set()
    r = subprocess.run(["ps", "-eo", "pid=,user=,args="], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in ("prosody", "ejabberd"):
            out.add(int(parts[0]))
    return out
