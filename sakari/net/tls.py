"""TLS contexts with the default policy, what the server's certificate is checked for, and channel-binding data."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

# TLS 1.2 suites with an ephemeral key exchange and an AEAD cipher (Mozilla's "intermediate" list without DHE,
# which would need parameters of our own); TLS 1.3's suites are all forward-secret and always enabled.
FORWARD_SECRET_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
EXPIRY_WARNING = datetime.timedelta(days=14)
# Names that no public certificate authority can certify (RFC 6761, RFC 8375, and common LAN suffixes).
PRIVATE_SUFFIXES = ("localhost", "local", "lan", "home", "home.arpa", "internal", "intranet", "corp", "test", "example", "invalid")


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(FORWARD_SECRET_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def end_point_hash(cert_path: Path) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate's hash, SHA-256 unless it is signed with a stronger one."""
    cert = load_chain(cert_path)[0]
    algo = cert.signature_hash_algorithm
    name = algo.name if algo is not None and algo.name not in ("md5", "sha1") else "sha256"
    return hashlib.new(name, cert.public_bytes(serialization.Encoding.DER)).digest()


def load_chain(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM file, the server's own first (as in certbot's fullchain.pem)."""
    return x509.load_pem_x509_certificates(path.read_bytes())


def load_key(path: Path) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate as phones and browsers show it: AB:CD:…"""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_file(path: Path, data: bytes, private: bool = False) -> None:
    """Write by renaming a complete file into place, so a reload never reads half of one; a private key is
    0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # os.open's mode applies only to a file it creates
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ip_or_none(domain: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(domain)
    except ValueError:
        return None


def name_matches(name: str, domain: str) -> bool:
    """RFC 6125 §6.4: a DNS-ID equal to the domain, or a wildcard in its left-most label only."""
    name, domain = name.lower(), domain.lower()
    if name == domain:
        return True
    return name.startswith("*.") and "." in domain and domain.split(".", 1)[1] == name[2:]


def covers(cert: x509.Certificate, domain: str) -> bool:
    """Does the certificate name ``domain``? Its Common Name counts only when it has no DNS names."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alt = x509.SubjectAlternativeName([])
    ip = ip_or_none(domain)
    if ip is not None:
        return ip in alt.get_values_for_type(x509.IPAddress)
    names = alt.get_values_for_type(x509.DNSName) or [
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    return any(name_matches(name, domain) for name in names)


def is_public_name(domain: str) -> bool:
    """Could a public certificate authority certify this domain? Not for LAN names, loopback or private
    addresses: there a locally issued certificate is the right one."""
    ip = ip_or_none(domain)
    if ip is not None:
        return ip.is_global
    domain = domain.lower().rstrip(".")
    return "." in domain and not any(domain == s or domain.endswith("." + s) for s in PRIVATE_SUFFIXES)


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # expired, not-yet-valid, not-covered, expiring, not-publicly-trusted
    text: str

    @property
    def refuses_import(self) -> bool:
        """A certificate with this problem fails every client now: ``cert import`` refuses it."""
        return self.kind in ("expired", "not-yet-valid", "not-covered")


def problems(cert: x509.Certificate, domains: list[str], now: datetime.datetime, locally_issued: bool = False) -> list[Problem]:
    """What is wrong with the server's certificate for these domains, as of ``now``."""
    found = []
    if cert.not_valid_after_utc <= now:
        found.append(Problem("expired", f"expired on {cert.not_valid_after_utc:%Y-%m-%d}: clients refuse it"))
    elif cert.not_valid_after_utc - now < EXPIRY_WARNING:
        days = (cert.not_valid_after_utc - now).days
        found.append(Problem("expiring", f"expires on {cert.not_valid_after_utc:%Y-%m-%d}, in {days} days: renew it"))
    if cert.not_valid_before_utc > now:
        found.append(Problem("not-yet-valid", f"is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    missing = [d for d in domains if not covers(cert, d)]
    if missing:
        found.append(Problem("not-covered", f"does not name {', '.join(missing)}: clients of that domain refuse it"))
    public = [d for d in domains if is_public_name(d)]
    if public and (locally_issued or is_self_signed(cert)):
        found.append(
            Problem(
                "not-publicly-trusted",
                f"is {'issued by the local CA' if locally_issued else 'self-signed'} but {', '.join(public)} "
                "is a public name: clients of people who did not install the CA refuse it; use a certificate from a "
                "public CA (sakari cert import, or tls.certificate)",
            )
        )
    return found
