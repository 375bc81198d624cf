"""The server's certificate against a real server: the local CA of the quick start (trusted the way a device
that installed it trusts it), its download, ``sakari cert import`` with a reload on SIGHUP that keeps the
open sessions, the self-signed certificate of an earlier version, and the warnings at start."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from federation_helpers import TestCA
from sakari_process import HOST, SakariServer, run_cli
from xmpp_harness import is_message

CERTS = "certs"


def served_certificate(
    server: SakariServer, context: ssl.SSLContext | None = None, hostname: str = "localhost", port: int | None = None
) -> bytes:
    """The DER certificate a direct TLS port presents (c2s's unless ``port``); with ``context``, as that client
    judges it."""
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((HOST, port or server.c2s_tls_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True)


def wait_for_log(server: SakariServer, text: str, since: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log[since:]:
            if text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the log:\n{server.log_tail()}")


def http_get(server: SakariServer, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{server.http_port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_quick_start_certificate_is_issued_by_a_local_ca_that_is_printed_and_offered_for_download(make_server) -> None:
    server = make_server(name="local-ca-server")
    ca_path = server.data_dir / CERTS / "ca.crt"
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    fingerprint = ca.fingerprint(hashes.SHA256()).hex(":").upper()
    line = wait_for_log(server, "event=local-ca ", 0)
    assert f"certificate={ca_path}" in line and f"sha256={fingerprint}" in line, line
    assert (server.data_dir / CERTS / "ca.key").stat().st_mode & 0o777 == 0o600

    status, content_type, body = http_get(server, "/ca.crt")
    assert (status, content_type, body) == (200, "application/x-x509-ca-cert", ca_path.read_bytes())

    # A client that trusts only this CA and checks the name accepts the server: what Dino does once it is installed.
    served_certificate(server, ssl.create_default_context(cafile=str(ca_path)))
    served_certificate(server, ssl.create_default_context(cafile=str(ca_path)), port=server.https_port)  # uploads
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(server, ssl.create_default_context())


def test_local_ca_certificate_covers_every_served_domain(make_server) -> None:
    server = make_server(config='[host."school.lan"]\n', name="two-domain-server")
    trusting = ssl.create_default_context(cafile=str(server.data_dir / CERTS / "ca.crt"))
    for hostname in ("localhost", "school.lan"):
        served_certificate(server, trusting, hostname)


async def test_imported_certificate_is_served_after_sighup_while_open_sessions_go_on(make_server, session_for, tmp_path) -> None:
    server = make_server(name="reload-server", accounts=2)
    session = session_for(server)
    alice, bob = server.new_account(), server.new_account()
    alice_client, bob_client = await session.login(alice, label="alice"), await session.login(bob, label="bob")
    before = served_certificate(server)
    assert served_certificate(server, port=server.https_port) == before

    test_ca = TestCA(tmp_path / "public-ca", name="A public CA of the test")
    cert_path, key_path = test_ca.issue("localhost")
    result = run_cli("cert", "import", str(cert_path), str(key_path), "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    assert (server.data_dir / CERTS / "imported.key").stat().st_mode & 0o777 == 0o600
    assert served_certificate(server) == before, "used from the next start or SIGHUP only"

    mark = len(server.log)
    server.proc.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=certificate-reloaded changed=yes", mark)
    imported = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(serialization.Encoding.DER)
    trusting = ssl.create_default_context(cafile=str(test_ca.path))
    assert served_certificate(server, trusting) == imported
    assert served_certificate(server, trusting, port=server.https_port) == imported, "the HTTPS port (uploads) too"

    alice_client.message(bob.jid, "still here after the reload")
    await bob_client.expect(is_message(body="still here after the reload"))
    assert alice_client.connected and bob_client.connected


def test_cert_import_refuses_a_certificate_for_another_domain_and_a_key_that_does_not_match(tmp_path) -> None:
    test_ca = TestCA(tmp_path / "ca")
    other_cert, other_key = test_ca.issue("elsewhere.example.org")
    cert_path, _ = test_ca.issue("localhost")
    data_dir = tmp_path / "data"
    for cert, key, reason in ((other_cert, other_key, "does not name localhost"), (cert_path, other_key, "is not the key")):
        result = run_cli("cert", "import", str(cert), str(key), "--data-dir", str(data_dir))
        assert result.returncode == 2 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (data_dir / CERTS / "imported.crt").exists()


def self_signed(directory: Path, domain: str, days: float) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{domain}.crt", directory / f"{domain}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def test_self_signed_certificate_of_an_earlier_version_keeps_working_with_a_warning(make_server) -> None:
    server = make_server(name="old-data-server", start=False)
    cert_path, _ = self_signed(server.data_dir / CERTS, "localhost", days=200)
    server.start()
    assert served_certificate(server) == x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert "delete" in wait_for_log(server, "event=certificate-self-signed", 0)
    assert http_get(server, "/ca.crt")[0] == 404, "no CA is offered that the server does not use"


@pytest.mark.parametrize(("days", "event", "level"), [(5, "event=certificate-expiring", "WARNING"), (-1, "event=certificate-expired", "ERROR")])
def test_start_warns_of_a_self_signed_certificate_on_a_public_name_and_of_its_end(make_server, tmp_path, days, event, level) -> None:
    """An expired certificate is used all the same (as Prosody and ejabberd do), with an error in the log."""
    cert_path, key_path = self_signed(tmp_path / "etc", "chat.example.org", days)
    server = SakariServer(
        tmp_path / "public" / "data", config=f'[tls]\ncertificate = "{cert_path}"\nkey = "{key_path}"\n',
        name="public-name-server", domain="chat.example.org",
    )
    try:
        server.start()
        assert f" {level} " in wait_for_log(server, event, 0)
        assert "sakari cert import" in wait_for_log(server, "event=certificate-not-publicly-trusted", 0)
        configured = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(serialization.Encoding.DER)
        assert served_certificate(server, hostname="chat.example.org") == configured
    finally:
        server.ensure_stopped()
