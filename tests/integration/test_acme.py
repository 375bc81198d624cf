"""Automatic certificates (tls.acme) against Pebble, the ACME test server (Debian's ``pebble``), started here on
loopback with a CA of its own. Pebble really validates: it fetches the HTTP-01 answer from Sakari's HTTP port.

The certificate Sakari gets is served on every port that presents the server's certificate (client STARTTLS and
direct TLS, HTTPS, federation), verifies against Pebble's root for the server's name, and is renewed (here at once,
with tls.acme_renew_before beyond its lifetime) on SIGHUP and loaded without disconnecting anyone. Once it verifies, federation presents it to other servers too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from bridge_peers import require_debian
from federation_helpers import TestCA
from raw_xmpp import RawStream
from sakari_process import HOST, SakariServer, free_ports
from xmpp_harness import is_message

pytestmark = pytest.mark.asyncio


class Pebble:
    def __init__(self, directory: Path, http_port: int) -> None:
        binary = require_debian("pebble", "pebble")
        self.ca = TestCA(directory / "tls", "Pebble listener test CA")  # for Pebble's own HTTPS
        cert, key = self.ca.issue("localhost")
        self.port, self.management_port, tls_port = free_ports(3)
        config = {"pebble": {
            "listenAddress": f"{HOST}:{self.port}", "managementListenAddress": f"{HOST}:{self.management_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": http_port,  # where it fetches HTTP-01 answers: Sakari's HTTP port, not 80
            "tlsPort": tls_port, "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}
        path = directory / "pebble.json"
        path.write_text(json.dumps(config))
        # No random sleeps before validating, no random nonce rejections: a test must not be flaky by design.
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        self.log = directory / "pebble.log"
        self.proc = subprocess.Popen([binary, "-config", str(path)], env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)

    @property
    def directory_url(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def root(self) -> bytes:
        """The root that signs what Pebble issues (made anew at each Pebble start)."""
        context = ssl.create_default_context(cafile=str(self.ca.path))
        with urllib.request.urlopen(f"https://localhost:{self.management_port}/roots/0", context=context, timeout=10) as r:
            return r.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def served(port: int, context: ssl.SSLContext) -> x509.Certificate:
    with socket.create_connection((HOST, port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


async def served_after_starttls(port: int, namespace: str) -> x509.Certificate:
    reader, writer = await asyncio.open_connection(HOST, port)
    stream = RawStream(reader, writer)
    await stream.send(
        f"<?xml version='1.0'?><stream:stream xmlns='{namespace}' xmlns:stream='http://etherx.jabber.org/streams'"
        " to='localhost' from='peer.example' version='1.0'>"
    )
    await stream.expect("http://etherx.jabber.org/streams", "features")
    await stream.starttls()
    certificate = x509.load_der_x509_certificate(stream.peer_certificate())
    stream.close()
    return certificate


async def wait_for_log(server: SakariServer, text: str, since: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log[since:]:
            if text in line:
                return line
        assert not any("event=acme-failed" in line for line in server.log[since:]), server.log_tail()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {text!r} in the log:\n{server.log_tail()}")


async def test_acme_certificate_is_obtained_served_everywhere_and_renewed_without_dropping_sessions(
    make_server, session_for, tmp_path
) -> None:
    server = make_server(start=False, accounts=2, name="acme")
    pebble = Pebble(tmp_path / "pebble", server.http_port)
    try:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root())
        server.config_path = server.data_dir.parent / "acme.toml"
        server.config_path.write_text(f"""
[tls]
acme = true
acme_directory = "{pebble.directory_url}"
acme_ca_file = "{pebble.ca.path}"
acme_email = "admin@example.org"
acme_renew_before = 36500.0  # longer than any certificate lives: each check renews, so SIGHUP shows a renewal

[s2s]
enabled = true
ca_file = "{root}"  # other servers of this federation trust Pebble's root, and so does this one
""")
        server.start()
        await wait_for_log(server, "event=acme-certificate", 0)
        await wait_for_log(server, "event=certificate-reloaded changed=yes", 0)
        assert not (server.data_dir / "certs" / "acme.key").stat().st_mode & 0o077, "the key must be the owner's only"

        trusting = ssl.create_default_context(cafile=str(root))  # names checked: the certificate is for localhost
        first = served(server.c2s_tls_port, trusting)
        assert served(server.https_port, trusting) == first
        assert await served_after_starttls(server.c2s_port, "jabber:client") == first
        assert await served_after_starttls(server.s2s_port, "jabber:server") == first
        assert any("event=certificate origin=acme" in line for line in server.log)
        # Verifiable by other servers now (the local CA's at start was not): shown to them for SASL EXTERNAL.
        assert any("event=s2s-configured certificate=not-presented" in line for line in server.log)
        assert any("event=s2s-configured certificate=presented" in line for line in server.log)

        session = session_for(server)
        alice, bob = await session.login(label="alice"), await session.login(label="bob")
        mark = len(server.log)
        server.proc.send_signal(signal.SIGHUP)
        await wait_for_log(server, "event=acme-order", mark)
        await wait_for_log(server, "event=acme-certificate", mark)
        await wait_for_log(server, "event=certificate-reloaded changed=yes", mark)
        renewed = served(server.c2s_tls_port, trusting)
        assert renewed.serial_number != first.serial_number
        assert served(server.https_port, trusting) == renewed
        assert alice.connected and bob.connected, "the renewal disconnected a client"
        alice.message(bob.jid, "still here after the renewal")
        await bob.expect(is_message(body="still here after the renewal"))
    finally:
        server.ensure_stopped()
        pebble.stop()


async def test_a_certificate_authority_that_does_not_answer_neither_stops_the_start_nor_delays_the_stop(make_server) -> None:
    silent = socket.socket()
    silent.bind((HOST, 0))
    silent.listen(8)  # accepts into the backlog and never says a word
    try:
        server = make_server(start=False, name="acme-silent")
        server.config_path = server.data_dir.parent / "acme-silent.toml"
        server.config_path.write_text(f'[tls]\nacme = true\nacme_directory = "https://{HOST}:{silent.getsockname()[1]}/dir"\n')
        server.start()  # ready with the local CA's certificate while the order waits
        await wait_for_log(server, "event=acme-order", 0)
        assert served(server.c2s_tls_port, insecure()).issuer != served(server.c2s_tls_port, insecure()).subject
        started = time.monotonic()
        assert server.stop(timeout=15) == 0
        assert time.monotonic() - started < 10, "the stop waited for the ACME order"
    finally:
        silent.close()


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


async def test_acme_without_a_plain_http_port_for_the_challenge_refuses_to_start(make_server) -> None:
    server = make_server(start=False, name="acme-no-http")
    server.config_path = server.data_dir.parent / "acme-no-http.toml"
    server.config_path.write_text("[tls]\nacme = true\n\n[http]\ntls = true\n")
    result = server.serve_expecting_exit()
    assert result.returncode != 0
    assert "tls.acme answers the CA's HTTP-01 challenge on network.http_port" in result.stdout + result.stderr
