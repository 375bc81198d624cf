"""The TLS policy, the local CA and what the server says of its certificate, without a server.

Chains are judged by OpenSSL itself in an in-memory handshake, as a client
that installed the CA would judge them."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sakari.net import certificates, local_ca, tls

NOW = datetime.datetime.now(datetime.UTC)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake in memory; raises ssl.SSLError when the client refuses the server's certificate."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_side=False, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(10):
        for side, out, peer in ((c, c_out, s_in), (s, s_out, c_in)):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            peer.write(out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def trusting(ca_path: Path) -> ssl.SSLContext:
    """A client that trusts only this CA and checks the host name (as Dino does with the system store)."""
    return ssl.create_default_context(cafile=str(ca_path))


def san(name: str) -> x509.GeneralName:
    ip = tls.ip_or_none(name)
    return x509.DNSName(name) if ip is None else x509.IPAddress(ip)


def certificate(
    subject_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    signer: ec.EllipticCurvePrivateKey | None = None,
    issuer: x509.Name | None = None,
    days: float = 30,
) -> x509.Certificate:
    """A server certificate for ``names``; self-signed unless a signer is given."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([san(n) for n in names]), critical=False)
        .sign(signer or subject_key, hashes.SHA256())
    )


def write_pair(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    tls.write_file(cert_path, tls.pem(cert))
    tls.write_file(key_path, tls.key_pem(key), private=True)
    return cert_path, key_path


# --- policy ------------------------------------------------------------------------------------------------
def test_server_context_allows_tls_1_2_and_later_with_forward_secret_ciphers_only(tmp_path: Path) -> None:
    local_ca.ensure(tmp_path, ["localhost"], NOW)
    ctx = tls.server_context(tmp_path / local_ca.SERVER_CERT, tmp_path / local_ca.SERVER_KEY)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    exchanges = {c["name"]: c["kea"] for c in ctx.get_ciphers()}
    # TLS 1.3's suites show "kx-any": their key exchange is always ephemeral.
    assert set(exchanges.values()) <= {"kx-ecdhe", "kx-any"}, exchanges
    assert all("GCM" in name or "CHACHA20" in name for name in exchanges), exchanges

    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.check_hostname, old_client.verify_mode = False, ssl.CERT_NONE
    with pytest.warns(DeprecationWarning):  # as it should be: this client is what the policy shuts out
        old_client.maximum_version = ssl.TLSVersion.TLSv1_1
    old_client.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(ctx, old_client, "localhost")


# --- the local CA ------------------------------------------------------------------------------------------
def test_local_ca_issues_a_certificate_that_a_client_trusting_the_ca_accepts_for_every_served_domain(tmp_path: Path) -> None:
    domains = ["home.lan", "school.example.net", "localhost"]
    ca = local_ca.ensure(tmp_path, domains, NOW)
    assert (tmp_path / local_ca.CA_KEY).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / local_ca.SERVER_KEY).stat().st_mode & 0o777 == 0o600
    server = tls.server_context(tmp_path / local_ca.SERVER_CERT, tmp_path / local_ca.SERVER_KEY)
    for hostname in [*domains, "conference.home.lan"]:
        handshake(server, trusting(ca.path), hostname)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, trusting(ca.path), "other.example.org")


def test_a_server_named_by_its_address_is_accepted_by_a_client_trusting_the_ca(tmp_path: Path) -> None:
    # serve --public --domain 192.168.1.5: phones reach the machine by its address.
    ca = local_ca.ensure(tmp_path, ["192.168.1.5"], NOW)
    server = tls.server_context(tmp_path / local_ca.SERVER_CERT, tmp_path / local_ca.SERVER_KEY)
    handshake(server, trusting(ca.path), "192.168.1.5")
    # A certificate from before, with the address as its common name, which clients refused, is replaced.
    key = ec.generate_private_key(ec.SECP256R1())
    earlier = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "192.168.1.5")]))
        .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=300))
        .add_extension(x509.SubjectAlternativeName([san("192.168.1.5")]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    write_pair(tmp_path, "server", earlier, key)
    local_ca.ensure(tmp_path, ["192.168.1.5"], NOW)
    server = tls.server_context(tmp_path / local_ca.SERVER_CERT, tmp_path / local_ca.SERVER_KEY)
    handshake(server, trusting(ca.path), "192.168.1.5")


def test_local_ca_is_constrained_to_the_served_domains(tmp_path: Path) -> None:
    """A certificate its key signs for another name is refused by a device that trusts the CA."""
    ca = local_ca.ensure(tmp_path, ["home.lan"], NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    for name in ("bank.example.com", "127.0.0.1"):
        rogue = certificate(key, [name], signer=ca.key, issuer=ca.cert.subject)
        cert_path, key_path = write_pair(tmp_path, "rogue", rogue, key)
        with pytest.raises(ssl.SSLCertVerificationError, match="subtree|name constraint"):
            handshake(tls.server_context(cert_path, key_path), trusting(ca.path), name)


def test_local_ca_keeps_its_files_and_renews_the_server_certificate_before_it_expires(tmp_path: Path) -> None:
    ca = local_ca.ensure(tmp_path, ["home.lan"], NOW)
    server_pem = (tmp_path / local_ca.SERVER_CERT).read_bytes()
    assert local_ca.ensure(tmp_path, ["home.lan"], NOW).cert == ca.cert
    assert (tmp_path / local_ca.SERVER_CERT).read_bytes() == server_pem

    later = NOW + local_ca.SERVER_LIFETIME - local_ca.RENEW_BEFORE + datetime.timedelta(days=1)
    assert local_ca.ensure(tmp_path, ["home.lan"], later).cert == ca.cert, "the CA stays: devices trust it"
    renewed = tls.load_chain(tmp_path / local_ca.SERVER_CERT)[0]
    assert renewed.not_valid_after_utc > later + datetime.timedelta(days=300)


def test_local_ca_is_made_anew_for_a_domain_its_constraints_do_not_permit(tmp_path: Path) -> None:
    first = local_ca.ensure(tmp_path, ["home.lan"], NOW)
    second = local_ca.ensure(tmp_path, ["home.lan", "other.lan"], NOW)
    assert second.cert != first.cert
    server = tls.server_context(tmp_path / local_ca.SERVER_CERT, tmp_path / local_ca.SERVER_KEY)
    handshake(server, trusting(second.path), "other.lan")
    # A domain dropped from the configuration: the same CA, a server certificate without it.
    assert local_ca.ensure(tmp_path, ["other.lan"], NOW).cert == second.cert
    assert not tls.covers(tls.load_chain(tmp_path / local_ca.SERVER_CERT)[0], "home.lan")


# --- which certificate, and what is wrong with it --------------------------------------------------------
def test_the_self_signed_certificate_of_an_earlier_version_is_kept_until_it_nears_its_end(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    write_pair(tmp_path, "localhost", certificate(key, ["localhost"], days=30), key)
    kept = certificates.find("", "", tmp_path, ["localhost"], NOW)
    assert (kept.origin, kept.cert_path) == (certificates.SELF_SIGNED, tmp_path / "localhost.crt")
    assert not (tmp_path / local_ca.CA_CERT).exists()

    replaced = certificates.find("", "", tmp_path, ["localhost"], NOW + datetime.timedelta(days=25))
    assert replaced.origin == certificates.LOCAL_CA and replaced.ca is not None
    assert not (tmp_path / "localhost.crt").exists()


def test_problems_of_a_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    kinds = lambda cert, domains, **kw: {p.kind for p in tls.problems(cert, domains, NOW, **kw)}
    assert kinds(certificate(key, ["localhost"]), ["localhost"]) == set()
    assert kinds(certificate(key, ["localhost"], days=-1), ["localhost"]) == {"expired"}
    assert kinds(certificate(key, ["localhost"], days=5), ["localhost"]) == {"expiring"}
    assert kinds(certificate(key, ["localhost"]), ["localhost", "home.lan"]) == {"not-covered"}
    assert kinds(certificate(key, ["*.example.org"]), ["chat.example.org"]) == {"not-publicly-trusted"}
    assert kinds(certificate(key, ["home.lan"]), ["home.lan"], locally_issued=True) == set()


@pytest.mark.parametrize(
    ("domain", "public"),
    [("chat.example.org", True), ("localhost", False), ("xmpp.home.arpa", False), ("school.lan", False),
     ("box", False), ("192.168.1.10", False), ("8.8.8.8", True)],
)
def test_public_names(domain: str, public: bool) -> None:
    assert tls.is_public_name(domain) is public


# --- sakari cert import ------------------------------------------------------------------------------------
def test_import_copies_a_good_certificate_with_its_key_readable_by_the_owner_only(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path = write_pair(tmp_path, "source", certificate(key, ["chat.home.lan"], days=5), key)
    target = tmp_path / "data" / "certs"
    cert, warnings = certificates.import_files(cert_path, key_path, target, ["chat.home.lan"], NOW)
    assert [w.kind for w in warnings] == ["expiring"]
    assert tls.load_chain(target / certificates.IMPORTED_CERT)[0] == cert
    assert (target / certificates.IMPORTED_KEY).stat().st_mode & 0o777 == 0o600
    assert certificates.find("", "", target, ["chat.home.lan"], NOW).origin == certificates.IMPORTED


@pytest.mark.parametrize(
    ("names", "days", "other_key", "reason"),
    [
        (["chat.home.lan"], 30, True, "is not the key of the certificate"),
        (["chat.home.lan"], -1, False, "expired"),
        (["other.lan"], 30, False, "does not name chat.home.lan"),
    ],
)
def test_import_refuses(tmp_path: Path, names: list[str], days: float, other_key: bool, reason: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path = write_pair(tmp_path, "source", certificate(key, names, days=days), key)
    if other_key:
        tls.write_file(key_path, tls.key_pem(ec.generate_private_key(ec.SECP256R1())), private=True)
    with pytest.raises(ValueError, match=reason):
        certificates.import_files(cert_path, key_path, tmp_path / "certs", ["chat.home.lan"], NOW)
    assert not (tmp_path / "certs" / certificates.IMPORTED_CERT).exists()


def test_import_asks_for_a_key_without_a_passphrase(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path = write_pair(tmp_path, "source", certificate(key, ["chat.home.lan"]), key)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    )
    with pytest.raises(ValueError, match="encrypted"):
        certificates.import_files(cert_path, key_path, tmp_path / "certs", ["chat.home.lan"], NOW)
