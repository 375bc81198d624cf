"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) against a real server, over raw TCP streams:
a password login that binds inline, enables stream management, carbons and CSI and asks for a
token; then a token login in one round trip that gets the same resource back; stream management
resumed inline in SASL2 after a cut connection."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import pytest

from raw_xmpp import RawStream, ScramClient, tls_server_end_point
from xmpp_harness import NS_BIND, NS_CLIENT, NS_DELAY, NS_STREAM, WAIT, describe, q

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


async def wait_for_log(server, text: str, start: int) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not any(text in line for line in server.log[start:]):
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in the server log"
        await asyncio.sleep(0.02)


async def bodies(stream: RawStream, count: int) -> tuple[list[str], list[ET.Element]]:
    """Read until ``count`` messages with a body came; their bodies, and every element read."""
    got: list[str] = []
    read: list[ET.Element] = []
    while len(got) < count:
        el = await stream.next_element()
        assert el is not None, f"stream closed: {bytes(stream.received[-600:])!r}"
        read.append(el)
        if el.tag == q(NS_CLIENT, "message") and el.findtext(q(NS_CLIENT, "body")) is not None:
            got.append(el.findtext(q(NS_CLIENT, "body")) or "")
    return got, read


async def test_stream_management_resumes_inline_in_sasl2_with_the_unacknowledged_messages(sasl2_server):
    phone_account, friend_account = sasl2_server.new_account(), sasl2_server.new_account()
    features_stream, features = await secure(sasl2_server)
    features_stream.close()
    inline = features.find(f"{q(SASL2, 'authentication')}/{q(SASL2, 'inline')}")
    assert inline is not None and inline.find(q(SM, "sm")) is not None, describe(features)

    phone, success = await password_login(sasl2_server, phone_account, BIND_REQUEST, "phone-resume")
    jid = success.findtext(q(SASL2, "authorization-identifier")) or ""
    enabled = success.find(f"{q(BIND2, 'bound')}/{q(SM, 'enabled')}")
    assert enabled is not None and enabled.get("id"), describe(success)
    await phone.expect(NS_STREAM, "features")
    friend = await RawStream.connect(sasl2_server.c2s_port)
    try:
        await friend.login_plain(friend_account, "desk")
        to = quoteattr(jid)
        await friend.send("".join(f"<message to={to} type='chat'><body>m{n}</body></message>" for n in (1, 2, 3)))
        got, _ = await bodies(phone, 3)
        assert got == ["m1", "m2", "m3"]
        await phone.send(f"<a xmlns='{SM}' h='1'/>")  # m1 handled; then the connection is cut
        mark = len(sasl2_server.log)
        phone.close()
        await wait_for_log(sasl2_server, "event=sm-detached", mark)
        await friend.send(f"<message to={to} type='chat'><body>m4</body></message>")

        # A new connection resumes inside <authenticate/>: <resumed/> in <success/>, no Bind 2 though asked for.
        resume = f"<resume xmlns='{SM}' previd={quoteattr(enabled.get('id') or '')} h='1'/>"
        again, success = await password_login(sasl2_server, phone_account, resume + BIND_REQUEST, "phone-resume")
        try:
            resumed = success.find(q(SM, "resumed"))
            assert resumed is not None and resumed.get("previd") == enabled.get("id"), describe(success)
            assert resumed.get("h") == "0", describe(resumed)  # the phone sent us no stanza
            assert success.find(q(BIND2, "bound")) is None, describe(success)
            assert success.findtext(q(SASL2, "authorization-identifier")) == jid
            await again.expect(NS_STREAM, "features")
            got, read = await bodies(again, 3)
            assert got == ["m2", "m3", "m4"], got  # what was not acknowledged, once and in order
            assert all(el.find(q(NS_DELAY, "delay")) is not None for el in read if el.tag == q(NS_CLIENT, "message"))
            # The session goes on, on the new connection: stanzas flow both ways.
            await friend.send(f"<message to={to} type='chat'><body>m5</body></message>")
            got, _ = await bodies(again, 1)
            assert got == ["m5"]
        finally:
            again.close()
    finally:
        friend.close()


async def test_a_failed_inline_resumption_answers_in_success_and_bind2_goes_on(sasl2_server):
    account = sasl2_server.new_account()
    resume = f"<resume xmlns='{SM}' previd='no-such-session' h='0'/>"
    stream, success = await password_login(sasl2_server, account, resume + BIND_REQUEST, "phone-unknown")
    try:
        failed = success.find(q(SM, "failed"))
        assert failed is not None, describe(success)
        assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None, describe(failed)
        bound = success.find(q(BIND2, "bound"))
        assert bound is not None and bound.find(q(SM, "enabled")) is not None, describe(success)
        assert (success.findtext(q(SASL2, "authorization-identifier")) or "").startswith(f"{account.jid}/Pocket.")
        features = await stream.expect(NS_STREAM, "features")
        assert features.find(q(NS_BIND, "bind")) is None, describe(features)
    finally:
        stream.close()
