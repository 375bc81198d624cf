"""A real ``python -m sakari`` process: ``serve`` on ephemeral ports with its
own data dir (ready once ``event=ready`` is logged), and the ``user`` CLI."""

from __future__ import annotations

import collections
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "localhost"
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held together while picking)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _sakari_env() -> dict[str, str]:
    env = os.environ.copy()
    # Run the working tree, whether or not it is pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -m sakari ARGS`` and return the finished process (never raises on exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "sakari", *args],
        cwd=REPO_ROOT,
        env=_sakari_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Account:
    jid: str  # bare JID
    password: str

    @property
    def localpart(self) -> str:
        return self.jid.split("@", 1)[0]


class SakariServer:
    """One ``sakari serve`` process; restartable on the same ports and data dir."""

    def __init__(self, data_dir: Path, config: str | None = None, name: str = "sakari", domain: str = DOMAIN, host: str = HOST):
        self.name = name
        self.domain = domain  # servers of their own domain and loopback address: federation tests
        self.host = host
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.data_dir.parent / f"{self.data_dir.name}.toml"
            self.config_path.write_text(config)
        self.c2s_port, self.c2s_tls_port, self.http_port, self.https_port, self.s2s_port = free_ports(5)
        self.log: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._pool: collections.deque[Account] = collections.deque()
        self._next_account = 0

    # -- process lifecycle -------------------------------------------------

    def serve_args(self) -> list[str]:
        args = [
            "serve",
            "--data-dir", str(self.data_dir),
            "--domain", self.domain,
            "--bind", self.host,
            "--c2s-port", str(self.c2s_port),
            "--c2s-tls-port", str(self.c2s_tls_port),
            "--http-port", str(self.http_port),
            "--https-port", str(self.https_port),
            "--s2s-port", str(self.s2s_port),
        ]
        args += ["--config", str(self._config_for_run())]
        return args

    def _config_for_run(self) -> Path:
        """The test's configuration, with federation off unless the test configures it (a server that
        federates would ask DNS about every other domain a test writes to, and tests talk to loopback only),
        the file transfer proxy's fixed port off unless the test sets it, and loopback exempt from the abuse
        limits unless the test sets limits.exempt_networks."""
        text = original = self.config_path.read_text() if self.config_path is not None else ""
        extra = ""
        if "[s2s]" not in text and "s2s." not in text:
            extra += "\n[s2s]\nenabled = false\n"
        if "[proxy65]" not in text and "proxy65.port" not in text:
            # The file transfer proxy listens on a fixed port (5000): one test server at a time could have it.
            extra += "\n[proxy65]\nport = 0\n"
        if "exempt_networks" not in text:
            # Every test client comes from loopback: the abuse limits (logins, connections, stanza rates) would
            # hold back a suite that opens hundreds of connections. Tests of those limits configure the key.
            exempt = 'exempt_networks = ["127.0.0.0/8", "::1"]\n'
            if "[limits]\n" in text:
                text = text.replace("[limits]\n", "[limits]\n" + exempt, 1)
            else:
                extra += "\n[limits]\n" + exempt
        if not extra and text == original:
            assert self.config_path is not None
            return self.config_path
        path = self.data_dir.parent / f"{self.data_dir.name}.run.toml"
        path.write_text(text + extra)
        return path

    def start(self, timeout: float = 30) -> None:
        args = self.serve_args()
        self.log.append(f"--- test harness: starting {self.name} ---")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sakari", *args],
            cwd=REPO_ROOT,
            env=_sakari_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.proc = proc
        ready_or_gone = threading.Event()
        status = {"ready": False}

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(line.rstrip("\n"))
                if "event=ready" in line and not status["ready"]:
                    status["ready"] = True
                    ready_or_gone.set()
            ready_or_gone.set()  # output closed: the process is gone

        threading.Thread(target=pump, name=f"{self.name}-log", daemon=True).start()
        if not ready_or_gone.wait(timeout) or not status["ready"]:
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait()
            raise RuntimeError(
                f"{self.name}: no 'event=ready' within {timeout}s (exit code {code}).\n"
                + self.log_tail()
            )

    def serve_expecting_exit(self, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``serve`` for a start that must fail; return the finished process."""
        try:
            return run_cli(*self.serve_args(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name}: 'serve' kept running; it was expected to refuse to start") from None

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM; wait for exit; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM\n" + self.log_tail())

    def kill(self) -> int:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(20)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_stopped(self) -> None:
        if self.running:
            try:
                self.stop(timeout=10)
            except AssertionError:
                pass

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log[-lines:])

    # -- accounts ------------------------------------------------------------

    def add_accounts(self, n: int) -> list[Account]:
        """Create n fresh accounts with one ``sakari user add --from-file`` call."""
        accounts = []
        for _ in range(n):
            self._next_account += 1
            accounts.append(Account(f"user{self._next_account:03d}@{self.domain}", "pw-" + secrets.token_urlsafe(9)))
        listing = self.data_dir.parent / f"{self.data_dir.name}-accounts-{self._next_account}.txt"
        listing.write_text("".join(f"{a.jid} {a.password}\n" for a in accounts))
        result = run_cli("user", "add", "--from-file", str(listing), "--data-dir", str(self.data_dir), "--domain", self.domain)
        if result.returncode != 0:
            raise RuntimeError(
                f"'sakari user add --from-file' failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return accounts

    def fill_pool(self, n: int) -> None:
        self._pool.extend(self.add_accounts(n))

    def new_account(self) -> Account:
        """An account no other test has used."""
        if not self._pool:
            self.fill_pool(20)
        return self._pool.popleft()
