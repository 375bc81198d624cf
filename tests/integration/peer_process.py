"""What the tests' other XMPP servers (Prosody, ejabberd) share as processes: their log, and when they listen."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path


class PeerProcess:
    """A peer server run by the tests; the subclass starts ``proc`` and sets the fields below."""

    host: str
    c2s_port: int
    logfile: Path
    proc: subprocess.Popen[str] | None
    log: list[str]

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex((self.host, self.c2s_port)) == 0

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_has(self, text: str) -> bool:
        try:
            return text in self.logfile.read_text(errors="replace")
        except OSError:
            return False
