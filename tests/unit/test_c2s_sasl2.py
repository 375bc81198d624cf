"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) in the c2s machine, sans-IO.

The client side is independent of the server's code: scramp runs SCRAM, and the HT proofs are
computed here with hmac from the draft's definition.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET

import pytest
import scramp
from test_c2s_negotiation import (
    BIND,
    CREDS,
    DOMAIN,
    ENDPOINT,
    PASSWORD,
    SASL,
    SASL_CB,
    STREAMS,
    Client,
    WsClient,
    q,
)

from sakari.jid import JID
from sakari.stream.c2s import (
    CheckToken,
    NeedCredentials,
    Sasl2Succeeded,
    StanzaReceived,
)
from sakari.stream.sasl import SaslFailure
from sakari.stream.sasl2 import TokenCheck, token_key
from sakari.xml.element import Element

SASL2 = "urn:xmpp:sasl:2"
BIND2 = "urn:xmpp:bind:0"
FAST = "urn:xmpp:fast:0"
SECRET = b"s" * 32
TOKEN = base64.urlsafe_b64encode(b"t" * 66).decode()
INLINE = ("urn:xmpp:carbons:2", "urn:xmpp:csi:0", "urn:xmpp:sm:3")


def client(**settings: object) -> Client:
    options: dict[str, object] = {"decoy_secret": SECRET, "bind_inline": INLINE, "fast": True}
    options.update(settings)
    c = Client(**options)
    c.starttls()
    return c


def features_now(c: Client) -> ET.Element:
    c.stream._send_features()
    c._read()
    return c.last()


def authentication(features: ET.Element) -> ET.Element:
    el = features.find(q(SASL2, "authentication"))
    assert el is not None, ET.tostring(features)
    return el


def authenticate(mechanism: str, initial: bytes | None, inner: str = "", client_id: str | None = "c0ffee") -> str:
    ua = f"<user-agent id='{client_id}'><software>Test</software></user-agent>" if client_id else ""
    ir = f"<initial-response>{base64.b64encode(initial).decode()}</initial-response>" if initial is not None else ""
    return f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>{ir}{ua}{inner}</authenticate>"


def data(el: ET.Element, name: str) -> bytes:
    child = el.find(q(SASL2, name))
    assert child is not None, ET.tostring(el)
    return base64.b64decode((child.text or "").strip())


def sasl2_failure(el: ET.Element) -> str:
    assert el.tag == q(SASL2, "failure"), ET.tostring(el)
    conditions = [c.tag for c in el if c.tag.startswith("{" + SASL + "}")]
    assert len(conditions) == 1
    return conditions[0].split("}")[1]


def scram(c: Client, mechanism: str = "SCRAM-SHA-256", password: str = PASSWORD, inner: str = "",
          binding: tuple[str, bytes] | None = None, client_id: str | None = "c0ffee"
          ) -> tuple[list[object], ET.Element | None, scramp.ScramClient]:
    """A SASL2 SCRAM exchange with scramp: the events after the proof, the failure if it failed, the client."""
    sc = scramp.ScramClient([mechanism], "juliet", password, channel_binding=binding)
    assert c.send(authenticate(mechanism, sc.get_client_first().encode(), inner, client_id)) == [NeedCredentials("juliet")]
    c.after(c.stream.provide_credentials(CREDS))
    challenge = c.last()
    assert challenge.tag == q(SASL2, "challenge"), ET.tostring(challenge)
    sc.set_server_first(base64.b64decode(challenge.text or "").decode())
    events = c.send(f"<response xmlns='{SASL2}'>{base64.b64encode(sc.get_client_final().encode()).decode()}</response>")
    received = c.take()
    return events, (received[-1] if received else None), sc


def success_of(c: Client, jid: JID | None, extra: list[Element] | None = None) -> tuple[ET.Element, ET.Element]:
    """The driver's answer to Sasl2Succeeded; returns <success/> and the features after it."""
    c.after(c.stream.sasl2_done(jid, extra or []))
    success, features = c.take()[-2:]
    assert success.tag == q(SASL2, "success") and features.tag == q(STREAMS, "features")
    return success, features


def succeeded(events: list[object]) -> Sasl2Succeeded:
    found = [e for e in events if isinstance(e, Sasl2Succeeded)]
    assert len(found) == 1, events
    return found[0]


# --- discovery ---------------------------------------------------------------------------------
def test_after_tls_sasl2_is_offered_with_the_same_mechanisms_bind2_inline_features_fast_and_channel_bindings() -> None:
    c = Client(bind_inline=INLINE, fast=True)
    c.starttls()
    features = features_now(c)
    auth = authentication(features)
    legacy = [m.text for m in features.find(q(SASL, "mechanisms"))]  # type: ignore[union-attr]
    assert [m.text for m in auth.findall(q(SASL2, "mechanism"))] == legacy
    inline = auth.find(q(SASL2, "inline"))
    assert inline is not None
    bind = inline.find(q(BIND2, "bind"))
    assert bind is not None
    assert [f.get("var") for f in bind.find(q(BIND2, "inline"))] == list(INLINE)  # type: ignore[union-attr]
    fast = inline.find(q(FAST, "fast"))
    assert fast is not None and [m.text for m in fast] == ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    cb = features.find(q(SASL_CB, "sasl-channel-binding"))  # XEP-0440 stays beside both profiles
    assert cb is not None and {b.get("type") for b in cb} == {"tls-server-end-point", "tls-exporter"}


def test_without_channel_binding_fast_offers_only_the_mechanism_without_binding() -> None:
    c = Client(fast=True)
    c.starttls(bindings={})
    fast = authentication(features_now(c)).find(f"{q(SASL2, 'inline')}/{q(FAST, 'fast')}")
    assert fast is not None and [m.text for m in fast] == ["HT-SHA-256-NONE"]


def test_without_a_token_store_fast_is_not_offered_and_sasl2_can_be_switched_off() -> None:
    c = Client()
    c.starttls()
    assert authentication(features_now(c)).find(f"{q(SASL2, 'inline')}/{q(FAST, 'fast')}") is None
    off = Client(sasl2=False)
    off.starttls()
    assert features_now(off).find(q(SASL2, "authentication")) is None


def test_before_tls_sasl2_is_not_offered_and_authenticate_is_encryption_required() -> None:
    c = Client()
    assert c.open().find(q(SASL2, "authentication")) is None
    c.send(authenticate("SCRAM-SHA-256", b"n,,n=juliet,r=abc"))
    assert sasl2_failure(c.last()) == "encryption-required"


# --- SASL2 with SCRAM and PLAIN -----------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_over_sasl2_succeeds_without_restart_with_the_bare_jid_and_a_verifier_scramp_accepts(mechanism: str) -> None:
    c = client()
    events, failure, sc = scram(c, mechanism)
    assert failure is None
    ev = succeeded(events)
    assert ev.user == "juliet" and ev.resource is None and ev.token_used is None
    header = c.server_header
    success, features = success_of(c, None)
    sc.set_server_final(data(success, "additional-data").decode())  # raises if the server's proof is wrong
    assert success.findtext(q(SASL2, "authorization-identifier")) == f"juliet@{DOMAIN}"
    assert c.server_header is header  # no new stream header: no restart
    assert features.find(q(BIND, "bind")) is not None and features.find(q(SASL2, "authentication")) is None
    # ...and the client binds as after RFC 6120 SASL.
    c.send(f"<iq type='set' id='b'><bind xmlns='{BIND}'><resource>r</resource></bind></iq>")
    c.after(c.stream.bound(JID("juliet", DOMAIN, "r")))
    assert c.last().get("type") == "result"


def test_scram_plus_over_sasl2_checks_the_channel_binding() -> None:
    c = client()
    _, failure, _ = scram(c, "SCRAM-SHA-256-PLUS", binding=("tls-server-end-point", ENDPOINT))
    assert failure is None
    c2 = client()
    _, failure, _ = scram(c2, "SCRAM-SHA-256-PLUS", binding=("tls-server-end-point", b"\x00" * 32))
    assert failure is not None and sasl2_failure(failure) == "not-authorized"


def test_wrong_password_over_sasl2_is_a_sasl2_failure_and_the_client_may_try_again() -> None:
    c = client()
    _, failure, _ = scram(c, password="wrong")
    assert failure is not None and sasl2_failure(failure) == "not-authorized"
    assert not c.server_closed
    _, failure, _ = scram(c)
    assert failure is None


def test_plain_over_sasl2_succeeds_and_a_wrong_password_fails() -> None:
    c = client()
    assert c.send(authenticate("PLAIN", b"\0juliet\0wrong")) == [NeedCredentials("juliet")]
    c.after(c.stream.provide_credentials(CREDS))
    assert sasl2_failure(c.last()) == "not-authorized"
    c.send(authenticate("PLAIN", f"\0juliet\0{PASSWORD}".encode()))
    events = c.after(c.stream.provide_credentials(CREDS))
    assert succeeded(events).user == "juliet"


def test_a_login_the_throttle_refuses_is_a_sasl2_temporary_auth_failure_with_its_text() -> None:
    c = client()
    assert c.send(authenticate("PLAIN", f"\0juliet\0{PASSWORD}".encode())) == [NeedCredentials("juliet")]
    c.after(c.stream.refuse(SaslFailure("temporary-auth-failure", "try again in 8 seconds")))
    failure = c.last()
    assert sasl2_failure(failure) == "temporary-auth-failure"
    assert failure.findtext(q(SASL2, "text")) == "try again in 8 seconds"
    assert not c.server_closed


def test_unknown_mechanism_and_abort_are_sasl2_failures() -> None:
    c = client()
    c.send(authenticate("DIGEST-MD5", b"x"))
    assert sasl2_failure(c.last()) == "invalid-mechanism"
    c.send(authenticate("SCRAM-SHA-256", None))  # no initial response: an empty challenge first
    assert c.last().tag == q(SASL2, "challenge")
    c.send(f"<abort xmlns='{SASL2}'/>")
    assert sasl2_failure(c.last()) == "aborted"


def test_a_legacy_response_during_a_sasl2_exchange_ends_the_stream() -> None:
    c = client()
    c.send(authenticate("SCRAM-SHA-256", None))
    c.take()
    c.send(f"<response xmlns='{SASL}'>=</response>")
    assert c.stream_error() == "unsupported-stanza-type"


def test_a_second_authenticate_after_success_is_a_stream_error() -> None:
    c = client()
    scram(c)
    success_of(c, None)
    c.send(authenticate("SCRAM-SHA-256", b"n,,n=juliet,r=abc"))
    assert c.stream_error() == "unsupported-stanza-type"


# --- Bind 2 -----------------------------------------------------------------------------------------
BIND_REQUEST = f"<bind xmlns='{BIND2}'><tag>Pocket</tag><enable xmlns='urn:xmpp:sm:3'/><inactive xmlns='urn:xmpp:csi:0'/></bind>"


def test_bind2_resource_is_the_tag_and_an_id_stable_per_client_that_does_not_show_the_client_id() -> None:
    resources = []
    for client_id in ("c0ffee", "c0ffee", "another"):
        c = client()
        events, _, _ = scram(c, inner=BIND_REQUEST, client_id=client_id)
        resources.append(succeeded(events).resource)
    first, again, other = resources
    assert first == again and first != other
    assert first is not None and first.startswith("Pocket.") and "c0ffee" not in first
    c = client()
    events, _, _ = scram(c, inner=BIND_REQUEST, client_id=None)
    assert succeeded(events).resource not in (None, first)


def test_bind2_success_carries_the_full_jid_and_bound_then_stanzas_flow_without_binding() -> None:
    c = client()
    events, _, _ = scram(c, inner=BIND_REQUEST)
    ev = succeeded(events)
    assert ev.request.bind is not None and [ch.name for ch in ev.request.bind.children] == ["tag", "enable", "inactive"]
    jid = JID("juliet", DOMAIN, ev.resource)
    bound = Element("bound", BIND2)
    bound.add("enabled", "urn:xmpp:sm:3", {"id": "x", "resume": "true"})
    success, features = success_of(c, jid, [bound])
    assert success.findtext(q(SASL2, "authorization-identifier")) == str(jid)
    assert success.find(f"{q(BIND2, 'bound')}/{{urn:xmpp:sm:3}}enabled") is not None
    assert features.find(q(BIND, "bind")) is None and features.find(q(SASL2, "authentication")) is None
    assert [type(e) for e in c.send("<message to='romeo@example.net'><body>hi</body></message>")] == [StanzaReceived]


def test_stanzas_pipelined_behind_authenticate_are_delivered_once_bound() -> None:
    c = client()
    events, _, _ = scram(c, inner=BIND_REQUEST)
    assert c.send("<presence/>") == []
    events = c.stream.sasl2_done(JID("juliet", DOMAIN, succeeded(events).resource), [])
    assert [type(e) for e in events] == [StanzaReceived]


# --- FAST ---------------------------------------------------------------------------------------------
def ht_initial(token: str, cb: bytes = b"", user: str = "juliet") -> bytes:
    return user.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")


def fast_login(c: Client, mechanism: str = "HT-SHA-256-NONE", cb: bytes = b"", inner: str = "",
               client_id: str | None = "c0ffee") -> list[object]:
    events = c.send(authenticate(mechanism, ht_initial(TOKEN, cb), f"<fast xmlns='{FAST}'/>{inner}", client_id))
    return events


def test_token_is_longer_than_the_hmac_block_so_its_hash_is_an_equivalent_key() -> None:
    assert token_key(TOKEN) == hashlib.sha256(TOKEN.encode()).digest()
    assert hmac.digest(TOKEN.encode(), b"m", "sha256") == hmac.digest(token_key(TOKEN), b"m", "sha256")


@pytest.mark.parametrize("mechanism, cb", [("HT-SHA-256-NONE", b""), ("HT-SHA-256-ENDP", ENDPOINT)])
def test_fast_login_is_one_round_trip_checked_by_the_store_with_a_responder_proof(mechanism: str, cb: bytes) -> None:
    c = client()
    (check,) = fast_login(c, mechanism, cb)
    assert isinstance(check, CheckToken)
    assert (check.user, check.mechanism, check.client_id) == ("juliet", mechanism, "c0ffee")
    assert not check.verify(token_key("another token " * 8))
    assert check.verify(token_key(TOKEN))
    ev = succeeded(c.after(c.stream.token_checked(TokenCheck(True, rotate=True))))
    assert ev.token_used == mechanism and ev.rotate_token
    success, _ = success_of(c, None)
    assert data(success, "additional-data") == hmac.digest(TOKEN.encode(), b"Responder" + cb, "sha256")


def test_a_store_that_says_yes_without_a_verified_key_does_not_let_the_client_in() -> None:
    c = client()
    fast_login(c)
    c.after(c.stream.token_checked(TokenCheck(True)))
    assert sasl2_failure(c.last()) == "not-authorized"


@pytest.mark.parametrize("condition", ["not-authorized", "credentials-expired"])
def test_a_token_the_store_refuses_fails_with_its_condition(condition: str) -> None:
    c = client()
    fast_login(c)
    c.after(c.stream.token_checked(TokenCheck(False, condition)))
    assert sasl2_failure(c.last()) == condition
    assert not c.server_closed


def test_a_fast_proof_over_the_wrong_channel_binding_does_not_verify() -> None:
    c = client()
    (check,) = fast_login(c, "HT-SHA-256-ENDP", b"\x00" * 32)
    assert isinstance(check, CheckToken) and not check.verify(token_key(TOKEN))


def test_fast_without_a_client_id_without_a_store_or_without_binding_fails() -> None:
    c = client()
    fast_login(c, client_id=None)
    assert sasl2_failure(c.last()) == "not-authorized"
    c = client(fast=False)
    fast_login(c)
    assert sasl2_failure(c.last()) == "invalid-mechanism"
    c = Client(fast=True)
    c.starttls(bindings={})
    fast_login(c, "HT-SHA-256-ENDP", ENDPOINT)
    assert sasl2_failure(c.last()) == "invalid-mechanism"


def test_a_token_request_reaches_the_driver_only_for_an_offered_mechanism() -> None:
    c = client()
    events, _, _ = scram(c, inner=f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>")
    assert succeeded(events).request.request_token == "HT-SHA-256-NONE"
    c = client()
    events, _, _ = scram(c, inner=f"<request-token xmlns='{FAST}' mechanism='HT-SHA-512-NONE'/>")
    assert succeeded(events).request.request_token is None


def test_fast_invalidate_is_passed_to_the_driver() -> None:
    c = client()
    (check,) = c.send(authenticate("HT-SHA-256-NONE", ht_initial(TOKEN), f"<fast xmlns='{FAST}' invalidate='true'/>"))
    assert isinstance(check, CheckToken) and check.verify(token_key(TOKEN))
    ev = succeeded(c.after(c.stream.token_checked(TokenCheck(True))))
    assert ev.request.invalidate_token and ev.token_used == "HT-SHA-256-NONE"


def test_a_malformed_fast_message_fails() -> None:
    c = client()
    c.send(authenticate("HT-SHA-256-NONE", b"juliet-without-proof"))
    assert sasl2_failure(c.last()) == "malformed-request"



def test_sasl2_with_bind2_over_websocket_needs_no_new_open() -> None:
    c = WsClient(decoy_secret=SECRET, bind_inline=INLINE)
    features = c.open()
    assert features.find(q(SASL2, "authentication")) is not None  # the transport is TLS already
    events, failure, _ = scram(c, inner=BIND_REQUEST)
    assert failure is None
    header = c.server_header
    frames_before = c.stream.frames_to_send()
    assert frames_before == []
    c.stream.sasl2_done(JID("juliet", DOMAIN, succeeded(events).resource), [])
    success, features = (ET.fromstring(frame) for frame in c.stream.frames_to_send())  # one message each
    assert success.tag == q(SASL2, "success") and features.tag == q(STREAMS, "features")
    assert c.server_header is header
    assert [type(e) for e in c.send("<message xmlns='jabber:client' to='romeo@example.net'/>")] == [StanzaReceived]
