"""Fuzzing SASL (sakari/stream/sasl.py, sasl2.py) on its own and through the c2s stream machine
(sakari/stream/c2s.py): whatever a client sends as its first and final messages, in <auth/>/<response/> or
in SASL2's <authenticate/>, the exchange ends in a SASL failure (or, after too many, a stream error), never
in an exception escaping the machine and never in a success without the password."""

from __future__ import annotations

import base64

from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from sakari.credentials import check_password, derive
from sakari.stream.c2s import (
    Authenticated,
    C2SStream,
    CheckPassword,
    CheckToken,
    NeedCredentials,
    Sasl2Succeeded,
    StreamEnded,
    StreamSettings,
)
from sakari.stream.sasl import SaslFailure, ScramServer, parse_plain
from sakari.stream.sasl2 import TokenCheck

DOMAIN = "example.org"
USER = "juliet"
PASSWORD = "correct horse battery staple"
CREDS = derive(PASSWORD, 64)  # few iterations: the harness runs thousands of exchanges
BINDINGS = {"tls-server-end-point": b"\x5a" * 32, "tls-exporter": b"\x17" * 32}
HEADER = (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          f"to='{DOMAIN}' version='1.0'>").encode()
MECHANISMS = ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN", "HT-SHA-256-NONE",
              "HT-SHA-256-ENDP", "X-BOGUS", ""]
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL2 = "urn:xmpp:sasl:2"

username = st.sampled_from([USER, "Juliet", "jul=2Ciet", "a=3D", "=", "=2", "x=ZZ", "", "\u0130", "ǅ", "a@b", " "]) | st.text(max_size=6)
gs2_flag = st.sampled_from(["n", "y", "p=tls-exporter", "p=tls-server-end-point", "p=tls-unique", "p=", "q"])
authz = st.sampled_from(["", f"a={USER}", f"a={USER}@{DOMAIN}", "a=other", "a=", "a=x=2", "b=x"])


@st.composite
def client_first(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=60))
    nonce = draw(st.sampled_from(["", "abc", "r=", ",", "\x00"]) | st.text(max_size=8))
    extra = draw(st.sampled_from(["", ",m=ext", ",", ",x=1,y"]))
    text = f"{draw(gs2_flag)},{draw(authz)},n={draw(username)},r={nonce}{extra}"
    return draw(st.sampled_from([text, text.replace(",", "", 1), text[: len(text) // 2]])).encode()


@st.composite
def client_final(draw: st.DrawFn, nonce: str = "", gs2: bytes = b"") -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=80))
    c = draw(st.sampled_from([base64.b64encode(gs2).decode(), "biws", "eSws", "", "!!", "===="])
             | st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()))
    r = draw(st.sampled_from([nonce, nonce[:-1], "", "x"]))
    proof = draw(st.sampled_from(["", "!!", "AAAA", "="]) | st.binary(min_size=0, max_size=40).map(
        lambda b: base64.b64encode(b).decode()))
    parts = [f"c={c}", f"r={r}", *draw(st.lists(st.sampled_from(["x=1", "p=", "=", "", "c=biws"]), max_size=2))]
    return (",".join(parts) + draw(st.sampled_from([f",p={proof}", "", f"p={proof}"]))).encode()


@fuzz(200)
@given(data=st.data(), hash_name=st.sampled_from(["SHA-1", "SHA-256"]), plus=st.booleans(),
       bindings=st.sampled_from([BINDINGS, {}]))
def test_scram_server_fails_with_a_sasl_failure_on_any_client_message(
        data: st.DataObject, hash_name: str, plus: bool, bindings: dict[str, bytes]) -> None:
    server = ScramServer(hash_name, plus, bindings)
    try:
        server.start(data.draw(client_first()))
    except SaslFailure:
        return
    server.first(CREDS)
    final = data.draw(client_final(server._nonce, server._gs2_header))
    try:
        server.final(final)
    except SaslFailure:
        return
    raise AssertionError(f"a client final message without the password passed: {final!r}")


@fuzz()
@given(message=st.binary(max_size=40) | st.lists(st.text(max_size=6), max_size=5).map(
    lambda parts: "\x00".join(parts).encode()))
def test_plain_messages_parse_or_fail_with_a_sasl_failure(message: bytes) -> None:
    try:
        identity, password = parse_plain(message)
    except SaslFailure:
        return
    assert identity.username and password


# --- through the c2s stream machine ---------------------------------------------------------------------


class Exchange:
    """A C2SStream after TLS, with the driver's part done here the way sakari/net/c2s.py does it."""

    def __init__(self) -> None:
        self.stream = C2SStream(StreamSettings(DOMAIN, tls_available=True, decoy_secret=b"s" * 32,
                                               decoy_iterations=64, fast=True))
        self.stream.tls_started(BINDINGS)
        self.output = b""
        self.authenticated = False
        self.ended = False
        self.send(HEADER)

    def send(self, data: bytes) -> None:
        self.handle(self.stream.receive(data))

    def handle(self, events: list[object]) -> None:
        for event in events:
            if isinstance(event, NeedCredentials):
                self.handle(self.stream.provide_credentials(CREDS if event.user == USER else None))
            elif isinstance(event, CheckPassword):
                self.handle(self.stream.password_checked(check_password(event.creds, event.password)))
            elif isinstance(event, CheckToken):
                self.handle(self.stream.token_checked(TokenCheck(ok=event.verify(b"k" * 32))))
            elif isinstance(event, (Authenticated, Sasl2Succeeded)):
                self.authenticated = True
            elif isinstance(event, StreamEnded):
                self.ended = True
        self.output += self.stream.data_to_send()


def payload(data: bytes, mangle: int) -> str:
    text = base64.b64encode(data).decode()
    return [text, "=" if not data else text, text[:-1], f" {text}\n", "&lt;" + text, ""][mangle]


@fuzz(200)
@given(data=st.data(), mechanism=st.sampled_from(MECHANISMS) | st.text(max_size=8),
       sasl2=st.booleans(), mangle=st.integers(min_value=0, max_value=5), rounds=st.integers(min_value=1, max_value=3))
def test_any_sasl_exchange_through_the_stream_ends_in_a_failure(
        data: st.DataObject, mechanism: str, sasl2: bool, mangle: int, rounds: int) -> None:
    exchange = Exchange()
    mech = mechanism.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
    for _ in range(rounds):
        first = data.draw(client_first() | st.binary(max_size=40) if not mechanism.startswith("PLAIN") else
                          st.lists(st.text(max_size=6), max_size=4).map(lambda p: "\x00".join(p).encode()))
        if sasl2:
            agent = data.draw(st.sampled_from(["", "<user-agent id='c0ffee'><software>Fuzz</software></user-agent>",
                                               "<user-agent/>", "<bind xmlns='urn:xmpp:bind:0'><tag>t</tag></bind>",
                                               "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>"]))
            initial = data.draw(st.sampled_from(["<initial-response>{}</initial-response>", "{}", ""]))
            exchange.send(f"<authenticate xmlns='{SASL2}' mechanism='{mech}'>"
                          f"{initial.format(payload(first, mangle))}{agent}</authenticate>".encode())
        else:
            exchange.send(f"<auth xmlns='{SASL}' mechanism='{mech}'>{payload(first, mangle)}</auth>".encode())
        # The client-final message, in the namespace of the exchange; sent whatever the server answered, as a
        # careless or hostile client would.
        nonce = getattr(exchange.stream._sasl, "_nonce", "") if exchange.stream._sasl is not None else ""
        gs2 = getattr(exchange.stream._sasl, "_gs2_header", b"") if exchange.stream._sasl is not None else b""
        final = data.draw(client_final(nonce, gs2))
        ns = SASL2 if sasl2 else SASL
        exchange.send(f"<response xmlns='{ns}'>{payload(final, mangle)}</response>".encode())
        if exchange.ended:
            break
    assert not exchange.authenticated, exchange.output
    assert b"failure" in exchange.output or exchange.ended, exchange.output
