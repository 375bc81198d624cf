"""Federation test tools: a test CA made with cryptography, and a raw server-to-server stream.

Each federating server has its own domain and its own loopback address
(127.0.0.2, 127.0.0.3…), so addresses, certificates and domains are those of
separate machines while the traffic stays on this one.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import random
import re
import shlex
import socket
import ssl
import threading
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"
WAIT = 10.0


class TestCA:
    """A certificate authority of the test session; peers that load ``path`` trust what it issues."""

    __test__ = False  # a helper, not a test class

    def __init__(self, directory: Path, name: str = "Sakari federation test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, domain: str, *more: str) -> tuple[Path, Path]:
        """A server certificate for ``domain`` and the ``more`` domains it also serves (DNS-IDs, RFC 6125), usable
        for TLS servers and clients."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in (domain, *more)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{domain}.crt", self.directory / f"{domain}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return cert_path, key_path


def toml_table(entries: dict[str, str]) -> str:
    return "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in entries.items()) + " }"


class RawServerStream:
    """A server-to-server stream written by hand: what a misbehaving or lying server would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frm: str, to: str) -> None:
        self.reader, self.writer = reader, writer
        self.frm, self.to = frm, to
        self.received = ""

    @classmethod
    async def connect(cls, host: str, port: int, frm: str, to: str) -> RawServerStream:
        reader, writer = await asyncio.open_connection(host, port)
        stream = cls(reader, writer, frm, to)
        stream.open()
        return stream

    def open(self) -> None:
        self.send(
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' xmlns:stream='http://etherx.jabber.org/streams'"
            f" xmlns:db='{NS_DIALBACK}' from='{self.frm}' to='{self.to}' version='1.0'>"
        )

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def read_until(self, pattern: str, timeout: float = WAIT) -> str:
        """Read until ``pattern`` (a regex) is in what arrived since the last match; returns that text."""
        async def read() -> str:
            while not (m := re.search(pattern, self.received, re.S)):
                data = await self.reader.read(65536)
                if not data:
                    raise AssertionError(f"the stream ended before {pattern!r}; received {self.received[-600:]!r}")
                self.received += data.decode()
            seen, self.received = self.received[: m.end()], self.received[m.end():]
            return seen

        return await asyncio.wait_for(read(), timeout)

    async def starttls(self, cert: tuple[Path, Path] | None = None) -> None:
        await self.read_until(r"</stream:features>")
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self.read_until(r"<proceed[^>]*/>")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            ctx.load_cert_chain(*cert)
        await self.writer.start_tls(ctx, server_hostname=self.to)
        self.open()

    async def sasl_external(self) -> str:
        """Authenticate with the certificate; returns the features that answered (to look at them)."""
        features = await self.read_until(r"</stream:features>")
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{base64.b64encode(self.frm.encode()).decode()}</auth>")
        await self.read_until(r"<success[^>]*/>")
        self.open()
        await self.read_until(r"</stream:features>|<stream:features/>")
        return features

    async def stream_error(self) -> str:
        text = await self.read_until(r"</stream:error>")
        found = re.search(r"<stream:error><([a-z-]+)", text)
        assert found, text
        return found.group(1)

    def close(self) -> None:
        self.writer.close()


class TestDNS:
    """A DNS server for the tests' own domains (UDP, dnspython): SRV and A records, NXDOMAIN for the rest.

    Sakari asks it through ``s2s.nameservers``, Prosody through a resolv.conf
    given to its resolver, ejabberd through its Erlang resolver configuration
    (SRV records) and a resolv.conf of its own (addresses, :func:`in_own_resolver`),
    so all find each other by SRV records as on the Internet.
    """

    __test__ = False

    def __init__(self) -> None:
        self._records: dict[str, list[tuple[str, str]]] = {}  # name → [(type, rdata)]
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Port 53, since a resolv.conf names no port; an address of its own, since test runs may overlap.
        for _ in range(50):
            self.address = f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}"
            try:
                self._sock.bind((self.address, 53))
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free loopback address for the test DNS server")
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)

    def add(self, name: str, rdtype: str, rdata: str) -> None:
        self._records.setdefault(dns.name.from_text(name).to_text().lower(), []).append((rdtype, rdata))

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            response = dns.message.make_response(query)
            question = query.question[0]
            # Names are case-insensitive (RFC 4343); resolvers may mix the case of a query (DNS 0x20).
            records = self._records.get(question.name.to_text().lower())
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                wanted = dns.rdatatype.to_text(question.rdtype)
                rdatas = [r for t, r in records if t == wanted]
                if rdatas:
                    response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", wanted, rdatas))
            self._sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._sock.close()


def in_own_resolver(resolv_conf: Path, command: list[str]) -> list[str]:
    """``command`` in a mount namespace of its own where /etc/resolv.conf is ``resolv_conf``: a peer that looks
    names up with the system's resolver (ejabberd's address look-ups) asks the test's DNS server, and nothing
    else changes."""
    quoted = " ".join(shlex.quote(c) for c in command)
    return ["unshare", "--mount", "sh", "-c", f"mount --bind {shlex.quote(str(resolv_conf))} /etc/resolv.conf && exec {quoted}"]
