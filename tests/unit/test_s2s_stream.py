"""Server-to-server streams, sans-IO: an outbound machine talks to an inbound machine through byte pipes.

TLS is simulated: when a machine asks for it, the test tells it the handshake
is done and says whether the peer's certificate verified.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import pytest

from sakari.stream.s2s import (
    NS_DIALBACK,
    Authenticated,
    InboundStream,
    KeyChecked,
    OutboundStream,
    S2SSettings,
    StanzaReceived,
    StartTLS,
    StreamEnded,
    VerifyKey,
    _db,
    dialback_key,
)
from sakari.xml.element import Element

A, B = "a.example", "b.example"
SECRETS = {A: b"secret of a", B: b"secret of b"}


def settings(domain: str, **kw) -> S2SSettings:
    return S2SSettings(serves=lambda d: d == domain, secret=SECRETS[domain], **kw)


@dataclass
class Link:
    """An outbound stream from one server and the inbound stream it reaches on the other."""

    out: OutboundStream
    inn: InboundStream
    cert_ok: bool  # does the outbound side's certificate verify at the inbound side?
    wire_out: list[bytes] = field(default_factory=list)  # what the outbound side wrote
    events_out: list = field(default_factory=list)
    events_in: list = field(default_factory=list)

    def pump(self) -> None:
        for _ in range(100):
            moved = False
            data = self.out.data_to_send()
            if data:
                moved = True
                self.wire_out.append(data)
                for ev in self.inn.receive(data):
                    self.events_in.append(ev)
                    if isinstance(ev, StartTLS):
                        self.inn.tls_started(lambda d: self.cert_ok and d == self.out.local)
            data = self.inn.data_to_send()
            if data:
                moved = True
                for ev in self.out.receive(data):
                    self.events_out.append(ev)
                    if isinstance(ev, StartTLS):
                        self.out.tls_started(True)
            if not moved:
                return
        raise AssertionError("the streams never settled")

    def of(self, side: str, kind: type) -> list:
        return [e for e in (self.events_out if side == "out" else self.events_in) if isinstance(e, kind)]


def link(frm: str, to: str, cert_ok: bool, out_kw: dict | None = None, in_kw: dict | None = None) -> Link:
    out = OutboundStream(settings(frm, **(out_kw or {})), frm, to, present_certificate=True)
    inn = InboundStream(settings(to, **(in_kw or {})))
    lk = Link(out, inn, cert_ok)
    out.open()
    lk.pump()
    return lk


def answer_dialback(lk: Link) -> Link:
    """The receiving side asks the authoritative server (the originating one) over a stream of its own."""
    (ask,) = lk.of("in", VerifyKey)
    back = link(lk.inn.local, lk.out.local, cert_ok=False)  # the verification stream, itself by dialback
    back.out.verify(ask.local, ask.stream_id, ask.key)
    back.pump()
    (checked,) = back.of("out", KeyChecked)
    assert (checked.local, checked.remote, checked.stream_id) == (ask.local, ask.remote, ask.stream_id)
    lk.events_in += lk.inn.dialback_checked(checked.remote, checked.local, checked.valid)
    lk.pump()
    return lk


def message(frm: str, to: str, body: str = "hi") -> Element:
    m = Element("message", attrs={"from": frm, "to": to, "type": "chat"})
    m.add("body", text=body)
    return m


def stream_error(data: bytes) -> str | None:
    found = re.search(rb"<(?:stream:)?error[^>]*><([a-z-]+) xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"", data)
    return found.group(1).decode() if found else None


# --- keys -------------------------------------------------------------------------------


def test_dialback_key_is_hex_hmac_sha256_bound_to_both_domains_and_the_stream() -> None:
    key = dialback_key(b"s3cr3t", "example.net", "example.com", "D60000229F")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    others = [
        dialback_key(b"other", "example.net", "example.com", "D60000229F"),
        dialback_key(b"s3cr3t", "example.org", "example.com", "D60000229F"),
        dialback_key(b"s3cr3t", "example.net", "example.org", "D60000229F"),
        dialback_key(b"s3cr3t", "example.net", "example.com", "D60000229G"),
    ]
    assert key not in others and len(set(others)) == 4


# --- authentication -----------------------------------------------------------------------


def test_a_verified_certificate_authenticates_with_sasl_external_after_starttls() -> None:
    lk = link(A, B, cert_ok=True)
    assert [(e.local, e.remote, e.method) for e in lk.of("in", Authenticated)] == [(B, A, "EXTERNAL")]
    assert [(e.local, e.remote, e.method) for e in lk.of("out", Authenticated)] == [(A, B, "EXTERNAL")]
    assert lk.out.tls_active and lk.inn.tls_active
    wire = b"".join(lk.wire_out)
    assert wire.index(b"<starttls") < wire.index(b"mechanism='EXTERNAL'")


def test_without_a_verified_certificate_dialback_is_checked_with_the_authoritative_server() -> None:
    lk = link(A, B, cert_ok=False)
    assert not lk.of("out", Authenticated) and len(lk.of("in", VerifyKey)) == 1
    assert b"EXTERNAL" not in b"".join(lk.wire_out)
    answer_dialback(lk)
    assert [(e.local, e.remote, e.method) for e in lk.of("in", Authenticated)] == [(B, A, "dialback")]
    assert [e.method for e in lk.of("out", Authenticated)] == ["dialback"]


def test_a_forged_dialback_key_ends_the_stream_with_not_authorized() -> None:
    lk = link(A, B, cert_ok=False)
    (ask,) = lk.of("in", VerifyKey)
    back = link(B, A, cert_ok=False)
    back.out.verify(ask.local, ask.stream_id, "00" * 32)  # what an impostor would have sent
    back.pump()
    (checked,) = back.of("out", KeyChecked)
    assert not checked.valid
    lk.inn.dialback_checked(checked.remote, checked.local, checked.valid)
    assert stream_error(lk.inn.data_to_send()) == "not-authorized"
    assert lk.inn.closed and not lk.inn.authenticated


def test_a_key_for_another_stream_id_is_invalid() -> None:
    inn = InboundStream(settings(A))
    key = dialback_key(SECRETS[A], B, A, "stream-1")
    inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                b"xmlns:db='jabber:server:dialback' to='a.example' from='b.example' version='1.0'>")
    inn.data_to_send()
    inn.tls_active = True  # verification requests come on any stream; TLS is not what is tested here
    inn.receive(f"<db:verify from='{B}' to='{A}' id='stream-2'>{key}</db:verify>".encode())
    inn.receive(f"<db:verify from='{B}' to='{A}' id='stream-1'>{key}</db:verify>".encode())
    out = inn.data_to_send().decode()
    assert re.findall(r"type=\"(\w+)\"", out) == ["invalid", "valid"]


def test_dialback_off_means_certificates_or_nothing() -> None:
    lk = link(A, B, cert_ok=False, in_kw={"allow_dialback": False})
    (ended,) = lk.of("out", StreamEnded)
    assert ended.error is not None and ended.error.condition == "policy-violation"
    assert b"urn:xmpp:features:dialback" not in b"".join([lk.inn.data_to_send()])
    assert not lk.of("in", Authenticated)


def test_require_valid_certificates_refuses_dialback_keys() -> None:
    inn = InboundStream(settings(B, require_valid_certificates=True))
    inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                b"xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>")
    inn.tls_started(lambda d: False)
    inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                b"xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>")
    features = inn.data_to_send()
    assert b"dialback" not in features.split(b"<stream:features>")[-1]
    events = inn.receive(f"<db:result from='{A}' to='{B}'>abc</db:result>".encode())
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "not-authorized"


def test_dialback_before_tls_is_refused_when_encryption_is_required() -> None:
    inn = InboundStream(settings(B))
    inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                b"xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>")
    events = inn.receive(f"<db:result from='{A}' to='{B}'>abc</db:result>".encode())
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "policy-violation"


def test_a_stream_to_a_domain_not_served_here_is_refused_with_host_unknown() -> None:
    inn = InboundStream(settings(B))
    events = inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                         b"to='elsewhere.example' from='a.example' version='1.0'>")
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "host-unknown"


def test_a_client_stream_on_the_server_port_is_refused_with_invalid_namespace() -> None:
    inn = InboundStream(settings(B))
    events = inn.receive(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                         b"to='b.example' version='1.0'>")
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "invalid-namespace"


# --- stanzas ---------------------------------------------------------------------------------


def test_stanzas_cross_in_jabber_server_and_arrive_as_jabber_client() -> None:
    lk = link(A, B, cert_ok=True)
    lk.out.send(message(f"alice@{A}/phone", f"bob@{B}", "hello"))
    lk.pump()
    (received,) = lk.of("in", StanzaReceived)
    assert received.remote == A and received.stanza.ns == "jabber:client"
    assert received.stanza.child_text("body") == "hello"
    # On the wire the stanza is in jabber:server, which an independent parser confirms.
    wire = b"".join(lk.wire_out).decode()
    last_stream = wire[wire.rindex("<stream:stream"):]
    root = ET.fromstring(last_stream.replace("<?xml version='1.0'?>", "") + "</stream:stream>")
    (msg,) = root.findall("{jabber:server}message")
    assert msg.find("{jabber:server}body").text == "hello"


def test_a_stanza_with_a_foreign_from_ends_the_stream_with_invalid_from() -> None:
    lk = link(A, B, cert_ok=True)
    lk.out.send(message("mallory@c.example", f"bob@{B}"))
    lk.pump()
    assert not lk.of("in", StanzaReceived)
    (ended,) = lk.of("in", StreamEnded)
    assert ended.error.condition == "invalid-from"
    assert [e.remote_error for e in lk.of("out", StreamEnded)] == ["invalid-from"]


def test_a_stanza_for_a_domain_not_served_here_ends_the_stream_with_host_unknown() -> None:
    lk = link(A, B, cert_ok=True)
    lk.out.send(message(f"alice@{A}", "carol@c.example"))
    lk.pump()
    (ended,) = lk.of("in", StreamEnded)
    assert ended.error.condition == "host-unknown"


def test_a_stanza_before_authentication_ends_the_stream_with_not_authorized() -> None:
    inn = InboundStream(settings(B, require_encryption=False))
    inn.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                b"to='b.example' from='a.example' version='1.0'>")
    events = inn.receive(b"<message from='alice@a.example' to='bob@b.example'><body>x</body></message>")
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "not-authorized"


def test_verification_requests_wait_until_the_stream_can_carry_them() -> None:
    out = OutboundStream(settings(B), B, A)
    out.open()
    out.verify(B, "sid", "key")
    header = out.data_to_send()
    assert b"verify" not in header  # before TLS: nothing but the header
    lk = Link(out, InboundStream(settings(A)), cert_ok=False)
    lk.events_in += lk.inn.receive(header)
    lk.pump()
    assert any(b"<db:verify " in w for w in lk.wire_out)
    (checked,) = lk.of("out", KeyChecked)
    assert not checked.valid  # "key" was never a key of A's


def test_a_stream_error_from_the_peer_ends_the_outbound_stream_with_its_condition() -> None:
    out = OutboundStream(settings(A), A, B)
    out.open()
    events = out.receive(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                         b"from='b.example' id='x' version='1.0'><stream:error>"
                         b"<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
    assert [(e.error, e.remote_error) for e in events if isinstance(e, StreamEnded)] == [(None, "host-unknown")]


@pytest.mark.parametrize("require_encryption", [True, False])
def test_a_peer_without_tls(require_encryption: bool) -> None:
    lk = link(A, B, cert_ok=False, out_kw={"require_encryption": require_encryption},
              in_kw={"tls_available": False, "require_encryption": False})
    if require_encryption:
        (ended,) = lk.of("out", StreamEnded)
        assert ended.error.condition == "policy-violation"
    else:
        assert len(lk.of("in", VerifyKey)) == 1  # dialback over plain TCP, as the operator allowed


def test_dialback_elements_carry_the_db_prefix_the_stream_header_declared() -> None:
    # XEP-0220 writes them so, and ejabberd reads them only so: an unprefixed <result xmlns='jabber:server:dialback'/>
    # is dropped there without a word.
    out = OutboundStream(settings(A), A, B)
    out.open()
    header = out.data_to_send()
    assert f"xmlns:db='{NS_DIALBACK}'".encode() in header or f'xmlns:db="{NS_DIALBACK}"'.encode() in header
    assert _db("result", A, B, text="k3y") == f'<db:result from="{A}" to="{B}">k3y</db:result>'.encode()
    assert _db("verify", B, A, "valid", stream_id="s1") == f'<db:verify from="{B}" to="{A}" id="s1" type="valid"/>'.encode()
