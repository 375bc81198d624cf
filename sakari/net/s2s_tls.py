"""TLS for federation: contexts for both directions, and RFC 6125 name checks of a peer's certificate.

Outbound, the peer's certificate is checked by ``ssl`` itself (PKIX against
the trust store and the hostname check, which follows RFC 6125 for DNS-IDs)
with the peer's *domain* as reference identity, never an SRV target.
Inbound, a connecting server's certificate is requested and, if it verifies,
its names are matched here against the domain its stream header claims, so
SASL EXTERNAL is offered only when the certificate proves that domain.

``ssl`` has no verify callback: a server context that requests client
certificates fails the handshake of a peer whose certificate does not
verify. So a Sakari server presents its own certificate only when it
verifies, as a client certificate, against its own trust store
(:func:`verifies_as_client`); otherwise it goes without and uses dialback.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from sakari.net import tls


def _trust(ctx: ssl.SSLContext, ca_file: str) -> None:
    ctx.set_default_verify_paths()  # the system store (SSL_CERT_FILE / SSL_CERT_DIR where set)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)


def server_context(cert: Path, key: Path, ca_file: str) -> ssl.SSLContext:
    """Inbound: our certificate; a connecting server's certificate is asked for and verified if sent."""
    ctx = tls.server_context(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    _trust(ctx, ca_file)
    return ctx


def client_context(cert: Path | None, key: Path | None, ca_file: str, verify: bool) -> ssl.SSLContext:
    """Outbound: ``verify`` checks the peer (PKIX and its name); ``cert``: ours, presented to the peer."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    if verify:
        _trust(ctx, ca_file)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def matches(peercert: dict[str, Any] | None, domain: str) -> bool:
    """RFC 6125 §6.4: a DNS-ID equal to the domain, or a wildcard in its left-most label only; the
    Common Name only when there is no DNS-ID. ``peercert`` is ``getpeercert()`` of a verified chain."""
    if not peercert:
        return False
    names = [v.lower() for k, v in peercert.get("subjectAltName", ()) if k == "DNS"]
    if not names:
        names = [v.lower() for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
    domain = domain.lower()
    for name in names:
        if name == domain:
            return True
        if name.startswith("*.") and "." in domain and domain.split(".", 1)[1] == name[2:]:
            return True
    return False


def verifies_as_client(cert: Path, key: Path, ca_file: str) -> bool:
    """Does our certificate verify as a client certificate against our trust store? A handshake in memory
    with ``ssl`` itself decides, so the answer is the one a peer with the same store would give."""
    server = tls.server_context(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED
    _trust(server, ca_file)
    client = client_context(cert, key, ca_file, verify=False)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, side, out, peer_in in (("c", c, c_out, s_in), ("s", s, s_out, c_in)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return False
            data = out.read()
            if data:
                peer_in.write(data)
        if done["c"] and done["s"]:
            # TLS 1.3: the server judges the client's certificate after the client thinks it is done.
            try:
                s.read(1)
            except ssl.SSLWantReadError:
                return True
            except ssl.SSLError:
                return False
    return False
