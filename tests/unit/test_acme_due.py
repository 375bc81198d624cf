"""When Sakari orders a new ACME certificate: none yet, ending within tls.acme_renew_before, or short of a domain."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sakari.net import acme

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
MONTH = datetime.timedelta(days=30)


def certificate(path: Path, names: list[str], days_left: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=60)).not_valid_after(NOW + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_missing_certificate_is_ordered(tmp_path):
    assert acme.due(tmp_path / "acme.crt", ["example.org"], NOW, MONTH) == "none yet"


def test_a_certificate_is_renewed_within_the_renewal_window_and_not_before(tmp_path):
    path = tmp_path / "acme.crt"
    assert acme.due(certificate(path, ["example.org"], days_left=31), ["example.org"], NOW, MONTH) is None
    assert acme.due(certificate(path, ["example.org"], days_left=29), ["example.org"], NOW, MONTH).startswith("ends ")


def test_a_certificate_that_does_not_name_a_served_domain_is_replaced(tmp_path):
    path = certificate(tmp_path / "acme.crt", ["example.org"], days_left=80)
    assert acme.due(path, ["example.org", "example.net"], NOW, MONTH) == "does not name example.net"


def test_an_unreadable_file_is_replaced(tmp_path):
    (tmp_path / "acme.crt").write_text("not a certificate")
    assert acme.due(tmp_path / "acme.crt", ["example.org"], NOW, MONTH) == "unreadable"
