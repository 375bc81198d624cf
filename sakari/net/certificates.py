"""Where the server's certificate comes from, what is said about it at start, and ``sakari cert import``.

The first of these is used:

1. ``tls.certificate`` and ``tls.key`` from the configuration;
1a. with ``tls.acme`` on, the certificate ACME got (``acme``), once there is one;
2. a certificate imported into the data directory (``sakari cert import``,
   e.g. certbot's fullchain.pem and privkey.pem);
3. the self-signed certificate that Sakari made before it had a local CA
   (``certs/DOMAIN.crt``), while it is valid for more than a week and names
   every served domain. Its users accepted it in their clients (Gajim,
   Conversations and others remember the choice); replacing it unasked would
   make each of those clients ask again, or fail. A warning at start says how
   to switch at once; when it nears its end, the local CA's takes its place;
4. a certificate of the local CA (``local_ca``), made on first start.

Copies, not references to certbot's files: certbot's keys are readable by
root only, and a copy owned by the data directory's owner is readable by the
server wherever certbot keeps its files. A renewal hook imports the new files
and sends SIGHUP.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from sakari.net import local_ca, tls

log = logging.getLogger("sakari.tls")

DIRECTORY = "certs"  # in the data directory
IMPORTED_CERT, IMPORTED_KEY = "imported.crt", "imported.key"
T = TypeVar("T")
SELF_SIGNED_RENEW = datetime.timedelta(days=7)  # when earlier versions made a new self-signed certificate

CONFIGURED, IMPORTED, SELF_SIGNED, LOCAL_CA, ACME = "configured", "imported", "self-signed", "local-ca", "acme"


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path
    origin: str  # CONFIGURED, ACME, IMPORTED, SELF_SIGNED or LOCAL_CA
    ca: local_ca.LocalCA | None = None  # the local CA that issued it


def find(configured: str, configured_key: str, directory: Path, domains: list[str], now: datetime.datetime) -> ServerCertificate:
    """The certificate to use (see the module's documentation); the local CA's is made or renewed here."""
    if configured:
        return ServerCertificate(Path(configured), Path(configured_key or configured), CONFIGURED)
    if (directory / IMPORTED_CERT).exists():
        return ServerCertificate(directory / IMPORTED_CERT, directory / IMPORTED_KEY, IMPORTED)
    old = _self_signed(directory, domains, now)
    if old is not None:
        return old
    ca = local_ca.ensure(directory, domains, now)
    return ServerCertificate(directory / local_ca.SERVER_CERT, directory / local_ca.SERVER_KEY, LOCAL_CA, ca)


def _self_signed(directory: Path, domains: list[str], now: datetime.datetime) -> ServerCertificate | None:
    cert_path, key_path = directory / f"{domains[0]}.crt", directory / f"{domains[0]}.key"
    if not (cert_path.exists() and key_path.exists()):
        return None
    cert = tls.load_chain(cert_path)[0]
    if cert.not_valid_after_utc - now > SELF_SIGNED_RENEW and all(tls.covers(cert, d) for d in domains):
        return ServerCertificate(cert_path, key_path, SELF_SIGNED)
    cert_path.unlink()
    key_path.unlink()
    log.info("event=self-signed-certificate-retired path=%s hint=\"replaced by a certificate of the local CA\"", cert_path)
    return None


def report(chosen: ServerCertificate, domains: list[str], now: datetime.datetime, download_url: str) -> None:
    """Log the certificate in use and everything wrong with it; the local CA with where to get it."""
    leaf = tls.load_chain(chosen.cert_path)[0]
    log.info(
        "event=certificate origin=%s path=%s sha256=%s expires=%s",
        chosen.origin, chosen.cert_path, tls.fingerprint(leaf), f"{leaf.not_valid_after_utc:%Y-%m-%d}",
    )
    # An expired certificate is used all the same, as Prosody and ejabberd do: refusing to start would cut off
    # every user, including those whose clients accept it and servers that federate by dialback.
    for problem in tls.problems(leaf, domains, now, locally_issued=chosen.origin == LOCAL_CA):
        level = logging.ERROR if problem.kind == "expired" else logging.WARNING
        log.log(level, "event=certificate-%s path=%s hint=\"the certificate %s\"", problem.kind, chosen.cert_path, problem.text)
    if chosen.origin == SELF_SIGNED:
        log.warning(
            "event=certificate-self-signed path=%s hint=\"Dino, Kaidan and Conversations refuse a self-signed certificate; "
            "to use the local CA instead (trusted once per device), delete %s and %s and restart or send SIGHUP\"",
            chosen.cert_path, chosen.cert_path, chosen.key_path,
        )
    if chosen.ca is not None:
        log.info(
            "event=local-ca certificate=%s sha256=%s download=%s hint=\"install this CA on each device that connects "
            "(docs/operator-guide.md, Certificates) and compare the fingerprint\"",
            chosen.ca.path, tls.fingerprint(chosen.ca.cert), download_url or "(the HTTP port is closed)",
        )


def import_files(cert_source: Path, key_source: Path, directory: Path, domains: list[str], now: datetime.datetime) -> tuple[x509.Certificate, list[tls.Problem]]:
    """Check a certificate issued elsewhere and copy it with its key into ``directory``. Raises ValueError with
    every reason to refuse it; returns the certificate and what to warn about."""
    chain = _read(cert_source, tls.load_chain, "certificate")
    key = _read(key_source, tls.load_key, "private key")
    if not tls.key_matches(chain[0], key):
        raise ValueError(f"{key_source} is not the key of the certificate in {cert_source}")
    problems = tls.problems(chain[0], domains, now)
    refusals = [p.text for p in problems if p.refuses_import]
    if refusals:
        raise ValueError(f"{cert_source}: the certificate " + "; it ".join(refusals))
    tls.write_file(directory / IMPORTED_KEY, tls.key_pem(key), private=True)
    tls.write_file(directory / IMPORTED_CERT, b"".join(tls.pem(c) for c in chain))
    _give_to_owner_of(directory.parent, [directory, directory / IMPORTED_KEY, directory / IMPORTED_CERT])
    return chain[0], [p for p in problems if not p.refuses_import]


def _read(path: Path, load: Callable[[Path], T], what: str) -> T:
    try:
        return load(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from None
    except TypeError:  # cryptography's answer to an encrypted key without a password
        raise ValueError(f"{path}: the key is encrypted; give it without a passphrase") from None
    except ValueError:
        raise ValueError(f"{path}: no PEM {what} in it") from None


def _give_to_owner_of(data_dir: Path, paths: list[Path]) -> None:
    """Run as root (certbot's renewal hooks are), the copies would be root's and unreadable by the server."""
    if os.geteuid() != 0:
        return
    owner = data_dir.stat()
    for path in paths:
        os.chown(path, owner.st_uid, owner.st_gid)
