"""The c2s stream state machine, sans-IO: bytes in, events and bytes out.

SCRAM is checked against scramp, an independent client implementation.
"""

import base64
import re

import pytest
import scramp

from sakari.core.credentials import derive
from sakari.core.jid import JID
from sakari.stream.c2s import (
    BindRequest,
    C2SStream,
    NeedCredentials,
    StanzaReceived,
    StartTLS,
    State,
    StreamEnded,
    StreamSettings,
)

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
CREDS = derive("correct horse", 4096)
BINDING = {"tls-server-end-point": b"\x01" * 32}


def opened(require_encryption: bool = True) -> C2SStream:
    stream = C2SStream(StreamSettings("localhost", tls_available=True, require_encryption=require_encryption))
    stream.receive(HEADER)
    return stream


def after_tls() -> C2SStream:
    stream = opened()
    assert stream.receive(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") == [StartTLS()]
    assert stream.data_to_send().endswith(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    stream.tls_started(BINDING)
    stream.receive(HEADER)
    return stream


def sasl(name: str, data: bytes) -> bytes:
    payload = base64.b64encode(data).decode() if data else "="
    return f"<{name} xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{payload}</{name}>".encode()


def payload_of(output: bytes, name: str) -> bytes:
    m = re.search(rb"<" + name.encode() + rb" xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]*)</", output)
    assert m, output
    return base64.b64decode(m.group(1))


def test_features_before_tls_offer_only_required_starttls() -> None:
    out = opened().data_to_send()
    assert b"<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>" in out
    assert b"mechanisms" not in out


def test_after_starttls_scram_plus_plain_and_channel_bindings_are_offered() -> None:
    out = after_tls().data_to_send()
    mechs = re.findall(rb"<mechanism>([^<]+)</mechanism>", out)
    assert mechs == [b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256", b"SCRAM-SHA-1-PLUS", b"SCRAM-SHA-1", b"PLAIN"]
    assert b'<channel-binding type="tls-server-end-point"/>' in out


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_login_with_an_independent_client(mechanism: str) -> None:
    stream = after_tls()
    stream.data_to_send()
    binding = ("tls-server-end-point", BINDING["tls-server-end-point"]) if mechanism.endswith("PLUS") else None
    client = scramp.ScramClient([mechanism], "alice", "correct horse", channel_binding=binding)
    auth = f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>".encode()
    events = stream.receive(auth + base64.b64encode(client.get_client_first().encode()) + b"</auth>")
    assert events == [NeedCredentials("alice")]
    stream.provide_credentials(CREDS)
    client.set_server_first(payload_of(stream.data_to_send(), "challenge").decode())
    stream.receive(sasl("response", client.get_client_final().encode()))
    out = stream.data_to_send()
    client.set_server_final(payload_of(out, "success").decode())  # raises if the server's signature is wrong
    assert stream.user == "alice" and stream.state is State.HEADER


def test_scram_with_the_wrong_password_fails_not_authorized() -> None:
    stream = after_tls()
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice", "wrong")
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
                   + base64.b64encode(client.get_client_first().encode()) + b"</auth>")
    stream.provide_credentials(CREDS)
    client.set_server_first(payload_of(stream.data_to_send(), "challenge").decode())
    stream.receive(sasl("response", client.get_client_final().encode()))
    assert b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>" in stream.data_to_send()
    assert stream.user is None and stream.state is State.FEATURES


def test_plus_with_other_binding_data_fails() -> None:
    stream = after_tls()
    client = scramp.ScramClient(["SCRAM-SHA-256-PLUS"], "alice", "correct horse",
                                channel_binding=("tls-server-end-point", b"\x02" * 32))
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>"
                   + base64.b64encode(client.get_client_first().encode()) + b"</auth>")
    stream.provide_credentials(CREDS)
    client.set_server_first(payload_of(stream.data_to_send(), "challenge").decode())
    stream.receive(sasl("response", client.get_client_final().encode()))
    assert b"<not-authorized/>" in stream.data_to_send()


def test_three_failed_attempts_end_the_stream() -> None:
    stream = after_tls()
    for _ in range(3):
        stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                       + base64.b64encode(b"\0alice\0nope") + b"</auth>")
        events = stream.provide_credentials(CREDS)
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "policy-violation"


def test_unknown_user_fails_not_authorized() -> None:
    stream = after_tls()
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                   + base64.b64encode(b"\0nobody\0pw") + b"</auth>")
    stream.provide_credentials(None)
    assert b"<not-authorized/>" in stream.data_to_send()


def test_sasl_before_tls_gets_encryption_required() -> None:
    stream = opened()
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hLHI9eA==</auth>")
    assert b"<encryption-required/>" in stream.data_to_send()


@pytest.mark.parametrize(
    "header, condition",
    [
        (HEADER.replace(b"to='localhost'", b"to='elsewhere.example'"), b"host-unknown"),
        (HEADER.replace(b"xmlns='jabber:client'", b"xmlns='jabber:server'"), b"invalid-namespace"),
        (HEADER.replace(b"version='1.0'", b"version='0.9'"), b"unsupported-version"),
    ],
)
def test_bad_headers_end_the_stream_with_their_condition(header: bytes, condition: bytes) -> None:
    stream = C2SStream(StreamSettings("localhost", tls_available=True))
    events = stream.receive(header)
    out = stream.data_to_send()
    assert out.startswith(b"<?xml version='1.0'?><stream:stream ")
    assert b"<stream:error><" + condition in out and out.endswith(b"</stream:stream>")
    assert isinstance(events[-1], StreamEnded)


def test_stanza_before_authentication_is_not_authorized() -> None:
    stream = opened(require_encryption=False)
    events = stream.receive(b"<message to='a@localhost'><body>hi</body></message>")
    assert isinstance(events[-1], StreamEnded) and events[-1].error.condition == "not-authorized"


def test_bind_and_pipelined_stanzas_keep_their_order() -> None:
    stream = opened(require_encryption=False)
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>")
    stream.user = "alice"  # authentication itself is covered above
    stream._restart()
    stream.receive(HEADER)
    events = stream.receive(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>"
        b"<presence/><iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    )
    assert events == [BindRequest("phone")]
    held = stream.bound(JID("alice", "localhost", "phone"))
    assert [e.stanza.name for e in held if isinstance(e, StanzaReceived)] == ["presence"]
    out = stream.data_to_send()
    assert b"<jid>alice@localhost/phone</jid>" in out
    assert b'<iq type="result" id="s1"/>' in out  # the legacy session request is simply acknowledged


def test_client_close_is_answered_with_our_close() -> None:
    stream = opened()
    stream.data_to_send()
    events = stream.receive(b"</stream:stream>")
    assert events == [StreamEnded(None)] and stream.data_to_send() == b"</stream:stream>"
