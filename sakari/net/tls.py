"""Certificates and TLS contexts: a self-signed certificate on first start, and channel-binding data."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("sakari.tls")


def ensure_self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    """Return (certificate, key) for ``domain`` in ``directory``, creating them if absent or expired."""
    cert_path = directory / f"{domain}.crt"
    key_path = directory / f"{domain}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7):
            return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        alt = x509.DNSName(domain)
    sans: list[x509.GeneralName] = [alt]
    if domain != "localhost":
        sans.append(x509.DNSName(f"*.{domain}"))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("event=certificate-created domain=%s path=%s", domain, cert_path)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def end_point_hash(cert_path: Path) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate's hash, SHA-256 unless it is signed with a stronger one."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    algo = cert.signature_hash_algorithm
    name = algo.name if algo is not None and algo.name not in ("md5", "sha1") else "sha256"
    return hashlib.new(name, cert.public_bytes(serialization.Encoding.DER)).digest()
