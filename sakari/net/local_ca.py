"""A small certificate authority in the data directory, for a server without a public name.

Dino, Kaidan and Conversations refuse a self-signed certificate and offer no
way to accept one, but they accept a certificate issued by a CA the device
trusts. So when no certificate is configured, Sakari makes a CA of its own,
signs the server's certificate with it, and the operator installs the CA once
on each phone and computer (docs/operator-guide.md, "Certificates"); it is
offered for download on the HTTP port.

The CA is limited by name constraints (RFC 5280 §4.2.1.10) to the served
domains and their subdomains: a device that trusts it trusts it for these
names only, so whoever steals its key cannot pose as any other site to that
device. Android, iOS, Windows, macOS, OpenSSL and GnuTLS (Dino) all enforce
them. When a domain is added that the constraints do not permit, a new CA is
made and must be trusted anew.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sakari.net import tls

log = logging.getLogger("sakari.tls")

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
CA_LIFETIME = datetime.timedelta(days=3650)  # installing a CA on every device is work: not often
SERVER_LIFETIME = datetime.timedelta(days=365)  # Apple's systems refuse server certificates valid for over 825 days
RENEW_BEFORE = datetime.timedelta(days=30)
BACKDATE = datetime.timedelta(minutes=5)  # a client whose clock is a little behind still accepts a new certificate
# Permitted subtrees that match nothing, for a name type no served domain uses: without one, that type would be
# unconstrained (RFC 5280 constrains each name type only by subtrees of its own type).
NO_DNS = x509.DNSName("invalid")  # RFC 2606: never a real name
NO_IP = (x509.IPAddress(ipaddress.ip_network("0.0.0.0/32")), x509.IPAddress(ipaddress.ip_network("::/128")))

DOWNLOAD_PATH = "/ca.crt"
CONTENT_TYPE = "application/x-x509-ca-cert"  # the type Android, iOS and browsers offer to install as a CA


@dataclass(frozen=True, slots=True)
class LocalCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path


def ensure(directory: Path, domains: list[str], now: datetime.datetime) -> LocalCA:
    """The CA in ``directory`` and its server certificate (``SERVER_CERT``, ``SERVER_KEY``) for ``domains``:
    each made, or made anew, when missing, expiring, or not covering every domain."""
    ca = _load(directory)
    if ca is None or ca.cert.not_valid_after_utc - now < RENEW_BEFORE or not _permits(ca.cert, domains):
        if ca is not None:
            log.warning(
                "event=local-ca-replaced old_sha256=%s hint=\"it expires or does not permit %s: devices must trust the new one\"",
                tls.fingerprint(ca.cert), ", ".join(domains),
            )
        ca = _make_ca(directory, domains, now)
    if _needs_server_certificate(directory / SERVER_CERT, ca, domains, now):
        _issue(directory, ca, domains, now)
    return ca


def _load(directory: Path) -> LocalCA | None:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not (cert_path.exists() and key_path.exists()):
        return None
    key = tls.load_key(key_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not the key of a CA that Sakari made")  # noqa: TRY004 - a bad file, reported as one
    return LocalCA(tls.load_chain(cert_path)[0], key, cert_path)


def _server_names(domains: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for domain in domains:
        ip = tls.ip_or_none(domain)
        if ip is not None:
            names.append(x509.IPAddress(ip))
            continue
        names.append(x509.DNSName(domain))
        if domain != "localhost":
            names.append(x509.DNSName(f"*.{domain}"))  # services such as conference.DOMAIN share the certificate
    return names


def _permits(ca_cert: x509.Certificate, domains: list[str]) -> bool:
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False  # not one of ours
    subtrees = constraints.permitted_subtrees or []
    dns = [str(n.value).lower() for n in subtrees if isinstance(n, x509.DNSName)]
    networks = [n.value for n in subtrees if isinstance(n, x509.IPAddress)]
    for domain in domains:
        ip = tls.ip_or_none(domain)
        if ip is not None:
            if not any(ip in net for net in networks):
                return False
        elif not any(domain == s or domain.endswith("." + s) for s in dns):
            return False
    return True


def _ca_common_name(domain: str, now: datetime.datetime) -> str:
    """At most the 64 bytes RFC 5280 allows a common name: a long domain (an onion name) is cut short."""
    date = f" ({now:%Y-%m-%d})"
    label = f"Sakari local CA for {domain}"
    return (label if len(label) + len(date) <= 64 else label[: 61 - len(date)] + "...") + date


def _make_ca(directory: Path, domains: list[str], now: datetime.datetime) -> LocalCA:
    key = ec.generate_private_key(ec.SECP256R1())
    # The date tells two CAs of the same domain apart in a device's list of trusted certificates.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sakari"),
        x509.NameAttribute(NameOID.COMMON_NAME, _ca_common_name(domains[0], now)),
    ])
    dns: list[x509.GeneralName] = [x509.DNSName(d) for d in domains if tls.ip_or_none(d) is None] or [NO_DNS]
    ips: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_network(ip)) for d in domains if (ip := tls.ip_or_none(d)) is not None
    ] or list(NO_IP)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.NameConstraints(permitted_subtrees=dns + ips, excluded_subtrees=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    tls.write_file(directory / CA_KEY, tls.key_pem(key), private=True)
    tls.write_file(directory / CA_CERT, tls.pem(cert))
    log.info("event=local-ca-created path=%s", directory / CA_CERT)
    return LocalCA(cert, key, directory / CA_CERT)


def _needs_server_certificate(path: Path, ca: LocalCA, domains: list[str], now: datetime.datetime) -> bool:
    key_path = path.with_name(SERVER_KEY)
    if not path.exists() or not key_path.exists():
        return True
    cert = tls.load_chain(path)[0]
    if not tls.key_matches(cert, tls.load_key(key_path)):
        return True  # a crash between writing the two files
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return True  # issued by an earlier CA
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        cert.not_valid_after_utc - now < RENEW_BEFORE or set(alt) != set(_server_names(domains))
        or cert.subject != _server_subject(domains)  # one with an address as its common name, which clients refused
    )


def _server_subject(domains: list[str]) -> x509.Name:
    """The domain as common name; the names clients check are in subjectAltName. No common name for an address
    (serve --public --domain 192.168.1.5): clients check a common name that looks like a host name against the CA's
    DNS constraints, which permit no such name ("permitted subtree violation" in OpenSSL; Dino says the server could
    not prove that it is the address). None either for a domain longer than the 64 characters RFC 5280 allows."""
    first = domains[0]
    if tls.ip_or_none(first) is not None or len(first.encode()) > 64:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)])


def _issue(directory: Path, ca: LocalCA, domains: list[str], now: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _server_subject(domains)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_LIFETIME, ca.cert.not_valid_after_utc))
        # RFC 5280 §4.2.1.6: critical when the subject is empty, since the names are only there.
        .add_extension(x509.SubjectAlternativeName(_server_names(domains)), critical=not subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, encipher_only=False, decipher_only=False), critical=True
        )
        # clientAuth too: federation presents the same certificate as a client certificate.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    tls.write_file(directory / SERVER_KEY, tls.key_pem(key), private=True)
    tls.write_file(directory / SERVER_CERT, tls.pem(cert))
    log.info("event=certificate-issued issuer=local-ca domains=%s expires=%s", ",".join(domains), f"{cert.not_valid_after_utc:%Y-%m-%d}")


class Download:
    """The CA certificate at ``DOWNLOAD_PATH`` on the HTTP port, while it issued the certificate in use."""

    def __init__(self, domain: str) -> None:
        self.ca: LocalCA | None = None
        safe = "".join(c if c.isascii() and (c.isalnum() or c in ".-") else "_" for c in domain)  # a header's text
        self.filename = f"sakari-ca-{safe}.crt"

    async def handle(self, request: web.Request) -> web.Response:
        if self.ca is None:
            raise web.HTTPNotFound(text="this server's certificate is not issued by a local CA\n")
        return web.Response(
            body=tls.pem(self.ca.cert),
            content_type=CONTENT_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{self.filename}"', "X-Content-Type-Options": "nosniff"},
        )
