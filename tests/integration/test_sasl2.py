"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) against a real server, over raw TCP streams:
a password login that binds inline, enables stream management, carbons and CSI and asks for a
token; then a token login in one round trip that gets the same resource back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET

import pytest

from raw_xmpp import RawStream, ScramClient, tls_server_end_point
from xmpp_harness import NS_BIND, NS_CLIENT, NS_STREAM, describe, q

pytestmark = pytest.mark.asyncio

SASL2 = "urn:xmpp:sasl:2"
BIND2 = "urn:xmpp:bind:0"
FAST = "urn:xmpp:fast:0"
SM = "urn:xmpp:sm:3"
SASL_CB = "urn:xmpp:sasl-cb:0"
MODULES = '"roster", "presence", "offline", "disco", "ping", "smacks", "carbons", "csi", "fast"'
BIND_REQUEST = (
    f"<bind xmlns='{BIND2}'><tag>Pocket</tag><enable xmlns='{SM}' resume='true'/>"
    "<enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>"
)


@pytest.fixture(scope="module")
def sasl2_server(spawn_server):
    with spawn_server("sasl2-server", f"[modules]\nenabled = [{MODULES}]\n") as srv:
        yield srv


async def secure(server) -> tuple[RawStream, ET.Element]:
    stream = await RawStream.connect(server.c2s_port)
    await stream.open()
    await stream.starttls()
    return stream, await stream.open()


async def authenticate(stream: RawStream, mechanism: str, initial: bytes, inner: str, client_id: str) -> ET.Element:
    await stream.send(
        f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>"
        f"<initial-response>{base64.b64encode(initial).decode()}</initial-response>"
        f"<user-agent id='{client_id}'><software>raw</software></user-agent>{inner}</authenticate>"
    )
    answer = await stream.next_element()
    assert answer is not None, f"stream closed after <authenticate/>: {bytes(stream.received[-600:])!r}"
    return answer


def additional_data(success: ET.Element) -> bytes:
    return base64.b64decode(success.findtext(q(SASL2, "additional-data")) or "")


async def password_login(server, account, inner: str, client_id: str) -> tuple[RawStream, ET.Element]:
    """SCRAM-SHA-256-PLUS over SASL2; returns the stream and <success/>, checking the server's proof."""
    stream, _ = await secure(server)
    cb = tls_server_end_point(stream.peer_certificate())
    scram = ScramClient("SCRAM-SHA-256-PLUS", account.localpart, account.password, cb_type="tls-server-end-point", cb_data=cb)
    challenge = await authenticate(stream, "SCRAM-SHA-256-PLUS", scram.first(), inner, client_id)
    assert challenge.tag == q(SASL2, "challenge"), describe(challenge)
    final = scram.final(base64.b64decode(challenge.text or ""))
    await stream.send(f"<response xmlns='{SASL2}'>{base64.b64encode(final).decode()}</response>")
    success = await stream.next_element()
    assert success is not None and success.tag == q(SASL2, "success"), describe(success)
    assert scram.verify(additional_data(success)), "the server's SCRAM signature is wrong"
    return stream, success


def ht_message(username: str, token: str, cb: bytes) -> bytes:
    return username.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")


async def test_features_offer_sasl2_with_bind2_inline_features_fast_and_channel_bindings(sasl2_server):
    stream, features = await secure(sasl2_server)
    try:
        auth = features.find(q(SASL2, "authentication"))
        assert auth is not None, describe(features)
        assert "SCRAM-SHA-256-PLUS" in [m.text for m in auth.findall(q(SASL2, "mechanism"))]
        inline = auth.find(f"{q(SASL2, 'inline')}/{q(BIND2, 'bind')}/{q(BIND2, 'inline')}")
        assert inline is not None and {f.get("var") for f in inline} == {"urn:xmpp:carbons:2", "urn:xmpp:csi:0", SM}
        fast = auth.find(f"{q(SASL2, 'inline')}/{q(FAST, 'fast')}")
        assert fast is not None and [m.text for m in fast] == ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
        cb = features.find(q(SASL_CB, "sasl-channel-binding"))
        assert cb is not None and [c.get("type") for c in cb] == ["tls-server-end-point"]
    finally:
        stream.close()


async def test_password_login_binds_inline_and_a_token_login_gets_the_same_resource_in_one_round_trip(sasl2_server):
    account = sasl2_server.new_account()
    token_request = f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-ENDP'/>"
    first, success = await password_login(sasl2_server, account, BIND_REQUEST + token_request, "phone-1")
    jid = success.findtext(q(SASL2, "authorization-identifier")) or ""
    assert jid.startswith(f"{account.jid}/Pocket."), describe(success)
    enabled = success.find(f"{q(BIND2, 'bound')}/{q(SM, 'enabled')}")
    assert enabled is not None and enabled.get("resume") == "true", describe(success)
    token = success.find(q(FAST, "token"))
    assert token is not None and token.get("expiry"), describe(success)
    features = await first.expect(NS_STREAM, "features")  # no restart: the features of a bound stream
    assert features.find(q(NS_BIND, "bind")) is None, describe(features)
    # Stanzas flow at once, and stream management counts them.
    await first.send(f"<iq type='get' id='p1' to='{account.jid.split('@')[1]}'><ping xmlns='urn:xmpp:ping'/></iq>")
    pong = await first.expect(NS_CLIENT, "iq")
    assert pong.get("type") == "result" and pong.get("id") == "p1", describe(pong)
    await first.expect(SM, "r")  # the server asks for an ack of the pong
    await first.send(f"<a xmlns='{SM}' h='1'/><r xmlns='{SM}'/>")
    ack = await first.expect(SM, "a")
    assert ack.get("h") == "1"

    # The token, with channel binding: no PBKDF2, one round trip, and the server proves it knows the token too.
    second, _ = await secure(sasl2_server)
    try:
        cb = tls_server_end_point(second.peer_certificate())
        answer = await authenticate(
            second, "HT-SHA-256-ENDP", ht_message(account.localpart, token.get("token") or "", cb),
            f"<fast xmlns='{FAST}'/>" + BIND_REQUEST, "phone-1",
        )
        assert answer.tag == q(SASL2, "success"), describe(answer)
        assert additional_data(answer) == hmac.digest((token.get("token") or "").encode(), b"Responder" + cb, "sha256")
        assert answer.findtext(q(SASL2, "authorization-identifier")) == jid  # the same client, the same resource
        # ...which replaces the earlier session of the same client.
        closed = await first.read_until_closed()
        assert any(el.tag == q(NS_STREAM, "error") for el in closed), [describe(el) for el in closed]
    finally:
        first.close()
        second.close()


async def test_a_wrong_token_fails_and_a_password_login_without_bind_goes_on_to_bind(sasl2_server):
    account = sasl2_server.new_account()
    stream, _ = await secure(sasl2_server)
    try:
        fake = base64.urlsafe_b64encode(hashlib.sha512(b"guess").digest() + b"xx").decode()
        answer = await authenticate(stream, "HT-SHA-256-NONE", ht_message(account.localpart, fake, b""),
                                    f"<fast xmlns='{FAST}'/>", "laptop")
        assert answer.tag == q(SASL2, "failure"), describe(answer)
        assert answer.find("{urn:ietf:params:xml:ns:xmpp-sasl}not-authorized") is not None, describe(answer)
    finally:
        stream.close()
    stream, success = await password_login(sasl2_server, account, "", "laptop")
    try:
        assert success.findtext(q(SASL2, "authorization-identifier")) == account.jid
        features = await stream.expect(NS_STREAM, "features")
        assert features.find(q(NS_BIND, "bind")) is not None, describe(features)
        assert (await stream.bind("desk")) == f"{account.jid}/desk"
    finally:
        stream.close()
