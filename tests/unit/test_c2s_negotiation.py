"""The c2s stream state machine, sans-IO (RFC 6120 §4–§7): bytes in, events and bytes out.

The server's output is read with ElementTree's pull parser, not ours, and SCRAM
is driven by scramp's ScramClient, an independent implementation.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest
import scramp

from sakari.credentials import check_password, derive
from sakari.jid import JID
from sakari.stream.c2s import (
    Authenticated,
    BindRequest,
    C2SStream,
    CheckPassword,
    NeedCredentials,
    StanzaReceived,
    StartTLS,
    StreamEnded,
    StreamSettings,
)

DOMAIN = "example.org"
STREAMS = "http://etherx.jabber.org/streams"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL_CB = "urn:xmpp:sasl-cb:0"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"

PASSWORD = "correct horse battery staple"
CREDS = derive(PASSWORD, 4096)
ENDPOINT = b"\x5a" * 32  # what the TLS layer would compute as tls-server-end-point for our certificate
BINDINGS = {"tls-server-end-point": ENDPOINT, "tls-exporter": b"\x17" * 32}


def header(to: str | None = DOMAIN, version: str | None = "1.0", content_ns: str = "jabber:client",
           stream_ns: str = STREAMS) -> bytes:
    attrs = f" to='{to}'" if to is not None else ""
    attrs += f" version='{version}'" if version is not None else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{content_ns}' xmlns:stream='{stream_ns}'"
            f" xml:lang='en'{attrs}>").encode()


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class Client:
    """Drives a C2SStream the way a client would and reads what the server writes with ElementTree."""

    def __init__(self, **settings: object) -> None:
        options: dict[str, object] = {"domain": DOMAIN, "tls_available": True}
        options.update(settings)
        self.stream = C2SStream(StreamSettings(**options))  # type: ignore[arg-type]
        self.events: list[object] = []
        self.received: list[ET.Element] = []  # top-level elements from the server, in order
        self.server_header: ET.Element | None = None
        self.server_closed = False
        self._restart_reader()

    def _restart_reader(self) -> None:
        self._reader = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0

    def restart(self) -> None:
        """A stream restart (after <proceed/> or <success/>): the server's next bytes are a new document."""
        self._restart_reader()
        self.server_header = None

    def _read(self) -> None:
        data = self.stream.data_to_send()
        if not data:
            return
        self._reader.feed(data)
        for kind, el in self._reader.read_events():
            if kind == "start":
                if self._depth == 0:
                    self.server_header = el
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 1:
                    self.received.append(el)
                elif self._depth == 0:
                    self.server_closed = True

    def send(self, data: bytes | str) -> list[object]:
        events = self.stream.receive(data.encode() if isinstance(data, str) else data)
        self.events += events
        self._read()
        return events

    def after(self, events: list[object]) -> list[object]:
        """Read output produced by a driver callback (provide_credentials, bound...).

        A password check is answered here, as the driver would answer it."""
        self.events += events
        self._read()
        for event in list(events):
            if isinstance(event, CheckPassword):
                events = events + self.after(self.stream.password_checked(check_password(event.creds, event.password)))
        return events

    def take(self) -> list[ET.Element]:
        out, self.received = self.received, []
        return out

    def last(self) -> ET.Element:
        received = self.take()
        assert received, "the server sent nothing"
        return received[-1]

    # --- negotiation steps --------------------------------------------------------------
    def open(self, data: bytes | None = None) -> ET.Element:
        self.send(header() if data is None else data)
        return self.last()

    def starttls(self, bindings: dict[str, bytes] = BINDINGS) -> ET.Element:
        self.open()
        assert self.send(f"<starttls xmlns='{TLS}'/>") == [StartTLS()]
        assert self.last().tag == q(TLS, "proceed")
        self.restart()
        self.stream.tls_started(bindings)
        return self.open()

    def stream_error(self) -> str:
        """The condition of the stream error the server sent; the stream must be closed after it."""
        error = self.last_error_element()
        conditions = [c.tag for c in error if c.tag != q(STREAM_ERRORS, "text")]
        assert len(conditions) == 1 and conditions[0].startswith("{" + STREAM_ERRORS + "}"), ET.tostring(error)
        assert self.server_closed
        ended = [e for e in self.events if isinstance(e, StreamEnded)]
        assert len(ended) == 1 and ended[0].error is not None
        assert ended[0].error.condition == conditions[0].split("}")[1]
        return ended[0].error.condition

    def last_error_element(self) -> ET.Element:
        errors = [el for el in self.received if el.tag == q(STREAMS, "error")]
        assert errors, f"no stream error among {[el.tag for el in self.received]}"
        return errors[-1]


def mechanisms(features: ET.Element) -> list[str]:
    mechs = features.find(q(SASL, "mechanisms"))
    return [] if mechs is None else [m.text or "" for m in mechs.findall(q(SASL, "mechanism"))]


def sasl_payload(el: ET.Element) -> bytes:
    text = (el.text or "").strip()
    return b"" if text in ("", "=") else base64.b64decode(text)


def sasl(name: str, data: bytes | None = None, mechanism: str | None = None) -> str:
    mech = f" mechanism='{mechanism}'" if mechanism else ""
    payload = "" if data is None else (base64.b64encode(data).decode() or "=")
    return f"<{name} xmlns='{SASL}'{mech}>{payload}</{name}>"


def failure_condition(el: ET.Element) -> str:
    assert el.tag == q(SASL, "failure"), ET.tostring(el)
    conditions = [c.tag.split("}")[1] for c in el if c.tag != q(SASL, "text")]
    assert len(conditions) == 1
    return conditions[0]


def scram_login(client: Client, mechanism: str, password: str = PASSWORD,
                binding: tuple[str, bytes] | None = None, username: str = "juliet") -> ET.Element:
    """Run a SCRAM exchange with scramp as the client; returns the server's last element (success/failure)."""
    scram = scramp.ScramClient([mechanism], username, password, channel_binding=binding)
    events = client.send(sasl("auth", scram.get_client_first().encode(), mechanism))
    assert events == [NeedCredentials(username.lower())]
    client.after(client.stream.provide_credentials(CREDS))
    challenge = client.last()
    assert challenge.tag == q(SASL, "challenge"), ET.tostring(challenge)
    scram.set_server_first(sasl_payload(challenge).decode())
    client.send(sasl("response", scram.get_client_final().encode()))
    answer = client.last()
    if answer.tag == q(SASL, "success"):
        scram.set_server_final(sasl_payload(answer).decode())  # raises if the server's signature is wrong
    return answer


def plain(authcid: str, password: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{authcid}\0{password}".encode()


def logged_in(resource: str = "balcony") -> Client:
    client = Client()
    client.starttls()
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")
    client.restart()
    client.open()
    client.send(f"<iq type='set' id='bind1'><bind xmlns='{BIND}'><resource>{resource}</resource></bind></iq>")
    client.after(client.stream.bound(JID("juliet", DOMAIN, resource)))
    client.take()
    return client


# --- stream header -----------------------------------------------------------------------


def test_header_is_answered_with_our_header_and_features() -> None:
    client = Client()
    features = client.open()
    assert features.tag == q(STREAMS, "features")
    h = client.server_header
    assert h is not None and h.tag == q(STREAMS, "stream")
    assert h.get("from") == DOMAIN and h.get("version") == "1.0" and h.get("id")
    assert client.stream.stream_id == h.get("id")


def test_starttls_is_required_by_default_and_no_mechanism_is_offered_before_tls() -> None:
    features = Client().open()
    starttls = features.find(q(TLS, "starttls"))
    assert starttls is not None and starttls.find(q(TLS, "required")) is not None
    assert features.find(q(SASL, "mechanisms")) is None


def test_without_required_encryption_starttls_is_optional_and_plain_is_not_offered() -> None:
    features = Client(require_encryption=False).open()
    starttls = features.find(q(TLS, "starttls"))
    assert starttls is not None and starttls.find(q(TLS, "required")) is None
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_plain_without_tls_is_refused_as_invalid_mechanism() -> None:
    client = Client(require_encryption=False)
    client.open()
    assert client.send(sasl("auth", plain("juliet", PASSWORD), "PLAIN")) == []
    assert failure_condition(client.last()) == "invalid-mechanism"


def test_auth_before_tls_when_encryption_is_required_is_encryption_required() -> None:
    client = Client()
    client.open()
    assert client.send(sasl("auth", b"n,,n=juliet,r=abc", "SCRAM-SHA-256")) == []
    assert failure_condition(client.last()) == "encryption-required"


def test_header_addressed_to_another_host_ends_with_host_unknown() -> None:
    client = Client()
    client.send(header(to="elsewhere.example"))
    assert client.stream_error() == "host-unknown"
    assert client.server_header is not None and client.server_header.get("version") == "1.0"


def test_header_to_our_domain_in_other_case_is_accepted() -> None:
    assert Client().open(header(to="EXAMPLE.org")).tag == q(STREAMS, "features")


@pytest.mark.parametrize("to", ["bücher.example", "BÜCHER.example", "bücher.example.", "xn--bcher-kva.example"])
def test_header_to_an_idn_domain_is_accepted_in_any_form_of_that_domain(to: str) -> None:
    """The 'to' of the header is a domainpart (RFC 6120 §4.7.2), compared after preparation (RFC 7622 §3.2)."""
    client = Client(domain="bücher.example")
    assert client.open(header(to=to)).tag == q(STREAMS, "features")


@pytest.mark.parametrize(
    "data",
    [header(content_ns="jabber:server"), header(stream_ns="urn:example:not-streams"), header(content_ns="")],
    ids=["content-namespace", "stream-namespace", "no-content-namespace"],
)
def test_header_with_the_wrong_namespace_ends_with_invalid_namespace(data: bytes) -> None:
    client = Client()
    client.send(data)
    assert client.stream_error() == "invalid-namespace"


@pytest.mark.parametrize("version", ["0.9", None], ids=["0.9", "missing"])
def test_header_with_version_below_1_ends_with_unsupported_version(version: str | None) -> None:
    client = Client()
    client.send(header(version=version))
    assert client.stream_error() == "unsupported-version"


def test_header_with_a_later_minor_version_is_accepted() -> None:
    assert Client().open(header(version="1.5")).tag == q(STREAMS, "features")


def test_garbage_instead_of_a_header_ends_with_not_well_formed() -> None:
    client = Client()
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    assert client.stream_error() == "not-well-formed"


def test_a_header_declaring_latin1_ends_with_unsupported_encoding() -> None:
    client = Client()
    client.send(header().replace(b"<?xml version='1.0'?>", b"<?xml version='1.0' encoding='ISO-8859-1'?>"))
    assert client.server_header is not None  # the error goes in a stream of our own (RFC 6120 §4.9.1.1)
    assert client.stream_error() == "unsupported-encoding"


def test_restricted_xml_ends_with_restricted_xml() -> None:
    client = Client()
    client.open()
    client.send(b"<!-- a comment -->")
    assert client.stream_error() == "restricted-xml"


def test_oversized_stanza_ends_the_stream_with_policy_violation() -> None:
    client = Client(max_stanza_size=2000)
    client.open()
    client.send("<message><body>" + "a" * 5000 + "</body></message>")
    assert client.stream_error() == "policy-violation"


def test_deeply_nested_stanza_ends_the_stream_with_policy_violation() -> None:
    client = Client(max_depth=10)
    client.open()
    client.send("<message>" + "<a>" * 50)
    assert client.stream_error() == "policy-violation"


# --- STARTTLS ------------------------------------------------------------------------


def test_starttls_emits_starttls_event_then_restart_offers_scram_plus_plain_and_channel_bindings() -> None:
    client = Client()
    features = client.starttls()
    assert features.find(q(TLS, "starttls")) is None
    assert mechanisms(features) == [
        "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN",
    ]
    cb = features.find(q(SASL_CB, "sasl-channel-binding"))
    assert cb is not None
    assert sorted(c.get("type") for c in cb.findall(q(SASL_CB, "channel-binding"))) == [
        "tls-exporter", "tls-server-end-point",
    ]


def test_without_channel_binding_data_no_plus_mechanism_is_offered() -> None:
    features = Client().starttls(bindings={})
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert features.find(q(SASL_CB, "sasl-channel-binding")) is None


def test_plain_can_be_switched_off() -> None:
    features = Client(allow_plain=False).starttls()
    assert "PLAIN" not in mechanisms(features)


def test_second_starttls_after_tls_is_refused() -> None:
    client = Client()
    client.starttls()
    client.send(f"<starttls xmlns='{TLS}'/>")
    assert client.stream.state.name == "CLOSED"
    assert not any(isinstance(e, StartTLS) for e in client.events[1:])


def test_element_pipelined_behind_starttls_is_never_processed() -> None:
    client = Client()
    client.open()
    events = client.send(f"<starttls xmlns='{TLS}'/>" + sasl("auth", plain("juliet", PASSWORD), "PLAIN"))
    assert StartTLS() in events
    assert not any(isinstance(e, NeedCredentials) for e in events)


def test_stream_that_ended_stays_ended_when_tls_completes_afterwards() -> None:
    """A driver that upgrades on StartTLS must not bring a stream back that the same call ended."""
    client = Client()
    client.open()
    events = client.send(f"<starttls xmlns='{TLS}'/><junk xmlns='urn:example'/>")
    assert StartTLS() in events
    if any(isinstance(e, StreamEnded) for e in events):
        client.stream.tls_started(BINDINGS)
        assert client.stream.receive(header()) == []
        assert client.stream.data_to_send() == b""


# --- SASL: SCRAM against scramp ------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_exchange_with_an_independent_client_succeeds_with_a_verifier_it_accepts(mechanism: str) -> None:
    client = Client()
    client.starttls()
    assert scram_login(client, mechanism).tag == q(SASL, "success")
    assert Authenticated("juliet") in client.events
    assert client.stream.user == "juliet"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_plus_with_the_same_tls_server_end_point_data_succeeds(mechanism: str) -> None:
    client = Client()
    client.starttls()
    answer = scram_login(client, mechanism, binding=("tls-server-end-point", ENDPOINT))
    assert answer.tag == q(SASL, "success")
    assert client.stream.user == "juliet"


def test_scram_plus_with_mismatched_binding_data_fails_not_authorized() -> None:
    client = Client()
    client.starttls()
    answer = scram_login(client, "SCRAM-SHA-256-PLUS", binding=("tls-server-end-point", b"\x00" * 32))
    assert failure_condition(answer) == "not-authorized"
    assert client.stream.user is None


def test_scram_with_the_wrong_password_fails_not_authorized() -> None:
    client = Client()
    client.starttls()
    assert failure_condition(scram_login(client, "SCRAM-SHA-256", password="wrong")) == "not-authorized"
    assert client.stream.user is None
    assert not any(isinstance(e, Authenticated) for e in client.events)


def test_scram_username_is_prepared_before_lookup() -> None:
    client = Client()
    client.starttls()
    assert scram_login(client, "SCRAM-SHA-256", username="Juliet").tag == q(SASL, "success")
    assert client.stream.user == "juliet"


def test_scram_without_binding_when_client_thinks_server_cannot_bind_is_a_downgrade() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", b"y,,n=juliet,r=clientnonce", "SCRAM-SHA-256"))
    assert failure_condition(client.last()) == "not-authorized"


def test_unknown_user_fails_not_authorized() -> None:
    client = Client()
    client.starttls()
    scram = scramp.ScramClient(["SCRAM-SHA-256"], "nobody", PASSWORD)
    assert client.send(sasl("auth", scram.get_client_first().encode(), "SCRAM-SHA-256")) == [NeedCredentials("nobody")]
    client.after(client.stream.provide_credentials(None))
    assert failure_condition(client.last()) == "not-authorized"
    assert client.stream.user is None


def decoy_challenge(client: Client, user: str) -> str:
    scram = scramp.ScramClient(["SCRAM-SHA-256"], user, PASSWORD)
    client.send(sasl("auth", scram.get_client_first().encode(), "SCRAM-SHA-256"))
    client.after(client.stream.provide_credentials(None))
    challenge = client.last()
    assert challenge.tag == q(SASL, "challenge")
    server_first = sasl_payload(challenge).decode()
    scram.set_server_first(server_first)
    client.send(sasl("response", scram.get_client_final().encode()))
    assert failure_condition(client.last()) == "not-authorized"
    assert client.stream.user is None
    return server_first.split(",", 1)[1]  # salt and iterations, without the nonce


def test_with_a_decoy_secret_an_unknown_user_gets_a_challenge_like_a_real_account_then_not_authorized() -> None:
    client = Client(decoy_secret=b"s" * 32, decoy_iterations=4096)
    client.starttls()
    salt_and_iterations = decoy_challenge(client, "nobody")
    assert salt_and_iterations.endswith(",i=4096")
    assert len(base64.b64decode(salt_and_iterations[2:].split(",")[0])) == len(CREDS.salt)
    # Asked again, the same salt, as a real account would give; another name, another salt.
    assert decoy_challenge(client, "nobody") == salt_and_iterations
    again = Client(decoy_secret=b"s" * 32, decoy_iterations=4096)
    again.starttls()
    assert decoy_challenge(again, "somebody") != salt_and_iterations
    other_server = Client(decoy_secret=b"t" * 32, decoy_iterations=4096)
    other_server.starttls()
    assert decoy_challenge(other_server, "nobody") != salt_and_iterations


def test_with_a_decoy_secret_plain_for_an_unknown_user_fails_not_authorized() -> None:
    client = Client(decoy_secret=b"s" * 32, decoy_iterations=4096)
    client.starttls()
    client.send(sasl("auth", b"\0nobody\0" + PASSWORD.encode(), "PLAIN"))
    client.after(client.stream.provide_credentials(None))
    assert failure_condition(client.last()) == "not-authorized"
    assert client.stream.user is None


def test_scram_with_initial_response_in_a_separate_response_element_succeeds() -> None:
    client = Client()
    client.starttls()
    scram = scramp.ScramClient(["SCRAM-SHA-256"], "juliet", PASSWORD)
    client.send(sasl("auth", None, "SCRAM-SHA-256"))
    assert sasl_payload(client.last()) == b""  # an empty challenge asks for the initial response
    assert client.send(sasl("response", scram.get_client_first().encode())) == [NeedCredentials("juliet")]
    client.after(client.stream.provide_credentials(CREDS))
    scram.set_server_first(sasl_payload(client.last()).decode())
    client.send(sasl("response", scram.get_client_final().encode()))
    success = client.last()
    assert success.tag == q(SASL, "success")
    scram.set_server_final(sasl_payload(success).decode())


def test_three_failed_attempts_end_the_stream_with_policy_violation() -> None:
    client = Client()
    client.starttls()
    for attempt in range(2):
        assert failure_condition(scram_login(client, "SCRAM-SHA-256", password=f"wrong{attempt}")) == "not-authorized"
        assert not client.server_closed
    scram = scramp.ScramClient(["SCRAM-SHA-256"], "juliet", "wrong again")
    client.send(sasl("auth", scram.get_client_first().encode(), "SCRAM-SHA-256"))
    client.after(client.stream.provide_credentials(CREDS))
    scram.set_server_first(sasl_payload(client.last()).decode())
    client.send(sasl("response", scram.get_client_final().encode()))
    assert failure_condition(client.received[0]) == "not-authorized"
    assert client.stream_error() == "policy-violation"


def test_abort_is_answered_with_aborted_and_does_not_count_as_a_failure() -> None:
    client = Client()
    client.starttls()
    for _ in range(3):
        client.send(sasl("auth", None, "SCRAM-SHA-256"))
        client.take()
        client.send(sasl("abort"))
        assert failure_condition(client.last()) == "aborted"
    assert not client.server_closed
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")


def test_unknown_mechanism_fails_invalid_mechanism() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", b"whatever", "DIGEST-MD5"))
    assert failure_condition(client.last()) == "invalid-mechanism"


def test_bad_base64_fails_incorrect_encoding() -> None:
    client = Client()
    client.starttls()
    client.send(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>not base64!</auth>")
    assert failure_condition(client.last()) == "incorrect-encoding"


def test_failure_text_quoting_client_data_is_escaped() -> None:
    """The client's channel-binding type name is quoted in the failure text; it must stay text."""
    client = Client()
    client.starttls()
    client.send(sasl("auth", b"p=a&b<c/>,,n=juliet,r=abc", "SCRAM-SHA-256-PLUS"))  # the reader raises if not well-formed
    failure = client.last()
    assert failure_condition(failure) == "malformed-request"
    assert "a&b<c/>" in (failure.findtext(q(SASL, "text")) or "")


# --- SASL: PLAIN ------------------------------------------------------------------------


def test_plain_over_tls_with_the_right_password_succeeds() -> None:
    client = Client()
    client.starttls()
    assert client.send(sasl("auth", plain("juliet", PASSWORD), "PLAIN")) == [NeedCredentials("juliet")]
    events = client.after(client.stream.provide_credentials(CREDS))
    assert client.last().tag == q(SASL, "success")
    assert Authenticated("juliet") in events
    assert client.stream.user == "juliet"


def test_plain_decides_only_when_the_driver_has_checked_the_password() -> None:
    """The PBKDF2 of a PLAIN check runs in the driver's thread pool, not in the stream."""
    client = Client()
    client.starttls()
    client.send(sasl("auth", plain("juliet", PASSWORD), "PLAIN"))
    events = client.stream.provide_credentials(CREDS)
    assert events == [CheckPassword(CREDS, PASSWORD)]
    assert client.stream.data_to_send() == b""
    assert client.stream.user is None
    client.after(client.stream.password_checked(False))
    assert failure_condition(client.last()) == "not-authorized"


def test_password_check_answered_after_the_client_closed_the_stream_is_ignored() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", plain("juliet", PASSWORD), "PLAIN"))
    assert client.stream.provide_credentials(CREDS) == [CheckPassword(CREDS, PASSWORD)]
    client.send("</stream:stream>")
    client.take()
    assert client.stream.password_checked(True) == []
    assert client.stream.data_to_send() == b""
    assert client.stream.user is None


def test_plain_over_tls_with_the_wrong_password_fails_not_authorized() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", plain("juliet", "Correct Horse Battery Staple"), "PLAIN"))
    client.after(client.stream.provide_credentials(CREDS))
    assert failure_condition(client.last()) == "not-authorized"
    assert client.stream.user is None


def test_plain_for_an_unknown_user_fails_not_authorized() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", plain("nobody", PASSWORD), "PLAIN"))
    client.after(client.stream.provide_credentials(None))
    assert failure_condition(client.last()) == "not-authorized"


def test_plain_with_another_users_authzid_fails_invalid_authzid() -> None:
    client = Client()
    client.starttls()
    assert client.send(sasl("auth", plain("juliet", PASSWORD, authzid="romeo@example.org"), "PLAIN")) == []
    assert failure_condition(client.last()) == "invalid-authzid"


def test_plain_with_own_bare_jid_as_authzid_succeeds() -> None:
    client = Client()
    client.starttls()
    client.send(sasl("auth", plain("juliet", PASSWORD, authzid=f"juliet@{DOMAIN}"), "PLAIN"))
    client.after(client.stream.provide_credentials(CREDS))
    assert client.last().tag == q(SASL, "success")


def test_three_failed_plain_attempts_end_the_stream_with_policy_violation() -> None:
    client = Client()
    client.starttls()
    for _ in range(3):
        client.send(sasl("auth", plain("juliet", "nope"), "PLAIN"))
        client.after(client.stream.provide_credentials(CREDS))
    assert client.stream_error() == "policy-violation"
    assert client.stream.user is None


# --- before and after authentication -------------------------------------------------------


@pytest.mark.parametrize(
    "stanza",
    ["<message to='romeo@example.org'><body>hi</body></message>", "<presence/>",
     "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"],
    ids=["message", "presence", "iq"],
)
def test_stanza_before_authentication_ends_the_stream_not_authorized(stanza: str) -> None:
    client = Client()
    client.open()
    events = client.send(stanza)
    assert not any(isinstance(e, StanzaReceived) for e in events)
    assert client.stream_error() == "not-authorized"


def test_after_success_the_restarted_stream_offers_bind() -> None:
    client = Client()
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    features = client.open()
    assert features.find(q(BIND, "bind")) is not None
    assert features.find(q(SASL, "mechanisms")) is None
    assert features.find(q(TLS, "starttls")) is None


def test_bind_with_a_client_resource_emits_bind_request_and_bound_returns_the_jid() -> None:
    client = Client()
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    events = client.send(f"<iq type='set' id='bind1'><bind xmlns='{BIND}'><resource>balcony</resource></bind></iq>")
    assert events == [BindRequest("balcony")]
    assert client.take() == []  # nothing is answered before the driver decides
    client.after(client.stream.bound(JID("juliet", DOMAIN, "balcony")))
    result = client.last()
    assert result.tag == "{jabber:client}iq"
    assert result.get("type") == "result" and result.get("id") == "bind1"
    assert result.findtext(f"{q(BIND, 'bind')}/{q(BIND, 'jid')}") == "juliet@example.org/balcony"


def test_bind_without_a_resource_asks_the_server_to_pick_one() -> None:
    client = Client()
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    assert client.send(f"<iq type='set' id='b'><bind xmlns='{BIND}'/></iq>") == [BindRequest(None)]


def test_stanza_after_authentication_but_before_bind_is_not_delivered() -> None:
    client = Client()
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    events = client.send("<iq type='get' id='early'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert not any(isinstance(e, StanzaReceived) for e in events)
    reply = client.last()
    assert reply.get("type") == "error" and reply.get("id") == "early"
    assert reply.find(f"{{jabber:client}}error/{q(STANZA_ERRORS, 'not-authorized')}") is not None


def test_legacy_session_iq_is_answered_with_a_result() -> None:
    client = logged_in()
    events = client.send(f"<iq type='set' id='sess1'><session xmlns='{SESSION}'/></iq>")
    assert events == []
    result = client.last()
    assert result.tag == "{jabber:client}iq" and result.get("type") == "result" and result.get("id") == "sess1"


def test_stanzas_after_bind_are_emitted_in_order() -> None:
    client = logged_in()
    events = client.send("<presence/><message to='romeo@example.org' id='m1'><body>hi</body></message>")
    assert [e.stanza.name for e in events if isinstance(e, StanzaReceived)] == ["presence", "message"]


def test_client_close_is_answered_with_our_close_and_stream_ended() -> None:
    client = logged_in()
    events = client.send("</stream:stream>")
    assert events == [StreamEnded(None)]
    assert client.server_closed
    assert client.take() == []  # no stream error
    assert client.send("<presence/>") == []  # nothing is processed after the close


def test_credentials_arriving_after_the_client_closed_the_stream_are_ignored() -> None:
    """The look-up is asynchronous: the client may be gone by the time the driver answers."""
    client = Client()
    client.starttls()
    assert client.send(sasl("auth", plain("juliet", PASSWORD), "PLAIN")) == [NeedCredentials("juliet")]
    assert client.send("</stream:stream>") == [StreamEnded(None)]
    client.take()
    assert client.stream.provide_credentials(CREDS) == []
    assert client.stream.data_to_send() == b""
    assert client.stream.user is None


def test_bind_answer_arriving_after_the_client_closed_the_stream_is_ignored() -> None:
    client = Client()
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    client.send(f"<iq type='set' id='b'><bind xmlns='{BIND}'/></iq>")
    assert client.send("</stream:stream>") == [StreamEnded(None)]
    client.take()
    assert client.stream.bound(JID("juliet", DOMAIN, "r")) == []
    assert client.stream.data_to_send() == b""


def test_client_close_before_authentication_is_answered_with_our_close() -> None:
    client = Client()
    client.open()
    assert client.send("</stream:stream>") == [StreamEnded(None)]
    assert client.server_closed


# --- pre-bind elements (registered by modules, e.g. XEP-0198 <resume/>) ------------------

SM = "urn:xmpp:sm:3"


def authenticated(**settings: object) -> Client:
    """Logged in (SCRAM) and at the bind stage, with the restarted stream's features read."""
    client = Client(**settings)
    client.starttls()
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")
    client.restart()
    client.open()
    return client


def test_a_registered_pre_bind_element_is_handed_to_the_driver_and_stanzas_behind_it_wait() -> None:
    from sakari.stream.c2s import PreBindReceived

    client = authenticated(pre_bind=frozenset({(SM, "resume")}))
    events = client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/><message to='romeo@example.org' id='early'/>")
    (pre,) = events
    assert isinstance(pre, PreBindReceived)
    assert (pre.element.ns, pre.element.name, pre.element.attrs["previd"]) == (SM, "resume", "abc")
    assert client.take() == []  # nothing is answered before the module decides


def test_a_pre_bind_element_that_resumes_a_session_lets_stanzas_flow_without_binding() -> None:
    from sakari.xml.element import Element

    client = authenticated(pre_bind=frozenset({(SM, "resume")}))
    client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/><message to='romeo@example.org' id='early'/>")
    reply = Element("resumed", SM, {"previd": "abc", "h": "0"})
    events = client.after(client.stream.pre_bind_done(reply, JID("juliet", DOMAIN, "balcony")))
    resumed = client.last()
    assert resumed.tag == q(SM, "resumed") and resumed.get("previd") == "abc"
    assert [e.stanza.attrs["id"] for e in events if isinstance(e, StanzaReceived)] == ["early"]
    assert client.stream.jid == JID("juliet", DOMAIN, "balcony")
    assert [e.stanza.attrs["id"] for e in client.send("<presence id='p'/>") if isinstance(e, StanzaReceived)] == ["p"]


def test_a_pre_bind_element_that_does_not_resume_leaves_the_client_to_bind() -> None:
    from sakari.xml.element import Element

    client = authenticated(pre_bind=frozenset({(SM, "resume")}))
    client.send(f"<resume xmlns='{SM}' previd='gone' h='3'/>")
    failed = Element("failed", SM)
    client.after(client.stream.pre_bind_done(failed, None))
    assert client.last().tag == q(SM, "failed")
    assert client.send(f"<iq type='set' id='b'><bind xmlns='{BIND}'/></iq>") == [BindRequest(None)]


def test_a_pre_bind_answer_after_the_client_left_is_ignored() -> None:
    client = authenticated(pre_bind=frozenset({(SM, "resume")}))
    client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/>")
    assert client.send("</stream:stream>") == [StreamEnded(None)]
    client.take()
    assert client.stream.pre_bind_done(None, JID("juliet", DOMAIN, "balcony")) == []
    assert client.stream.data_to_send() == b""


def test_an_element_no_module_registered_before_bind_is_unsupported_stanza_type() -> None:
    client = authenticated()  # nothing registered
    client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/>")
    assert client.stream_error() == "unsupported-stanza-type"


def test_a_registered_pre_bind_element_before_authentication_is_not_accepted() -> None:
    client = Client(pre_bind=frozenset({(SM, "resume")}))
    client.starttls()
    client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/>")
    assert client.stream_error() == "unsupported-stanza-type"


def test_a_registered_pre_bind_element_after_bind_is_a_nonza_for_the_session() -> None:
    from sakari.stream.c2s import NonzaReceived, PreBindReceived

    client = Client(pre_bind=frozenset({(SM, "resume")}))
    client.starttls()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    client.send(f"<iq type='set' id='b'><bind xmlns='{BIND}'/></iq>")
    client.after(client.stream.bound(JID("juliet", DOMAIN, "r")))
    (event,) = client.send(f"<resume xmlns='{SM}' previd='abc' h='3'/>")
    assert isinstance(event, NonzaReceived) and not isinstance(event, PreBindReceived)


# --- WebSocket framing through the whole negotiation (RFC 7395) ------------------------------

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


class WsClient(Client):
    """A client over WebSocket: TLS is the transport's (wss), the stream opens with <open/>, and each
    element the server writes is a message of its own, read here as children of a synthetic root."""

    def __init__(self, **settings: object) -> None:
        from sakari.stream.framing import WebSocketFraming

        super().__init__(**settings)
        self.stream = C2SStream(self.stream.settings, direct_tls=True, framing=WebSocketFraming(262144, 64))

    def _restart_reader(self) -> None:
        self._reader = ET.XMLPullParser(events=("start", "end"))
        self._reader.feed(b"<messages>")
        list(self._reader.read_events())  # the synthetic root's start
        self._depth = 1

    def restart(self) -> None:
        self.server_header = None  # messages are documents of their own: the reader goes on

    def _read(self) -> None:
        data = self.stream.data_to_send()
        if not data:
            return
        self._reader.feed(data)
        for kind, el in self._reader.read_events():
            if kind == "start":
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth != 1:
                continue
            if el.tag == q(FRAMING, "open"):
                self.server_header = el
            elif el.tag == q(FRAMING, "close"):
                self.server_closed = True
            else:
                self.received.append(el)

    def open(self, data: bytes | None = None) -> ET.Element:
        self.send(data or f"<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>".encode())
        return self.last()


def test_websocket_negotiation_from_open_to_stanzas_and_close() -> None:
    client = WsClient()
    features = client.open()
    assert client.server_header is not None
    assert client.server_header.get("from") == DOMAIN and client.server_header.get("version") == "1.0"
    assert client.server_header.get("id")
    assert features.tag == q(STREAMS, "features")
    assert features.find(q(TLS, "starttls")) is None  # the transport is already encrypted
    assert "SCRAM-SHA-256" in mechanisms(features) and "PLAIN" in mechanisms(features)

    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")
    client.restart()
    features = client.open()
    assert client.server_header is not None and features.find(q(BIND, "bind")) is not None

    events = client.send(
        f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{BIND}'><resource>ws</resource></bind></iq>"
    )
    assert events == [BindRequest("ws")]
    client.after(client.stream.bound(JID("juliet", DOMAIN, "ws")))
    (result,) = client.take()
    assert result.get("type") == "result" and result.get("id") == "b1"
    assert result.findtext(f".//{q(BIND, 'jid')}") == "juliet@example.org/ws"

    events = client.send("<message xmlns='jabber:client' to='romeo@example.org' id='m1'><body>hi</body></message>")
    assert [e.stanza.attrs["id"] for e in events if isinstance(e, StanzaReceived)] == ["m1"]
    assert client.send(f"<close xmlns='{FRAMING}'/>") == [StreamEnded(None)]
    assert client.server_closed


def test_websocket_stanzas_from_the_server_declare_the_jabber_client_namespace() -> None:
    client = WsClient()
    client.open()
    scram_login(client, "SCRAM-SHA-256")
    client.restart()
    client.open()
    client.send(f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{BIND}'/></iq>")
    client.after(client.stream.bound(JID("juliet", DOMAIN, "ws")))
    (result,) = client.take()
    assert result.tag == "{jabber:client}iq"


def test_websocket_stream_error_is_a_message_of_its_own_followed_by_close() -> None:
    client = WsClient()
    client.send(f"<open xmlns='{FRAMING}' to='elsewhere.example' version='1.0'/>".encode())
    assert client.server_header is not None and client.server_header.get("from") == DOMAIN
    assert client.stream_error() == "host-unknown"
    error = client.last_error_element()
    assert error.tag == q(STREAMS, "error")


def test_websocket_stanza_before_authentication_ends_with_not_authorized() -> None:
    client = WsClient()
    client.open()
    client.send("<message xmlns='jabber:client' to='romeo@example.org'/>")
    assert client.stream_error() == "not-authorized"


# --- virtual hosts: the stream header names the domain asked for -----------------------------


def test_a_stream_to_a_virtual_host_is_answered_from_that_host() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.open(header(to="Other.Example"))
    assert client.server_header is not None and client.server_header.get("from") == "other.example"
    assert client.stream.domain == "other.example"


def test_a_stream_to_the_main_domain_is_still_answered_from_it_when_there_are_virtual_hosts() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.open()
    assert client.server_header is not None and client.server_header.get("from") == DOMAIN


def test_a_stream_to_a_domain_that_is_not_a_virtual_host_is_host_unknown() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.send(header(to="third.example"))
    assert client.stream_error() == "host-unknown"


def test_a_stream_without_to_is_answered_from_the_main_domain() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.open(header(to=None))
    assert client.server_header is not None and client.server_header.get("from") == DOMAIN


def test_after_authentication_the_restarted_stream_must_name_the_same_virtual_host() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.open(header(to="other.example"))
    client.send(f"<starttls xmlns='{TLS}'/>")
    client.take()
    client.restart()
    client.stream.tls_started(BINDINGS)
    client.open(header(to="other.example"))
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")
    client.restart()
    client.send(header(to=DOMAIN))  # another served domain, but not the one authenticated for
    assert client.stream_error() == "host-unknown"


def test_plain_authzid_of_the_virtual_host_is_accepted_on_its_stream() -> None:
    client = Client(domains=frozenset({DOMAIN, "other.example"}))
    client.open(header(to="other.example"))
    client.send(f"<starttls xmlns='{TLS}'/>")
    client.take()
    client.restart()
    client.stream.tls_started(BINDINGS)
    client.open(header(to="other.example"))
    client.send(sasl("auth", plain("juliet", PASSWORD, "juliet@other.example"), "PLAIN"))
    client.after(client.stream.provide_credentials(CREDS))
    assert client.last().tag == q(SASL, "success")
